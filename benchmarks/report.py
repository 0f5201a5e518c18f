"""Turn the workers' raw results into per-system figures, targets and tables.

Pure functions over the JSON the workers wrote, so that a saved
`benchmarks/out/epoch_time.json` can be summarised again without rerunning.

    summary = report.summarise_epochs(results_by_system, images=60000, matmul_gflops=140.0)
    print(report.epoch_table(summary))
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

# lecture.py lives beside the workers, which import it from other venvs.
sys.path.insert(0, str(Path(__file__).resolve().parent / "workers"))
import lecture  # noqa: E402

REFERENCE = "tf-keras"
# Issue 6's targets for cnnlab, checked here and never by a timed test.
TARGET_EPOCH_RATIO = 0.4  # cnnlab seconds per epoch / tf.keras's, at most
TARGET_INFERENCE = 20_000  # images/s at batch 1000, at least
TARGET_P50_MS = 2.0  # single-image predict p50, under


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else None


def summarise_system(results: list[dict], images: int, matmul_gflops: float | None) -> dict:
    """One system's rounds -> its figures. The first epoch of each round is warm-up."""
    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        worst = results[-1] if results else {"status": "missing", "reason": "no result"}
        return {"status": worst.get("status", "failed"), "reason": worst.get("reason", "")}
    timed = [s for r in ok for s in r["epoch_s"][1:]]
    warmup = [r["epoch_s"][0] for r in ok if r["epoch_s"]]
    s_per_epoch = _median(timed)
    gflops = lecture.train_flop(images) / s_per_epoch / 1e9 if s_per_epoch else None
    latency = [v for r in ok for v in r.get("latency_ms", [])]
    call_latency = [v for r in ok for v in r.get("call_latency_ms", [])]
    first = ok[0]
    return {
        "status": "ok",
        "rounds": len(ok),
        "s_per_epoch": s_per_epoch,
        "fastest_epoch_s": min(timed) if timed else None,
        "timed_epochs": len(timed),
        "warmup_epoch_s": _median(warmup),
        "gflops": gflops,
        "matmul_fraction": gflops / matmul_gflops if gflops and matmul_gflops else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
        "inference_images_per_s": _median([r.get("inference_images_per_s") for r in ok]),
        "predict_p50_ms": _pct(latency, 50),
        "predict_p99_ms": _pct(latency, 99),
        "call_p50_ms": _pct(call_latency, 50),
        "final_train_accuracy": _median([(r.get("train_accuracy") or [None])[-1] for r in ok]),
        "params": first.get("params"),
        "params_match": first.get("params") in (None, lecture.param_count()),
        "threads_used": first.get("threads_used"),
        "versions": first.get("versions"),
        "layout": first.get("layout"),
    }


def summarise_epochs(by_system: dict[str, list[dict]], images: int, matmul_gflops: float | None) -> dict:
    summary = {name: summarise_system(rs, images, matmul_gflops) for name, rs in by_system.items()}
    ref = summary.get(REFERENCE, {}).get("s_per_epoch")
    ref_fastest = summary.get(REFERENCE, {}).get("fastest_epoch_s")
    for s in summary.values():
        if s.get("s_per_epoch") and ref:
            s["ratio_to_tf_keras"] = s["s_per_epoch"] / ref
        if s.get("s_per_epoch") and ref_fastest:
            s["ratio_to_tf_keras_fastest"] = s["s_per_epoch"] / ref_fastest
    return summary


def check_targets(summary: dict, images: int, cli: dict | None = None) -> list[dict]:
    """Issue 6's four targets for cnnlab: PASS, MISS or n/a (a system did not run).

    Peak RSS is the `cnnlab train` command's (`cli`, measured by the driver) when there
    is one, else the Python-API worker's."""
    c, tf = summary.get("cnnlab", {}), summary.get(REFERENCE, {})

    def target(name, value, goal, passed, note="", required=True):
        verdict = "n/a" if value is None else ("PASS" if passed else "MISS")
        return {"target": name, "value": value, "goal": goal, "verdict": verdict, "note": note,
                "required": required}

    ratio, ratio_fastest = c.get("ratio_to_tf_keras"), c.get("ratio_to_tf_keras_fastest")
    rss, tf_rss = c.get("peak_rss_mb"), tf.get("peak_rss_mb")
    rss_name = "peak RSS (MB) vs tf.keras's"
    if cli and cli.get("status") == "ok":
        rss, rss_name = cli["peak_rss_mb"], "peak RSS (MB) of cnnlab train vs tf.keras's"
    inference, p50 = c.get("inference_images_per_s"), c.get("predict_p50_ms")
    rss_note = "" if images == 60_000 else f"judged on {images} images, not MNIST's 60000"
    return [
        target("seconds per epoch vs tf.keras", ratio, f"<= {TARGET_EPOCH_RATIO}",
               ratio is not None and ratio <= TARGET_EPOCH_RATIO),
        # tf.keras runs at two speeds on some machines (11-14 s or 19-22 s epochs here), so
        # its median depends on which it caught; this row holds cnnlab to its fastest epoch
        target("  stricter: vs tf.keras's fastest epoch", ratio_fastest,
               f"<= {TARGET_EPOCH_RATIO}",
               ratio_fastest is not None and ratio_fastest <= TARGET_EPOCH_RATIO,
               "informational", required=False),
        target("inference images/s at batch 1000", inference, f">= {TARGET_INFERENCE}",
               inference is not None and inference >= TARGET_INFERENCE),
        target("single-image predict p50 (ms)", p50, f"< {TARGET_P50_MS}",
               p50 is not None and p50 < TARGET_P50_MS),
        target(rss_name, rss if tf_rss else None,
               f"< {tf_rss:.0f}" if tf_rss else "< tf.keras's",
               rss is not None and tf_rss is not None and rss < tf_rss, rss_note),
    ]


def check_tta_targets(summary: dict, lecture: str = "cnnlab-lecture",
                      fast: str = "cnnlab-fast") -> list[dict]:
    """Issue 6's time-to-accuracy target: the fast recipe's time to the lecture schedule's
    final accuracy, at most 0.25 x the lecture schedule's time (its 10 epochs), and the
    same against the lecture's own time to that accuracy (stricter: a noisy lecture run
    often touches its final accuracy an epoch or two early). PASS needs every seed of the
    fast recipe to reach the target."""
    lec, f = summary.get(lecture, {}), summary.get(fast, {})
    t_fast = f.get("time_to_target_s")
    all_reached = f.get("status") == "ok" and f.get("reached", "0/0").split("/")[0] == str(f.get("rounds"))
    out = []
    for name, base, stricter in (
            ("fast recipe time / lecture schedule's time", lec.get("train_s"), False),
            ("fast recipe time / lecture's time to it (stricter)", lec.get("time_to_target_s"),
             True)):
        value = t_fast / base if t_fast and base else None
        verdict = "n/a" if base is None else ("PASS" if value is not None and value <= 0.25
                                               and all_reached else "MISS")
        note = "" if all_reached or f.get("status") != "ok" else f"reached {f.get('reached')}"
        if stricter:
            note = "; ".join(filter(None, [note, "informational"]))
        out.append({"target": name, "value": value, "goal": "<= 0.25", "verdict": verdict,
                    "note": note, "required": not stricter})
    return out


def time_to_target(val_accuracy: list[float], epoch_s: list[float], target: float):
    """(seconds, epochs) of training until validation accuracy first reaches `target`, or None.

    >>> time_to_target([0.80, 0.86, 0.85, 0.90], [10.0, 9.0, 9.0, 9.0], 0.85)
    (19.0, 2)
    >>> time_to_target([0.80], [10.0], 0.85) is None
    True
    """
    elapsed = 0.0
    for epoch, (acc, s) in enumerate(zip(val_accuracy, epoch_s), start=1):
        elapsed += s
        if acc >= target:
            return elapsed, epoch
    return None


def summarise_tta(by_run: dict[str, list[dict]], target: float, baseline: str) -> dict:
    """Per run: time to `target` validation accuracy (median over rounds) and ratio to `baseline`."""
    summary = {}
    for name, results in by_run.items():
        ok = [r for r in results if r.get("status") == "ok"]
        if not ok:
            last = results[-1] if results else {}
            summary[name] = {"status": last.get("status", "missing"), "reason": last.get("reason", "")}
            continue
        hits = [time_to_target(r["val_accuracy"], r["epoch_s"], target) for r in ok]
        reached = [h for h in hits if h is not None]
        summary[name] = {
            "status": "ok",
            "rounds": len(ok),
            "epochs": _median([len(r["epoch_s"]) for r in ok]),
            "train_s": _median([sum(r["epoch_s"]) for r in ok]),
            "final_val_accuracy": _median([r["val_accuracy"][-1] for r in ok]),
            "final_val_accuracy_mean": statistics.fmean(r["val_accuracy"][-1] for r in ok),
            "final_val_accuracy_std": (statistics.stdev(r["val_accuracy"][-1] for r in ok)
                                       if len(ok) > 1 else None),
            "best_val_accuracy": _median([max(r["val_accuracy"]) for r in ok]),
            "val_accuracy": ok[0]["val_accuracy"],
            "reached": f"{len(reached)}/{len(ok)}",
            "time_to_target_s": _median([h[0] for h in reached]),
            "epochs_to_target": _median([h[1] for h in reached]),
            "versions": ok[0].get("versions"),
        }
    base = summary.get(baseline, {}).get("time_to_target_s")
    for s in summary.values():
        if s.get("time_to_target_s") and base:
            s["speedup_vs_baseline"] = base / s["time_to_target_s"]
    return summary


# --- text tables -------------------------------------------------------------

def _fmt(value, spec):
    if value is None:
        return "-"
    return format(value, spec)


def table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned numbers, two spaces between."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def epoch_table(summary: dict) -> str:
    header = ["system", "s/epoch", "x tf.keras", "GFLOP/s", "% matmul", "peak RSS MB",
              "infer img/s", "p50 ms", "p99 ms", "call p50", "threads"]
    rows, notes = [], []
    for name, s in summary.items():
        if s["status"] != "ok":
            rows.append([name] + [s["status"]] + ["-"] * (len(header) - 2))
            notes.append(f"{name}: {s['status']}: {s.get('reason', '')}")
            continue
        frac = s.get("matmul_fraction")
        rows.append([
            name, _fmt(s["s_per_epoch"], ".2f"), _fmt(s.get("ratio_to_tf_keras"), ".2f"),
            _fmt(s["gflops"], ".1f"), _fmt(frac * 100 if frac else None, ".0f"),
            _fmt(s["peak_rss_mb"], ".0f"), _fmt(s["inference_images_per_s"], ",.0f"),
            _fmt(s["predict_p50_ms"], ".2f"), _fmt(s["predict_p99_ms"], ".2f"),
            _fmt(s["call_p50_ms"], ".2f"), _threads(s["threads_used"]),
        ])
        if not s["params_match"]:
            notes.append(f"{name}: {s['params']} parameters, not the lecture model's "
                         f"{lecture.param_count()}: it is not the same model")
    text = table(header, rows)
    return text + ("\n" + "\n".join(notes) if notes else "")


def _threads(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, list))
    return str(value)


def targets_table(targets: list[dict]) -> str:
    rows = [[t["target"], _fmt(t["value"], ",.0f" if (t["value"] or 0) >= 100 else ".2f"), t["goal"],
             t["verdict"] + (f" ({t['note']})" if t["note"] else "")] for t in targets]
    return table(["cnnlab target", "value", "goal", "verdict"], rows)


def tta_table(summary: dict, target: float) -> str:
    header = ["run", "epochs", "train s", "final val acc", "mean ± std (seeds)", f"s to {target:.4f}",
              "epochs to it", "reached", "speedup"]
    rows, notes = [], []
    for name, s in summary.items():
        if s["status"] != "ok":
            rows.append([name, s["status"]] + ["-"] * (len(header) - 2))
            notes.append(f"{name}: {s['status']}: {s.get('reason', '')}")
            continue
        rows.append([name, _fmt(s["epochs"], ".0f"), _fmt(s["train_s"], ".1f"),
                     _fmt(s["final_val_accuracy"], ".4f"),
                     f"{s['final_val_accuracy_mean']:.4f} ± {s['final_val_accuracy_std']:.4f}"
                     if s.get("final_val_accuracy_std") is not None else "-",
                     _fmt(s["time_to_target_s"], ".1f"),
                     _fmt(s["epochs_to_target"], ".0f"), s["reached"],
                     _fmt(s.get("speedup_vs_baseline"), ".2f")])
    return table(header, rows) + ("\n" + "\n".join(notes) if notes else "")
