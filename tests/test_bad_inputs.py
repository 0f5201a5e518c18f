"""Every bad input: a clear message, a documented exit code, no traceback, nothing lost.

Each case runs the real CLI (`cnnlab.cli.main`, in process) in a fresh folder
holding one finished run, and checks: the exit code, the message, no
traceback, and what is on disk afterwards: the existing run byte for byte
unchanged, and no new run directory (unless the case says otherwise).
`CASES` is also the table of docs/exit-codes.md.
"""
from __future__ import annotations

import errno
import os
import pickle
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cnnlab.config import RunConfig
from cnnlab.errors import ExitStatus
from cnnlab.images import render_digit_png
from cnnlab.runner import train_run
from test_resume_support import keep_threads, run_cli, tiny_npz, tree, write_config  # noqa: F401

MARKER = "pwned.txt"  # created only if something from a user's file were executed


class Payload:
    """A pickle that would create MARKER when unpickled."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def gif_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


@dataclass
class Case:
    name: str                     # the input tried, in words
    argv: list                    # cnnlab arguments; "{run}" is the finished run's path
    code: int
    message: str                  # a part of stderr that must be there
    make: Callable | None = None  # makes the bad input in the working folder
    left: str = "nothing written; existing runs unchanged"
    new_run: bool = False         # the command leaves a (resumable) new run directory
    tags: list = field(default_factory=list)


def cfg(name, **train):
    return lambda: write_config(name, "tiny.npz", **train)


def yaml_text(name, text):
    return lambda: Path(name).write_text(text)


def npz(name, **arrays):
    return lambda: tiny_npz(name, **arrays)


def data_cfg(data_file, make_data):
    def make():
        make_data()
        write_config("c.yaml", data_file)
    return make


def file_bytes(name, data):
    return lambda: Path(name).write_bytes(data() if callable(data) else data)


def replace_final(make_tensors):
    def make():
        path = Path("runs/done/weights/final.safetensors")
        make_tensors(path)
    return make


def edit_run_config(**train):
    import yaml
    path = Path("runs/done/config.yaml")
    d = yaml.safe_load(path.read_text())
    d["train"].update(train)
    path.write_text(yaml.safe_dump(d, sort_keys=False))


# 9 levels of 9 aliases each: 9**9 strings once expanded
LAUGHS = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8)))


def npz_claiming(name, shape):
    """An .npz whose x_train header claims `shape` but holds 64 bytes."""
    import io
    import zipfile
    tiny_npz("ok.npz")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile("ok.npz") as src, zipfile.ZipFile(name, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "x_train.npy":
                data = header.getvalue() + bytes(64)
            dst.writestr(info.filename, data)


def idx_claiming(folder, dims):
    def make():
        from cnnlab.data.catalog import IDX_STEMS
        os.mkdir(folder)
        for stem in IDX_STEMS:
            Path(folder, stem).write_bytes(b"\0\0\x08" + bytes([len(dims)]) +
                                           b"".join(struct.pack(">I", d) for d in dims)
                                           + bytes(16))
    return make


TRAIN = ["train", "c.yaml", "--out", "runs", "--quiet"]
PREDICT = ["predict", "done", "--out", "runs"]
RUN_CHANGED = "the run's weights file replaced by the bad one; nothing else changed"

CASES = [
    # -- config files --------------------------------------------------------------
    Case("invalid YAML", TRAIN, 2, "Invalid YAML in c.yaml at line 3, column 5: expected the "
         "node content, but found '-'.", yaml_text("c.yaml", "model:\n  layers: [\n    - Dense\n")),
    Case("YAML with a tab", TRAIN, 2, "Invalid YAML in c.yaml at line 2, column 1: found "
         "character '\\t' that cannot start any token.", yaml_text("c.yaml", "train:\n\tepochs: 3\n")),
    Case("YAML that is a list", TRAIN, 2, "Expected c.yaml to be a mapping with sections model, "
         "data, train. Received list.", yaml_text("c.yaml", "- 1\n- 2\n")),
    Case("YAML that runs code (!!python tag)", TRAIN, 2, "Invalid YAML in c.yaml at line 1, "
         "column 8: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'.",
         yaml_text("c.yaml", f"model: !!python/object/apply:os.system ['touch {MARKER}']\n")),
    Case("config file not found", ["train", "nope.yaml", "--out", "runs"], 2,
         "Config file not found: nope.yaml."),
    Case("config not UTF-8", TRAIN, 2, "Cannot read config file c.yaml: 'utf-8' codec can't decode",
         file_bytes("c.yaml", b"\xff\xfe\x00bad")),
    Case("unknown key", TRAIN, 2, "Unknown key `epochz` in `train`. Expected keys: loss, "
         "optimizer, metrics, batch_size, epochs,", cfg("c.yaml", epochz=3)),
    Case("wrong type", TRAIN, 2, "Invalid value for `train.epochs`. Expected a strictly positive "
         "integer. Received epochs='ten'.", cfg("c.yaml", epochs="ten")),
    Case("out of range", TRAIN, 2, "Invalid value for `train.batch_size`. Expected a strictly "
         "positive integer. Received batch_size=0.", cfg("c.yaml", batch_size=0)),
    Case("out of range (float)", TRAIN, 2, "Invalid value for `train.label_smoothing`. Expected a "
         "number in [0, 1). Received label_smoothing=1.5.", cfg("c.yaml", label_smoothing=1.5)),
    Case("unknown optimizer", TRAIN, 2, "Unknown optimizer 'adamm'. Expected one of: adadelta, "
         "adagrad, adam, adamax, adamw, nadam, rmsprop, sgd.", cfg("c.yaml", optimizer={"name": "adamm"})),
    Case("bad callback argument", TRAIN, 2, "train.callbacks[0] (EarlyStopping): Invalid value for "
         "argument `patience`. Expected an integer >= 0. Received patience=-1.",
         cfg("c.yaml", callbacks=[{"EarlyStopping": {"patience": -1}}])),
    Case("bad command-line value", TRAIN + ["--epochs", "0"], 2,
         "argument --epochs: expected a positive integer, received '0'", cfg("c.yaml")),
    # -- numbers outside their domain (checked before anything is created) ---------------
    Case("--threads far too large", TRAIN + ["--threads", "100000"], 2, "Invalid value for "
         "`train.threads`. Expected an integer in [1, 512]. Received threads=100000.",
         cfg("c.yaml")),
    Case("seed beyond NumPy's range", TRAIN + ["--seed", str(2**40)], 2, "Invalid value for "
         "`train.seed`. Expected an integer in [0, 4294967295]. Received seed=1099511627776.",
         cfg("c.yaml")),
    Case("optimizer beta_1 = 1", TRAIN, 2, "Invalid value for argument `beta_1` of optimizer "
         "'adam'. Expected a number in [0, 1). Received beta_1=1.0.",
         cfg("c.yaml", optimizer={"name": "adam", "beta_1": 1.0})),
    Case("optimizer epsilon = 0", TRAIN, 2, "Invalid value for argument `epsilon` of optimizer "
         "'rmsprop'. Expected a finite number > 0. Received epsilon=0.",
         cfg("c.yaml", optimizer={"name": "rmsprop", "epsilon": 0})),
    Case("negative momentum", TRAIN, 2, "Invalid value for argument `momentum` of optimizer "
         "'sgd'. Expected a finite number >= 0. Received momentum=-0.5.",
         cfg("c.yaml", optimizer={"name": "sgd", "momentum": -0.5})),
    Case("NaN learning rate", TRAIN, 2, "Invalid value for `train.optimizer.learning_rate`. "
         "Expected a finite number. Received nan.",
         cfg("c.yaml", optimizer={"name": "adam", "learning_rate": float("nan")})),
    Case("infinite number anywhere", TRAIN, 2, "Invalid value for "
         "`train.lr_schedule.one_cycle.max_learning_rate`. Expected a finite number. Received inf.",
         cfg("c.yaml", lr_schedule={"one_cycle": {"max_learning_rate": float("inf")}})),
    Case("checkpoint_every_steps not a number", TRAIN, 2, "Invalid value for "
         "`train.checkpoint_every_steps`. Expected an integer in [0, 2147483647]. Received "
         "checkpoint_every_steps='often'.", cfg("c.yaml", checkpoint_every_steps="often")),
    Case("shuffle not a boolean", TRAIN, 2, "Invalid value for `train.shuffle`. Expected true or "
         "false. Received shuffle='yes please'.", cfg("c.yaml", shuffle="yes please")),
    Case("a callback writing outside the run", TRAIN, 2, "train.callbacks[0] (CSVLogger): "
         "Invalid value for argument `filename`. Expected a file name inside the run directory "
         "(a relative path without '..'). Received filename='../../outside.csv'.",
         cfg("c.yaml", callbacks=[{"CSVLogger": {"filename": "../../outside.csv"}}])),
    # -- bounded reading ----------------------------------------------------------------
    Case("YAML with a duplicate key", TRAIN, 2, "Invalid YAML in c.yaml at line 3, column 3: "
         "duplicate key 'epochs' (first at line 2, again at line 3).",
         yaml_text("c.yaml", "train:\n  epochs: 2\n  epochs: 3\n")),
    Case("YAML alias bomb (billion laughs)", TRAIN, 2, "values once its aliases are expanded "
         "(expected a config, not an alias bomb).", yaml_text("c.yaml", LAUGHS)),
    Case("YAML nested too deeply", TRAIN, 2, "Invalid YAML in c.yaml at line 1, column 65: nested "
         "more than 64 levels deep.", yaml_text("c.yaml", "[" * 100 + "]" * 100)),
    Case("config is a FIFO", TRAIN, 2, "Cannot read config file c.yaml: it is not a regular file "
         "(a FIFO, socket or device).", lambda: os.mkfifo("c.yaml")),
    Case("config far too large", TRAIN, 2, "Config file c.yaml is 5,242,881 bytes. Expected at "
         "most 4,194,304 bytes", yaml_text("c.yaml", "#" * 5 * 2**20 + "\n")),
    # -- the loss against the model -------------------------------------------------------
    Case("loss on an output that is not a vector", TRAIN, 3, "The model's output has shape "
         "(None, 6, 6, 3), but mean_squared_error on a dataset's class labels needs one vector "
         "per image", cfg("c.yaml", loss="mse", layers=[{"Conv2D": {"filters": 3,
                                                                    "kernel_size": 3}}])),
    # -- model specs ------------------------------------------------------------------
    Case("spec that cannot build (kernel > input)", TRAIN, 3, "Layer 0 (Conv2D): Conv2D: "
         "kernel_size (9, 9) is larger than its input (None, 8, 8, 1) with padding='valid'.",
         cfg("c.yaml", layers=[{"Conv2D": {"filters": 4, "kernel_size": 9}}, "Flatten",
                               {"Dense": {"units": 3}}])),
    Case("unknown layer", TRAIN, 3, "Layer 0 (Conv3D): Unknown layer 'Conv3D'. Expected one of: "
         "Activation, Add, Average,", cfg("c.yaml", layers=[{"Conv3D": {"filters": 4}}])),
    Case("bad layer argument", TRAIN, 3, "Layer 1 (Dense): Invalid value for argument `units`. "
         "Expected a strictly positive integer. Received units=-3.",
         cfg("c.yaml", layers=["Flatten", {"Dense": {"units": -3}}])),
    # ~1 TiB: more than any machine here, GPU or host (a 101 GiB model fit an H200's 139 GiB)
    Case("model too large for memory", TRAIN, 3, "The model has 68,000,000,003 parameters: "
         "training it needs about 1013.3 GiB", cfg("c.yaml", layers=[
             "Flatten", {"Dense": {"units": 1_000_000_000}}, {"Dense": {"units": 3}}])),
    # -- data -------------------------------------------------------------------------
    Case("data file missing", TRAIN, 4, "nope.npz: file not found. Expected a .npz file with "
         "arrays x_train, y_train, x_test, y_test.", lambda: write_config("c.yaml", "nope.npz")),
    Case("data file corrupt (random bytes)", TRAIN, 4, "bad.npz: not a .npz file (it does not start with the zip signature)",
         data_cfg("bad.npz", file_bytes("bad.npz", b"\x13\x37" * 200))),
    Case("data file truncated", TRAIN, 4, "bad.npz: not a readable .npz file (BadZipFile",
         data_cfg("bad.npz", lambda: (tiny_npz("full.npz"), Path("bad.npz").write_bytes(
             Path("full.npz").read_bytes()[:3000])))),
    Case("data file holding a pickle", TRAIN, 4, "bad.npz: not a readable .npz file (ValueError: "
         "Object arrays cannot be loaded when allow_pickle=False)",
         data_cfg("bad.npz", lambda: np.savez("bad.npz", x_train=np.array([Payload()]),
                                              y_train=[0], x_test=[0], y_test=[0]))),
    Case("data array missing", TRAIN, 4, "bad.npz: missing arrays ['y_test']. Expected arrays "
         "x_train, y_train, x_test, y_test.", data_cfg("bad.npz", npz("bad.npz", y_test=None))),
    Case("wrong image shape", TRAIN, 4, "The data does not fit the model's input. Expected images "
         "of shape (8, 8, 1) (64 values). Received images of shape (10, 10) (100 values).",
         data_cfg("bad.npz", npz("bad.npz", side=10))),
    Case("wrong dtype", TRAIN, 4, "bad.npz: invalid x_train. Expected uint8 images of shape (N, H, "
         "W) or (N, H, W, C). Received dtype float32, shape (96, 8, 8).",
         data_cfg("bad.npz", npz("bad.npz", x_train=np.zeros((96, 8, 8), np.float32)))),
    Case("labels out of range (negative)", TRAIN, 4, "bad.npz: invalid y_train. Expected labels "
         "in [0, 255]. Received labels in [-1, -1].",
         data_cfg("bad.npz", npz("bad.npz", y_train=np.full(96, -1, np.int64)))),
    Case("labels beyond the output units", TRAIN, 4, "Dataset 'npz:bad.npz' has 8 classes (labels "
         "0 to 7), but the model's last layer has 3 units. Expected units >= 8.",
         data_cfg("bad.npz", npz("bad.npz", y_train=np.full(96, 7, np.uint8)))),
    Case("more class names than output units", TRAIN, 4, "Dataset 'npz:bad.npz' has 5 classes "
         "(labels 0 to 4), but the model's last layer has 3 units.",
         data_cfg("bad.npz", npz("bad.npz", class_names=np.array(list("abcde"))))),
    Case("fewer labels than images", TRAIN, 4, "bad.npz: x_train and y_train differ in length. "
         "Expected one label per image. Received 96 images and 90 labels.",
         data_cfg("bad.npz", npz("bad.npz", y_train=np.zeros(90, np.uint8)))),
    Case("no training images", TRAIN, 4, "Dataset 'npz:bad.npz' has no training images. Expected "
         "at least one.", data_cfg("bad.npz", npz("bad.npz", n_train=0))),
    Case("npz header claiming a huge array", TRAIN, 4, "bad.npz: array x_train claims shape "
         "(1000000, 1000000) of uint8 (1,000,000,000,000 bytes), but its entry holds 64 bytes.",
         data_cfg("bad.npz", lambda: npz_claiming("bad.npz", (10**6, 10**6)))),
    Case("IDX header claiming more than the file", ["train", "--data", "idx:idx", "--out",
                                                    "runs", "--quiet"], 4,
         "train-images-idx3-ubyte: truncated IDX file. Expected 100000000000 bytes of data "
         "(100000, 1000, 1000). Received 16.", idx_claiming("idx", (100000, 1000, 1000))),
    # -- run directories ----------------------------------------------------------------
    Case("a run name that exists", TRAIN + ["--name", "done"], 5, "A run named 'done' already "
         "exists in runs. Choose another --name, or resume it with --resume runs/done.",
         cfg("c.yaml")),
    Case("an invalid run name", TRAIN + ["--name", "../x"], 2, "Invalid run name '../x'. Expected "
         "letters, digits, '.', '_' or '-'", cfg("c.yaml")),
    Case("--out is a file", ["train", "c.yaml", "--out", "c.yaml"], 7, "Could not create the runs "
         "folder c.yaml: it is a file", cfg("c.yaml")),
    Case("resume a finished run", ["train", "--resume", "done", "--out", "runs"], 5,
         "Run runs/done already finished (2 epochs). Pass --epochs N with N > 2"),
    Case("resume a foreign directory", ["train", "--resume", "elsewhere", "--out", "runs"], 5,
         "elsewhere is not a cnnlab run: it has no config.yaml.", lambda: os.mkdir("elsewhere")),
    Case("resume a foreign checkpoint", ["train", "--resume", "done", "--out", "runs",
                                         "--epochs", "3"], 5,
         "runs/done/checkpoint.safetensors is not a cnnlab checkpoint. Expected format "
         "'cnnlab-checkpoint-1'. Received a file without cnnlab metadata.",
         lambda: save_file({"w": torch.zeros(1)}, "runs/done/checkpoint.safetensors"),
         left="the run's checkpoint replaced by the foreign one; nothing else changed"),
    Case("resume with another config", ["train", "--resume", "done", "--out", "runs", "--epochs",
                                        "3", "--batch-size", "8"], 5,
         "Cannot resume runs/done with a different config. Differences:\n  train.batch_size: run "
         "has 16, now 8\nOnly --epochs, --threads, --checkpoint-every, --data-dir and "
         "--no-fallback may change"),
    Case("resume after config.yaml was edited", ["train", "--resume", "done", "--out", "runs",
                                                 "--epochs", "3"], 5,
         "Cannot resume from runs/done/checkpoint.safetensors: it does not match the run.\n  "
         "train.batch_size: checkpoint has 16, config.yaml 8",
         lambda: edit_run_config(batch_size=8), left="the run (with the edited config.yaml), "
         "untouched"),
    Case("resume after the optimizer was edited", ["train", "--resume", "done", "--out", "runs",
                                                   "--epochs", "3"], 5,
         "train.optimizer: checkpoint has {'name': 'adam', 'learning_rate': 0.001}, config.yaml "
         "{'name': 'sgd', 'learning_rate': 0.001}",
         lambda: edit_run_config(optimizer={"name": "sgd", "learning_rate": 0.001}),
         left="the run (with the edited config.yaml), untouched"),
    Case("run not found", ["predict", "ghost", "x.png", "--out", "runs"], 5, "No run found at "
         "'ghost'"),
    # -- weights ----------------------------------------------------------------------------
    Case("weights of another spec", PREDICT + ["seven.png"], 5, "The weights in "
         "runs/done/weights/final.safetensors do not match the model spec: layers.0.bias: "
         "expected shape (4,), received (8,); layers.0.weight: expected shape (4, 1, 3, 3), "
         "received (8, 1, 3, 3); layers.2.weight: expected shape (3, 144), received (3, 288).",
         replace_final(lambda p: save_file({"layers.0.weight": torch.zeros(8, 1, 3, 3),
                                            "layers.0.bias": torch.zeros(8),
                                            "layers.2.weight": torch.zeros(3, 288),
                                            "layers.2.bias": torch.zeros(3)}, str(p))),
         left=RUN_CHANGED),
    Case("weights of another dtype", PREDICT + ["seven.png"], 5, "layers.0.weight: expected "
         "dtype float32, received float64",
         replace_final(lambda p: save_file({k: v.double() if k == "layers.0.weight" else v for k, v in
                                            __import__("safetensors.torch").torch.load_file(str(p)).items()},
                                           str(p))), left=RUN_CHANGED),
    Case("weights file corrupt", PREDICT + ["seven.png"], 5, "Cannot read weights "
         "runs/done/weights/final.safetensors: not a valid safetensors file",
         replace_final(lambda p: p.write_bytes(os.urandom(1000))), left=RUN_CHANGED),
    Case("weights file is a pickle (torch.save)", PREDICT + ["seven.png"], 5, "Cannot read "
         "weights runs/done/weights/final.safetensors: not a valid safetensors file",
         replace_final(lambda p: p.write_bytes(pickle.dumps(Payload()))), left=RUN_CHANGED),
    Case("weights file missing", PREDICT + ["seven.png"], 5, "Run runs/done has no final weights "
         "(runs/done/weights/final.safetensors is missing)",
         replace_final(lambda p: p.unlink()), left="the run without its weights; nothing else changed"),
    # -- images (cnnlab predict) -----------------------------------------------------------
    Case("image missing", PREDICT + ["nope.png"], 4, "Cannot read image 'nope.png': no such file."),
    Case("image empty", PREDICT + ["e.png"], 4, "Image 'e.png' is empty (0 bytes).",
         file_bytes("e.png", b"")),
    Case("image corrupt", PREDICT + ["c.png"], 4, "Cannot read image 'c.png': unrecognised format",
         file_bytes("c.png", b"\x13\x37" * 64)),
    Case("image truncated", PREDICT + ["t.png"], 4, "Image 't.png' is truncated or corrupt: image file is truncated.",
         file_bytes("t.png", lambda: render_digit_png(7)[:300])),
    Case("image is a decompression bomb", PREDICT + ["bomb.png"], 4, "Image 'bomb.png' is 100000x100000 = "
         "10,000,000,000 pixels, above the limit of 40,000,000 (decompression bomb protection).", file_bytes("bomb.png", png_claiming(100_000, 100_000))),
    Case("image claiming more pixels than its bytes hold", PREDICT + ["big.png"], 4, "Image "
         "'big.png' is truncated or corrupt: its header says 6000x6000 pixels, more than its",
         file_bytes("big.png", png_claiming(6000, 6000))),
    Case("image is a FIFO", PREDICT + ["f.png"], 4, "Cannot read image 'f.png': it is not a "
         "regular file (a FIFO, socket or device).", lambda: os.mkfifo("f.png")),
    Case("image of an unsupported format", PREDICT + ["g.gif"], 4, "Cannot read image 'g.gif': "
         "unsupported format GIF. Expected PNG or JPEG.", file_bytes("g.gif", gif_bytes)),
    Case("image is a directory", PREDICT + ["adir"], 4, "Cannot read image 'adir': it is a "
         "directory.", lambda: os.mkdir("adir")),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished run (2 epochs), copied into each case's folder."""
    n = torch.get_num_threads()
    root = tmp_path_factory.mktemp("base")
    tiny_npz(root / "tiny.npz")
    write_config(root / "base.yaml", root / "tiny.npz", epochs=2)
    train_run(RunConfig.load(root / "base.yaml"), out=root / "runs", name="done", quiet=True)
    (root / "seven.png").write_bytes(render_digit_png(7))
    torch.set_num_threads(n)
    return root


def prepare(base: Path, work: Path):
    import shutil
    shutil.copytree(base, work, dirs_exist_ok=True)
    # the run's config points at the data by absolute path: rewrite it for this folder
    cfg = work / "runs/done/config.yaml"
    cfg.write_text(cfg.read_text().replace(str(base), str(work)))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, finished_run, tmp_path, monkeypatch, capsys, keep_threads):  # noqa: F811
    prepare(finished_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    if case.make:
        case.make()
    before = tree("runs")
    code, out, err = run_cli(capsys, *case.argv)
    assert case.message in err, err
    assert code == case.code, err
    assert err.startswith(("cnnlab: error: ", "usage: ")) and "Traceback" not in err
    assert tree("runs") == before   # existing runs untouched, no new run directory
    assert not Path(MARKER).exists()  # nothing from a user's file was executed


# -- a disk that fills up ------------------------------------------------------------------

def full_disk_on(monkeypatch, name: str, after: int = 0):
    """os.write raises ENOSPC for the temp file of `name`, from its (after+1)-th write on."""
    real = os.write
    count = {"n": 0}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if os.path.basename(target).startswith(f".{name}."):
            count["n"] += 1
            if count["n"] > after:
                real(fd, bytes(memoryview(data)[:len(data) // 3]))  # part of it, then full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)
    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch, capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz")
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "ref", "--out", "runs", "--quiet")
    assert code == 0, err
    full_disk_on(monkeypatch, "checkpoint.safetensors", after=2)  # initial, epoch 1 ok; epoch 2 fails
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    ckpt = Path("runs/x/checkpoint.safetensors")
    assert code == ExitStatus.DISK == 7
    assert err == (f"cnnlab: error: Could not write {ckpt}: the disk is full. The previous "
                   "version (if any) is unchanged. Training stopped; free some space, then resume "
                   "with: cnnlab train --resume runs/x\n")
    from cnnlab.train.checkpoint import read_checkpoint
    _, meta = read_checkpoint(ckpt)
    assert meta["position"] == {"epoch": 1, "step": 0, "seen": 0, "global_step": 6}
    assert not list(Path("runs/x").rglob(".*.tmp"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--quiet")
    assert code == 0, err
    a, b = (Path(f"runs/{r}/weights/final.safetensors").read_bytes() for r in ("ref", "x"))
    assert a == b


def test_a_full_disk_when_creating_the_run_leaves_nothing(tmp_path, monkeypatch, capsys,
                                                         keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz")
    full_disk_on(monkeypatch, "config.yaml")
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 7 and "Could not write runs/x/config.yaml: the disk is full." in err
    assert "Traceback" not in err
    assert list(Path("runs").iterdir()) == []


def test_a_full_disk_when_saving_final_weights(tmp_path, monkeypatch, capsys, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    tiny_npz("tiny.npz")
    write_config("c.yaml", "tiny.npz", epochs=1)
    full_disk_on(monkeypatch, "final.safetensors")
    code, _, err = run_cli(capsys, "train", "c.yaml", "--name", "x", "--out", "runs", "--quiet")
    assert code == 7 and "Could not write runs/x/weights/final.safetensors: the disk is full." in err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--resume", "x", "--out", "runs", "--quiet")
    assert code == 0, err  # the last checkpoint is complete: the resume only writes the weights
    assert Path("runs/x/weights/final.safetensors").is_file()


# -- safe loading: a model directory is data, never code ------------------------------------

UNSAFE = {r"import (c?pickle|dill|marshal|shelve)|\bpickle\.": "pickle", r"torch\.load\(": "torch.load",
          r"yaml\.(unsafe_)?load\(": "yaml.load", r"allow_pickle\s*=\s*True": "allow_pickle=True",
          r"(?<![.\w])(eval|exec)\(": "eval/exec", r"(Unsafe|Full)Loader": "an unsafe YAML loader"}


def test_nothing_in_cnnlab_can_unpickle_or_execute_a_users_file():
    import re
    import cnnlab
    found = []
    for path in sorted(Path(cnnlab.__file__).parent.rglob("*.py")):
        for pattern, what in UNSAFE.items():
            for line in path.read_text(encoding="utf-8").splitlines():
                code = line.split("#", 1)[0]
                if re.search(pattern, code) and "weights_only=True" not in code:
                    found.append(f"{path.name}: {what}: {line.strip()}")
    assert not found, found
