"""Data-parallel training: 2 gloo processes on the CPU against one process, tiny data."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from cnnlab.cli import program
from cnnlab.errors import ConfigError
from cnnlab.parallel import without_nproc
from cnnlab.runs import read_json
from cnnlab.train.distributed import shard

SRC = Path(__file__).resolve().parents[1] / "src"
# SGD: its step is linear in the gradient, so the two runs' weights differ only by the
# rounding of the gradient sums (~1e-8 after a few steps); Adam divides by sqrt(v) and
# magnifies that rounding where gradients are near zero
TOLERANCE = 1e-6


def config(folder: Path, n=100, epochs=2, batch_size=7, **train) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = (rng.random((n, 8, 8)) * 60).astype(np.uint8)
    x[np.arange(n), y % 8, :] += 150
    np.savez(folder / "d.npz", x_train=x, y_train=y, x_test=x[:32], y_test=y[:32])
    cfg = {"model": {"input_shape": [8, 8, 1], "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2}}, "Flatten",
        {"Dense": {"units": 10, "activation": "softmax"}}]},
        "data": {"name": f"npz:{folder / 'd.npz'}"},
        "train": {"epochs": epochs, "batch_size": batch_size,
                  "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}, **train}}
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def env(tmp: Path) -> dict:
    (tmp / "tmp").mkdir(exist_ok=True)
    # the kernels' setting is inherited: where they run (make test), the processes take the
    # fast step, which data parallelism hooks at the optimizer step as it does autograd's
    return {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp / "tmp"),
            "OMP_NUM_THREADS": "1"}


def weights(run: Path) -> dict:
    return load_file(str(run / "weights" / "final.safetensors"))


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=TOLERANCE, err_msg=k)


def single(cfg: Path, out: Path, name: str, *extra) -> Path:
    code = program(["train", str(cfg), "--out", str(out), "--name", name, "--quiet", *extra],
                   out=io.StringIO())
    assert code == 0
    return out / name


def test_each_process_takes_a_contiguous_share_of_every_global_batch():
    index = torch.tensor([9, 3, 5, 1, 7, 2, 8])
    parts = [shard(index, r, 2) for r in range(2)]
    assert [p.tolist() for p in parts] == [[9, 3, 5, 1], [7, 2, 8]]
    assert shard(slice(10, 13), 1, 2).tolist() == [12]
    assert without_nproc(["train", "c.yaml", "--nproc", "2", "--nproc=3", "--quiet"]) == \
        ["train", "c.yaml", "--quiet"]


def test_two_gloo_processes_train_the_weights_one_process_trains_and_only_rank_0_writes(
        tmp_path):
    cfg = config(tmp_path)   # 100 samples, global batch 7: shares of 4 and 3, the last 1 and 1
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", str(cfg), "--out",
                           str(tmp_path / "ddp"), "--name", "run", "--quiet", "--nproc", "2"],
                          env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Run: ") == 1           # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["run"]
    # rank 1's scratch folder is gone (torchrun and torch leave folders of their own there)
    assert not list((tmp_path / "tmp").glob("cnnlab-rank*"))
    one = single(cfg, tmp_path / "one", "run")
    assert_close(weights(tmp_path / "ddp" / "run"), weights(one))
    h2, h1 = (read_json(r / "history.json") for r in (tmp_path / "ddp" / "run", one))
    for key in h1:   # the history is the global batch's: the same figures as one process
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5, err_msg=key)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_kill_9_of_one_worker_ends_the_job_and_resume_with_one_process_finishes_it(tmp_path):
    cfg = config(tmp_path, n=800, epochs=2, batch_size=20, checkpoint_every_steps=10)
    torchrun = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "cnnlab", "train", str(cfg), "--out", str(tmp_path / "ddp"), "--name", "run",
         "--quiet"], env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "ddp" / "run"
    deadline = time.time() + 120
    while time.time() < deadline and torchrun.poll() is None:
        m = read_json(run / "metrics.json", {}) or {}
        if (run / "checkpoint.safetensors").exists() and m.get("epochs_done", 0) >= 1:
            break
        time.sleep(0.05)
    assert torchrun.poll() is None, "the job finished before it could be killed"
    rank1 = [c for c in _children(torchrun.pid) if _rank_of(c) == 1]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGKILL)
    out, err = torchrun.communicate(timeout=120)
    assert torchrun.returncode != 0
    assert read_json(run / "metrics.json")["status"] == "running"   # not finished, resumable

    # resumed with another number of processes (one): the same global batch, the same steps
    resumed = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--resume", str(run),
                              "--quiet"], env=env(tmp_path), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    m = read_json(run / "metrics.json")
    assert m["status"] == "finished" and m["epochs_done"] == 2
    assert_close(weights(run), weights(single(cfg, tmp_path / "one", "run")))


def test_a_global_batch_too_small_to_split_is_refused_before_training(tmp_path):
    import cnnlab
    from cnnlab.train.distributed import DataParallel
    model = cnnlab.Sequential([cnnlab.Input((4,)), cnnlab.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    cb = DataParallel()
    cb.size = 2  # as the second of two processes would be; the check comes before any collective
    x, y = np.zeros((9, 4), "float32"), np.zeros(9, "int64")
    with pytest.raises(ConfigError, match="a batch of 1 samples .* cannot be split 2 ways"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])


def test_folder_data_is_split_across_two_processes_as_arrays_are(tmp_path):
    # the folder loader decodes each process's share of every global batch in its workers;
    # the weights equal one process's on the same folder, as for arrays
    from folder_support import make_folder
    root = make_folder(tmp_path / "pics", classes=("cat", "dog", "fox"), per_class=9)
    cfg = {"model": {"input_shape": [10, 10, 3], "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2}}, "Flatten",
        {"Dense": {"units": 3, "activation": "softmax"}}]},
        "data": {"name": "folder", "path": str(root), "cache": False, "workers": 1,
                 "validation_split": 0.2, "seed": 1},
        "train": {"epochs": 2, "batch_size": 6,  # 21 training pictures: shares 3+3, the last batch 2+1
                  "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}}}
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", str(path), "--out",
                           str(tmp_path / "ddp"), "--name", "run", "--quiet", "--nproc", "2",
                           "--no-report"],
                          env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    one = single(path, tmp_path / "one", "run", "--no-report")
    assert_close(weights(tmp_path / "ddp" / "run"), weights(one))
    h2, h1 = (read_json(r / "history.json") for r in (tmp_path / "ddp" / "run", one))
    for key in h1:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5, err_msg=key)


TORCHRUN_REPORT = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/venv/lib/python3.11/site-packages/torch/distributed/run.py", line 901, in main
    run(args)
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
cnnlab FAILED
------------------------------------------------------------
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 17412)  (SIGTERM)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : 2 (pid: 16030)
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_the_launcher_drops_torchruns_report_and_keeps_the_workers_lines_and_exit_code():
    from cnnlab.parallel import relay_stderr
    worker_bug = ('Traceback (most recent call last):\n  File "/src/cnnlab/train/loop.py", '
                  'line 3, in fit\nZeroDivisionError: division by zero\n')
    agent_log = ("W1206 04:21:11.310000 17362 .venv/lib/python3.11/site-packages/torch/"
                 "distributed/elastic/multiprocessing/api.py:1028] Sending process 17366 "
                 "closing signal SIGTERM\n")
    lines = ["cnnlab: error: Invalid value for `batch_size` with 2 processes.\n", worker_bug,
             agent_log, TORCHRUN_REPORT]
    out = io.StringIO()
    code = relay_stderr("".join(lines).splitlines(keepends=True), out)
    assert code == 2
    assert out.getvalue() == lines[0] + worker_bug  # a worker's own traceback is kept


def test_a_mistake_under_nproc_is_one_line_and_the_workers_exit_code(tmp_path):
    cfg = config(tmp_path, n=22, batch_size=7)   # the last global batch holds 1 sample
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "train", str(cfg), "--out",
                           str(tmp_path / "ddp"), "--name", "run", "--quiet", "--nproc", "2",
                           "--no-report"],
                          env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == ConfigError.exit_code, proc.stderr
    assert "cannot be split 2 ways" in proc.stderr
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
