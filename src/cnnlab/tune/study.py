"""Running a search: the Optuna study, its storage, and one worker's trials.

    >>> study = open_study(tune, storage_url(folder, None), folder)
    >>> work(tune, study, folder)        # ask -> train a run directory -> tell, until done

Every trial is an ordinary run directory `<folder>/trial-<number>` made by
`runner.train_run`, the path `cnnlab train` takes; a callback reports the
objective after each epoch (Optuna's intermediate values) and stops the run
when the pruner says so. A trial's score is the objective's value at its last
epoch: what the weights the run keeps, and the config written for the best
trial, give.

The budget (`trials`) counts finished, pruned, failed (an error or NaN) and
running trials, checked and asked under a file lock next to the study, so
processes sharing the folder never start more than the budget between them.
A trial whose process died (kill -9, a reboot) is marked failed and asked
again with the same parameters (`retry_of`): on this machine as soon as a
`cnnlab tune` starts (its process is gone), elsewhere by Optuna's heartbeat
on RDB storages (no heartbeat for 3 minutes).
"""
from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from pathlib import Path

from ..errors import CnnlabError, ConfigError, ExitStatus
from ..io import atomic_write
from ..runs import read_json, write_json
from ..train import callbacks as cbs
from .space import Tune

HEARTBEAT_SECONDS = 60        # how often a running trial says it is alive (RDB storages)
GRACE_SECONDS = 180           # silence after which another worker fails and retries it
SQLITE_TIMEOUT_SECONDS = 60   # how long a writer waits for SQLite's lock
LOCK_FILE = ".tune.lock"


def optuna():
    """Optuna, imported on first use (a long import that `cnnlab train` never needs)."""
    import warnings

    import optuna as _optuna
    _optuna.logging.set_verbosity(_optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=_optuna.exceptions.ExperimentalWarning)
    # ask() with a heartbeat: this module runs the heartbeat itself (_Heartbeat)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return _optuna


# -- storage ---------------------------------------------------------------------------

def storage_url(folder: Path, storage: str | None) -> str:
    """--storage as given, or the SQLite file in the study's folder."""
    if storage:
        return storage
    return f"sqlite:///{(Path(folder) / 'study.db').resolve()}"


def make_storage(url: str):
    """An Optuna storage for a URL: RDB (sqlite://, postgresql://, mysql://...) with a
    heartbeat, or `journal:PATH`, Optuna's append-only journal file (a shared disk)."""
    o = optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        path = Path(url[len("journal:"):])
        if not path.parent.is_dir():
            raise ConfigError(f"Invalid value for `--storage`. Expected journal:PATH in an "
                              f"existing folder. Received {url!r}.")
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(f"Invalid value for `--storage`. Expected an Optuna storage URL "
                          "(sqlite:///PATH, postgresql://..., mysql://...) or journal:PATH. "
                          f"Received {url!r}.")
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}} if url.startswith("sqlite") else {}
    retry = o.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    try:
        return o.storages.RDBStorage(url, engine_kwargs=kwargs,
                                     heartbeat_interval=HEARTBEAT_SECONDS,
                                     grace_period=GRACE_SECONDS,
                                     heartbeat_stale_trial_callback=retry)
    except (ImportError, ModuleNotFoundError) as err:
        raise ConfigError(f"Invalid value for `--storage`: {url!r} needs a database driver that "
                          f"is not installed ({err}). Expected sqlite:///PATH, or install the "
                          "driver (psycopg2 for PostgreSQL, PyMySQL for MySQL).") from None
    except Exception as err:  # SQLAlchemy's errors: a bad URL, a refused connection
        raise ConfigError(f"Invalid value for `--storage`. Expected a storage Optuna can open. "
                          f"Received {url!r} ({type(err).__name__}: {err}).") from None


def _sampler(tune: Tune, salt: int):
    o, s = optuna(), dict(tune.sampler)
    # a resumed or parallel search must not replay the draws already made: the seed moves
    # with the number of trials the study holds and the worker's index
    seed = None if s.get("seed") is None else int(s["seed"]) + salt
    if s["name"] == "random":
        return o.samplers.RandomSampler(seed=seed)
    startup = int(s.get("startup_trials", 5))
    return o.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _pruner(tune: Tune):
    o, p = optuna(), tune.pruner
    if p["name"] == "none":
        return o.pruners.NopPruner()
    if p["name"] == "hyperband":
        return o.pruners.HyperbandPruner(min_resource=int(p.get("min_epochs", 1)),
                                         reduction_factor=int(p.get("reduction_factor", 3)))
    return o.pruners.MedianPruner(n_startup_trials=int(p.get("startup_trials", 2)),
                                  n_warmup_steps=int(p.get("warmup_epochs", 0)))


def open_study(tune: Tune, url: str, folder, worker: int = 0):
    """The study named after the tune file in the storage, created on first use.

    Under the folder's lock: two processes creating one new SQLite file's tables at once
    collide (a UNIQUE constraint on Alembic's version row)."""
    from filelock import FileLock
    Path(folder).mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(folder) / LOCK_FILE)):
        return _open_study(tune, url, worker)


def _open_study(tune: Tune, url: str, worker: int):
    o = optuna()
    storage = make_storage(url)
    try:
        existing = o.load_study(study_name=tune.name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None and existing.direction.name.lower() != tune.direction:
        raise ConfigError(f"Study {tune.name!r} in {url} was made to {existing.direction.name.lower()} "
                          f"its objective; this file says {tune.direction}. Expected the same "
                          "direction (or another --name for a new study).")
    salt = 1000 * worker + (len(existing.trials) if existing is not None else 0)
    return o.create_study(study_name=tune.name, storage=storage, direction=tune.direction,
                          sampler=_sampler(tune, salt), pruner=_pruner(tune), load_if_exists=True)


# -- the budget and the dead -----------------------------------------------------------

def counted(trial) -> bool:
    """Does this trial use one of the budget's trials? Interrupted ones do not: they are retried."""
    s = optuna().trial.TrialState
    if trial.state in (s.COMPLETE, s.PRUNED, s.RUNNING):
        return True
    return trial.state == s.FAIL and "failure" in trial.user_attrs


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def retry(study, trial, reason: str) -> None:
    """Mark a trial that did not finish failed (if it still runs) and ask its parameters again."""
    s = optuna().trial.TrialState
    storage = study._storage  # Optuna's own API for a trial of another process: the storage
    storage.set_trial_user_attr(trial._trial_id, "interrupted", reason)
    if trial.state == s.RUNNING:
        storage.set_trial_state_values(trial._trial_id, state=s.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def reap_dead(study, folder: Path, own_storage: bool) -> list[int]:
    """Trials RUNNING in processes of this machine that no longer exist: failed and retried.

    Under the folder's lock, which every process of this folder holds from ask() until its
    trial records its host and process: a trial without them was asked by a process killed in
    between, if the storage is the folder's own (else, another machine's trial may be a moment
    from recording them: it is left to the heartbeat)."""
    from filelock import FileLock
    s, host, out = optuna().trial.TrialState, socket.gethostname(), []
    with FileLock(str(Path(folder) / LOCK_FILE)):
        for t in study.get_trials(deepcopy=False, states=(s.RUNNING,)):
            mine = t.user_attrs.get("host") == host
            if (mine and not _alive(int(t.user_attrs.get("pid", 0)))) or (
                    own_storage and "host" not in t.user_attrs):
                retry(study, t, "its process died")
                out.append(t.number)
    optuna().storages.fail_stale_trials(study)  # other machines' dead, by heartbeat (RDB)
    return out


class _Heartbeat:
    """Optuna's heartbeat for a trial asked with ask() (optimize() runs its own)."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.thread = (threading.Thread(target=self._beat, args=(interval,), daemon=True)
                       if interval else None)

    def _beat(self, interval):
        while not self.stop.is_set():
            self.storage.record_heartbeat(self.trial_id)
            self.stop.wait(interval)

    def __enter__(self):
        if self.thread:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread:
            self.thread.join()


# -- one trial -------------------------------------------------------------------------

class Pruning(cbs.Callback):
    """Reports the objective after each validated epoch; stops training when pruned."""

    def __init__(self, trial, objective: str):
        super().__init__()
        self.trial, self.objective, self.pruned = trial, objective, False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective)
        if value is None or not math.isfinite(value):  # not validated this epoch, or NaN
            return
        self.trial.report(float(value), epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def trial_run_name(number: int) -> str:
    return f"trial-{number}"


def run_trial(tune: Tune, study, trial, folder: Path, threads: int | None = None) -> int:
    """Train the trial's run and tell the study; returns the run's exit code."""
    from ..runner import train_run
    s = optuna().trial.TrialState
    cfg = tune.config({p.name: p.suggest(trial) for p in tune.params})
    if threads:
        cfg = cfg.with_overrides(train={"threads": threads})
    name = trial_run_name(trial.number)
    trial.set_user_attr("run", name)
    pruning = Pruning(trial, tune.objective)
    try:
        with _Heartbeat(study._storage, trial._trial_id):
            res = train_run(cfg, out=folder, name=name, quiet=True, handle_signals=True,
                            callbacks=[pruning])
    except Exception as err:  # a user error, or a bug: counted, not retried forever
        trial.set_user_attr("failure", f"{type(err).__name__}: {err}")
        study.tell(trial, state=s.FAIL)
        raise
    if res.exit_code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        retry(study, study.get_trials(deepcopy=False)[trial.number], res.message)
        return res.exit_code
    values = res.history.get(tune.objective) or []
    if res.exit_code == ExitStatus.NAN or not values or not math.isfinite(values[-1]):
        why = (res.message or "loss became NaN") if res.exit_code == ExitStatus.NAN else (
            f"the history has no {tune.objective!r}; it has: {', '.join(res.history)}")
        trial.set_user_attr("failure", why)
        study.tell(trial, state=s.FAIL)
        return res.exit_code
    if pruning.pruned:
        _mark_pruned(folder / name)
        study.tell(trial, state=s.PRUNED)
    else:
        study.tell(trial, values[-1])
    return ExitStatus.OK


def _mark_pruned(run_dir: Path) -> None:
    m = read_json(run_dir / "metrics.json", {}) or {}
    m["status"] = "pruned"  # finished early on the pruner's word: not a full run
    write_json(run_dir / "metrics.json", m)


# -- one worker ------------------------------------------------------------------------

def _ask(study, tune: Tune, folder: Path, deadline: float | None):
    """The next trial under the folder's lock, or None when the budget or time is spent."""
    from filelock import FileLock
    with FileLock(str(folder / LOCK_FILE)):
        if deadline is not None and time.time() >= deadline:
            return None
        if sum(counted(t) for t in study.get_trials(deepcopy=False)) >= tune.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        return trial


def work(tune: Tune, study, folder, *, deadline: float | None = None, threads=None,
         log=lambda text: None) -> int:
    """Run trials until the budget or the time is spent; the exit code (130/143: interrupted)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        trial = _ask(study, tune, folder, deadline)
        if trial is None:
            return ExitStatus.OK
        t0 = time.perf_counter()
        code = run_trial(tune, study, trial, folder, threads)
        log(f"trial {trial.number}: {result_text(study, trial.number)}, "
            f"{time.perf_counter() - t0:.0f} s")
        if code in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
            return code


def result_text(study, number: int) -> str:
    t = study.get_trials(deepcopy=False)[number]
    value = f" {t.value:.4f}" if t.value is not None else ""
    params = ", ".join(f"{k}={v!r}" for k, v in t.params.items())
    return f"{t.state.name.lower()}{value} ({params})"


def write_state(folder: Path, tune: Tune, url: str) -> None:
    """tune.json: what the folder's study is, for the report and for people."""
    atomic_write(Path(folder) / "tune.json", json.dumps(
        {"name": tune.name, "title": tune.title, "source": tune.source, "storage": url,
         "objective": tune.objective, "direction": tune.direction, "trials": tune.trials},
        indent=2) + "\n")
