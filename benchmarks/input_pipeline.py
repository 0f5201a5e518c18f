"""Issue 17's input-pipeline benchmark: images/s of cnnlab's folder pipeline against
`keras.utils.image_dataset_from_directory` (tf.data), and whether training waits for it.

Generates N RGB JPEGs of varied sizes around 180x180 (two classes) in a temporary folder,
then, rounds alternating between the systems to cancel drift:

- cnnlab: the pipeline alone (`ImageStore.stream`: decode + resize to 180x180 in `workers`
  processes, float32 batches delivered to this process) for whole shuffled epochs without
  the cache; then the cache's first pass (decoding into it) and epochs read from it;
- tf.data: Keras 3's `image_dataset_from_directory(...).prefetch(AUTOTUNE)`, the same
  epochs, plain and with `.cache()`, in benchmarks/.venvs/tf (`bash benchmarks/setup.sh tf`);
  skipped, saying so, where that venv is missing.

Then the training step of examples/cats_vs_dogs.yaml on in-memory batches (images/s), and
one real epoch of `fit` on the folder without the cache, timing how long the loop waited
for the next batch: the pipeline is what the step waits for only if that wait is large.

    .venv/bin/python benchmarks/input_pipeline.py                 # 2000 pictures, 2 rounds
    .venv/bin/python benchmarks/input_pipeline.py --images 500 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

SIZE = (180, 180)  # px: Keras's cats-vs-dogs example's image_size
TF_CODE = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf, keras
folder, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {"tensorflow": tf.__version__, "keras": keras.__version__}
for mode in ("plain", "cache"):
    ds = keras.utils.image_dataset_from_directory(folder, image_size=(180, 180), batch_size=batch,
                                                  shuffle=True, seed=1, verbose=False)
    if mode == "cache":
        ds = ds.cache()
    ds = ds.prefetch(tf.data.AUTOTUNE)
    rates = []
    for _ in range(epochs):
        n, t0 = 0, time.perf_counter()
        for x, y in ds:
            n += int(x.shape[0])
        rates.append(n / (time.perf_counter() - t0))
    out[mode] = rates
print(json.dumps(out))
"""


def make_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    """n photo-like JPEGs (smooth colour fields plus grain), 130..260 px a side, 2 classes."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(130, 261, 2))
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        field = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, (h, w, 3))
        pixels = np.clip(field + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / ("cat", "dog")[i % 2] / f"{i:05d}.jpg", quality=90)


def cnnlab_round(folder: Path, workers: int, epochs: int, batch: int, cache_dir: Path) -> dict:
    from cnnlab.data import folders
    from cnnlab.data.image_store import ImageStore
    paths = folders.list_folder(folder).paths
    t0 = time.perf_counter()
    bad = folders.find_unreadable(paths, workers)
    checked = len(paths) / (time.perf_counter() - t0)
    assert not bad, bad

    def epochs_of(store):
        rates = []
        for e in range(epochs):
            order = np.random.default_rng(e).permutation(len(paths))
            chunks = [order[s:s + batch] for s in range(0, len(order), batch)]
            t0 = time.perf_counter()
            n = sum(len(xb.float()) for xb in store.stream(chunks))  # float32, as fit takes it
            rates.append(n / (time.perf_counter() - t0))
        return rates
    plain = epochs_of(ImageStore(paths, SIZE, "rgb", workers=workers))
    for f in cache_dir.glob("*.npy"):
        f.unlink()  # the first pass decodes every round
    store = ImageStore(paths, SIZE, "rgb", workers=workers)
    t0 = time.perf_counter()
    store.use_cache(cache_dir, stream=open(os.devnull, "w"))
    first = len(paths) / (time.perf_counter() - t0)
    return {"check": checked, "plain": plain, "cache_first": first, "cache": epochs_of(store)}


def tf_round(folder: Path, epochs: int, batch: int) -> dict | None:
    python = HERE / ".venvs" / "tf" / "bin" / "python"
    if not python.exists():
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(python), "-c", TF_CODE, str(folder), str(epochs), str(batch)],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def step_rate(batch: int, steps: int = 12) -> float:
    """images/s of examples/cats_vs_dogs.yaml's training step on in-memory uint8 batches."""
    from cnnlab.config import RunConfig, compile_kwargs
    from cnnlab.models import Sequential
    cfg = RunConfig.load(REPO / "examples" / "cats_vs_dogs.yaml")
    model = Sequential.from_spec(cfg.spec)
    model.compile(**{**compile_kwargs(cfg.train), "device": "cpu"})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * steps, *SIZE, 3), dtype=np.uint8)
    y = rng.integers(0, 2, batch * steps)
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # warm-up
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - t0)


def fit_wait(folder: Path, workers: int, batch: int) -> dict:
    """One epoch of fit on the folder (no cache): seconds waited for batches, of the total."""
    from cnnlab.config import RunConfig, compile_kwargs
    from cnnlab.data.folder_data import load_folder
    from cnnlab.losses import get as get_loss
    from cnnlab.models import Sequential
    from cnnlab.train import streamed
    cfg = RunConfig.load(REPO / "examples" / "cats_vs_dogs.yaml")
    d = {**cfg.data, "path": str(folder), "cache": False, "workers": workers,
         "validation_split": 0.0}
    fd = load_folder(d, cfg.spec.input_shape, 0, stream=open(os.devnull, "w"))
    train, _ = streamed.folder_arrays(fd, cfg.spec, get_loss(cfg.train["loss"]))
    waited = [0.0]
    stream = train.stream

    def timed(*a):
        it = stream(*a)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            waited[0] += time.perf_counter() - t0
            yield item
    train.stream = timed
    model = Sequential.from_spec(cfg.spec)
    model.compile(**{**compile_kwargs(cfg.train), "device": "cpu"})
    t0 = time.perf_counter()
    model.fit(train, batch_size=batch, epochs=1, verbose=0)
    total = time.perf_counter() - t0
    return {"epoch_s": total, "waited_s": waited[0], "images": len(train)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000, help="pictures generated (default 2000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per system (default 2)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per round (default 2)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32, Keras's)")
    p.add_argument("--workers", type=int, default=2, help="cnnlab decoding processes (default 2)")
    p.add_argument("--fit-images", type=int, default=640,
                   help="pictures in the fit-wait epoch (default 640)")
    args = p.parse_args(argv)
    import torch
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} (figures on a busy machine vary several-fold)")
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "pics", Path(tmp) / "cache"
        t0 = time.perf_counter()
        make_jpegs(folder, args.images)
        size = sum(f.stat().st_size for f in folder.rglob("*.jpg"))
        print(f"{args.images} JPEGs, 130..260 px a side, {size / args.images / 1024:.1f} KiB "
              f"each on average, made in {time.perf_counter() - t0:.1f}s; resized to "
              f"{SIZE[0]}x{SIZE[1]}, batches of {args.batch}")
        ours, theirs = [], []
        for r in range(args.rounds):
            ours.append(cnnlab_round(folder, args.workers, args.epochs, args.batch, cache))
            theirs.append(tf_round(folder, args.epochs, args.batch))
        med = lambda rows, key, i=-1: statistics.median(  # noqa: E731
            row[key][i] if isinstance(row[key], list) else row[key] for row in rows)
        print("\nimages/s (median of rounds; last epoch of each round: steady state)")
        print(f"  cnnlab, {args.workers} workers, no cache:  {med(ours, 'plain'):8.0f}   "
              f"(first epoch {med(ours, 'plain', 0):.0f})")
        print(f"  cnnlab, cache's first pass:        {med(ours, 'cache_first'):8.0f}")
        print(f"  cnnlab, read from the cache:       {med(ours, 'cache'):8.0f}")
        print(f"  cnnlab, check before training:     {med(ours, 'check'):8.0f}")
        if theirs[0] is None:
            print("  tf.data: not measured (no benchmarks/.venvs/tf: bash benchmarks/setup.sh tf)")
        else:
            print(f"  tf.data ({theirs[0]['tensorflow']}), no cache:    {med(theirs, 'plain'):8.0f}"
                  f"   (first epoch {med(theirs, 'plain', 0):.0f})")
            print(f"  tf.data, .cache() after the first: {med(theirs, 'cache'):8.0f}")
            print(f"  ratio cnnlab / tf.data, no cache:  {med(ours, 'plain') / med(theirs, 'plain'):8.2f}")
            print(f"  ratio cnnlab / tf.data, cached:    {med(ours, 'cache') / med(theirs, 'cache'):8.2f}")
        rate = step_rate(64)
        print(f"\ntraining step of examples/cats_vs_dogs.yaml (batch 64): {rate:.0f} images/s")
        print(f"  pipeline alone / step, no cache:   {med(ours, 'plain') / rate:.1f}x")
        sub = Path(tmp) / "fit"
        make_jpegs(sub, args.fit_images, seed=1)
        w = fit_wait(sub, args.workers, 64)
        print(f"one epoch of fit on {w['images']} pictures, no cache: {w['epoch_s']:.1f}s, of which "
              f"{w['waited_s']:.2f}s ({100 * w['waited_s'] / w['epoch_s']:.0f}%) waiting for batches")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
