"""The allocator settings that keep a CPU training step from page-faulting (fast/memory.py)."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

import cnnlab.fast.cpu as cpu
from cnnlab.fast import memory


class FakeLibc:
    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.answer


def test_apply_sets_every_setting_through_mallopt():
    libc = FakeLibc()
    assert memory.apply(libc, {"PATH": "/bin"}) is True
    assert libc.calls == list(memory.SETTINGS)


def test_a_users_malloc_variable_wins_and_nothing_is_set():
    libc = FakeLibc()
    assert memory.apply(libc, {"MALLOC_ARENA_MAX": "2"}) is False
    assert libc.calls == []


def test_no_glibc_or_a_refused_setting_reports_false():
    assert memory.apply(None, {}) is False
    assert memory.apply(FakeLibc(answer=0), {}) is False


def test_fit_on_the_cpu_applies_the_settings(monkeypatch):
    import numpy as np
    import cnnlab
    calls = []
    monkeypatch.setattr(cpu, "keep_freed_memory", lambda: calls.append(1) or True)
    m = cnnlab.Sequential([cnnlab.layers.Flatten(input_shape=(4, 4, 1)),
                           cnnlab.layers.Dense(2, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam")
    m.fit(np.zeros((8, 4, 4, 1), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 4],
          epochs=1, verbose=0)
    assert calls == [1]


PROGRAM = textwrap.dedent("""
    import resource, numpy as np, torch, cnnlab
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2560, 28, 28, 1), dtype=np.uint8)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    L = cnnlab.layers
    m = cnnlab.Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2), padding="same"), L.Flatten(),
        L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam")
    faults = []
    class Count(cnnlab.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        def on_epoch_end(self, e, logs=None):
            faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.f) / 20)
    m.fit(x, y, batch_size=128, epochs=4, verbose=0, callbacks=[Count()])
    print(min(faults[1:]))
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the settings exist in glibc only")
def test_lecture_training_steps_reuse_their_memory():
    """After the first epoch a step page-faults almost never (glibc's defaults: 95-700 per
    step in the same program, measured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < 5
