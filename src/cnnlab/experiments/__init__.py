"""Experiments: a base config and named variants, run with several seeds, then compared.

    >>> report = run_experiment("examples/improve.yaml", epochs=2, seeds=2, jobs=2,
    ...                         data={"name": "fashion-mnist"})
    >>> report                       # runs/improve/report.html (+ report.md, report.csv, PNGs)
    >>> compare_runs(["runs/lecture-1", "runs/lecture-2"])     # any runs, same report

The experiment folder `<out>/<name>/` holds one ordinary run directory per
variant and seed (`dropout-s0`, ...), `experiment.json` (which runs make which
variant), a copy of the experiment file, and the report. Running the same
command again skips finished runs and resumes interrupted ones. The file format
is described in docs/experiments.md.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from ..errors import ConfigError, RunError
from ..guard import DirLock, is_owned, make_owned_dir, mark
from ..io import atomic_write, disk_error
from ..runs import DEFAULT_ROOT, read_json, write_json
from .collect import groups_from_experiment, groups_from_runs
from .execute import execute, plan_steps, threads_per_job
from .plan import check_data, load_experiment
from .report import write_report
from .stats import welch
from .variants import apply_variant, describe

MAX_JOBS = 256  # processes at once: each is a whole training run


@contextlib.contextmanager
def _locked(folder: Path):
    """One `cnnlab experiment` per folder at a time: an OS lock, released however the
    process ends (a kill -9 leaves no stale lock)."""
    with DirLock() as lock:
        lock.acquire(folder, "Experiment folder")
        yield


def _make_folder(folder: Path) -> None:
    """The experiment folder, cnnlab's own: created and marked, or an existing experiment
    folder; a user's folder of the same name is refused, never written into."""
    if folder.is_symlink():
        raise RunError(f"Experiment folder {folder} is a symbolic link. Expected a folder "
                       "cnnlab created; choose another --name.")
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        make_owned_dir(folder, "experiment")
        return
    if is_owned(folder):
        return
    if not folder.is_dir():
        raise RunError(f"{folder} exists and is not a folder. Expected an experiment folder; "
                       "choose another --name.")
    if (folder / "experiment.json").is_file() or not any(folder.iterdir()):
        mark(folder, "experiment")  # made by an earlier cnnlab, or empty
        return
    raise RunError(f"{folder} exists and is not a cnnlab experiment folder (it has no "
                   "experiment.json). Expected a new or an experiment folder; choose another "
                   "--name, or move it away.")


def run_experiment(file, out=DEFAULT_ROOT, name=None, epochs=None, seeds=None, jobs=1, data=None,
                   quiet=False, only=None, stream=None) -> Path:
    """Validate every variant, make the missing runs, write the report; returns report.html."""
    stream = stream or sys.stdout
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"Invalid value for `jobs`. Expected an integer in [1, {MAX_JOBS}] "
                          f"(processes at once). Received jobs={jobs!r}.")
    exp = load_experiment(file, name, epochs=epochs, seeds=seeds,
                          data={k: v for k, v in (data or {}).items() if v is not None}, only=only)
    folder = Path(out) / exp.name
    if folder.exists() and not is_owned(folder) and not (folder / "experiment.json").is_file():
        _make_folder(folder)  # refuses a user's folder before anything is checked or written
    steps = plan_steps(exp.jobs(), folder)          # refuses runs made from another config
    if any(s.action != "skip" for s in steps):
        check_data(exp)                             # every variant fits its data
    try:
        _make_folder(folder)
    except OSError as err:
        raise disk_error(folder, err) from None
    with _locked(folder):
        write_json(folder / "experiment.json", exp.to_dict())
        atomic_write(folder / "experiment.yaml", Path(file).read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        failures, interrupted = [], None
        from ..runner import Interrupted
        try:
            failures = execute(steps, folder, jobs=jobs, stream=stream, quiet=quiet)
        except Interrupted as err:  # still report what is finished
            interrupted = err
        report = write_experiment_report(folder)
        if not quiet:
            stream.write(f"Made in {time.perf_counter() - t0:.0f} s.\n")
    if interrupted is not None:
        raise interrupted
    if failures:
        raise RunError(f"{len(failures)} run(s) failed (the report covers the others: "
                       f"{report}):\n  " + "\n  ".join(failures))
    return report


def write_experiment_report(folder) -> Path:
    """(Re)write the report of an experiment folder from its run directories."""
    folder = Path(folder)
    exp = read_json(folder / "experiment.json")
    if not exp:
        raise RunError(f"{folder} is not an experiment folder (experiment.json is missing).")
    groups = groups_from_experiment(exp, folder)
    notes = [f"Experiment file: {exp['source']}; {exp['seeds']} seed(s) per variant; "
             f"{len(groups)} variants including the base."]
    return write_report(groups, folder, exp["title"], notes)


def compare_runs(runs, root=DEFAULT_ROOT, report_dir=None, stream=None) -> Path:
    """The experiment report for any runs: runs that differ only in seed are pooled; the
    first run's group is the base. Returns report.html."""
    if not runs:
        raise RunError("Nothing to compare. Expected at least one run.")
    groups = groups_from_runs(runs, root)
    if report_dir is None:
        report_dir = Path(root) / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    names = ", ".join(g.name for g in groups)
    return write_report(groups, report_dir, f"Comparison of {names}",
                        [f"Runs: {', '.join(str(r) for r in runs)}."])


__all__ = ["run_experiment", "compare_runs", "write_experiment_report", "load_experiment",
           "apply_variant", "describe", "welch", "threads_per_job"]
