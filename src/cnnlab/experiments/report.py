"""The report: one row per variant, overlaid curves, one plain-words finding each.

Written as report.md (next to its PNGs), report.html (self-contained: images
embedded as base64) and report.csv (numbers at full precision, accuracies as
fractions, the same units as the runs' metrics.json).

    >>> write_report(groups, "runs/improve", title="Improving the lecture's CNN")
    PosixPath('runs/improve/report.html')
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
from pathlib import Path

from ..io import atomic_write
from . import stats
from .collect import POINTS, Group, Summary, summarize
from .figures import draw_all

FIGURES = (("val_accuracy.png", "Validation accuracy of every variant"),
           ("val_loss.png", "Validation loss of every variant"),
           ("effects.png", "Effect of each change on the final validation accuracy"))


# -- formatting ----------------------------------------------------------------------

def _pm(values, scale=POINTS, digits=2) -> str:
    if not values:
        return "-"
    m, s = stats.mean(values) * scale, stats.std(values) * scale
    return f"{m:.{digits}f}" + ("" if math.isnan(s) else f" ± {s:.{digits}f}")


def _signed(x: float) -> str:
    return f"{x * POINTS:+.2f}"


def delta_text(d: stats.Difference | None) -> str:
    if d is None:
        return "(base)"
    if math.isnan(d.diff):
        return "-"
    if not d.tested:
        return f"{_signed(d.diff)} ({d.note})"
    mark = " *" if d.significant else " ?" if d.inconclusive else ""
    return f"{_signed(d.diff)} ± {d.se * POINTS:.2f} (p={d.p:.2g}){mark}"


def _epochs_text(epochs) -> str:
    if not epochs:
        return "-"
    lo, hi = min(epochs), max(epochs)
    return str(lo) if lo == hi else f"{lo}-{hi} (mean {stats.mean(epochs):.1f})"


def _runs_text(row: Summary) -> str:
    text = f"{len(row.finished)}"
    if row.diverged:
        text += f" (+{row.diverged} diverged)"
    if row.incomplete:
        text += f" (+{row.incomplete} unfinished)"
    return text


# -- plain words ---------------------------------------------------------------------------

def _noise_words(d: stats.Difference) -> str:
    if not d.tested:
        return d.note
    return f"noise ±{d.se * POINTS:.2f}, p={d.p:.2g}: {d.verdict}"


def finding(row: Summary, base: Summary) -> str:
    head, text = finding_parts(row, base)
    return f"{head}: {text}"


def finding_parts(row: Summary, base: Summary) -> tuple[str, str]:
    """(variant and its change, what the change did) in plain words."""
    g = row.group
    plain = not g.change or g.change in ("base", "base config")
    head = g.name if plain else f"{g.name} ({g.change})"
    if not row.finished:
        diverged = (f" Diverged (loss became NaN) in {row.diverged} of {len(g.runs)} runs."
                    if row.diverged else "")
        return head, f"no finished runs yet.{diverged}"
    found = _diagnoses(row)
    if row is base:
        return head, (f"final val accuracy {_pm(row.final)} %, train-val gap {_pm(row.gap)} pt, "
                      f"lowest val_loss at epoch {_epochs_text(row.best_epoch)}, "
                      f"{row.seconds_per_epoch:.1f} s for its fastest epoch."
                      + _diagnosis_words(found, len(row.finished)))
    parts = [f"{_signed(row.delta.diff)} pt final val accuracy ({_noise_words(row.delta)})",
             _gap_words(row, base, found), *_cost_words(row, base)]
    if row.diverged:
        parts.append(f"diverged (loss became NaN) in {row.diverged} of {len(g.runs)} runs")
    return head, "; ".join(p for p in parts if p) + "." + _diagnosis_words(found,
                                                                           len(row.finished))


def _diagnoses(row: Summary) -> dict:
    """{kind: [finding per finished run where it fired]}: cnnlab.insight's diagnoses of
    each run's history, config and metrics."""
    from ..insight.diagnose import run_history_findings
    found: dict = {}
    for run in row.finished:
        for f in run_history_findings(run.history, run.config, run.metrics):
            found.setdefault(f.kind, []).append(f)
    return found


def _diagnosis_words(found: dict, runs: int) -> str:
    return "".join(f" Diagnosis in {len(fs)} of {runs} runs: {fs[0].title}: {fs[0].text}"
                   for fs in found.values())


def _gap_words(row: Summary, base: Summary, found: dict | None = None) -> str:
    if not (row.gap and base.gap):
        return ""
    gd = row.gap_delta
    text = (f"train-val gap {stats.mean(base.gap) * POINTS:.2f} -> "
            f"{stats.mean(row.gap) * POINTS:.2f} pt")
    if found and "batchnorm_warmup" in found:  # a gap from BN's moving statistics: no overfit
        return text + ": not overfitting, BatchNormalization's moving statistics (see diagnosis)"
    if gd.significant:
        return text + (": less overfitting" if gd.diff < 0 else ": more overfitting")
    if gd.inconclusive:
        return text + (f" ({'less' if gd.diff < 0 else 'more'} overfitting? {gd.ratio:.1f}x "
                       "the noise, not significant with these seeds)")
    return text + (" (change within the noise)" if gd.tested else "")


def _cost_words(row: Summary, base: Summary) -> list[str]:
    out = []
    if base.seconds_per_epoch and not math.isnan(row.seconds_per_epoch):
        ratio = row.seconds_per_epoch / base.seconds_per_epoch
        out.append(f"{ratio:.2f}x the base's epoch time")
    if row.params and base.params:
        out.append("same parameters" if row.params == base.params else
                   f"{row.params / base.params:.2f}x the parameters ({row.params:,})")
    return out


def headline(rows: list[Summary]) -> list[str]:
    """Which variants beat the base, lost to it, or did not differ, beyond the noise."""
    def names(keep):
        return [r.group.name for r in rows[1:] if keep(r.delta)]
    groups = (("Better than the base, beyond the noise",
               names(lambda d: d.significant and d.diff > 0)),
              ("Worse than the base, beyond the noise",
               names(lambda d: d.significant and d.diff < 0)),
              ("Inconclusive (over 2x the noise, not significant with these seeds: add seeds)",
               names(lambda d: d.inconclusive)),
              ("Within the noise", names(lambda d: d.tested and not d.significant
                                         and not d.inconclusive)),
              ("Not tested (too few seeds or runs)", names(lambda d: not d.tested)))
    return [f"{label}: {', '.join(n)}." for label, n in groups if n]


# -- the table -------------------------------------------------------------------------------

COLUMNS = ("variant", "change", "runs", "params", "s/epoch (fastest)", "best val_acc %", "final val_acc %",
           "Δ final vs base (pt)", "train-val gap (pt)", "best val_loss epoch")


def table_rows(rows: list[Summary]) -> list[list[str]]:
    return [[r.group.name, r.group.change, _runs_text(r),
             f"{r.params:,}" if r.params else "-",
             "-" if math.isnan(r.seconds_per_epoch) else f"{r.seconds_per_epoch:.1f}",
             _pm(r.best), _pm(r.final), delta_text(r.delta), _pm(r.gap),
             _epochs_text(r.best_epoch)] for r in rows]


CSV_COLUMNS = ("variant", "change", "runs_finished", "runs_diverged", "runs_unfinished", "params",
               "seconds_per_epoch_fastest", "seconds_per_epoch_mean", "best_val_accuracy_mean", "best_val_accuracy_std",
               "final_val_accuracy_mean", "final_val_accuracy_std", "train_val_gap_mean",
               "train_val_gap_std", "best_val_loss_epoch_mean", "delta_final_val_accuracy",
               "delta_noise_se", "delta_p_value", "beyond_noise", "runs", "finding")


def csv_text(rows: list[Summary]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)

    def num(x):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(x)
    for r in rows:
        d = r.delta
        w.writerow([r.group.name, r.group.change, len(r.finished), r.diverged, r.incomplete,
                    num(r.params), num(r.seconds_per_epoch), num(r.mean_seconds_per_epoch),
                    num(stats.mean(r.best)), num(stats.std(r.best)),
                    num(stats.mean(r.final)), num(stats.std(r.final)),
                    num(stats.mean(r.gap)), num(stats.std(r.gap)),
                    num(stats.mean(r.best_epoch)),
                    num(d.diff if d else None), num(d.se if d else None), num(d.p if d else None),
                    "" if d is None or not d.tested else str(d.significant).lower(),
                    " ".join(str(run.path) for run in r.group.runs), finding(r, rows[0])])
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(title: str, rows: list[Summary], notes: list[str], figures: list[Path]) -> str:
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + ["", "## Results", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in table_rows(rows)]
    lines += ["", f"Significance: {stats.RULE}", "", "## Findings", ""]
    lines += [f"- {h}" for h in headline(rows)] + [""]
    lines += [f"- {finding(r, rows[0])}" for r in rows]
    lines += ["", "## Curves", ""]
    captions = dict(FIGURES)
    lines += [f"![{captions.get(p.name, p.stem)}]({p.name})\n" for p in figures]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:right;vertical-align:top}
th{background:#f0f0f0;text-align:center}
td:nth-child(1),td:nth-child(2){text-align:left}td:nth-child(2){max-width:260px}
tr.base{background:#f7f7f7;font-weight:600}.sig{color:#0a6}.signeg{color:#c22}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}li{margin:.3em 0}
.rule{font-size:13px;color:#555}"""


def html_page(title: str, rows: list[Summary], notes: list[str], figures: list[Path]) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><ul>"]
    out += [f"<li>{e(n)}</li>" for n in notes]
    header = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    out += [f"</ul><h2>Results</h2><table><tr>{header}</tr>"]
    for r, cells in zip(rows, table_rows(rows)):
        cls = " class='base'" if r is rows[0] else ""
        tds = []
        for i, c in enumerate(cells):
            mark = ""
            if i == 7 and r.delta is not None and r.delta.significant:
                mark = " class='sig'" if r.delta.diff > 0 else " class='signeg'"
            tds.append(f"<td{mark}>{e(c)}</td>")
        out.append(f"<tr{cls}>{''.join(tds)}</tr>")
    out += [f"</table><p class='rule'>Significance: {e(stats.RULE)}</p><h2>Findings</h2><ul>"]
    out += [f"<li><b>{e(h)}</b></li>" for h in headline(rows)]
    out += ["<li><b>{}</b>: {}</li>".format(*map(e, finding_parts(r, rows[0]))) for r in rows]
    out += ["</ul><h2>Curves</h2>"]
    captions = dict(FIGURES)
    for p in figures:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(f"<figure><img alt='{e(p.stem)}' src='data:image/png;base64,{data}'>"
                   f"<figcaption>{e(captions.get(p.name, p.stem))}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _notes(groups: list[Group], extra: list[str]) -> list[str]:
    runs = [r for g in groups for r in g.runs if (r.metrics.get("data") or {}).get("name")]
    datasets = sorted({(r.metrics.get("data") or {}).get("name", "?") for r in runs})
    epochs = sorted({r.metrics.get("epochs") for r in runs if r.metrics.get("epochs")})
    threads = sorted({(r.metrics.get("environment") or {}).get("threads") for r in runs} - {None})
    seeds = sorted({r.metrics.get("seed") for r in runs if r.metrics.get("seed") is not None})
    notes = list(extra) + [f"Compared with: {groups[0].name} (the first row). "
                           f"Data: {', '.join(datasets) or '-'}. "
                           f"Epochs: {', '.join(map(str, epochs)) or '-'}. "
                           f"Seeds: {', '.join(map(str, seeds)) or '-'}."]
    notes.append("Accuracies in percent, mean ± std over seeds; gap = final train accuracy "
                 "(Keras's running mean over the last epoch, with dropout active: dropout "
                 "lowers it) minus final val accuracy; "
                 "s/epoch = wall-clock seconds of the fastest epoch of any seed"
                 + (f" (torch threads per run: {', '.join(map(str, threads))})" if threads else "")
                 + "; it varies with the machine's load, so compare it only between runs made "
                 "side by side on a quiet machine. Every number is read from the runs' "
                 "metrics.json and history.json.")
    return notes


def write_report(groups: list[Group], folder, title: str, notes: list[str] = ()) -> Path:
    """Writes report.md, report.html, report.csv and the PNGs into `folder`; returns the HTML."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = summarize(groups)
    figures = draw_all(rows, folder)
    all_notes = _notes(groups, list(notes))
    atomic_write(folder / "report.md", markdown(title, rows, all_notes, figures))
    atomic_write(folder / "report.csv", csv_text(rows))
    atomic_write(folder / "report.html", html_page(title, rows, all_notes, figures))
    return folder / "report.html"
