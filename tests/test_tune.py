"""`cnnlab tune`: Optuna searches on tiny data (8x8 images, 1-3 epochs per trial)."""
from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnnlab.config import RunConfig
from cnnlab.errors import ConfigError
from cnnlab.runs import read_json
from cnnlab.tune import load_tune, run_tune
from test_experiments_run import tiny_npz  # the same 8x8 data as the experiments' tests

SRC = Path(__file__).resolve().parents[1] / "src"
MODEL = {"input_shape": [8, 8, 1], "layers": [
    {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": 2}},
    {"Flatten": {}},
    {"Dense": {"units": 10, "activation": "softmax"}}]}
PARAMS = {"lr": {"float": [1.0e-3, 3.0e-2], "log": True},
          "batch_size": {"choice": [8, 16]},
          "filters": {"int": [2, 6], "step": 2},
          "extra": {"choice": {"none": [], "dense": [{"Dense": {"units": 8}}]}}}
VARIANT = {"train": {"optimizer": {"learning_rate": "$lr"}, "batch_size": "$batch_size"},
           "set": {"conv2d": {"filters": "$filters"}},
           "insert": {"after": "flatten", "layers": "$extra"}}


def tune_file(folder: Path, data: Path, trials=4, epochs=2, **changes) -> Path:
    d = {"title": "tiny", "trials": trials, "sampler": {"name": "tpe", "seed": 0,
                                                        "startup_trials": 2},
         "pruner": {"name": "median", "startup_trials": 1},
         "base": {"model": MODEL, "data": {"name": f"npz:{data}"},
                  "train": {"epochs": epochs, "batch_size": 16}},
         "params": PARAMS, "variant": VARIANT, **changes}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def trial_states(db: Path) -> dict:
    with sqlite3.connect(db, timeout=30) as con:
        return dict(con.execute("select number, state from trials").fetchall())


def running_with_params(db: Path) -> bool:
    """Is a trial running with all its parameters drawn (its run has started)?"""
    with sqlite3.connect(db, timeout=30) as con:
        n = con.execute("select count(*) from trials t join trial_params p on "
                        "p.trial_id = t.trial_id where t.state = 'RUNNING'").fetchone()[0]
    return n == len(PARAMS)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    file = tune_file(root, tiny_npz(root / "tiny.npz"))
    out = io.StringIO()
    report = run_tune(file, out=root / "runs", stream=out)
    return root, file, report, out.getvalue()


def test_every_trial_is_a_run_directory_and_the_report_and_best_config_are_written(searched):
    root, _, report, text = searched
    folder = root / "runs" / "tiny"
    assert report == folder / "report.html"
    states = trial_states(folder / "study.db")
    assert sorted(states) == [0, 1, 2, 3]
    assert set(states.values()) <= {"COMPLETE", "PRUNED"}
    for n, state in states.items():
        m = read_json(folder / f"trial-{n}" / "metrics.json")
        assert m["status"] == ("finished" if state == "COMPLETE" else "pruned")
    page = report.read_text()
    for part in ("Best trials", "history", "importances", "parallel", "data:image/png;base64,"):
        assert part in page
    assert (folder / "trials.csv").read_text().count("\n") == 5


def test_the_best_config_is_the_best_trials_config_and_cnnlab_train_takes_it(searched):
    root, file, _, _ = searched
    folder = root / "runs" / "tiny"
    rows = [line.split(",") for line in (folder / "trials.csv").read_text().splitlines()]
    rows = [dict(zip(rows[0], r)) for r in rows[1:]]
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["val_accuracy"]))
    cfg = RunConfig.load(folder / "best_config.yaml")
    assert cfg.spec.to_dict()["layers"][0]["Conv2D"]["filters"] == int(best["filters"])
    assert cfg.train["batch_size"] == int(best["batch_size"])
    assert cfg.train["optimizer"]["learning_rate"] == pytest.approx(float(best["lr"]))
    assert len(cfg.spec.layers) == (4 if best["extra"] == "none" else 5)
    # the trial's own run was made from exactly this config
    trial_cfg = RunConfig.load(folder / f"trial-{best['trial']}" / "config.yaml")
    assert trial_cfg.to_dict() == cfg.to_dict()
    final = read_json(folder / f"trial-{best['trial']}" / "history.json")["val_accuracy"][-1]
    assert final == pytest.approx(float(best["val_accuracy"]))


def test_running_it_again_with_more_trials_keeps_the_finished_ones(searched):
    root, file, _, _ = searched
    folder = root / "runs" / "tiny"
    before = (folder / "trials.csv").read_text().splitlines()[1:]
    run_tune(file, out=root / "runs", trials=5, stream=io.StringIO())
    after = (folder / "trials.csv").read_text().splitlines()[1:]
    assert after[:4] == before and len(after) == 5


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(SRC), "CNNLAB_NO_KERNELS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnlab", "tune", *map(str, args)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_search_killed_mid_trial_continues_and_retries_the_trial_it_was_running(tmp_path):
    # 512 images, 2 epochs: a trial lasts long enough to be caught running
    file = tune_file(tmp_path, tiny_npz(tmp_path / "tiny.npz", 512), trials=2, epochs=2)
    db = tmp_path / "runs" / "tiny" / "study.db"
    proc = _cli(file, "--out", tmp_path / "runs", "--quiet")
    deadline = time.time() + 120
    states = {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            states = trial_states(db) if db.exists() else {}
        except sqlite3.OperationalError:  # the table is not created yet / locked
            continue
        if "COMPLETE" in states.values() and running_with_params(db):
            break
    assert proc.poll() is None, f"the search ended before it was caught mid-trial: {states}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed = [n for n, s in trial_states(db).items() if s == "RUNNING"]
    finished_before = {n for n, s in trial_states(db).items() if s == "COMPLETE"}
    assert len(killed) == 1

    again = _cli(file, "--out", tmp_path / "runs")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"Trials {killed[0]} were running in processes that died" in out
    states = trial_states(db)
    assert states[killed[0]] == "FAIL"
    assert finished_before <= {n for n, s in states.items() if s == "COMPLETE"}
    assert sum(s in ("COMPLETE", "PRUNED") for s in states.values()) == 2
    with sqlite3.connect(db) as con:
        retried = con.execute("select t.number from trials t join trial_user_attributes a on "
                              "a.trial_id = t.trial_id where a.key = 'retry_of'").fetchall()
        params = con.execute("select t.number, p.param_name, p.param_value from trials t join "
                             "trial_params p on p.trial_id = t.trial_id").fetchall()
    assert len(retried) == 1
    by_trial = {}
    for number, name, value in params:
        by_trial.setdefault(number, {})[name] = value
    assert by_trial[retried[0][0]] == by_trial[killed[0]]  # the same parameters, asked again


def test_two_processes_sharing_one_storage_split_the_trials_without_duplicates(tmp_path):
    file = tune_file(tmp_path, tiny_npz(tmp_path / "tiny.npz"), trials=5, epochs=1)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    a = _cli(file, "--out", tmp_path / "runs", "--storage", storage, "--jobs", "2")
    b = _cli(file, "--out", tmp_path / "runs", "--storage", storage)
    for p in (a, b):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    states = trial_states(tmp_path / "shared.db")
    assert sorted(states) == [0, 1, 2, 3, 4]                 # the budget, not one more
    assert set(states.values()) <= {"COMPLETE", "PRUNED"}
    folder = tmp_path / "runs" / "tiny"
    assert sorted(p.name for p in folder.glob("trial-*")) == [f"trial-{n}" for n in range(5)]
    logs = "".join(p.read_text() for p in (folder / "logs").glob("worker-*.log"))
    assert logs.count("trial ") >= 1   # the --jobs workers ran trials too


@pytest.mark.parametrize("change, message", [
    ({"params": {**PARAMS, "lr": {"float": [0.1, 0.01]}}},
     "Invalid value for `params.lr.float`. Expected low < high. Received [0.1, 0.01]."),
    ({"params": {**PARAMS, "lr": {"float": [0.0, 0.01], "log": True}}},
     "Expected low > 0 with log: true"),
    ({"params": {**PARAMS, "lr": {"uniform": [0.0, 0.01]}}},
     "Expected exactly one of {float: [low, high]}"),
    ({"params": {**PARAMS, "batch_size": {"choice": []}}},
     "Expected a non-empty list of values"),
    ({"params": {**PARAMS, "momentum": {"float": [0.5, 0.9]}}},
     "Parameter `momentum` is not used by `variant`"),
    ({"variant": {**VARIANT, "set": {"conv2d": {"filters": "$filterz"}}}},
     "`variant` uses $filterz, which `params` does not define"),
    ({"params": {**PARAMS, "filters": {"int": [2, 6], "step": 2},
                 "k": {"choice": [3, 9]}},
      "variant": {**VARIANT, "set": {"conv2d": {"filters": "$filters", "kernel_size": "$k"}}}},
     "k=9"),
    ({"pruner": "asha"}, "Invalid value for `pruner`. Expected one of: median, hyperband, none."),
    ({"trials": 0}, "Invalid value for `trials`. Expected a strictly positive integer."),
    ({"pruner": {"name": "median", "warmup_epoch": 1}}, "warmup_epoch"),
    ({"sampler": {"name": "tpe", "seed": "zero"}},
     "Invalid value for `sampler.seed`. Expected an integer >= 0. Received seed='zero'."),
    ({"speed": 1}, "speed"),
])
def test_bad_search_spaces_fail_before_anything_trains_with_what_was_expected(tmp_path, change,
                                                                              message):
    file = tune_file(tmp_path, tmp_path / "never-read.npz", **change)
    with pytest.raises(ConfigError) as err:
        load_tune(file)
    assert message in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_a_bad_storage_url_is_a_config_error(tmp_path):
    from cnnlab.tune.study import make_storage
    with pytest.raises(ConfigError, match="Expected an Optuna storage URL"):
        make_storage("not-a-url")
    with pytest.raises(ConfigError, match="Expected journal:PATH in an existing folder"):
        make_storage(f"journal:{tmp_path / 'missing' / 'study.log'}")


def test_a_journal_file_storage_with_random_sampling_and_hyperband(tmp_path):
    """Optuna's journal file (a shared disk's storage, no database server)."""
    file = tune_file(tmp_path, tiny_npz(tmp_path / "tiny.npz"), trials=2, epochs=2,
                     sampler={"name": "random", "seed": 1},
                     pruner={"name": "hyperband", "min_epochs": 1, "reduction_factor": 2})
    journal = tmp_path / "study.log"
    run_tune(file, out=tmp_path / "runs", storage=f"journal:{journal}", stream=io.StringIO())
    from cnnlab.tune.study import make_storage, optuna
    study = optuna().load_study(study_name="tiny", storage=make_storage(f"journal:{journal}"))
    assert [t.state.name for t in study.trials] in (["COMPLETE", "COMPLETE"],
                                                    ["COMPLETE", "PRUNED"])
    assert not (tmp_path / "runs" / "tiny" / "study.db").exists()
    assert (tmp_path / "runs" / "tiny" / "best_config.yaml").is_file()


def test_timeout_starts_no_trial_after_the_time_is_up(tmp_path):
    file = tune_file(tmp_path, tiny_npz(tmp_path / "tiny.npz"), trials=500, epochs=1)
    run_tune(file, out=tmp_path / "runs", timeout=3, stream=io.StringIO())
    states = trial_states(tmp_path / "runs" / "tiny" / "study.db")
    assert 1 <= len(states) < 500                 # stopped by the time, not the budget
    assert set(states.values()) <= {"COMPLETE", "PRUNED"}
