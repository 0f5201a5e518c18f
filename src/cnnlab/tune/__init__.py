"""`cnnlab tune`: search a config's settings with Optuna.

    >>> report = run_tune("examples/tune.yaml", out="runs", trials=8, jobs=2)
    >>> report                      # runs/tune/report.html; runs/tune/best_config.yaml

A tune file names a base config, a search space and the variant (the
experiments' changes, docs/experiments.md) that a trial's values fill in
(`space.py`). Each trial trains an ordinary run directory; the study lives in
`<out>/<name>/study.db` (SQLite) or any Optuna storage (`storage=`), so running
the same command again continues the search (`study.py`). See docs/tune.md.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConfigError, ExitStatus
from .space import Tune, load_tune, parse_tune

__all__ = ["Tune", "load_tune", "parse_tune", "run_tune"]
POLL_SECONDS = 0.2


def _log(stream, quiet):
    def log(text):
        if not quiet:
            stream.write(text + "\n")
            stream.flush()
    return log


def run_tune(file, *, out="runs", name=None, trials=None, timeout=None, jobs=1, storage=None,
             epochs=None, data=None, quiet=False, stream=None) -> Path:
    """Run (or continue) the search in `file`; the report's path.

    Raises runner.Interrupted (exit 130/143) after Ctrl-C / SIGTERM, once the running trials
    have checkpointed; the report of what finished is written first."""
    from ..runner import Interrupted
    from .report import write_report
    from .study import open_study, reap_dead, storage_url, work, write_state
    stream = stream or sys.stdout
    log = _log(stream, quiet)
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"Invalid value for `--timeout`. Expected a positive number of "
                          f"seconds. Received {timeout!r}.")
    tune = load_tune(file, name, trials=trials, epochs=epochs, data=data)
    folder = Path(out) / tune.name
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url(folder, storage)
    study = open_study(tune, url, folder)
    write_state(folder, tune, url)
    reaped = reap_dead(study, folder, own_storage=storage is None)
    if reaped:
        log(f"Trials {', '.join(map(str, reaped))} were running in processes that died: "
            "marked failed, to be retried with the same parameters.")
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    log(f"Search {folder}: {tune.trials} trials ({done} finished before), study in {url}"
        + (f", {jobs} workers" if jobs > 1 else ""))
    deadline = time.time() + timeout if timeout else None
    if jobs == 1:
        code = work(tune, study, folder, deadline=deadline, log=log)
    else:
        code = _parallel(file, tune, url, folder, jobs, deadline, trials, epochs, data, log)
    report = write_report(tune, study, folder)
    if code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        raise Interrupted(f"Search interrupted; the running trials saved checkpoints and will be "
                          f"retried. Report so far: {report}. Run the same command again to "
                          "continue.", code)
    return report


def _start(payload: dict, folder: Path, index: int, threads: int) -> subprocess.Popen:
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(logs / f"worker-{index}.log", "ab") as f:
        # its own session: a terminal's Ctrl-C reaches only this process, which forwards one
        return subprocess.Popen([sys.executable, "-m", "cnnlab.tune.worker",
                                 json.dumps({**payload, "worker": index})],
                                stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _parallel(file, tune, url, folder, jobs, deadline, trials, epochs, data, log) -> int:
    from ..experiments.execute import _Signals, threads_per_job
    threads = threads_per_job(jobs)
    payload = {"file": str(file), "name": tune.name, "folder": str(folder), "storage": url,
               "trials": trials, "epochs": epochs, "data": data, "deadline": deadline,
               "threads": threads, "parent": os.getpid()}
    procs = [_start(payload, folder, i, threads) for i in range(jobs)]
    log(f"{jobs} workers with {threads} threads each; their output: {folder / 'logs'}")
    stop, failures = 0, []
    with _Signals() as signals:
        while any(p.poll() is None for p in procs):
            if signals.received and not stop:
                stop = signals.received
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(stop)
            time.sleep(POLL_SECONDS)
    for i, p in enumerate(procs):
        if p.returncode not in (ExitStatus.OK, ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
            failures.append(f"worker {i}: exit code {p.returncode}; see "
                            f"{folder / 'logs' / f'worker-{i}.log'}")
    if stop:
        return ExitStatus.INTERRUPTED if stop == signal.SIGINT else ExitStatus.TERMINATED
    if failures:
        from ..errors import RunError
        raise RunError("Search workers failed:\n  " + "\n  ".join(failures))
    return ExitStatus.OK
