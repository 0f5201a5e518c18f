"""A search's results: report.html, trials.csv and the best trial's config.

    >>> write_report(tune, study, folder)      # -> folder/report.html

`best_config.yaml` is a normal config file: `cnnlab train best_config.yaml`
trains the best trial's model with its settings again. The report holds the
best trials, Optuna's optimization history, the parameters' importances
(PED-ANOVA, which needs no scikit-learn) and a parallel-coordinate plot, as
PNG files next to it and embedded in the HTML page.
"""
from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from ..io import atomic_write
from ..runs import read_json
from .space import Tune
from .study import optuna, trial_run_name

BEST_SHOWN = 10


def _finished(study):
    s = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False) if t.state == s.COMPLETE]


def best_trials(study, tune: Tune, n: int = BEST_SHOWN) -> list:
    done = _finished(study)
    return sorted(done, key=lambda t: t.value, reverse=tune.direction == "maximize")[:n]


def write_best_config(tune: Tune, study, folder: Path) -> Path | None:
    best = best_trials(study, tune, 1)
    if not best:
        return None
    t = best[0]
    cfg = tune.config(t.params)
    head = (f"# The best trial of the search {tune.name!r} ({tune.source}): trial {t.number}, "
            f"{tune.objective} = {t.value:.6g}\n# Its run: {folder / trial_run_name(t.number)}\n"
            f"# Parameters: {', '.join(f'{k}={v!r}' for k, v in t.params.items())}\n"
            "# Train it again: cnnlab train best_config.yaml\n")
    path = Path(folder) / "best_config.yaml"
    atomic_write(path, head + cfg.to_yaml())
    return path


def _row(tune: Tune, t, folder: Path) -> dict:
    m = read_json(Path(folder) / trial_run_name(t.number) / "metrics.json", {}) or {}
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if (
        t.datetime_complete and t.datetime_start) else None
    return {"trial": t.number, "state": t.state.name.lower(),
            tune.objective: "" if t.value is None else f"{t.value:.6g}",
            "epochs": m.get("epochs_done", ""), "seconds": "" if seconds is None else f"{seconds:.1f}",
            "run": trial_run_name(t.number), "retry_of": t.user_attrs.get("retry_of", ""),
            **{p.name: t.params.get(p.name, "") for p in tune.params}}


def write_csv(tune: Tune, study, folder: Path) -> Path:
    rows = [_row(tune, t, folder) for t in study.get_trials(deepcopy=False)]
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    path = Path(folder) / "trials.csv"
    atomic_write(path, buf.getvalue())
    return path


def _save(ax_or_axes, path: Path) -> Path:
    import matplotlib.pyplot as plt
    ax = ax_or_axes.flat[0] if hasattr(ax_or_axes, "flat") else ax_or_axes
    fig = ax.get_figure()
    fig.set_size_inches(9, 5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path


def write_plots(tune: Tune, study, folder: Path) -> tuple[list[Path], list[str]]:
    """PNG plots, and the notes for those that could not be drawn (too few trials)."""
    import matplotlib
    matplotlib.use("Agg")
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as vis
    plots, notes = [], []
    name = tune.objective
    makers = [("history.png", "optimization history",
               lambda: vis.plot_optimization_history(study, target_name=name)),
              ("importances.png", "parameter importances", lambda: vis.plot_param_importances(
                  study, evaluator=PedAnovaImportanceEvaluator(), target_name=name)),
              ("parallel.png", "parallel coordinates",
               lambda: vis.plot_parallel_coordinate(study, target_name=name))]
    for file, what, make in makers:
        try:
            plots.append(_save(make(), Path(folder) / file))
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as err:
            notes.append(f"No {what} plot: {err}")
    return plots, notes


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>No finished trial yet.</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values())
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(tune: Tune, study, folder) -> Path:
    folder = Path(folder)
    write_csv(tune, study, folder)
    best_cfg = write_best_config(tune, study, folder)
    plots, notes = write_plots(tune, study, folder)
    counts: dict = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    best = [_row(tune, t, folder) for t in best_trials(study, tune)]
    images = "".join(
        f'<h2>{html.escape(p.stem)}</h2><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}">' for p in plots)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(tune.title)}</title><style>
body {{font-family: sans-serif; max-width: 1000px; margin: 2em auto}}
table {{border-collapse: collapse}} td, th {{border: 1px solid #ccc; padding: 2px 8px}}
img {{max-width: 100%}}</style></head><body>
<h1>{html.escape(tune.title)}</h1>
<p>Study <code>{html.escape(tune.name)}</code> from <code>{html.escape(tune.source)}</code>:
{tune.direction} <code>{html.escape(tune.objective)}</code> (its last epoch's value) over
{len(tune.params)} parameters; trials: {html.escape(summary) or 'none'}.</p>
<p>Best config: {('<code>' + html.escape(str(best_cfg)) + '</code> (cnnlab train takes it)')
                 if best_cfg else 'none yet'}. All trials: <code>trials.csv</code>.</p>
<h2>Best trials</h2>{_table(best)}
{images}
{''.join(f'<p>{html.escape(n)}</p>' for n in notes)}
</body></html>
"""
    path = folder / "report.html"
    atomic_write(path, page)
    return path
