"""Hardening: names that cannot escape the runs folder, directories cnnlab deletes only if it
made them, and run directories locked while a process trains in them.

Each case runs the real CLI in process and checks the exit code, the message's key words,
no traceback, and the disk afterwards (the victim folder intact, no run directory left or a
resumable one)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnnlab import guard
from cnnlab.errors import ConfigError, RunError
from test_resume_support import TINY_LAYERS, keep_threads, run_cli, tiny_npz, tree, write_config  # noqa: F401


def victim(folder: Path) -> dict:
    """A user's folder named like an experiment's run (`base-s0`), without config.yaml."""
    (folder / "base-s0").mkdir(parents=True)
    (folder / "base-s0" / "thesis.tex").write_text("years of work\n")
    (folder / "notes.txt").write_text("mine\n")
    return tree(folder)


def experiment_yaml(path="exp.yaml", data="tiny.npz", variants=None, **train) -> Path:
    d = {"seeds": 1, "variants": variants or {},
         "base": {"model": {"input_shape": [8, 8, 1], "layers": TINY_LAYERS},
                  "data": {"name": f"npz:{data}"},
                  "train": {"epochs": 1, "batch_size": 16, "threads": 1, **train}}}
    Path(path).write_text(yaml.safe_dump(d, sort_keys=False))
    return Path(path)


def no_traceback(err: str) -> None:
    """The error as cnnlab's one message (after at most a one-line note), no traceback."""
    assert "Traceback" not in err and "cnnlab: error: " in err or err.startswith("usage: "), err
    assert all(line.startswith(("cnnlab: ", "usage: ", "  ", "Resume", "Delete", "Only"))
               for line in err.splitlines() if line), err


# -- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../victim", "/tmp/abs", "a/b", "..", ".hidden", "ok\n",
                                  "tab\tname", "x" * 101, "", "a\x00b", "é"])
def test_every_bad_name_is_refused_by_the_one_rule(name):
    with pytest.raises(ConfigError, match="Expected letters, digits"):
        guard.check_name(name, "experiment")


@pytest.mark.parametrize("name", ["a", "lecture-1", "v1.2_x", "x" * 100, "A..b"])
def test_good_names_pass(name):
    assert guard.check_name(name) == name


@pytest.mark.parametrize("bad", ["../victim", "/abs/victim", "victim/..", "ok\n"])
def test_an_experiment_name_cannot_reach_outside_the_runs_folder(bad, tmp_path, monkeypatch,
                                                                 capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    before = victim(tmp_path / "victim")
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--name", bad, "--out", "runs",
                           "--quiet")
    assert code == 2 and "Invalid experiment name" in err and "Expected letters" in err, err
    no_traceback(err)
    assert tree("victim") == before
    assert not Path("runs").exists()


def test_an_experiment_never_deletes_a_users_folder_of_the_same_name(tmp_path, monkeypatch,
                                                                     capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    before = victim(tmp_path / "runs" / "victim")
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--name", "victim", "--out", "runs",
                           "--quiet")
    assert code == 5 and "is not a cnnlab experiment folder" in err, err
    no_traceback(err)
    assert tree("runs/victim") == before
    # even inside an experiment folder cnnlab made, a run folder it did not make is kept
    (tmp_path / "runs" / "victim" / "experiment.json").write_text("{}")
    before = tree("runs/victim")
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--name", "victim", "--out", "runs",
                           "--quiet")
    assert code == 5 and "was not created by cnnlab" in err and "base-s0" in err, err
    no_traceback(err)
    assert tree("runs/victim") == before


def test_a_symlinked_run_folder_is_never_followed_to_delete(tmp_path, monkeypatch, capsys,
                                                             keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")
    assert code == 0, err
    # a user's folder, marked as if cnnlab's, behind a link where a restartable run would be
    target = tmp_path / "elsewhere"
    target.mkdir()
    guard.mark(target, "run")
    (target / "keep.txt").write_text("keep\n")
    import shutil
    shutil.rmtree("runs/exp/base-s0")
    os.symlink(target, "runs/exp/base-s0")
    before = tree(target)
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")
    assert code == 5 and "symbolic link" in err, err
    no_traceback(err)
    assert tree(target) == before and Path("runs/exp/base-s0").is_symlink()


def test_a_name_derived_from_the_config_file_follows_the_same_rule(tmp_path, monkeypatch, capsys,
                                                                   keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("my config.yaml", "tiny.npz")
    code, _, err = run_cli(capsys, "train", "my config.yaml", "--out", "runs", "--quiet")
    assert code == 2 and "derived from the file name" in err and "--name" in err, err
    no_traceback(err)
    assert not Path("runs").exists()
    experiment_yaml("bad\tname.yaml")
    code, _, err = run_cli(capsys, "experiment", "bad\tname.yaml", "--out", "runs", "--quiet")
    assert code == 2 and "Invalid experiment name" in err, err
    assert not Path("runs").exists()


def test_every_directory_cnnlab_creates_is_marked(tmp_path, monkeypatch, capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    write_config("c.yaml", "tiny.npz", epochs=1)
    assert run_cli(capsys, "train", "c.yaml", "--name", "r", "--out", "runs", "--quiet")[0] == 0
    assert run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")[0] == 0
    for d in ("runs/r", "runs/exp", "runs/exp/base-s0"):
        assert guard.is_owned(d), d
    assert not list(Path("runs").rglob(guard.LOCK))  # every lock released and removed


def test_remove_owned_refuses_what_cnnlab_did_not_make(tmp_path):
    mine = guard.make_owned_dir(tmp_path / "mine")
    (tmp_path / "theirs").mkdir()
    with pytest.raises(RunError, match="was not created by cnnlab"):
        guard.remove_owned(tmp_path / "theirs")
    os.symlink(mine, tmp_path / "link")
    with pytest.raises(RunError, match="symbolic link"):
        guard.remove_owned(tmp_path / "link")
    assert mine.is_dir()
    guard.remove_owned(mine)
    assert not mine.exists() and (tmp_path / "theirs").is_dir()


# -- locks: one process per run directory ------------------------------------------------------

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def finished(tmp_path, monkeypatch, capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz", epochs=1)
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 0, err
    return tmp_path


def hold_lock(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def refused_while_locked(capsys, lock: Path, message: str, *args) -> None:
    """`cnnlab ARGS` while another process holds `lock`: exit 5, `message` (the holder's pid
    in place of {pid}) on stderr without a traceback, and nothing under runs/ changed."""
    proc = hold_lock(lock)
    try:
        before = tree("runs")
        code, _, err = run_cli(capsys, *args)
        assert code == 5 and message.format(pid=proc.pid) in err, err
        no_traceback(err)
        assert tree("runs") == before
    finally:
        proc.kill()
        proc.wait()


def test_a_resume_of_a_run_in_use_is_refused_with_the_holders_pid(finished, capsys):
    refused_while_locked(capsys, Path("runs/x") / guard.LOCK,
                         "Run runs/x is in use by process {pid}", "train", "--resume", "x", "--out", "runs", "--epochs", "2", "--quiet")
    # killed: the kernel dropped the lock; its file is left, and taken over
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--epochs", "2",
                           "--quiet")
    assert code == 0, err
    assert not (Path("runs/x") / guard.LOCK).exists()


def test_an_experiment_on_a_run_in_use_is_refused_with_the_holders_pid(tmp_path, monkeypatch,
                                                                       capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    assert run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")[0] == 0
    experiment_yaml(epochs=2)
    exp = ("experiment", "exp.yaml", "--out", "runs", "--quiet")
    refused_while_locked(capsys, Path("runs/exp/base-s0") / guard.LOCK,
                         "is in use by process {pid}", *exp)
    refused_while_locked(capsys, Path("runs/exp") / guard.LOCK,
                         "Experiment folder runs/exp is in use by process {pid}", *exp)


def test_the_lock_is_held_while_training_and_released_by_kill_9(tmp_path):
    tiny_npz(tmp_path / "tiny.npz")
    write_config(tmp_path / "c.yaml", tmp_path / "tiny.npz", epochs=200)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
           "CNNLAB_NO_KERNELS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "c.yaml", "--name", "x",
                             "--out", "runs", "--quiet"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE)
    run = tmp_path / "runs" / "x"
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.safetensors").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    assert guard.lock_holder(run) == str(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert guard.lock_holder(run) is None


# -- a run is resumable or absent -------------------------------------------------------------

def test_a_full_disk_at_the_first_checkpoint_leaves_no_run(tmp_path, monkeypatch, capsys,
                                                            keep_threads):  # noqa: F811
    from test_bad_inputs import full_disk_on
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz")
    full_disk_on(monkeypatch, "checkpoint.safetensors")
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 7 and "the disk is full" in err and "was removed" in err, err
    assert "--resume" not in err
    no_traceback(err)
    assert list(Path("runs").iterdir()) == []  # the name is free again
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")[0] == 0


def test_a_crash_before_the_first_checkpoint_leaves_no_running_run(tmp_path, monkeypatch, capsys,
                                                                    keep_threads):  # noqa: F811
    import cnnlab.train.checkpoint as ckpt
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure inside torch")
    monkeypatch.setattr(ckpt, "save_tensors", broken)
    from cnnlab.cli import main
    with pytest.raises(RuntimeError):
        main(["train", "c.yaml", "--name", "x", "--out", "runs", "--quiet"])
    assert list(Path("runs").iterdir()) == []


# -- losses that Keras accepts on class labels ----------------------------------------------------

@pytest.mark.parametrize("loss", ["binary_crossentropy", "mse", "hinge"])
def test_losses_on_vectors_take_class_labels_one_hot(loss, tmp_path, monkeypatch, capsys,
                                                    keep_threads):  # noqa: F811
    from cnnlab.runs import read_json
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz", loss=loss, epochs=2)
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 0, err
    m = read_json("runs/x/metrics.json")
    assert m["status"] == "finished" and 0 <= m["final_val_accuracy"] <= 1
    code, out, err = run_cli(capsys, "evaluate", "x", "--out", "runs")
    assert code == 0 and "per-class accuracy" in out, err


def test_one_hot_targets_from_labels_match_to_categorical():
    import numpy as np
    from cnnlab.losses import get as get_loss
    from cnnlab.train.data import _targets
    y = np.array([0, 2, 1, 2])
    for name in ("mse", "binary_crossentropy"):
        yt, _ = _targets(y, 4, get_loss(name), 3, "labels")
        assert yt.tolist() == np.eye(3)[y].tolist()
    yt, _ = _targets(np.array([0, 1, 1, 0]), 4, get_loss("binary_crossentropy"), 1, "labels")
    assert yt.tolist() == [0, 1, 1, 0]  # one sigmoid unit: the labels themselves


# -- experiments validate every variant before the first run ------------------------------------

@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_experiment_validates_every_variant_before_the_first_run(jobs, tmp_path, monkeypatch,
                                                                    capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml(variants={
        "ok": {"train": {"batch_size": 8}},
        "bad_beta": {"train": {"optimizer": {"name": "adam", "beta_1": 1.5}}},
        "bad_seed": {"train": {"seed": -3}},
        "nan_rate": {"train": {"optimizer": {"name": "sgd", "learning_rate": float("nan")}}}})
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--jobs", jobs,
                           "--quiet")
    assert code == 2 and "3 invalid variant(s)" in err and "nothing was trained" in err, err
    for words in ("bad_beta: Invalid value for argument `beta_1`", "bad_seed: Invalid value "
                  "for `train.seed`", "nan_rate: Invalid value for `train.optimizer.learning_rate`"):
        assert words in err, err
    no_traceback(err)
    assert not Path("runs").exists()


# -- checkpoints are untrusted ---------------------------------------------------------------------

def _meta_and_cfg(finished_dir):
    from cnnlab.config import RunConfig
    from cnnlab.train.checkpoint import read_checkpoint_meta
    meta = read_checkpoint_meta(finished_dir / "runs/x/checkpoint.safetensors")
    return meta, RunConfig.load(finished_dir / "runs/x/config.yaml")


def test_a_checkpoint_is_checked_against_the_run(finished):
    import copy
    from cnnlab.resume_guard import check_checkpoint
    from cnnlab.runner import RESUMABLE_CHANGES
    meta, cfg = _meta_and_cfg(finished)
    check_checkpoint("ck", meta, cfg, RESUMABLE_CHANGES)  # its own run: fine
    old = copy.deepcopy(meta)
    del old["extra"]["config"]  # a checkpoint of an older version: what it records is checked
    check_checkpoint("ck", old, cfg, RESUMABLE_CHANGES)
    cases = {
        "optimizer lr: checkpoint has 0.5": lambda m: m["optimizer"]["param_groups"][0]
        .update(lr=0.5),
        "(another optimizer)": lambda m: m["optimizer"]["param_groups"][0].pop("betas"),
        "train.seed: checkpoint has 7": lambda m: m.update(seed=7),
        "position: expected counts": lambda m: m["position"].update(step=-1),
        "history: expected lists of numbers": lambda m: m["history"].update(loss=["x"]),
        "optimizer learning rate: expected a finite number": lambda m: m["optimizer"]
        ["param_groups"][0].update(lr=float("nan")),
    }
    for words, damage in cases.items():
        m = copy.deepcopy(old)
        damage(m)
        with pytest.raises(RunError, match="does not match the run") as err:
            check_checkpoint("ck", m, cfg, RESUMABLE_CHANGES)
        assert words in str(err.value), (words, str(err.value))


def test_optimizer_state_of_the_wrong_shape_is_refused_with_exit_5(finished, capsys):
    import torch
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    path = Path("runs/x/checkpoint.safetensors")
    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.startswith("optim/") and tensors[k].numel() > 1)
    tensors[key] = torch.zeros(tensors[key].numel() + 1)
    save_file(tensors, str(path), metadata=header)
    before = tree("runs")
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--epochs", "2",
                           "--quiet")
    assert code == 5 and "does not match the run's optimizer" in err and "shape" in err, err
    no_traceback(err)
    assert tree("runs") == before


def test_an_edited_learning_rate_is_refused_not_ignored(finished, capsys):
    path = Path("runs/x/config.yaml")
    d = yaml.safe_load(path.read_text())
    d["train"]["optimizer"] = {"name": "adam", "learning_rate": 0.5}
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    before = tree("runs")
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--epochs", "2",
                           "--quiet")
    assert code == 5 and "train.optimizer: checkpoint has" in err and "0.5" in err, err
    assert tree("runs") == before


# -- readers that tolerate damage -----------------------------------------------------------------

DAMAGE = {
    "not JSON": lambda p: p.write_text("{broken"),
    "a list": lambda p: p.write_text("[1, 2]"),
    "a wrong value": lambda p: p.write_text('{"status": {"x": 1}, "final_val_accuracy": "high"}'),
    "a FIFO": lambda p: (p.unlink(), os.mkfifo(p)),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_runs_and_compare_report_a_damaged_file_and_go_on(damage, finished, capsys):
    import shutil
    shutil.copytree("runs/x", "runs/y")
    DAMAGE[damage](Path("runs/y/metrics.json"))
    code, out, err = run_cli(capsys, "runs", "--out", "runs")
    assert code == 0, err
    assert "runs/y/metrics.json" in err and err.count("\n") == 1 and "Traceback" not in err, err
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "finished" in rows["x"] and "damaged" in rows["y"], out
    code, out, err = run_cli(capsys, "compare", "x", "y", "--out", "runs", "--report", "rep")
    assert code == 0, err
    assert "runs/y/metrics.json" in err and "Traceback" not in err, err
    assert Path("rep/report.html").is_file()


def test_library_warnings_reach_the_user_as_one_line(capsys):
    import warnings
    from cnnlab.cli import main

    def noisy(args, out):
        warnings.warn("a library\nwarning over\n  three lines", UserWarning)
        return 0
    from cnnlab import cli
    cli.COMMANDS["runs"], old = noisy, cli.COMMANDS["runs"]
    try:
        with pytest.raises(SystemExit):
            main(["runs"])
    finally:
        cli.COMMANDS["runs"] = old
    err = capsys.readouterr().err
    assert err == "cnnlab: warning: UserWarning: a library warning over three lines\n", err


def test_a_run_that_diverges_is_not_reported_finished(tmp_path, monkeypatch, capsys,
                                                      keep_threads):  # noqa: F811
    from cnnlab.runs import read_json
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz", epochs=2,
                 optimizer={"name": "sgd", "learning_rate": 1e30})
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 8 and "the run diverged" in err, err
    assert read_json("runs/x/metrics.json")["status"] == "nan"
    assert not Path("runs/x/weights/final.safetensors").exists()


@pytest.mark.parametrize("data,words", [({"fallback": "yes"}, "`data.fallback`. Expected true or false"),
                                        ({"data_dir": 5}, "`data.data_dir`. Expected null or a folder")])
def test_data_flags_are_checked(data, words):
    from cnnlab.config import RunConfig
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("`", "`")):
        RunConfig.from_dict({"data": data})


def test_plot_of_a_damaged_history_is_one_message(finished, capsys):
    Path("runs/x/history.json").write_text('{"loss": 5}')
    code, _, err = run_cli(capsys, "plot", "x", "--out", "runs")
    assert code == 5 and "runs/x/history.json is damaged" in err, err
    no_traceback(err)


def test_an_absurd_number_of_seeds_is_refused_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    experiment_yaml()
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--seeds", str(10**9), "--out", "runs")
    assert code == 2 and "Expected an integer in [1, 1000]" in err, err
    assert not Path("runs").exists()


def test_an_absurd_number_of_jobs_is_refused_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    experiment_yaml()
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--jobs", "100000", "--out", "runs")
    assert code == 2 and "Expected an integer in [1, 256]" in err, err
    assert not Path("runs").exists()


def test_a_checkpoint_position_outside_an_epoch_is_refused(finished, capsys):
    import json
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    path = "runs/x/checkpoint.safetensors"
    with safe_open(path, "pt") as f:
        header = f.metadata()
    meta = json.loads(header["cnnlab"])
    meta["position"].update(step=10**6, seen=5)
    header["cnnlab"] = json.dumps(meta)
    save_file(load_file(path), path, metadata=header)
    before = tree("runs")
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--epochs", "3",
                           "--quiet")
    assert code == 5 and "lies outside an epoch of 6 steps" in err, err
    no_traceback(err)
    assert tree("runs") == before


def test_runs_skips_broken_links_and_never_loops_through_links(finished, capsys):
    os.symlink("nowhere", "runs/broken")
    os.symlink(".", "runs/loop")
    code, out, err = run_cli(capsys, "runs", "--out", "runs")
    assert code == 0 and "Traceback" not in err, err
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["x"]


def test_a_run_made_before_the_marker_is_still_cnnlabs_own(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text('{"format": "cnnlab-run-1", "status": "running"}')
    guard.remove_owned(old)
    assert not old.exists()
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "metrics.json").write_text('{"status": "running"}')
    with pytest.raises(RunError, match="was not created by cnnlab"):
        guard.remove_owned(fake)


def test_compare_goes_on_past_a_damaged_config(finished, capsys):
    import shutil
    shutil.copytree("runs/x", "runs/y")
    Path("runs/y/config.yaml").write_text("model: [\n")
    for order in (("x", "y"), ("y", "x")):
        code, _, err = run_cli(capsys, "compare", *order, "--out", "runs", "--report",
                               f"rep-{order[0]}")
        assert code == 0 and "runs/y/config.yaml is damaged" in err, err
        assert "Traceback" not in err and Path(f"rep-{order[0]}/report.html").is_file()


def test_a_damaged_metrics_json_does_not_stop_a_resume(finished, capsys):
    Path("runs/x/metrics.json").write_text("[1, 2]")
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--epochs", "2",
                           "--quiet")
    assert code == 0 and "runs/x/metrics.json is damaged" in err, err
    from cnnlab.runs import read_json
    m = read_json("runs/x/metrics.json")
    assert m["status"] == "finished" and m["epochs_done"] == 2  # rewritten from the checkpoint


def test_an_experiment_goes_on_past_a_damaged_metrics_json(tmp_path, monkeypatch, capsys,
                                                           keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    experiment_yaml()
    assert run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")[0] == 0
    Path("runs/exp/base-s0/metrics.json").write_text('"not an object"')
    code, _, err = run_cli(capsys, "experiment", "exp.yaml", "--out", "runs", "--quiet")
    assert code == 0 and "runs/exp/base-s0/metrics.json is damaged" in err, err
    assert "Traceback" not in err


def test_an_alias_bomb_is_refused_within_a_small_memory_budget():
    import tracemalloc
    from cnnlab.spec import load_yaml
    from test_bad_inputs import LAUGHS
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="alias bomb"):
            load_yaml(LAUGHS, "c.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, peak  # 9**9 strings expanded would be gigabytes


def test_yaml_merge_keys_and_repeated_aliases_still_load():
    from cnnlab.spec import load_yaml
    text = "base: &b {units: 3}\nx: {<<: *b, activation: relu}\ny: *b\n"
    assert load_yaml(text) == {"base": {"units": 3}, "x": {"units": 3, "activation": "relu"},
                               "y": {"units": 3}}
