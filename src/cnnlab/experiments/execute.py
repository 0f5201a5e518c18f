"""Making an experiment's runs: skip the finished, resume the interrupted, run the rest.

Each variant-seed is an ordinary run directory `<folder>/<variant>-s<seed>`.
Before anything trains, every existing run directory is checked against the
config it should have; a run made from a different config is an error (delete
it or choose another experiment name), never silently reused.

    >>> steps = plan_steps(exp.jobs(), folder)          # what each run needs
    >>> failures = execute(steps, folder, jobs=2)       # 2 processes, cores // 2 threads each

With jobs=1 the runs train in this process; with jobs=N each runs in its own
process (`python -m cnnlab.experiments.worker`) with cores // N torch threads.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import CnnlabError, ExitStatus, RunError
from ..guard import check_not_held, check_removable, remove_owned
from ..runs import read_json
from ..tolerant import check_metrics, run_file
from .plan import Job

# differences that do not change what a run computes, so a run made with
# other values is still this experiment's run
IGNORED = {("train", "threads"), ("train", "device"), ("data", "data_dir")}
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Step:
    job: Job
    action: str     # "skip", "new", "resume" (from its checkpoint) or "restart" (nothing to resume)
    reason: str = ""


def _differences(old: RunConfig, new: RunConfig) -> list[str]:
    from ..runner import config_differences
    return [f"{s}.{k}: run has {a!r}, experiment wants {b!r}"
            for s, k, a, b in config_differences(old, new)
            if (s, k) not in IGNORED and (s, k) != ("train", "epochs")]


def plan_step(job: Job, folder: Path) -> Step:
    """What `job`'s run directory needs; RunError if it holds another config's run."""
    run_dir = folder / job.run_name
    if not run_dir.exists() and not run_dir.is_symlink():
        return Step(job, "new")
    if run_dir.is_symlink():
        raise RunError(f"Run {run_dir} is a symbolic link. Expected a run directory cnnlab "
                       "created; remove the link or give the experiment another --name.")
    check_not_held(run_dir)
    if not (run_dir / "config.yaml").is_file():
        check_removable(run_dir)  # a restart deletes it: only a directory cnnlab made
        return Step(job, "restart", "it stopped before writing its config")
    diffs = _differences(RunConfig.load(run_dir / "config.yaml"), job.cfg)
    m = run_file(run_dir / "metrics.json", check_metrics, {})[0] or {}  # damaged: one line
    status, planned = m.get("status"), job.cfg.train["epochs"]
    trained_for = m.get("epochs", planned)
    if status in ("finished", "nan") and trained_for > planned:
        diffs.append(f"train.epochs: run has {trained_for}, experiment wants {planned}")
    if diffs:
        raise RunError(f"Run {run_dir} was made from a different config:\n  " + "\n  ".join(diffs)
                       + "\nDelete it, or give the experiment another --name.")
    if status == "nan":
        return Step(job, "skip", "diverged (loss became NaN)")
    if status == "finished" and trained_for == planned:
        return Step(job, "skip", "finished")
    if (run_dir / "checkpoint.safetensors").is_file():
        return Step(job, "resume", f"{m.get('epochs_done', 0)} of {planned} epochs done")
    check_removable(run_dir)
    return Step(job, "restart", "it stopped before its first checkpoint")


def plan_steps(jobs: list[Job], folder) -> list[Step]:
    folder = Path(folder)
    steps, errors = [], []
    for job in jobs:
        try:
            steps.append(plan_step(job, folder))
        except RunError as err:
            errors.append(str(err))
    if errors:
        raise RunError("\n".join(errors))
    return steps


# -- one run --------------------------------------------------------------------------

def run_one(cfg: RunConfig, folder, name: str, action: str):
    """Train (or resume) one run in this process; returns the runner's RunResult."""
    from ..runner import train_run
    folder = Path(folder)
    run_dir = folder / name
    if action == "restart":
        remove_owned(run_dir)  # it holds no checkpoint: nothing to keep
    if action == "resume":
        # the runner refuses config changes it does not allow on resume: for the
        # settings that do not change results, keep the run's own values
        from ..runner import RESUMABLE_CHANGES
        old = RunConfig.load(run_dir / "config.yaml").to_dict()
        d = cfg.to_dict()
        for section, key in IGNORED - set(RESUMABLE_CHANGES):
            d[section][key] = old[section][key]
        return train_run(RunConfig.from_dict(d), out=folder, resume=run_dir, quiet=True,
                         handle_signals=True)
    return train_run(cfg, out=folder, name=name, quiet=True, handle_signals=True)


def _done_line(folder: Path, name: str, seconds: float) -> str:
    m = read_json(folder / name / "metrics.json", {}) or {}
    acc = m.get("final_val_accuracy")
    acc_text = f"val_accuracy {acc:.4f}" if isinstance(acc, float) else "no val_accuracy"
    return f"{name}: {m.get('status', 'failed')}, {acc_text}, {seconds:.0f} s"


# -- many runs ------------------------------------------------------------------------

class _Log:
    def __init__(self, stream, quiet):
        self.stream, self.quiet = stream or sys.stdout, quiet

    def __call__(self, text):
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()


def threads_per_job(jobs: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // jobs)


def execute(steps: list[Step], folder, jobs: int = 1, stream=None, quiet=False) -> list[str]:
    """Make every run that is not finished; returns failure messages (empty: all done).

    Raises runner.Interrupted after Ctrl-C / SIGTERM, once the runs have checkpointed."""
    folder, log = Path(folder), _Log(stream, quiet)
    todo = [s for s in steps if s.action != "skip"]
    skipped = len(steps) - len(todo)
    log(f"Experiment {folder}: {len(steps)} runs, {skipped} already done, {len(todo)} to make"
        + (f", {jobs} at a time with {threads_per_job(jobs)} threads each" if jobs > 1 else ""))
    if jobs == 1:
        return _sequential(todo, folder, log)
    return _parallel(todo, folder, jobs, log)


def _interrupted(code: int):
    from ..runner import Interrupted
    return Interrupted("Experiment interrupted; the running runs saved checkpoints. Run the same "
                       "command again to continue where it stopped.", code)


def _sequential(todo, folder, log) -> list[str]:
    failures = []
    for i, step in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {step.job.run_name}: {step.action}"
            + (f" ({step.reason})" if step.reason else ""))
        t0 = time.perf_counter()
        try:
            res = run_one(step.job.cfg, folder, step.job.run_name, step.action)
        except CnnlabError as err:  # e.g. a data error: the other runs may still work
            failures.append(f"{step.job.run_name}: {err}")
            log(f"[{i}/{len(todo)}] {step.job.run_name}: failed: {err}")
            continue
        if res.exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
            raise _interrupted(res.exit_code)
        log(f"[{i}/{len(todo)}] " + _done_line(folder, step.job.run_name, time.perf_counter() - t0))
    return failures


def _start(step: Step, folder: Path, threads: int) -> subprocess.Popen:
    cfg = step.job.cfg.with_overrides(train={"threads": threads})
    payload = json.dumps({"config": cfg.to_dict(), "folder": str(folder),
                          "name": step.job.run_name, "action": step.action,
                          "parent": os.getpid()})
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(logs / f"{step.job.run_name}.log", "ab") as out:
        # its own session: a terminal's Ctrl-C reaches only this process, which
        # forwards exactly one signal (a second one would stop a run unsaved)
        return subprocess.Popen([sys.executable, "-m", "cnnlab.experiments.worker", payload],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


class _Signals:
    """While running workers: SIGINT/SIGTERM are recorded, to be forwarded once to each."""

    def __init__(self):
        self.received, self.old = 0, {}

    def _handler(self, signum, frame):
        self.received = self.received or signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)


def _parallel(todo, folder, jobs, log) -> list[str]:
    threads, pending, running, failures = threads_per_job(jobs), list(todo), {}, []
    stop_code, n, started = 0, len(todo), 0
    with _Signals() as signals:
        while (pending and not stop_code) or running:
            if signals.received and not stop_code:
                stop_code = (ExitStatus.INTERRUPTED if signals.received == signal.SIGINT
                             else ExitStatus.TERMINATED)
                for proc in running:  # each finishes its step, checkpoints and exits
                    proc.send_signal(signals.received)
            while pending and not stop_code and len(running) < jobs:
                step = pending.pop(0)
                started += 1
                log(f"[{started}/{n}] {step.job.run_name}: {step.action}"
                    + (f" ({step.reason})" if step.reason else ""))
                running[_start(step, folder, threads)] = (step, time.perf_counter())
            time.sleep(POLL_SECONDS)
            for proc in [p for p in running if p.poll() is not None]:
                step, t0 = running.pop(proc)
                name, code = step.job.run_name, proc.returncode
                if code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
                    stop_code = stop_code or code
                elif code not in (ExitStatus.OK, ExitStatus.NAN):
                    log_file = folder / "logs" / f"{name}.log"
                    failures.append(f"{name}: exit code {code}; see {log_file}")
                log("  " + _done_line(folder, name, time.perf_counter() - t0))
    if stop_code:
        raise _interrupted(stop_code)
    return failures
