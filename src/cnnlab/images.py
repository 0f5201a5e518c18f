"""Decode user images safely and prepare them for a model.

`cnnlab predict RUN IMAGE...` and the prediction server feed user files through
here. Only PNG and JPEG are decoded; every bad input (missing, empty, truncated,
corrupt, unsupported, too large) raises :class:`~cnnlab.errors.DataError` with a
message naming the file, what was expected and what was received.

    >>> from cnnlab.images import read_image, prepare_image, load_images
    >>> img = read_image("seven.jpg")                 # PIL image, mode "L" or "RGB"
    >>> prepare_image(img, (28, 28, 1)).shape         # MNIST-style: white digit on black
    (28, 28, 1)
    >>> load_images(["a.png", "b.png"], (784,)).shape
    (2, 784)

Decompression bombs: the width and height are read from the file header and
checked against ``max_pixels`` before a single pixel is decoded. PIL's own guard
(``PIL.Image.MAX_IMAGE_PIXELS``, its warning and its error) is neither read nor
changed: the format parsers are called directly, so ``max_pixels`` is the only
limit and PIL's global state is left alone for other code. Truncation detection
relies on PIL's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``.

Warnings: PIL may emit a ``UserWarning`` about malformed metadata (EXIF, APNG
control chunks) of a file it still decodes. They are left to the caller (the CLI
can route them to logging): silencing them here would mean changing the
process-wide warnings filters, which is not thread-safe.
"""
from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, JpegImagePlugin, PngImagePlugin

from cnnlab.errors import ConfigError, DataError

__all__ = ["MAX_PIXELS", "read_image", "prepare_image", "load_images", "render_digit_png"]

MAX_PIXELS = 40_000_000   # pixels (width * height), e.g. 8,000x5,000; 120 MB decoded as RGB
ACCEPTED = "PNG or JPEG"
MNIST_SIDE = 28           # px, side of an MNIST image
MNIST_BOX = 20            # px, longer side of the digit inside it (how MNIST was made)
LIGHT_PAPER = 127         # grey level 0..255; a border median above it means dark ink on light paper
INK_FRACTION = 0.2        # fraction of the paper-to-ink contrast under which a pixel counts as paper
MIN_CONTRAST = 32         # grey levels; weaker ink than this and the image counts as blank
WORKING_SIDE = 512        # px; larger images are shrunk to this before the digit is located

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_OTHER_MAGIC = (  # (offset, bytes, format name): named in the refusal so users know what they sent
    (0, b"GIF8", "GIF"), (0, b"BM", "BMP"), (8, b"WEBP", "WebP"), (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"), (0, b"\x00\x00\x01\x00", "ICO"), (0, b"8BPS", "PSD"),
    (0, b"%PDF", "PDF"), (8, b"heic", "HEIC"), (8, b"heix", "HEIC"), (8, b"avif", "AVIF"),
    (0, b"\xff\x0a", "JPEG XL"), (4, b"JXL ", "JPEG XL"), (4, b"jP  ", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"), (0, b"qoif", "QOI"), (0, b"<svg", "SVG"), (0, b"<?xml", "SVG/XML"),
)


# ----------------------------------------------------------------------------- reading


def read_image(source, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a PNG or JPEG file path or its bytes into a fully loaded "L" or "RGB" image.

    ``name`` labels the image in messages (default: the path, or ``<bytes>``).
    Transparency is flattened onto paper that contrasts with the ink, 16-bit
    greys are scaled to 8 bits, and the EXIF orientation is applied.
    """
    label = name if name is not None else _default_label(source)
    with _open_stream(source, label) as fp:
        try:
            head = fp.read(16)
            fp.seek(0)
        except OSError as exc:  # e.g. an I/O error, or a pipe that cannot seek
            raise DataError(f"Cannot read image {label!r}: {exc.strerror or exc}.") from exc
        fmt = _sniff_format(head, label)
        try:
            img = _parse_header(fp, fmt)
        except Exception as exc:  # untrusted bytes: any parser failure means a bad file
            raise DataError(_corrupt(label, exc, f"invalid {fmt} header")) from exc
        _check_size(img.size, label, max_pixels)  # before any pixel is decoded
        _check_data_holds(img, fp, fmt, label)
        try:
            img.load()  # decode everything now so truncation is caught here
            out = _to_l_or_rgb(_upright(img))
        except Exception as exc:
            raise DataError(_corrupt(label, exc)) from exc
    return out.copy() if out is img else out  # detach from the closed file


def _default_label(source) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(source) if isinstance(source, os.PathLike) else str(source)


def _open_stream(source, label: str):
    """A binary stream over the bytes or the file; DataError if the file cannot be opened."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"read_image expects a path or bytes; received {type(source).__name__}.")
    try:
        st = os.stat(source)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):  # opening a FIFO blocks
            raise DataError(f"Cannot read image {label!r}: it is not a regular file (a FIFO, "
                            f"socket or device). Expected a {ACCEPTED} file.")
        return open(source, "rb")
    except FileNotFoundError:
        raise DataError(f"Cannot read image {label!r}: no such file.") from None
    except IsADirectoryError:
        raise DataError(f"Cannot read image {label!r}: it is a directory. Expected a {ACCEPTED} file.") from None
    except OSError as exc:
        raise DataError(f"Cannot read image {label!r}: {exc.strerror or exc}.") from exc


def _sniff_format(head: bytes, label: str) -> str:
    """'PNG' or 'JPEG' from the magic bytes; anything else is refused with what it looks like."""
    if not head:
        raise DataError(f"Image {label!r} is empty (0 bytes).")
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(_JPEG_MAGIC):
        return "JPEG"
    for offset, magic, fmt in _OTHER_MAGIC:
        if head[offset:offset + len(magic)] == magic:
            raise DataError(f"Cannot read image {label!r}: unsupported format {fmt}. Expected {ACCEPTED}.")
    start = head[:8].hex(" ")
    raise DataError(f"Cannot read image {label!r}: unrecognised format (first bytes {start}). "
                    f"Expected {ACCEPTED}.")


def _parse_header(fp, fmt: str) -> Image.Image:
    """Parse only the header. The plugins are called directly (not `Image.open`) so that
    PIL's global decompression-bomb warning/error never fires; `_check_size` replaces it.
    A multi-picture JPEG (MPO) is read as its first picture, without parsing its MP index."""
    if fmt == "PNG":
        return PngImagePlugin.PngImageFile(fp)
    return JpegImagePlugin.JpegImageFile(fp)


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise DataError(f"Image {label!r} is truncated or corrupt: its header says {width}x{height} pixels.")
    if width * height > max_pixels:
        raise DataError(f"Image {label!r} is {width}x{height} = {width * height:,} pixels, above the limit "
                        f"of {max_pixels:,} (decompression bomb protection).")


# deflate expands at most ~1032x: a PNG's pixels (at least 1 bit each) cannot come from
# fewer compressed bytes than this allows
_DEFLATE_MAX_RATIO = 1032


def _check_data_holds(img: Image.Image, fp, fmt: str, label: str) -> None:
    """A PNG whose header claims more pixels than its bytes can hold is corrupt: refused
    before the pixels are allocated."""
    if fmt != "PNG":
        return
    pos = fp.tell()
    size = fp.seek(0, os.SEEK_END)
    fp.seek(pos)
    width, height = img.size
    if width * height / 8 > size * _DEFLATE_MAX_RATIO + 1024:
        raise DataError(f"Image {label!r} is truncated or corrupt: its header says "
                        f"{width}x{height} pixels, more than its {size:,} bytes can hold.")


def _corrupt(label: str, exc: BaseException, context: str = "") -> str:
    reason = str(exc).strip().rstrip(".") or type(exc).__name__  # PIL's words
    return f"Image {label!r} is truncated or corrupt: " + (f"{context} ({reason})." if context else f"{reason}.")


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos are often stored sideways)."""
    method = _TRANSPOSE.get(_exif_orientation(img.info.get("exif", b"")))
    return img if method is None else img.transpose(method)


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _exif_orientation(raw: bytes) -> int:
    """The Orientation tag (1..8) of raw EXIF bytes; 1 (upright) when absent or unreadable.
    Read by hand because PIL's EXIF parser warns (UserWarning) on the malformed EXIF of untrusted files."""
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = struct.unpack(order + "I", tiff[4:8])[0]  # byte offset of the first directory
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0] if ifd + 2 <= len(tiff) else 0
    for at in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):  # 12-byte entries
        tag, kind = struct.unpack(order + "HH", tiff[at:at + 4])
        if tag == 0x0112 and kind == 3:  # Orientation, type SHORT
            value = struct.unpack(order + "H", tiff[at + 8:at + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


# ----------------------------------------------------------------------------- colour modes


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> "L" (grey sources) or "RGB" (colour sources); alpha is flattened."""
    grey = img.mode in ("1", "L", "LA", "La", "I", "F") or img.mode.startswith("I;16")
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_depth_to_l(img)
    if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info:
        img = _flatten_alpha(img)
    target = "L" if grey else "RGB"
    return img if img.mode == target else img.convert(target)


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit greys (0..65535) -> 8 bits; float greys are taken as 0..255 already."""
    levels = np.asarray(img).astype(np.float32)
    if img.mode != "F":
        levels = levels / 257.0  # 65535 / 257 = 255
    return Image.fromarray(np.clip(levels, 0, 255).round().astype(np.uint8))  # (H, W) uint8 -> "L"


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """RGBA -> RGB on paper that contrasts with the visible pixels: white under dark ink,
    black under light ink (a white digit drawn on a transparent canvas stays visible)."""
    rgba = img.convert("RGBA")
    pixels = np.asarray(rgba)                        # (H, W, 4) uint8
    visible = pixels[..., 3] > 127
    light_ink = visible.any() and pixels[visible][:, :3].mean() > LIGHT_PAPER
    paper = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if light_ink else (255, 255, 255, 255))
    return Image.alpha_composite(paper, rgba).convert("RGB")


# ----------------------------------------------------------------------------- preparing


@dataclass(frozen=True)
class _Target:
    """What a model's input_shape asks for: an image of height x width x channels."""

    height: int   # px
    width: int    # px
    channels: int  # 1 (grey) or 3 (RGB)
    shape: tuple[int, ...]  # the exact array shape to return


def prepare_image(img: Image.Image, input_shape, *, invert="auto", mnist_style="auto") -> np.ndarray:
    """Turn a PIL image into a uint8 array shaped exactly ``input_shape``.

    ``input_shape`` is channels-last: (H, W, 1) grey, (H, W, 3) RGB, (H, W) grey,
    or (n,) a flattened square grey image, e.g. (784,) = 28x28.
    ``invert``: "auto" inverts grey models' images whose border is light (MNIST
    digits are white on black); True/False force it, for any model.
    ``mnist_style``: "auto" = on for 28x28 grey models: crop to the ink, scale the
    longer side to 20 px, centre by centre of mass in 28x28 (how MNIST was made).
    Otherwise the image is resized keeping its aspect ratio and padded, centred,
    with its background colour. A blank image gives a black array.
    """
    target = _target(input_shape)
    use_mnist = _check_options(target, invert, mnist_style)
    img = _to_l_or_rgb(img).convert("L" if target.channels == 1 else "RGB")
    if use_mnist:
        img = _shrink(img, WORKING_SIDE)
    pixels = np.asarray(img)  # (H, W) or (H, W, 3) uint8
    if _should_invert(pixels, target.channels, invert):
        pixels = 255 - pixels
    size = (target.height, target.width)
    out = _mnist_digit(pixels, size) if use_mnist else _fit_and_pad(pixels, size)
    return np.ascontiguousarray(out, dtype=np.uint8).reshape(target.shape)


def _target(input_shape) -> _Target:
    expected = ("Expected (height, width, channels) with 1 or 3 channels (channels last), "
                "(height, width) or (n,) with n a perfect square (a flattened grey image)")
    try:
        shape = tuple(int(d) for d in input_shape)
        valid = all(d > 0 and d == orig for d, orig in zip(shape, input_shape))
    except (TypeError, ValueError):
        shape, valid = (), False
    if valid and len(shape) == 1 and round(shape[0] ** 0.5) ** 2 == shape[0]:
        side = round(shape[0] ** 0.5)
        return _Target(side, side, 1, shape)
    if valid and len(shape) == 2:
        return _Target(shape[0], shape[1], 1, shape)
    if valid and len(shape) == 3 and shape[2] in (1, 3):
        return _Target(shape[0], shape[1], shape[2], shape)
    raise DataError(f"Invalid value for argument `input_shape`. {expected}. Received input_shape={input_shape!r}.")


def _check_options(target: _Target, invert, mnist_style) -> bool:
    """Validate the options; returns whether the MNIST recipe applies."""
    if not (isinstance(invert, bool) or invert == "auto"):
        raise ConfigError(f"Invalid value for argument `invert`. Expected 'auto', True or False. "
                          f"Received invert={invert!r}.")
    if not (isinstance(mnist_style, bool) or mnist_style == "auto"):
        raise ConfigError(f"Invalid value for argument `mnist_style`. Expected 'auto', True or False. "
                          f"Received mnist_style={mnist_style!r}.")
    if mnist_style is True and target.channels != 1:
        raise ConfigError("Invalid value for argument `mnist_style`. Expected 'auto' or False for a "
                          f"{target.channels}-channel model (the MNIST recipe needs grey images). "
                          "Received mnist_style=True.")
    if mnist_style == "auto":
        return target.channels == 1 and (target.height, target.width) == (MNIST_SIDE, MNIST_SIDE)
    return mnist_style


def _shrink(img: Image.Image, side: int) -> Image.Image:
    """Shrink (never enlarge) so the longer side is at most `side` px, keeping the aspect ratio."""
    scale = side / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _border(pixels: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels: (H, W[, C]) -> (n[, C])."""
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])


def _should_invert(pixels: np.ndarray, channels: int, invert) -> bool:
    if invert == "auto":  # only grey models: their datasets are light ink on black
        return channels == 1 and float(np.median(_border(pixels))) > LIGHT_PAPER
    return bool(invert)


def _resize_to_fit(pixels: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """Resize (antialiased) so the image just fits in box=(height, width) px, keeping its aspect ratio."""
    height, width = pixels.shape[:2]
    scale = min(box[0] / height, box[1] / width)
    size = (max(1, min(box[1], round(width * scale))), max(1, min(box[0], round(height * scale))))
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def _fit_and_pad(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit inside size=(height, width) px and pad, centred, with the border's median colour."""
    patch = _resize_to_fit(pixels, size)
    paper = np.median(_border(pixels), axis=0).round().astype(np.uint8)  # grey level or (3,) RGB
    canvas = np.empty(size + pixels.shape[2:], dtype=np.uint8)
    canvas[...] = paper
    top, left = (size[0] - patch.shape[0]) // 2, (size[1] - patch.shape[1]) // 2
    canvas[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    return canvas


def _ink_levels(grey: np.ndarray) -> np.ndarray | None:
    """Light-ink grey image -> float32 levels with paper at 0 and the strongest ink at 255
    (None when blank). The weakest INK_FRACTION of the contrast is treated as paper (noise, shading)."""
    level = np.clip(grey.astype(np.float32) - np.median(_border(grey)), 0, None)
    peak = float(level.max())
    if peak < MIN_CONTRAST:
        return None
    floor = INK_FRACTION * peak
    return np.clip((level - floor) * (255.0 / (peak - floor)), 0, 255)


def _mnist_digit(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The MNIST recipe on a light-ink (H, W) grey image -> size=(height, width) uint8:
    crop to the ink, fit in a 20/28 box keeping the aspect ratio, centre by centre of mass."""
    ink = _ink_levels(grey)
    if ink is None:
        return np.zeros(size, dtype=np.uint8)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = (max(1, round(size[0] * MNIST_BOX / MNIST_SIDE)), max(1, round(size[1] * MNIST_BOX / MNIST_SIDE)))
    patch = _resize_to_fit(crop.round(), box).astype(np.float32)
    if patch.max() <= 0:
        return np.zeros(size, dtype=np.uint8)
    patch *= 255.0 / patch.max()  # downscaling dims thin strokes; MNIST strokes peak at 255
    return _paste_at_centre_of_mass(patch.round().astype(np.uint8), size)


def _paste_at_centre_of_mass(patch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Place patch on a black canvas so its centre of mass lands on the canvas centre (in px,
    rounded to whole pixels), shifted only as far as needed to keep the whole patch inside."""
    ys, xs = np.indices(patch.shape)
    total = float(patch.sum())
    com_y, com_x = float((ys * patch).sum()) / total, float((xs * patch).sum()) / total
    top = min(max(round((size[0] - 1) / 2 - com_y), 0), size[0] - patch.shape[0])
    left = min(max(round((size[1] - 1) / 2 - com_x), 0), size[1] - patch.shape[1])
    canvas = np.zeros(size, dtype=np.uint8)
    canvas[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    return canvas


# ----------------------------------------------------------------------------- batches


def load_images(paths, input_shape, *, invert="auto", mnist_style="auto",
                max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and prepare several files -> uint8 (N, *input_shape). Messages name the offending file."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("load_images expects a list of paths; received a single path. Use [path].")
    paths = list(paths)
    target = _target(input_shape)
    _check_options(target, invert, mnist_style)  # fail before reading any file
    batch = np.empty((len(paths),) + target.shape, dtype=np.uint8)
    for i, path in enumerate(paths):
        img = read_image(path, max_pixels=max_pixels)
        batch[i] = prepare_image(img, target.shape, invert=invert, mnist_style=mnist_style)
    return batch


# ----------------------------------------------------------------------------- test helper


def render_digit_png(digit: int, size=(200, 200), ink="black", paper="white") -> bytes:
    """PNG bytes of `digit` drawn thick and centred on a size=(width, height) px canvas,
    for tests that check a model reads rendered digits like MNIST ones."""
    if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
        raise ConfigError(f"Invalid value for argument `digit`. Expected an integer from 0 to 9. "
                          f"Received digit={digit!r}.")
    width, height = size
    font_px = max(4, round(min(0.8 * height, 1.2 * width)))  # px; a digit glyph is about 0.6 em wide
    stroke = max(1, round(font_px / 60))                        # px added on each side of the pen
    img = Image.new("RGB", (width, height), paper)
    font = _scalable_font(font_px)
    if font is None:  # Pillow < 10.1 or no FreeType: enlarge the small bitmap font instead
        glyph = _bitmap_glyph(str(digit), font_px, ink, paper)
        img.paste(glyph, ((width - glyph.width) // 2, (height - glyph.height) // 2))
    else:
        draw = ImageDraw.Draw(img)
        box = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke, anchor="lt")
        origin = (width / 2 - (box[0] + box[2]) / 2, height / 2 - (box[1] + box[3]) / 2)
        draw.text(origin, str(digit), fill=ink, font=font, anchor="lt", stroke_width=stroke, stroke_fill=ink)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def _scalable_font(px: int):
    try:
        font = ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: no size argument
        return None
    return font if isinstance(font, ImageFont.FreeTypeFont) else None


def _bitmap_glyph(text: str, height: int, ink, paper) -> Image.Image:
    small = Image.new("RGB", (16, 16), paper)
    draw = ImageDraw.Draw(small)
    draw.text((4, 2), text, fill=ink, font=ImageFont.load_default())
    small = small.crop(draw.textbbox((4, 2), text, font=ImageFont.load_default()))
    scale = height / small.height
    return small.resize((max(1, round(small.width * scale)), height), Image.Resampling.NEAREST)
