"""Shared by the serve tests: a small digit classifier trained once per test session.

A Conv2D(8) + Dense(10) on the bundled mnist-sample for 2 epochs (about 91% validation
accuracy, ~1 s of training): enough that a clearly drawn digit is mostly recognised,
small enough for CI. Tests assert what the server must guarantee (its answer equals
`cnnlab predict`'s), never that the model is right about a particular drawing.
"""
import socket

import pytest

MINI = """\
model:
  input_shape: [28, 28, 1]
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dense: {units: 10, activation: softmax}
data: {name: mnist-sample, validation: test}
train:
  loss: categorical_crossentropy
  optimizer: adam
  metrics: [accuracy]
  batch_size: 64
  epochs: 2
  threads: 1
  seed: 0
"""


def train(root, run_name, text=MINI, **data):
    from cnnlab.config import RunConfig
    from cnnlab.runner import train_run
    config = root / f"{run_name}.yaml"
    config.write_text(text)
    cfg = RunConfig.load(config)
    if data:
        cfg = cfg.with_overrides(data=data)
    result = train_run(cfg, out=root, name=run_name, quiet=True)
    assert result.exit_code == 0, result.message
    return root / run_name


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    """A runs folder holding `mini`, a finished digit classifier."""
    root = tmp_path_factory.mktemp("serve-runs")
    train(root, "mini")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
