"""Training on a CUDA GPU (skipped where torch sees none, as in CI).

These run on machines with a GPU (`benchmarks/gpu_check.py` has the timings). The
first GPU run of cnnlab found the epoch sums kept on the CPU while the steps'
results were on the GPU: `fit` crashed at its first step.
"""
import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def small_model(device):
    model = cnnlab.Sequential([
        cnnlab.layers.Conv2D(8, (3, 3), activation="relu", input_shape=(12, 12, 1)),
        cnnlab.layers.MaxPooling2D((2, 2)),
        cnnlab.layers.Flatten(),
        cnnlab.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
                  device=device)
    return model


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 12, 12, 1), dtype=np.float32) * 0.3
    for k in range(3):  # a bright band per class: learnable in a few steps
        x[y == k, 4 * k:4 * k + 4, :, 0] += 0.7
    return x, np.eye(3, dtype=np.float32)[y]


def test_fit_evaluate_and_predict_on_the_gpu():
    x, y = data()
    model = small_model("cuda")
    history = model.fit(x, y, batch_size=16, epochs=10, validation_data=(x, y), verbose=0, seed=0)
    assert model.device.type == "cuda"
    assert next(model.net.parameters()).device.type == "cuda"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history.history[key]) == 10 and np.isfinite(history.history[key]).all()
    assert history.history["val_accuracy"][-1] > 0.9  # 1.0 on CPU for seeds 0-3
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc == pytest.approx(history.history["val_accuracy"][-1])
    probs = model.predict(x, verbose=0)
    assert isinstance(probs, np.ndarray) and probs.shape == (96, 3)


def test_gpu_and_cpu_training_agree():
    x, y = data()
    runs = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = small_model(device)
        h = model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0, shuffle=False)
        runs[device] = h.history["loss"]
    # same initial weights and batches; kernels differ only in float rounding
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], rtol=2e-3)


def run_cli(*argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(a) for a in argv])
    return exit_.value.code


def test_cli_trains_on_the_gpu_and_resumes(tmp_path, capsys):
    """One epoch on the GPU, then a resume (weights and optimizer state loaded onto it)."""
    assert run_cli("train", "--data", "mnist-sample", "--epochs", 1, "--device", "cuda",
                   "--out", tmp_path, "--name", "gpu", "--quiet") == 0
    assert run_cli("train", "--resume", "gpu", "--epochs", 2, "--out", tmp_path, "--quiet") == 0
    out = capsys.readouterr().out
    assert out.count("val_accuracy") == 2


def test_checkpoint_carries_the_gpus_random_state(tmp_path):
    """Dropout on a GPU draws from the GPU's generator: a resumed run must continue its
    sequence, or it trains on other dropout masks than an uninterrupted one. Before the
    checkpoint kept that state, the kill-and-resume tests failed on a GPU machine."""
    from cnnlab.train.checkpoint import restore_checkpoint, save_checkpoint

    x, y = data()
    model = small_model("cuda")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=0)
    trainer = model._trainer
    save_checkpoint(tmp_path / "ckpt.safetensors", trainer)
    expected = torch.rand(8, device="cuda")
    torch.cuda.manual_seed(12345)  # anything else
    restore_checkpoint(tmp_path / "ckpt.safetensors", trainer)
    assert torch.equal(torch.rand(8, device="cuda"), expected)


@pytest.mark.parametrize("policy, dtype", [("mixed_bfloat16", torch.bfloat16),
                                           ("mixed_float16", torch.float16)])
def test_mixed_precision_on_the_gpu_trains_close_to_float32(policy, dtype):
    """autocast on CUDA (fp16 with loss scaling): the Dense layer computes in the policy's
    dtype, the weights stay float32, and the losses follow float32's to a few percent."""
    x, y = data()
    runs, seen = {}, set()
    for p in ("float32", policy):
        torch.manual_seed(0)
        model = small_model("cuda")
        linear = [m for m in model._trainer.net.modules() if isinstance(m, torch.nn.Linear)][0]
        hook = linear.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
        with cnnlab.mixed_precision.policy_scope(p):
            runs[p] = model.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=0).history["loss"]
        hook.remove()
        assert all(w.dtype == np.float32 for w in model.get_weights())
        if p == policy:
            assert dtype in seen
            if dtype is torch.float16:
                assert model._trainer.precision.scaler is not None
    np.testing.assert_allclose(runs[policy], runs["float32"], rtol=0.05)


def test_the_training_arrays_are_gathered_on_the_gpu(monkeypatch):
    """Arrays that fit stay on the GPU (train/device_data.py); the results equal those of
    arrays gathered on the host and copied each step."""
    from cnnlab.train import device_data
    x, y = data()
    runs = {}
    for share in (device_data.SHARE, 0.0):   # 0: nothing fits, the host path
        monkeypatch.setattr(device_data, "SHARE", share)
        torch.manual_seed(0)
        model = small_model("cuda")
        runs[share] = model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0).history["loss"]
        on_gpu = model._trainer.train_data.x.is_cuda
        assert on_gpu == (share > 0)
    np.testing.assert_allclose(runs[0.0], runs[device_data.SHARE], rtol=1e-5)


def test_cli_precision_bf16_on_the_gpu(tmp_path):
    assert run_cli("train", "--data", "mnist-sample", "--epochs", 1, "--device", "cuda",
                   "--precision", "bf16", "--out", tmp_path, "--name", "bf", "--quiet") == 0
