"""Shared helpers for the folder-dataset tests (no tests here): folders of real-format
picture files, generated with Pillow in a temporary directory.

Each class has its own dominant colour (red, blue, green, ...) plus noise, so a tiny model
learns them in a few steps; sizes vary so that resizing is exercised.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(200, 40, 40), (40, 40, 200), (40, 200, 40), (200, 200, 40)]
FORMATS = [("jpg", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("webp", "WEBP"), ("gif", "GIF"),
           ("JPEG", "JPEG")]


def picture(rng, colour, size=(23, 17)) -> Image.Image:
    """An RGB picture of `size` (width, height): `colour` plus noise."""
    w, h = size
    noise = rng.integers(-40, 40, (h, w, 3))
    pixels = np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_folder(root, classes=("cat", "dog"), per_class=12, seed=0, formats=FORMATS,
                sizes=((23, 17), (40, 30), (16, 16), (9, 31))) -> Path:
    """root/<class>/<i>.<ext>: per_class pictures per class, formats and sizes cycling."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ext, fmt = formats[(i + c) % len(formats)]
            img = picture(rng, COLOURS[c % len(COLOURS)], sizes[i % len(sizes)])
            img.save(root / name / f"{i:03d}.{ext}", fmt)
    return root


def add_junk(root) -> None:
    """What real folders hold besides pictures: macOS and Windows droppings, notes."""
    root = Path(root)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    for d in [p for p in root.iterdir() if p.is_dir()]:
        (d / "Thumbs.db").write_bytes(bytes(range(256)))
        (d / "notes.txt").write_text("not a picture")
        (d / ".DS_Store").write_bytes(bytes(32))


def add_broken(folder) -> list[Path]:
    """Unreadable files with picture extensions: 0 bytes, not a picture, truncated JPEG,
    a PNG whose header claims far more pixels than its data holds."""
    folder = Path(folder)
    rng = np.random.default_rng(1)
    empty = folder / "zz_empty.jpg"
    empty.write_bytes(b"")
    text = folder / "zz_text.png"
    text.write_text("<html>this is not a picture</html>")
    full = folder / "zz_full.jpg"
    picture(rng, (90, 90, 90), (64, 48)).save(full, "JPEG")
    truncated = folder / "zz_truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:300])
    full.unlink()
    big = folder / "zz_liar.png"
    small = folder / "zz_small.png"
    picture(rng, (90, 90, 90), (8, 8)).save(small, "PNG")
    data = bytearray(small.read_bytes())
    data[16:24] = (4000).to_bytes(4, "big") + (3000).to_bytes(4, "big")  # IHDR width, height
    import zlib
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")       # a valid IHDR CRC
    big.write_bytes(bytes(data))
    small.unlink()
    return [empty, text, truncated, big]
