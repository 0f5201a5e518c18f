"""One fit path: `cnnlab train` builds the model from its config and calls the public
`model.fit`, and gets what the Python API gets for the same settings."""
from __future__ import annotations

import math

import numpy as np
import yaml

from cnnlab.config import RunConfig, compile_kwargs, fit_kwargs
from cnnlab.evaluate import evaluate_run
from cnnlab.models import Sequential
from cnnlab.runner import train_run
from cnnlab.train import fit_api
from cnnlab.utils import set_random_seed
from test_resume_support import keep_threads, tiny_npz, weights, write_config  # noqa: F401


def config(tmp_path, **data):
    path = write_config(tmp_path / "cfg.yaml", tiny_npz(tmp_path / "tiny.npz"), epochs=2)
    if data:
        d = yaml.safe_load(path.read_text())
        d["data"].update(data)
        path.write_text(yaml.safe_dump(d))
    return RunConfig.load(path)


def test_train_run_calls_the_public_fit(tmp_path, monkeypatch, keep_threads):  # noqa: F811
    calls = []
    original = fit_api.FitMixin.fit

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(fit_api.FitMixin, "fit", spy)
    res = train_run(config(tmp_path), out=tmp_path / "runs", quiet=True)
    assert len(calls) == 1 and calls[0]["epochs"] == 2 and calls[0]["seed"] == 0
    assert len(res.history["loss"]) == 2


def test_train_run_equals_the_python_api(tmp_path, keep_threads):  # noqa: F811
    """The same config through `cnnlab train` and through Keras-style Python code gives
    the same weights, bit for bit, and the same history."""
    cfg = config(tmp_path, validation=0.25)
    res = train_run(cfg, out=tmp_path / "runs", quiet=True)
    data = np.load(tmp_path / "tiny.npz")
    set_random_seed(cfg.train["seed"])
    model = Sequential.from_spec(cfg.spec)
    model.compile(**compile_kwargs(cfg.train))
    history = model.fit(data["x_train"], data["y_train"], validation_split=0.25, verbose=0,
                        **fit_kwargs(cfg.train))
    assert history.history == {k: v for k, v in res.history.items() if k in history.history}
    saved = weights(res.run_dir / "weights/final.safetensors")
    mine = {k: v for k, v in model.net.state_dict().items()}
    assert saved.keys() == mine.keys()
    assert all(np.array_equal(saved[k].numpy(), mine[k].numpy()) for k in saved)
    # validation_split: the last quarter of the 96 training images, as Keras splits
    assert res.metrics["steps_per_epoch"] == math.ceil(72 / cfg.train["batch_size"])
    result = evaluate_run(res.run_dir, tmp_path / "runs")
    assert result["data"]["n_test"] == 32 and abs(result["accuracy"]
                                                   - res.history["val_accuracy"][-1]) < 1e-9
