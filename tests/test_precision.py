"""Mixed precision on the CPU (bf16 autocast), fp16 loss scaling's rules, device errors."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import yaml

import cnnlab
from cnnlab.cli import program
from cnnlab.config import RunConfig
from cnnlab.errors import ConfigError
from cnnlab.train.precision import Precision, policy_name


def model():
    cnnlab.utils.set_random_seed(0)
    m = cnnlab.Sequential([cnnlab.Input((8, 8, 1)),
                           cnnlab.layers.Conv2D(4, 3, activation="relu"),
                           cnnlab.layers.MaxPooling2D(2), cnnlab.layers.Flatten(),
                           cnnlab.layers.Dense(3, activation="softmax")])
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


def data(n=64):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 8, 8, 1)).astype("float32") * 0.3
    for k in range(3):
        x[y == k, 2 * k:2 * k + 2] += 0.7
    return x, y


class Dtypes(cnnlab.callbacks.Callback):
    """The dtypes the Dense layer computes in during training steps (a module call: with the
    compiled kernels the fast float32 step runs without modules, and fires no hook)."""

    def on_train_begin(self, logs=None):
        self.seen = set()
        modules = [m for m in self.trainer.net.modules() if isinstance(m, torch.nn.Linear)]
        self.handle = modules[0].register_forward_hook(
            lambda mod, inp, out: self.seen.add(out.dtype))

    def on_train_end(self, logs=None):
        self.handle.remove()


def fit(policy):
    x, y = data()
    m, probe = model(), Dtypes()
    with cnnlab.mixed_precision.policy_scope(policy):
        h = m.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[probe]).history
    return m, h, probe.seen


def test_bf16_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights():
    m16, h16, seen16 = fit("mixed_bfloat16")
    m32, h32, seen32 = fit("float32")
    assert seen16 == {torch.bfloat16} and seen32 <= {torch.float32}
    assert all(w.dtype == np.float32 for w in m16.get_weights())
    # the same training, to bfloat16's 8 bits of mantissa: close, and not identical
    assert h16["loss"] != h32["loss"]
    np.testing.assert_allclose(h16["loss"], h32["loss"], rtol=0.05)
    assert h16["loss"][-1] < h16["loss"][0]


def test_keras_policy_names_and_the_short_names_are_one_setting():
    assert [policy_name(p) for p in ("32", "bf16", "16-mixed", 32)] == \
        ["float32", "mixed_bfloat16", "mixed_float16", "float32"]
    cnnlab.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        assert cnnlab.mixed_precision.global_policy().compute_dtype == "bfloat16"
    finally:
        cnnlab.mixed_precision.set_global_policy("float32")
    with pytest.raises(ConfigError, match="Expected one of: 32, bf16, 16-mixed .* Received 'fp8'"):
        policy_name("fp8")
    cfg = RunConfig.from_dict({"train": {"precision": "bf16"}})
    assert cfg.train["precision"] == "mixed_bfloat16"


def test_fp16_loss_scaling_skips_a_step_with_inf_gradients_and_halves_the_scale():
    # the scaler's rules, on the CPU (16-mixed itself is refused off a GPU)
    p = Precision("float32")
    p.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    steps = []
    p.backward((w * 2).sum(), opt, lambda: steps.append(opt.step()))
    assert len(steps) == 1 and torch.allclose(w.grad, torch.full((3,), 2.0))  # unscaled
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))
    opt.zero_grad()
    p.backward((w * float("inf")).sum(), opt, lambda: steps.append(opt.step()))
    assert len(steps) == 1                               # skipped
    assert p.scaler.get_scale() == 512.0                 # halved
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))


def test_device_and_precision_mistakes_fail_before_a_run_directory_exists(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"name": "mnist-sample"}, "train": {"epochs": 1}}))
    out = tmp_path / "runs"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="16-mixed .* needs a CUDA GPU"):
            program(["train", str(cfg), "--precision", "16-mixed", "--out", str(out)],
                    out=io.StringIO())
    if not (torch.backends.mps.is_available()):
        with pytest.raises(ConfigError, match="Device 'mps' was asked for, but .*Expected "
                                              "--device cpu, cuda or auto"):
            program(["train", str(cfg), "--device", "mps", "--out", str(out)],
                    out=io.StringIO())
    assert not out.exists()


def test_cnnlab_train_precision_bf16_records_the_policy_in_the_run(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 32).astype(np.uint8)
    x = (rng.random((32, 8, 8)) * 255).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    spec = {"input_shape": [8, 8, 1], "layers": [
        {"Conv2D": {"filters": 2, "kernel_size": 3}}, "Flatten",
        {"Dense": {"units": 10, "activation": "softmax"}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        {"model": spec, "data": {"name": f"npz:{tmp_path / 'd.npz'}"}, "train": {"epochs": 1}}))
    assert program(["train", str(tmp_path / "c.yaml"), "--precision", "bf16", "--out",
                    str(tmp_path / "runs"), "--name", "bf", "--quiet"], out=io.StringIO()) == 0
    run_cfg = RunConfig.load(tmp_path / "runs" / "bf" / "config.yaml")
    assert run_cfg.train["precision"] == "mixed_bfloat16"
    # the global policy is the run's only while it trains
    assert cnnlab.mixed_precision.global_policy().name == "float32"
