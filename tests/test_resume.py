"""Resume in process: signals, refusals (finished, foreign, changed config, changed data),
and the checkpoint's contents. The SIGKILL tests are in test_resume_kill.py."""
from __future__ import annotations

import json
import os
import signal

import pytest
from safetensors.torch import save_file

from cnnlab.config import RunConfig
from cnnlab.errors import ExitStatus
from cnnlab.io import _UMASK
from cnnlab.runner import Interrupted, train_run
from cnnlab.train import loop
from cnnlab.train.checkpoint import FORMAT, read_checkpoint_meta
from test_resume_support import (keep_threads, no_temp_files, run_cli, same_tensors, tiny_npz,  # noqa: F401
                                 tree, weights, write_config)

CALLBACKS = [{"EarlyStopping": {"monitor": "val_loss", "patience": 5, "restore_best_weights": True}},
             {"ReduceLROnPlateau": {"monitor": "loss", "factor": 0.5, "patience": 1, "min_delta": 0.5}},
             {"CSVLogger": {"filename": "log.csv"}},
             {"ModelCheckpoint": {"filepath": "best-{epoch}.safetensors", "save_best_only": True}},
             "TerminateOnNaN"]
DROPOUT_LAYERS = [{"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
                  {"Flatten": {}}, {"Dropout": {"rate": 0.3}},
                  {"Dense": {"units": 3, "activation": "softmax"}}]


@pytest.fixture
def setup(tmp_path, keep_threads):  # noqa: F811
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = write_config(tmp_path / "cfg.yaml", data, layers=DROPOUT_LAYERS, callbacks=CALLBACKS)
    return tmp_path, RunConfig.load(cfg), cfg


def signal_at(monkeypatch, global_step: int, sig=signal.SIGINT):
    """Send `sig` to this process right after training step `global_step` (1-based)."""
    original = loop.Trainer.train_step

    def step(self, *args):
        out = original(self, *args)
        if self.position.global_step + 1 == global_step:
            os.kill(os.getpid(), sig)
        return out
    monkeypatch.setattr(loop.Trainer, "train_step", step)


def comparable_metrics(run_dir) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    for volatile in ("epoch_seconds", "train_seconds", "name"):
        m.pop(volatile, None)
    return m


def assert_same_run(a, b):
    """Two run directories hold the same results: weights bit for bit, history, logs."""
    assert same_tensors(weights(a / "weights/final.safetensors"), weights(b / "weights/final.safetensors"))
    assert same_tensors(weights(a / "weights/best.safetensors"), weights(b / "weights/best.safetensors"))
    for name in ("history.json", "history.csv", "log.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    assert comparable_metrics(a) == comparable_metrics(b)
    assert sorted(p.name for p in a.glob("best-*")) == sorted(p.name for p in b.glob("best-*"))
    assert no_temp_files(b)


@pytest.mark.parametrize("sig,step,code", [(signal.SIGINT, 4, ExitStatus.INTERRUPTED),
                                           (signal.SIGTERM, 6, ExitStatus.TERMINATED),
                                           (signal.SIGINT, 11, ExitStatus.INTERRUPTED)])
def test_signal_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
        setup, monkeypatch, sig, step, code):
    tmp, cfg, _ = setup
    # the handler found before the run (SIG_IGN in a background job, else Python's default)
    before = signal.getsignal(signal.SIGINT)
    ref = train_run(cfg, out=tmp / "runs", name="ref", quiet=True)
    signal_at(monkeypatch, step, sig)
    stopped = train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    assert stopped.exit_code == code
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    epoch, in_epoch = divmod(step, 6)
    at = f"epoch {epoch + 1}, step {in_epoch}" if in_epoch else f"the end of epoch {epoch}"
    assert stopped.message == (f"Interrupted by {name}: checkpoint saved at {at}. "
                               f"Resume with: cnnlab train --resume {stopped.run_dir}")
    assert stopped.metrics["status"] == "interrupted"
    assert read_checkpoint_meta(stopped.run_dir / "checkpoint.safetensors")["position"]["global_step"] == step
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
    monkeypatch.undo()
    resumed = train_run(None, out=tmp / "runs", resume="cut", quiet=True, handle_signals=True)
    assert resumed.exit_code == ExitStatus.OK and resumed.metrics["status"] == "finished"
    assert_same_run(ref.run_dir, resumed.run_dir)


def test_cli_resume_prints_how_to_resume_and_exits_130(setup, monkeypatch, capsys):
    tmp, _, cfg = setup
    signal_at(monkeypatch, 3)
    code, out, err = run_cli(capsys, "train", cfg, "--name", "x", "--out", tmp / "runs", "--quiet")
    assert code == 130
    assert f"Resume with: cnnlab train --resume {tmp / 'runs' / 'x'}" in err
    assert "Traceback" not in err
    monkeypatch.undo()
    code, out, err = run_cli(capsys, "train", "--resume", "x", "--out", tmp / "runs")
    assert code == 0, err
    assert out.startswith(f"Resuming {tmp / 'runs' / 'x'} at epoch 1, step 3\n")


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(setup, monkeypatch):
    tmp, cfg, _ = setup
    before = signal.getsignal(signal.SIGINT)
    original = loop.Trainer.train_step

    def step(self, *args):
        out = original(self, *args)
        if self.position.global_step + 1 == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return out
    monkeypatch.setattr(loop.Trainer, "train_step", step)
    with pytest.raises(Interrupted) as exc:
        train_run(cfg, out=tmp / "runs", name="x", quiet=True, handle_signals=True)
    assert exc.value.exit_code == ExitStatus.INTERRUPTED
    assert str(exc.value).startswith("Interrupted again by SIGINT: stopped without saving.")
    assert read_checkpoint_meta(tmp / "runs/x/checkpoint.safetensors")["position"]["global_step"] == 0
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_just_before_the_loop_starts_still_stops_it(setup, monkeypatch):
    tmp, cfg, _ = setup
    fit = loop.Trainer.fit

    def signalled_fit(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # lands after the handlers, before the first step
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(loop.Trainer, "fit", signalled_fit)
    r = train_run(cfg, out=tmp / "runs", name="x", quiet=True, handle_signals=True)
    assert r.exit_code == ExitStatus.TERMINATED
    assert "checkpoint saved at epoch 1, step 0." in r.message
    assert read_checkpoint_meta(r.run_dir / "checkpoint.safetensors")["position"]["global_step"] == 0


def test_resume_after_a_kill_between_metrics_and_checkpoint(setup, monkeypatch):
    """metrics.json and history.json ahead of the checkpoint: the checkpoint wins."""
    tmp, cfg, _ = setup
    ref = train_run(cfg, out=tmp / "runs", name="ref", quiet=True)
    import cnnlab.train.checkpoint as ckpt

    class Killed(BaseException):
        pass

    def die(path, tensors, metadata=None):
        if json.loads(metadata["cnnlab"])["position"]["global_step"] == 12:
            raise Killed  # as SIGKILL would: nothing after this point runs
        return original(path, tensors, metadata)
    original = ckpt.save_tensors
    monkeypatch.setattr(ckpt, "save_tensors", die)
    with pytest.raises(Killed):
        train_run(cfg, out=tmp / "runs", name="cut", quiet=True)
    run = tmp / "runs" / "cut"
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 2
    assert read_checkpoint_meta(run / "checkpoint.safetensors")["position"]["epoch"] == 1
    monkeypatch.undo()
    resumed = train_run(None, out=tmp / "runs", resume="cut", quiet=True)
    assert_same_run(ref.run_dir, resumed.run_dir)


# -- refusals: each changes nothing on disk ---------------------------------------------

def refused(capsys, tmp, *argv) -> tuple[int, str]:
    before = tree(tmp / "runs")
    code, out, err = run_cli(capsys, "train", *argv, "--out", tmp / "runs")
    assert tree(tmp / "runs") == before
    assert "Traceback" not in err
    return code, err


def test_resume_of_a_finished_run_is_refused(setup, capsys):
    tmp, cfg, _ = setup
    train_run(cfg, out=tmp / "runs", name="done", quiet=True)
    code, err = refused(capsys, tmp, "--resume", "done")
    assert code == ExitStatus.RUN
    assert "already finished (3 epochs). Pass --epochs N with N > 3" in err


def test_resume_with_more_epochs_continues_and_records_them(setup, capsys):
    tmp, cfg, path = setup
    train_run(cfg, out=tmp / "runs", name="done", quiet=True)
    code, out, err = run_cli(capsys, "train", "--resume", "done", "--epochs", "4", "--out",
                             tmp / "runs", "--quiet")
    assert code == 0, err
    run = tmp / "runs" / "done"
    assert RunConfig.load(run / "config.yaml").train["epochs"] == 4
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 4
    assert len((run / "log.csv").read_text().splitlines()) == 5  # header + 4 epochs


def test_resume_with_a_different_config_lists_the_differences(setup, capsys, monkeypatch):
    tmp, cfg, path = setup
    signal_at(monkeypatch, 2)
    train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    code, err = refused(capsys, tmp, "--resume", "cut", "--lr", "0.1", "--batch-size", "8")
    assert code == ExitStatus.RUN
    assert "Cannot resume" in err and "with a different config. Differences:" in err
    assert "  train.batch_size: run has 16, now 8" in err
    assert ("  train.optimizer: run has {'name': 'adam', 'learning_rate': 0.001}, now "
            "{'name': 'adam', 'learning_rate': 0.1}") in err
    assert "Only --epochs, --threads, --checkpoint-every, --data-dir and --no-fallback may change" in err


def test_resume_with_fewer_epochs_than_done_is_refused(setup, capsys, monkeypatch):
    tmp, cfg, _ = setup
    signal_at(monkeypatch, 8)
    train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    code, err = refused(capsys, tmp, "--resume", "cut", "--epochs", "1")
    assert code == ExitStatus.RUN and "already started epoch 2. Expected --epochs >= 2." in err


def test_resume_with_other_data_is_refused(setup, capsys, monkeypatch):
    tmp, cfg, _ = setup
    signal_at(monkeypatch, 2)
    train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    tiny_npz(tmp / "tiny.npz", seed=1)  # the same path, other pixels
    code, err = refused(capsys, tmp, "--resume", "cut")
    assert code == ExitStatus.RUN and "its data had SHA-256" in err


def test_resume_and_name_together_are_a_usage_error(setup, capsys):
    tmp, _, _ = setup
    code, err = refused(capsys, tmp, "--resume", "x", "--name", "y")
    assert code == ExitStatus.USAGE and "--name cannot be used with --resume" in err


def test_resume_of_a_run_killed_before_its_first_checkpoint(setup, capsys, monkeypatch):
    tmp, cfg, _ = setup
    import cnnlab.train.checkpoint as ckpt

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed
    monkeypatch.setattr(ckpt, "save_tensors", die)
    with pytest.raises(Killed):
        train_run(cfg, out=tmp / "runs", name="early", quiet=True)
    monkeypatch.undo()
    code, err = refused(capsys, tmp, "--resume", "early")
    assert code == ExitStatus.RUN
    assert (f"Run {tmp / 'runs' / 'early'} has no checkpoint to resume from (it stopped before "
            "its first checkpoint was written). Start a new run instead") in err


@pytest.mark.parametrize("make,message", [
    (lambda run: None, "is not a cnnlab run: it has no config.yaml"),
    (lambda run: (run / "config.yaml").write_text("foo: [1\n"),
     "is not a cnnlab run: its config.yaml does not load (Invalid YAML"),
    (lambda run: (run / "config.yaml").write_text("hello: world\n"),
     "is not a cnnlab run: its config.yaml does not load (Unknown key `hello`"),
])
def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys, make, message):
    run = tmp_path / "runs" / "foreign"
    run.mkdir(parents=True)
    make(run)
    code, err = refused(capsys, tmp_path, "--resume", "foreign")
    assert code == ExitStatus.RUN and message in err


def test_resume_of_no_run_at_all(tmp_path, capsys):
    code, err = refused(capsys, tmp_path, "--resume", "nothing")
    assert code == ExitStatus.RUN and "No run found at 'nothing'" in err


@pytest.mark.parametrize("write,message", [
    (lambda p: p.write_bytes(b"\x00" * 7), "Cannot read checkpoint"),
    (lambda p: p.write_bytes(os.urandom(4096)), "Cannot read checkpoint"),
    (lambda p: p.mkdir(), "Cannot read checkpoint"),
    (lambda p: save_file({"w": __import__("torch").zeros(2)}, str(p)),
     "is not a cnnlab checkpoint. Expected format 'cnnlab-checkpoint-1'. Received a file "
     "without cnnlab metadata."),
    (lambda p: save_file({"w": __import__("torch").zeros(2)}, str(p), {"format": "other-9"}),
     "is not a cnnlab checkpoint. Expected format 'cnnlab-checkpoint-1'. Received format 'other-9'."),
    (lambda p: save_file({"w": __import__("torch").zeros(2)}, str(p),
                         {"format": FORMAT, "cnnlab": "{not json"}),
     "is a damaged cnnlab checkpoint: its metadata cannot be read."),
    (lambda p: save_file({"w": __import__("torch").zeros(2)}, str(p),
                         {"format": FORMAT, "cnnlab": json.dumps({"format": FORMAT})}),
     "checkpoint.safetensors do not match the model spec: missing layers.0.bias"),
    ("drop-optimizer", "is a damaged cnnlab checkpoint (KeyError: 'optimizer')"),
])
def test_resume_from_a_foreign_or_damaged_checkpoint(setup, capsys, monkeypatch, write, message):
    tmp, cfg, _ = setup
    signal_at(monkeypatch, 2)
    train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    ckpt = tmp / "runs" / "cut" / "checkpoint.safetensors"
    if write == "drop-optimizer":  # ours, with a piece of its metadata missing
        meta = read_checkpoint_meta(ckpt)
        del meta["optimizer"]
        save_file(weights(ckpt), str(ckpt), {"format": FORMAT, "cnnlab": json.dumps(meta)})
    else:
        ckpt.unlink()
        write(ckpt)
    code, err = refused(capsys, tmp, "--resume", "cut")
    assert code == ExitStatus.RUN and message in err, err


def test_checkpoint_holds_everything_a_resume_needs(setup, monkeypatch):
    tmp, cfg, _ = setup
    signal_at(monkeypatch, 8)
    r = train_run(cfg, out=tmp / "runs", name="cut", quiet=True, handle_signals=True)
    meta = read_checkpoint_meta(r.run_dir / "checkpoint.safetensors")
    tensors = weights(r.run_dir / "checkpoint.safetensors")
    assert meta["position"] == {"epoch": 1, "step": 2, "seen": 32, "global_step": 8}
    assert {"rng/torch", "rng/numpy_keys", "sums/loss", "sums/correct"} <= set(tensors)
    assert any(k.startswith("optim/") for k in tensors)
    assert set(meta["rng"]) == {"numpy", "python"}
    assert len(meta["history"]["loss"]) == 1
    assert set(meta["callbacks"]) == {"EarlyStopping#0", "ReduceLROnPlateau#0", "CSVLogger#0",
                                      "ModelCheckpoint#0", "RunWriter#0"}
    assert meta["extra"]["data_sha256"] == r.metrics["data"]["sha256"]
    for name in ("checkpoint.safetensors", "metrics.json", "weights/best.safetensors"):
        assert os.stat(r.run_dir / name).st_mode & 0o777 == 0o666 & ~_UMASK  # not mkstemp's 0o600


TWO_CONV_LAYERS = [{"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
                   {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
                   {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]


def test_resume_of_a_conv_with_several_input_channels_matches_an_uninterrupted_run(
        tmp_path, keep_threads, monkeypatch):  # noqa: F811
    """The second Conv2D's weight (8 input channels) is channels-last in memory, and torch's
    fused Adam pairs weights and moments element by element in memory order: moments
    restored in the checkpoint's plain layout updated the wrong weights after a resume
    (the first session's resume tests had one input channel, where the layouts coincide)."""
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = RunConfig.load(write_config(tmp_path / "cfg.yaml", data, layers=TWO_CONV_LAYERS))
    ref = train_run(cfg, out=tmp_path / "runs", name="ref", quiet=True)
    signal_at(monkeypatch, 4)
    stopped = train_run(cfg, out=tmp_path / "runs", name="cut", quiet=True, handle_signals=True)
    assert stopped.exit_code == ExitStatus.INTERRUPTED
    monkeypatch.undo()
    resumed = train_run(None, out=tmp_path / "runs", resume="cut", quiet=True, handle_signals=True)
    assert resumed.exit_code == ExitStatus.OK
    assert same_tensors(weights(ref.run_dir / "weights/final.safetensors"),
                        weights(resumed.run_dir / "weights/final.safetensors"))
