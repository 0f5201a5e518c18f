"""Make tests/keras_refs/folders.npz and folders_split.json with Keras itself, once.

    bash benchmarks/setup.sh tf && benchmarks/.venvs/tf/bin/pip install pillow==13.0.0
    benchmarks/.venvs/tf/bin/python scripts/make_folder_refs.py

What Keras 3's `image_dataset_from_directory` (TensorFlow's decoders and tf.image.resize)
gives for lossless PNGs of odd sizes, generated from a seeded NumPy generator that the test
regenerates: decoded, converted, resized (bilinear down and up, nearest, crop to aspect
ratio, grayscale). And which files its validation_split puts in each subset for a seed.
tests/test_folders.py compares cnnlab's decoder and split with these; it needs no Keras.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
from PIL import Image  # noqa: E402

import keras  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "keras_refs"
SIZES = [(13, 17), (40, 31), (5, 8), (64, 48)]  # (width, height) of the pictures
SETTINGS = {  # name -> image_dataset_from_directory arguments
    "down": dict(image_size=(9, 7)),
    "up": dict(image_size=(50, 45)),
    "nearest": dict(image_size=(9, 7), interpolation="nearest"),
    "crop": dict(image_size=(9, 7), crop_to_aspect_ratio=True),
    "grey": dict(image_size=(9, 7), color_mode="grayscale"),
}
SPLIT_COUNTS = {"a": 7, "b": 5, "c": 9}


def pictures() -> list[np.ndarray]:
    """The RGB pixel arrays (H, W, 3) uint8 the test regenerates (same code there)."""
    rng = np.random.default_rng(20261206)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in SIZES]


def main() -> None:
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pics"
        (root / "only").mkdir(parents=True)
        (root / "other").mkdir()
        for i, px in enumerate(pictures()):
            Image.fromarray(px).save(root / "only" / f"{i}.png")
        Image.fromarray(pictures()[0]).save(root / "other" / "x.png")
        for name, kw in SETTINGS.items():
            ds = keras.utils.image_dataset_from_directory(root, shuffle=False, batch_size=None,
                                                          verbose=False, **kw)
            images = [np.asarray(x) for x, _ in ds][:len(SIZES)]
            for i, img in enumerate(images):
                refs[f"{name}_{i}"] = img.astype(np.float32)
        split_root = Path(tmp) / "split"
        for cls, n in SPLIT_COUNTS.items():
            (split_root / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(pictures()[2]).save(split_root / cls / f"{i:02d}.png")
        train, val = keras.utils.image_dataset_from_directory(
            split_root, validation_split=0.3, subset="both", seed=42, image_size=(4, 4),
            verbose=False)
        rel = lambda paths: [os.path.relpath(p, split_root) for p in paths]  # noqa: E731
        split = {"seed": 42, "validation_split": 0.3, "counts": SPLIT_COUNTS,
                 "training": rel(train.file_paths), "validation": rel(val.file_paths),
                 "keras": keras.__version__}
    np.savez_compressed(OUT / "folders.npz", **refs)
    (OUT / "folders_split.json").write_text(json.dumps(split, indent=1) + "\n")
    print(f"wrote {OUT / 'folders.npz'} ({len(refs)} arrays) and folders_split.json "
          f"(Keras {keras.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
