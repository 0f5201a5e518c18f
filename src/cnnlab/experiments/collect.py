"""What a report knows: runs read back from their own directories, grouped into variants.

Every number comes from a run's `metrics.json` and `history.json` (and its
`config.yaml` for grouping), never from memory: a report can be rebuilt from
the run directories alone.

    >>> groups = groups_from_experiment(read_json("runs/improve/experiment.json"), folder)
    >>> rows = summarize(groups)           # base first; one row of numbers per variant
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import CnnlabError
from ..runs import find_run
from ..tolerant import check_history, check_metrics, run_file, warn
from . import stats

POINTS = 100.0   # accuracies are fractions in the runs' files; the report shows points (%)


@dataclass
class RunData:
    name: str
    path: Path
    metrics: dict
    history: dict
    config: dict

    @property
    def status(self) -> str:
        return self.metrics.get("status", "missing")

    @property
    def finished(self) -> bool:
        return self.status == "finished" and "final_val_accuracy" in self.metrics

    def val_epochs(self) -> list[int]:
        """The epochs (1-based) at which val_* was recorded (validation_freq may skip some)."""
        n_train = len(self.history.get("loss") or [])
        n_val = len(self.history.get("val_loss") or [])
        if n_val == n_train:
            return list(range(1, n_val + 1))
        freq = (self.config.get("train") or {}).get("validation_freq", 1)
        total = self.metrics.get("epochs", n_train)
        return [e for e in range(1, n_train + 1) if e % freq == 0 or e == total][:n_val]


@dataclass
class Group:
    name: str
    change: str
    runs: list[RunData] = field(default_factory=list)
    expected: int = 0          # runs planned (experiments); 0: as many as given


def read_run(path, name: str | None = None) -> RunData:
    """A run's files; a damaged one is reported in one line and makes the run 'damaged'."""
    path = Path(path)
    exists = (path / "config.yaml").is_file()
    try:
        config = RunConfig.load(path / "config.yaml").to_dict() if exists else {}
    except CnnlabError as err:
        warn(f"{path / 'config.yaml'} is damaged ({err}). Skipping what it holds.")
        config = {}
    metrics, bad_m = run_file(path / "metrics.json", check_metrics, {})
    history, bad_h = run_file(path / "history.json", check_history, {})
    if bad_m or bad_h:
        metrics = {**(metrics or {}), "status": "damaged"}
    return RunData(name or path.name, path, metrics or {}, history or {}, config)


def groups_from_experiment(exp: dict, folder) -> list[Group]:
    folder = Path(folder)
    return [Group(v["name"], v["change"], [read_run(folder / r) for r in v["runs"]],
                  len(v["runs"])) for v in exp["variants"]]


# -- compare: any runs, grouped when only their seed differs ---------------------------

_SEED_SUFFIX = re.compile(r"-s\d+$")
_NOT_THE_MODEL = {"seed", "threads", "device"}


def _group_key(cfg: dict) -> str:
    train = {k: v for k, v in (cfg.get("train") or {}).items() if k not in _NOT_THE_MODEL}
    data = {k: v for k, v in (cfg.get("data") or {}).items() if k != "data_dir"}
    return json.dumps({"model": cfg.get("model"), "data": data, "train": train},
                      sort_keys=True, default=str)


def groups_from_runs(refs, root) -> list[Group]:
    """One group per distinct config (seeds pooled), in the order given; the first is the base."""
    groups: dict[str, Group] = {}
    for ref in refs:
        run = read_run(find_run(ref, root))
        key = _group_key(run.config)
        if key not in groups:
            name = _SEED_SUFFIX.sub("", run.name) or run.name
            taken = {g.name for g in groups.values()}
            unique, i = name, 2
            while unique in taken:
                unique, i = f"{name}#{i}", i + 1
            groups[key] = Group(unique, "")
        if all(r.path.resolve() != run.path.resolve() for r in groups[key].runs):
            groups[key].runs.append(run)
    out = list(groups.values())
    for g in out:
        g.change = "base" if g is out[0] else config_change(out[0].runs[0].config, g.runs[0].config)
    return out


def config_change(base: dict, cfg: dict) -> str:
    """Plain words for how `cfg` differs from `base` (both RunConfig dicts)."""
    parts = []
    if not (base.get("model") or {}).get("layers") or not (cfg.get("model") or {}).get("layers"):
        return "unknown (a damaged config.yaml)"  # read_run has said which
    bl, cl = base["model"]["layers"], cfg["model"]["layers"]
    kinds = lambda layers: [next(iter(e)) for e in layers]  # noqa: E731
    if base["model"].get("input_shape") != cfg["model"].get("input_shape"):
        parts.append(f"input {base['model'].get('input_shape')} -> "
                     f"{cfg['model'].get('input_shape')}")
    if kinds(bl) != kinds(cl):
        parts.append(f"layers {' > '.join(kinds(cl))}")
    else:
        for i, (a, b) in enumerate(zip(bl, cl)):
            (kind, aa), = a.items()
            aa, ba = aa or {}, b[kind] or {}
            for k in sorted(set(aa) | set(ba)):
                if aa.get(k) != ba.get(k):
                    parts.append(f"layer {i} ({kind}) {k}: {aa.get(k)} -> {ba.get(k)}")
    for section in ("train", "data"):
        a, b = base.get(section) or {}, cfg.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if k in _NOT_THE_MODEL or k == "data_dir" or a.get(k) == b.get(k):
                continue
            parts.append(f"{k}: {a.get(k)} -> {b.get(k)}")
    return "; ".join(parts) or "same config"


# -- numbers ---------------------------------------------------------------------------

@dataclass
class Summary:
    """One variant's numbers (accuracies as fractions, gaps in fractions too)."""

    group: Group
    finished: list[RunData]
    diverged: int
    incomplete: int
    params: int | None
    seconds_per_epoch: float   # the fastest epoch of any seed: the least disturbed by load
    mean_seconds_per_epoch: float
    best: list[float]
    final: list[float]
    gap: list[float]           # final train accuracy - final val accuracy, per run
    best_epoch: list[int]      # epoch of the lowest val_loss, per run
    delta: stats.Difference | None = None      # final val accuracy vs the base
    gap_delta: stats.Difference | None = None  # train-val gap vs the base


def summarize_group(g: Group) -> Summary:
    done = [r for r in g.runs if r.finished]
    seconds = [s for r in done for s in r.metrics.get("epoch_seconds", [])]
    params = sorted({r.metrics["params"] for r in done if "params" in r.metrics})
    return Summary(
        g, done,
        diverged=sum(r.status == "nan" for r in g.runs),
        incomplete=sum(r.status not in ("finished", "nan") for r in g.runs)
        + max(0, g.expected - len(g.runs)),
        params=params[0] if params else None,
        seconds_per_epoch=min(seconds) if seconds else math.nan,
        mean_seconds_per_epoch=stats.mean(seconds),
        best=[r.metrics["best_val_accuracy"] for r in done],
        final=[r.metrics["final_val_accuracy"] for r in done],
        gap=[r.metrics["final_accuracy"] - r.metrics["final_val_accuracy"] for r in done
             if "final_accuracy" in r.metrics],
        best_epoch=[r.metrics["best_epoch"] for r in done if "best_epoch" in r.metrics])


def summarize(groups: list[Group]) -> list[Summary]:
    """Summaries in the groups' order; each compared with the first (the base)."""
    rows = [summarize_group(g) for g in groups]
    base = rows[0]
    for row in rows[1:]:
        row.delta = stats.welch(base.final, row.final)
        row.gap_delta = stats.welch(base.gap, row.gap)
    return rows
