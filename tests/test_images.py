"""Tests for cnnlab.images: safe decoding, MNIST-style preparation, pinned messages, fuzzing."""
from __future__ import annotations

import io
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw, features

from cnnlab import images
from cnnlab.errors import ConfigError, DataError
from cnnlab.images import load_images, prepare_image, read_image, render_digit_png

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def digit_image(digit: int, size=(200, 200), mode="RGB") -> Image.Image:
    return Image.open(io.BytesIO(render_digit_png(digit, size=size))).convert(mode)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height grey pixels, with (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (images._PNG_MAGIC + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG with its SOF0 header patched to claim width x height."""
    data = bytearray(encode(Image.new("L", (8, 8), 128), "JPEG"))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def centre_of_mass(grey: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(grey.shape)
    total = grey.sum(dtype=np.float64)
    return float((ys * grey).sum() / total), float((xs * grey).sum() / total)


def ink_box(grey: np.ndarray, threshold: int = 0) -> tuple[int, int]:
    """(height, width) in px of the bounding box of pixels above threshold."""
    rows, cols = np.flatnonzero((grey > threshold).any(1)), np.flatnonzero((grey > threshold).any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.fixture(autouse=True)
def no_warnings():
    """No warning (PIL's DecompressionBombWarning included) may escape these tests. Recorded,
    not turned into errors: read_image would swallow an error-ified warning as a DataError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []


# ----------------------------------------------------------------------------- render_digit_png


def test_render_digit_png_draws_a_dark_centred_digit_on_light_paper():
    img = Image.open(io.BytesIO(render_digit_png(5, size=(200, 300))))
    assert img.format == "PNG" and img.size == (200, 300)
    grey = 255 - np.asarray(img.convert("L"))  # ink high
    assert grey[0].max() == 0 and grey[:, 0].max() == 0  # paper all round
    height, width = ink_box(grey, 127)
    assert 0.45 * 300 < height < 0.8 * 300 and width < 200
    cy, cx = centre_of_mass(grey)
    assert abs(cy - 150) < 30 and abs(cx - 100) < 20


def test_render_digit_png_colours_and_bitmap_fallback(monkeypatch):
    white_on_black = np.asarray(Image.open(io.BytesIO(render_digit_png(1, ink="white", paper="black"))))
    assert white_on_black[0, 0].tolist() == [0, 0, 0] and white_on_black.max() == 255
    monkeypatch.setattr(images, "_scalable_font", lambda px: None)  # as on Pillow < 10.1
    fallback = np.asarray(Image.open(io.BytesIO(render_digit_png(7, size=(64, 64)))).convert("L"))
    assert fallback[0, 0] == 255 and ink_box(255 - fallback, 127)[0] > 30


@pytest.mark.parametrize("digit", [10, -1, 2.0, True, "3"])
def test_render_digit_png_rejects_what_is_not_a_digit(digit):
    message = (f"Invalid value for argument `digit`. Expected an integer from 0 to 9. "
               f"Received digit={digit!r}.")
    with pytest.raises(ConfigError, match=re.escape(message)):
        render_digit_png(digit)


# ----------------------------------------------------------------------------- read_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_read_image_decodes_png_and_jpeg_bytes_and_files(tmp_path, fmt, mode):
    data = encode(digit_image(3, (64, 48), mode), fmt)
    path = tmp_path / f"three.{fmt.lower()}"
    path.write_bytes(data)
    for img in (read_image(data), read_image(path), read_image(str(path), name="x")):
        assert type(img) is Image.Image and img.mode == mode and img.size == (64, 48)
        assert np.asarray(img).min() < 50 and np.asarray(img).max() > 200


def test_read_image_flattens_transparency_onto_contrasting_paper():
    dark_ink = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # transparent black canvas
    ImageDraw.Draw(dark_ink).line((2, 10, 18, 10), fill=(0, 0, 0, 255), width=3)
    flat = np.asarray(read_image(encode(dark_ink, "PNG")))
    assert flat[0, 0].tolist() == [255, 255, 255] and flat[10, 10].tolist() == [0, 0, 0]
    light_ink = Image.new("LA", (20, 20), (255, 0))  # transparent white canvas, white ink
    ImageDraw.Draw(light_ink).line((2, 10, 18, 10), fill=(255, 255), width=3)
    flat = read_image(encode(light_ink, "PNG"))
    assert flat.mode == "L" and flat.getpixel((0, 0)) == 0 and flat.getpixel((10, 10)) == 255


def test_read_image_scales_16_bit_grey_and_converts_palettes():
    deep = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert np.asarray(read_image(encode(deep, "PNG"))).tolist() == [[0, 128, 255]]
    palette = digit_image(4, (32, 32)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert read_image(encode(palette, "PNG")).mode == "RGB"


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_read_image_applies_exif_orientation(fmt):
    landscape = Image.new("RGB", (40, 20), "white")
    landscape.paste((0, 0, 0), (0, 0, 10, 20))  # black band on the left
    for orientation, size, black_at in [(1, (40, 20), (0, 10)), (3, (40, 20), (39, 10)),
                                        (6, (20, 40), (10, 0)), (8, (20, 40), (10, 39))]:
        img = read_image(encode(landscape, fmt, exif=exif_bytes(orientation)))
        assert img.size == size and img.getpixel(black_at) == (0, 0, 0), orientation


def test_read_image_decodes_a_jpeg_whose_exif_is_corrupt():
    data = bytearray(encode(Image.new("RGB", (24, 16), "white"), "JPEG", exif=exif_bytes(6)))
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 4:tiff + 8] = b"\xff\xff\x00\x00"  # first directory offset far beyond the block
    with warnings.catch_warnings(record=True) as caught:  # PIL may warn about the EXIF while reading dpi
        warnings.simplefilter("always")
        assert read_image(bytes(data)).size == (24, 16)  # orientation unreadable: left as stored
    assert all(w.category is UserWarning for w in caught)


def test_read_image_reads_the_first_picture_of_multi_picture_jpeg():
    first, second = Image.new("RGB", (24, 16), "white"), Image.new("RGB", (24, 16), "black")
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert np.asarray(read_image(buffer.getvalue())).min() > 200


def test_read_image_refuses_empty_input(tmp_path):
    with pytest.raises(DataError, match=re.escape("Image '<bytes>' is empty (0 bytes).")):
        read_image(b"")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match=re.escape("Image 'e.png' is empty (0 bytes).")):
        read_image(tmp_path / "e.png", name="e.png")
    with pytest.raises(DataError, match=re.escape(f"Image '{tmp_path / 'e.png'}' is empty (0 bytes).")):
        read_image(tmp_path / "e.png")


def test_read_image_refuses_missing_files_and_directories(tmp_path):
    with pytest.raises(DataError, match=re.escape("Cannot read image 'missing.png': no such file.")):
        read_image(tmp_path / "missing.png", name="missing.png")
    message = "Cannot read image 'photos': it is a directory. Expected a PNG or JPEG file."
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(tmp_path, name="photos")
    with pytest.raises(TypeError, match="path or bytes"):
        read_image(42)


UNSUPPORTED = [("GIF", "GIF", "x.gif"), ("BMP", "BMP", "x.bmp"), ("TIFF", "TIFF", "x.tif"),
               ("ICO", "ICO", "x.ico")] + ([("WEBP", "WebP", "x.webp")] if features.check("webp") else [])


@pytest.mark.parametrize("fmt, shown, filename", UNSUPPORTED)
def test_read_image_refuses_other_formats_by_name(fmt, shown, filename):
    data = encode(Image.new("RGB", (16, 16), "white"), fmt)
    message = f"Cannot read image '{filename}': unsupported format {shown}. Expected PNG or JPEG."
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(data, name=filename)


def test_read_image_refuses_unrecognised_bytes():
    message = ("Cannot read image 'notes.txt': unrecognised format (first bytes 68 65 6c 6c 6f 20 77 6f). "
               "Expected PNG or JPEG.")
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(b"hello world", name="notes.txt")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_read_image_refuses_truncated_files(fmt):
    data = encode(digit_image(8, (64, 64)), fmt)
    # PIL accepts a PNG missing only its trailer (zlib checksum, CRC, IEND: ~21 bytes) since
    # every pixel is there; cutting any pixel data is refused.
    for cut in (20, len(data) // 2, len(data) - 30):
        with pytest.raises(DataError, match=r"^Image 'a\.img' is truncated or corrupt: .+\.$"):
            read_image(data[:cut], name="a.img")


def test_read_image_refuses_corrupt_png():
    data = bytearray(encode(digit_image(8, (64, 64)), "PNG"))
    data[data.index(b"IDAT") + 10] ^= 0xFF  # breaks the chunk's checksum
    with pytest.raises(DataError, match=r"^Image 'a\.png' is truncated or corrupt: .+\.$"):
        read_image(bytes(data), name="a.png")
    with pytest.raises(DataError, match=re.escape("Image 'z.png' is truncated or corrupt: "
                                                  "invalid PNG header (")):
        read_image(png_claiming(0, 10), name="z.png")
    with pytest.raises(DataError, match=re.escape("Image 'z.jpg' is truncated or corrupt: "
                                                  "invalid JPEG header (")):
        read_image(jpeg_claiming(10, 0), name="z.jpg")


def test_read_image_refuses_decompression_bombs_from_the_header(monkeypatch):
    limit = Image.MAX_IMAGE_PIXELS
    message = ("Image 'big.png' is 20000x20000 = 400,000,000 pixels, above the limit of 40,000,000 "
               "(decompression bomb protection).")
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(png_claiming(20_000, 20_000), name="big.png")
    message = ("Image 'big.jpg' is 65000x60000 = 3,900,000,000 pixels, above the limit of 40,000,000 "
               "(decompression bomb protection).")
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(jpeg_claiming(65_000, 60_000), name="big.jpg")
    message = "Image 'a.png' is 64x64 = 4,096 pixels, above the limit of 1,000 (decompression bomb protection)."
    with pytest.raises(DataError, match=re.escape(message)):
        read_image(encode(digit_image(1, (64, 64)), "PNG"), name="a.png", max_pixels=1_000)
    assert Image.MAX_IMAGE_PIXELS == limit  # PIL's global guard is left alone ...
    data = encode(digit_image(1, (64, 64)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_image(data).size == (64, 64)  # ... and not consulted: no warning, no error


# ----------------------------------------------------------------------------- prepare_image (MNIST)

SOURCES = [(size, mode, fmt) for size in [(200, 300), (64, 64), (300, 120)]
           for mode in ["L", "RGB"] for fmt in ["PNG", "JPEG"]]


@pytest.mark.parametrize("size, mode, fmt", SOURCES)
def test_prepare_image_makes_mnist_digits_from_dark_on_light_renders(size, mode, fmt):
    img = read_image(encode(digit_image(2, size, mode), fmt, **({"quality": 90} if fmt == "JPEG" else {})))
    out = prepare_image(img, (28, 28, 1))
    assert out.shape == (28, 28, 1) and out.dtype == np.uint8
    grey = out[..., 0]
    assert grey[0].max() == 0 and grey[-1].max() == 0 and grey[:, 0].max() == 0 and grey[:, -1].max() == 0
    assert grey.max() == 255 and 0.08 < (grey > 128).mean() < 0.35  # white ink on black
    assert max(ink_box(grey)) in (19, 20)  # longer side fills the 20 px box
    cy, cx = centre_of_mass(grey.astype(np.float64))
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


def test_prepare_image_handles_a_thick_pen_on_a_large_canvas():
    canvas = Image.new("L", (1200, 900), 250)  # a "7" drawn with a 50 px pen, off-centre
    ImageDraw.Draw(canvas).line([(300, 200), (700, 200), (450, 800)], fill=20, width=50, joint="curve")
    grey = prepare_image(read_image(encode(canvas, "JPEG")), (784,)).reshape(28, 28)
    assert ink_box(grey, 64)[0] in (19, 20) and 9 <= ink_box(grey, 64)[1] <= 17
    cy, cx = centre_of_mass(grey.astype(np.float64))
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
    assert 2 <= (grey[4:24, 14] > 128).sum() <= 6  # stroke a few px thick, like MNIST


def test_prepare_image_keeps_the_aspect_ratio():
    bar = Image.new("L", (600, 600), 255)
    ImageDraw.Draw(bar).rectangle((150, 270, 449, 329), fill=0)  # 300 x 60 px
    grey = prepare_image(bar, (28, 28, 1))[..., 0]
    assert ink_box(grey, 64) in ((4, 20), (5, 20))  # 60/300 * 20 = 4 px tall


def test_prepare_image_same_digit_whatever_the_polarity_and_shape():
    img = digit_image(6, (120, 160), "L")
    reference = prepare_image(img, (28, 28, 1))
    inverted = Image.fromarray(255 - np.asarray(img))  # white on black: already MNIST polarity
    assert np.array_equal(prepare_image(inverted, (28, 28, 1)), reference)
    assert np.array_equal(prepare_image(img, (784,)), reference.reshape(784))
    assert np.array_equal(prepare_image(img, (28, 28)), reference[..., 0])
    assert np.array_equal(prepare_image(img.convert("RGBA"), (28, 28, 1)), reference)


def test_prepare_image_blank_or_tiny_images():
    assert not prepare_image(Image.new("L", (50, 50), 255), (28, 28, 1)).any()
    assert prepare_image(Image.new("L", (1, 1), 0), (784,)).shape == (784,)
    assert prepare_image(Image.new("RGB", (1, 7), "red"), (32, 32, 3)).shape == (32, 32, 3)


# ----------------------------------------------------------------------------- prepare_image (others)


def framed(size=(200, 100), frame=(255, 255, 255), inside=(0, 0, 255)) -> Image.Image:
    img = Image.new("RGB", size, frame)
    ImageDraw.Draw(img).rectangle((10, 10, size[0] - 11, size[1] - 11), fill=inside)
    return img


def test_prepare_image_rgb_fits_and_pads_with_the_background_without_inverting():
    out = prepare_image(framed(), (32, 32, 3))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:8] == 255).all() and (out[24:] == 255).all()  # 200x100 -> 32x16, centred
    assert out[16, 16].tolist() == [0, 0, 255]
    blue_rows = int(((out[:, 16, 2] > 200) & (out[:, 16, 0] < 50)).sum())
    assert blue_rows in (12, 13, 14)  # 80/100 of 16 px: the aspect ratio is kept
    assert prepare_image(framed(), (32, 32, 3), invert=True)[16, 16].tolist() == [255, 255, 0]


def test_prepare_image_grey_models_invert_on_light_background_unless_told():
    img = framed(frame=(255, 255, 255), inside=(0, 0, 0))
    auto = prepare_image(img, (32, 32, 1))[..., 0]
    assert auto[0, 0] == 0 and auto[16, 16] == 255
    kept = prepare_image(img, (32, 32, 1), invert=False)[..., 0]
    assert kept[0, 0] == 255 and kept[16, 16] == 0


def test_prepare_image_mnist_style_can_be_forced_or_switched_off():
    img = digit_image(9, (100, 100), "L")
    whole = prepare_image(img, (28, 28, 1), mnist_style=False)[..., 0]
    assert max(ink_box(whole, 64)) < 20  # the whole canvas scaled, margins kept
    big = prepare_image(img, (56, 56, 1), mnist_style=True)[..., 0]
    assert max(ink_box(big)) in (39, 40)  # 20/28 of 56


BAD_SHAPES = [(28, 28, 4), (1, 28, 28), (783,), (0, 28, 1), (28.5, 28, 1), (None, 28, 28, 1), "abc", 5]


@pytest.mark.parametrize("shape", BAD_SHAPES)
def test_prepare_image_refuses_impossible_input_shapes(shape):
    message = ("Invalid value for argument `input_shape`. Expected (height, width, channels) with 1 or 3 "
               "channels (channels last), (height, width) or (n,) with n a perfect square (a flattened "
               f"grey image). Received input_shape={shape!r}.")
    with pytest.raises(DataError, match=re.escape(message)):
        prepare_image(Image.new("L", (8, 8)), shape)


def test_prepare_image_refuses_bad_options():
    img = Image.new("L", (8, 8))
    with pytest.raises(ConfigError, match=re.escape(
            "Invalid value for argument `invert`. Expected 'auto', True or False. Received invert='yes'.")):
        prepare_image(img, (28, 28, 1), invert="yes")
    with pytest.raises(ConfigError, match=re.escape(
            "Invalid value for argument `mnist_style`. Expected 'auto', True or False. Received mnist_style=1.")):
        prepare_image(img, (28, 28, 1), mnist_style=1)
    with pytest.raises(ConfigError, match=re.escape(
            "Invalid value for argument `mnist_style`. Expected 'auto' or False for a 3-channel model "
            "(the MNIST recipe needs grey images). Received mnist_style=True.")):
        prepare_image(img, (32, 32, 3), mnist_style=True)


# ----------------------------------------------------------------------------- load_images


def test_load_images_stacks_prepared_images(tmp_path):
    paths = []
    for digit, fmt in [(0, "PNG"), (1, "JPEG"), (7, "PNG")]:
        paths.append(tmp_path / f"{digit}.{fmt.lower()}")
        paths[-1].write_bytes(encode(digit_image(digit, (90, 120)), fmt))
    batch = load_images(paths, (28, 28, 1))
    assert batch.shape == (3, 28, 28, 1) and batch.dtype == np.uint8
    assert np.array_equal(batch[2], prepare_image(read_image(paths[2]), (28, 28, 1)))
    assert load_images([], (784,)).shape == (0, 784)


def test_load_images_names_the_offending_file(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(encode(digit_image(3), "PNG"))
    bad.write_bytes(encode(digit_image(3), "PNG")[:100])
    with pytest.raises(DataError, match=f"^Image '{re.escape(str(bad))}' is truncated or corrupt: "):
        load_images([good, bad], (28, 28, 1))
    with pytest.raises(DataError, match="input_shape"):  # checked before any file is read
        load_images([tmp_path / "missing.png"], (28, 28, 2))
    with pytest.raises(TypeError, match="list of paths"):
        load_images(str(good), (28, 28, 1))


# ----------------------------------------------------------------------------- property-based


def _seed_files() -> list[bytes]:
    digit = digit_image(4, (16, 12))
    alpha = digit.convert("RGBA")
    alpha.putalpha(Image.new("L", alpha.size, 128))
    return [encode(digit.convert("L"), "PNG"), encode(digit, "PNG"), encode(alpha, "PNG"),
            encode(digit.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"),
            encode(digit, "PNG", exif=exif_bytes(6)), encode(digit.convert("L"), "JPEG"),
            encode(digit, "JPEG", quality=50), encode(digit, "JPEG", progressive=True),
            encode(digit, "JPEG", exif=exif_bytes(8)),
            encode(digit, "MPO", save_all=True, append_images=[digit.rotate(90)])]


SEEDS = _seed_files()


def decodes_or_refuses(data: bytes) -> None:
    """The property: a loaded L/RGB image within the limit that prepares to the right shapes,
    or a DataError naming the file. Any other exception fails the test, and so does any warning
    but PIL's UserWarnings about malformed metadata (EXIF, APNG) of a file it still reads."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            img = read_image(data, name="fuzz.bin", max_pixels=250_000)
        except DataError as exc:
            assert str(exc).startswith(("Image 'fuzz.bin' ", "Cannot read image 'fuzz.bin': "))
            img = None
        if img is not None:
            assert img.mode in ("L", "RGB") and img.width * img.height <= 250_000
            assert prepare_image(img, (28, 28, 1)).shape == (28, 28, 1)
            assert prepare_image(img, (8, 8, 3)).shape == (8, 8, 3)
    for w in caught:
        assert w.category is UserWarning and "PIL" in w.filename, (w.category, str(w.message))


@FUZZ
@given(st.one_of(st.binary(max_size=2048),
                 st.tuples(st.sampled_from([images._PNG_MAGIC, images._JPEG_MAGIC]),
                           st.binary(max_size=2048)).map(b"".join)))
def test_random_bytes_decode_or_raise_data_error(data):
    decodes_or_refuses(data)


@FUZZ
@given(seed=st.sampled_from(SEEDS), edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                  max_size=8),
       cut=st.floats(0, 1), insert=st.binary(max_size=16))
def test_mutated_png_and_jpeg_decode_or_raise_data_error(seed, edits, cut, insert):
    data = bytearray(seed)
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    at = int(cut * len(data))
    decodes_or_refuses(bytes(data[:at] + insert + data[at:]) if insert else bytes(data[:max(at, 1)]))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


@FUZZ
@given(seed=st.sampled_from(SEEDS[:5]), which=st.integers(0, 10),
       edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_png_chunks_with_valid_checksums_decode_or_raise_data_error(seed, which, edits):
    """Mutations behind valid CRCs reach the decoder itself (bogus IHDR sizes, depths, zlib streams)."""
    chunks = _png_chunks(seed)
    kind, body = chunks[which % len(chunks)]
    body = bytearray(body or b"\x00")
    for where, value in edits:
        body[int(where * (len(body) - 1))] = value
    chunks[which % len(chunks)] = (kind, bytes(body))
    decodes_or_refuses(images._PNG_MAGIC + b"".join(png_chunk(k, b) for k, b in chunks))


@FUZZ
@given(pixels=st.one_of(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40)),
                        hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)))),
       shape=st.sampled_from([(28, 28, 1), (784,), (28, 28), (32, 32, 3), (10, 20, 1), (5, 3, 3)]),
       invert=st.sampled_from(["auto", True, False]))
def test_prepare_image_always_returns_the_requested_shape(pixels, shape, invert):
    out = prepare_image(Image.fromarray(pixels), shape, invert=invert)
    assert out.shape == shape and out.dtype == np.uint8


@pytest.mark.parametrize("raw, expected", [
    (b"", 1), (b"Exif\x00\x00", 1), (b"XX*\x00\x08\x00\x00\x00", 1),          # nothing, bad byte order
    (b"II*\x00\xff\xff\x00\x00", 1),                                          # directory beyond the end
    (b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00", 1),  # 9: invalid
    (b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00", 6),  # big-endian
])
def test_exif_orientation_reads_the_tag_or_defaults_to_upright(raw, expected):
    assert images._exif_orientation(raw) == expected
    assert images._exif_orientation(exif_bytes(expected)) == expected


@FUZZ
@given(raw=st.one_of(st.binary(max_size=64),
                     st.tuples(st.sampled_from([b"II*\x00", b"MM\x00*", b"Exif\x00\x00II*\x00"]),
                               st.binary(max_size=64)).map(b"".join)))
def test_exif_orientation_never_fails(raw):
    assert 1 <= images._exif_orientation(raw) <= 8
