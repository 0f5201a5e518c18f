"""Folder datasets: listing (Keras's class order, junk ignored), decoding every Pillow mode to
the requested colour mode, resizing as Keras does (against references made once with Keras
and TensorFlow, tests/keras_refs/folders.npz, scripts/make_folder_refs.py), the stratified
split, finding unreadable files before training, the disk cache and every error message."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import folders
from cnnlab.data.folder_data import check_folder_config, decode_settings, load_folder
from cnnlab.data.image_store import ImageStore
from cnnlab.errors import ConfigError, DataError
from cnnlab.utils import image_dataset_from_directory
from folder_support import add_broken, add_junk, make_folder, picture

REFS = Path(__file__).parent / "keras_refs"


def folder_config(path, **kw):
    return check_folder_config({"name": f"folder:{path}", "data_dir": None, "fallback": True,
                                "validation": "test", **kw},
                               ["name", "data_dir", "fallback", "validation"])


# -- listing ------------------------------------------------------------------------------

def test_classes_sorted_files_recursive_and_junk_ignored(tmp_path):
    root = make_folder(tmp_path / "f", classes=("zebra", "Ant", "mouse"), per_class=3)
    add_junk(root)
    (root / "mouse" / "deeper").mkdir()
    picture(np.random.default_rng(0), (1, 2, 3)).save(root / "mouse" / "deeper" / "a.PNG")
    (root / ".hidden_class").mkdir()
    listing = folders.list_folder(root)
    assert listing.class_names == ["Ant", "mouse", "zebra"]  # Python's sort, as Keras's
    names = [str(Path(p).relative_to(root)) for p in listing.paths]
    assert names[3:7] == ["mouse/000.bmp", "mouse/001.webp", "mouse/002.gif", "mouse/deeper/a.PNG"]
    assert listing.counts() == [3, 4, 3]
    assert not any(n.endswith((".txt", ".db", ".DS_Store")) for n in names)


@pytest.mark.parametrize("setup, message", [
    (lambda r: None, "Image folder not found. Expected a folder with one sub-folder per class. "
                     "Received '{r}', which does not exist."),
    (lambda r: r.mkdir(), "No class sub-folders in {r}. Expected one sub-folder per class"),
    (lambda r: (r.mkdir(), (r / "a.jpg").write_bytes(b"x")),
     "It holds 1 image files directly: put each class's pictures in a sub-folder"),
    (lambda r: [(r / c).mkdir(parents=True) for c in "ab"],
     "No image files in {r}. Expected pictures with the extensions .bmp, .gif, .jpeg, .jpg, "
     ".png, .webp inside its class sub-folders. Found the sub-folders ['a', 'b'], with no "
     "picture in any."),
    (lambda r: make_folder(r, classes=("only",), per_class=2),
     "Only one class in {r}. Expected at least two class sub-folders to tell apart. "
     "Received only: 2."),
    (lambda r: (make_folder(r, per_class=2), (r / "bird").mkdir(), (r / "bird" / "x.txt").write_text("")),
     "Class sub-folder 'bird' of {r} has no image files. Expected at least one in every class. "
     "Received bird: 0, cat: 2, dog: 2."),
])
def test_folder_errors_say_what_was_found(tmp_path, setup, message):
    root = tmp_path / "pics"
    setup(root)
    with pytest.raises(DataError) as err:
        folders.list_folder(root)
    assert message.format(r=root) in str(err.value)


def test_a_class_with_only_unreadable_files_is_an_error(tmp_path):
    root = make_folder(tmp_path / "f", per_class=3)
    for p in (root / "dog").iterdir():
        p.write_bytes(b"")
    with pytest.raises(DataError, match="Class sub-folder 'dog' of .* has no readable picture. "
                                        r"Expected at least one in every class. Received cat: 3, "
                                        "dog: 0."):
        load_folder(folder_config(root, cache=False), (8, 8, 3), seed=0)


# -- decoding -------------------------------------------------------------------------------

def keras_pictures():
    """The pictures scripts/make_folder_refs.py gave Keras (the same seeded generator)."""
    rng = np.random.default_rng(20261206)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for w, h in [(13, 17), (40, 31), (5, 8), (64, 48)]]


@pytest.mark.parametrize("name, kw", [
    ("down", dict(image_size=(9, 7))), ("up", dict(image_size=(50, 45))),
    ("nearest", dict(image_size=(9, 7), interpolation="nearest")),
    ("crop", dict(image_size=(9, 7), crop_to_aspect_ratio=True)),
    ("grey", dict(image_size=(9, 7), color_mode="grayscale")),
])
def test_decoding_and_resizing_match_keras(tmp_path, name, kw):
    refs = np.load(REFS / "folders.npz")
    for i, pixels in enumerate(keras_pictures()):
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels).save(path)
        ours = folders.decode_image(path, kw["image_size"], kw.get("color_mode", "rgb"),
                                    kw.get("crop_to_aspect_ratio", False),
                                    kw.get("interpolation", "bilinear"))
        ref = refs[f"{name}_{i}"]
        assert ours.dtype == np.uint8 and ours.shape == ref.shape
        # cnnlab resizes in bytes (its cache holds bytes; torch's uint8 kernel rounds its
        # fixed-point weights): one grey level from Keras's float32 at most; to grey, Pillow's
        # ITU-R 601 luma and TensorFlow's PNG decoder differ by about one level more
        tolerance = 2.0 if name == "grey" else 1.0 + 1e-3
        assert np.abs(ours.astype(np.float32) - ref).max() <= tolerance, (name, i)


def save_modes(folder: Path) -> dict[str, Path]:
    """One file per Pillow mode that real folders hold."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = picture(rng, (200, 40, 40), (21, 13))
    files = {}

    def save(name, img, fmt, **kw):
        files[name] = folder / f"{name}.{fmt.lower()}"
        img.save(files[name], fmt, **kw)
    save("rgb_jpeg", rgb, "JPEG")
    save("grey_jpeg", rgb.convert("L"), "JPEG")
    save("cmyk_jpeg", rgb.convert("CMYK"), "JPEG")
    save("rgba_png", rgb.convert("RGBA"), "PNG")
    save("la_png", rgb.convert("LA"), "PNG")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette_alpha_png", palette, "PNG", transparency=0)
    save("palette_gif", palette, "GIF")
    save("one_bit_png", rgb.convert("1"), "PNG")
    wide = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    save("sixteen_bit_png", Image.fromarray(wide), "PNG")  # mode I;16
    save("webp", rgb, "WEBP", lossless=True)
    save("bmp", rgb, "BMP")
    return files


@pytest.mark.parametrize("color_mode, channels", [("rgb", 3), ("grayscale", 1), ("rgba", 4)])
def test_every_mode_converts_to_the_requested_colour_mode(tmp_path, color_mode, channels):
    files = save_modes(tmp_path / "modes")
    reds = {}
    for name, path in files.items():
        with Image.open(path) as img:
            mode = img.mode
        out = folders.decode_image(path, (10, 12), color_mode)
        assert out.shape == (10, 12, channels) and out.dtype == np.uint8, (name, mode)
        reds[name] = out[..., 0].mean()
    if color_mode == "rgb":  # colour survives where the file has it
        for name in ("rgb_jpeg", "cmyk_jpeg", "rgba_png", "palette_alpha_png", "webp", "bmp"):
            assert reds[name] > 120, name
    # 16-bit greys are scaled to 8 bits (not clipped to white): the same picture as 8-bit
    sixteen = folders.decode_image(files["sixteen_bit_png"], (10, 12), "grayscale")
    eight = folders.decode_image(files["la_png"], (10, 12), "grayscale")
    assert np.abs(sixteen.astype(int) - eight.astype(int)).max() <= 1


# -- unreadable files -----------------------------------------------------------------------

def test_unreadable_files_are_found_before_training(tmp_path):
    root = make_folder(tmp_path / "f", per_class=4)
    broken = add_broken(root / "cat")
    listing = folders.list_folder(root)
    for workers in (0, 2):
        found = folders.find_unreadable(listing.paths * (20 if workers else 1), workers)
        assert {p for p, _ in found} == {str(b) for b in broken}
    why = dict(folders.find_unreadable(listing.paths))
    assert why[str(root / "cat" / "zz_empty.jpg")] == "empty file (0 bytes)"
    assert why[str(root / "cat" / "zz_text.png")] == "not a picture Pillow can decode"
    assert "truncated" in why[str(root / "cat" / "zz_truncated.jpg")].lower()
    assert "truncated" in why[str(root / "cat" / "zz_liar.png")].lower()


def test_pictures_over_the_pixel_limit_are_skipped_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "MAX_PIXELS", 300)
    path = tmp_path / "big.png"
    picture(np.random.default_rng(0), (1, 1, 1), (20, 20)).save(path)
    assert folders.why_unreadable(str(path)) == "20x20 pixels, more than the limit of 300"


def test_skip_report_counts_and_lists_the_first_few(tmp_path, capsys):
    root = make_folder(tmp_path / "f", per_class=4)
    add_broken(root / "cat")
    for i in range(3):
        (root / "dog" / f"zz_{i}.gif").write_bytes(b"GIF89a")
    fd = load_folder(folder_config(root, cache=False), (8, 8, 3), seed=0)
    err = capsys.readouterr().err
    assert err.startswith(f"cnnlab: skipped 7 unreadable files of 15 in {root} (all listed in "
                          "the run's skipped_files.txt):\n  cat/zz_empty.jpg: empty file (0 bytes)\n")
    assert err.count("\n  ") == 6 and "  ... and 2 more" in err
    assert len(fd.skipped) == 7 and len(fd.store) == 8
    assert folders.skipped_text(fd.skipped).count("\n") == 7


# -- splitting ------------------------------------------------------------------------------

def test_stratified_split_is_seeded_and_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 5])
    a_train, a_val = folders.stratified_split(labels, 0.2, seed=7)
    b_train, b_val = folders.stratified_split(labels, 0.2, seed=7)
    _, c_val = folders.stratified_split(labels, 0.2, seed=8)
    assert np.array_equal(a_val, b_val) and np.array_equal(a_train, b_train)
    assert not np.array_equal(a_val, c_val)
    assert np.bincount(labels[a_val]).tolist() == [10, 6, 1]
    assert sorted([*a_train, *a_val]) == list(range(len(labels)))
    # a class of one picture keeps it for training
    tr, va = folders.stratified_split(np.array([0, 0, 0, 0, 1]), 0.5, seed=0)
    assert 4 in tr and len(va) == 2


def test_train_and_val_folders_are_used_where_they_exist(tmp_path):
    make_folder(tmp_path / "d" / "train", per_class=5)
    make_folder(tmp_path / "d" / "val", per_class=2, seed=1)
    fd = load_folder(folder_config(tmp_path / "d", cache=False), (8, 8, 3), seed=0)
    assert len(fd.train_rows) == 10 and len(fd.val_rows) == 4
    assert "validation: val/" in fd.source
    assert all("/val/" in fd.store.paths[r] for r in fd.val_rows)


def test_keras_split_membership_matches_keras(tmp_path):
    ref = json.loads((REFS / "folders_split.json").read_text())
    root = tmp_path / "split"
    for cls, n in ref["counts"].items():
        make_folder(root, classes=(cls,), per_class=n, formats=[("png", "PNG")])
        for i, p in enumerate(sorted((root / cls).iterdir())):
            p.rename(root / cls / f"{i:02d}.png")
    train, val = image_dataset_from_directory(root, validation_split=ref["validation_split"],
                                              subset="both", seed=ref["seed"], image_size=(4, 4),
                                              verbose=False)
    rel = [[str(Path(p).relative_to(root)) for p in d.file_paths] for d in (train, val)]
    assert rel == [ref["training"], ref["validation"]]


# -- settings and the disk cache --------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    (dict(name="folder"), "Missing `data.path`. Expected the folder of class sub-folders"),
    (dict(image_size=[0, 3]), "Invalid value for argument `image_size`. Expected (height, width)"),
    (dict(color_mode="cmyk"), '`color_mode` must be one of {"rgb", "rgba", "grayscale"}'),
    (dict(validation_split=1.0), "Invalid value for `data.validation_split`. Expected a number "
                                 "in [0, 1). Received validation_split=1.0."),
    (dict(labels="manual"), "Invalid value for `data.labels`. Expected 'inferred'"),
    (dict(cache="yes"), "Invalid value for `data.cache`. Expected true or false."),
    (dict(workers=-1), "Invalid value for `data.workers`. Expected an integer >= 0"),
    (dict(seed=-2), "Invalid value for `data.seed`. Expected an integer >= 0 or null."),
    (dict(colour_mode="rgb"), "colour_mode"),
])
def test_config_errors(kw, message):
    base = {"name": "folder:pics"}
    base.update(kw)
    with pytest.raises(ConfigError) as err:
        check_folder_config({"data_dir": None, "fallback": True, "validation": "test", **base},
                            ["name", "data_dir", "fallback", "validation"])
    assert message in str(err.value)


def test_decode_settings_follow_the_model_and_must_agree_with_it():
    d = folder_config("x")
    assert decode_settings(d, (30, 20, 1)) == ((30, 20), "grayscale")
    with pytest.raises(DataError, match=r"The folder's pictures are resized to 180x180 rgb \(3 "
                                        r"channels\), but the model's input_shape is \[28, 28, 1\]. "
                                        r"Expected data.image_size \[28, 28\] and data.color_mode "
                                        "grayscale"):
        decode_settings(folder_config("x", image_size=[180, 180], color_mode="rgb"), (28, 28, 1))
    with pytest.raises(DataError, match="Expected a model with input_shape"):
        decode_settings(d, (784,))


def test_cache_holds_the_decoded_bytes_and_is_reused(tmp_path):
    root = make_folder(tmp_path / "f", per_class=9)
    paths = folders.list_folder(root).paths
    plain = ImageStore(paths, (11, 9), "rgb", workers=2)
    rows = [np.arange(0, 7), np.arange(7, 18)]
    streamed = [t.numpy() for t in plain.stream(rows)]  # decoded in two worker processes
    cached = ImageStore(paths, (11, 9), "rgb", workers=2)
    assert cached.use_cache(tmp_path / "cache")
    again = ImageStore(paths, (11, 9), "rgb", workers=0)
    assert again.use_cache(tmp_path / "cache") and again.cache_path == cached.cache_path
    for store in (cached, again):
        for a, b in zip(streamed, store.stream(rows)):
            assert np.array_equal(a, b.numpy())
    assert np.array_equal(plain.decode([3, 1]), np.stack([streamed[0][3], streamed[0][1]]))
    # a changed file changes the fingerprint: a new cache, never stale pixels
    before = cached.fingerprint()
    picture(np.random.default_rng(5), (0, 0, 0), (30, 30)).save(paths[0], "JPEG")
    changed = ImageStore(paths, (11, 9), "rgb", workers=0)
    assert changed.fingerprint() != before


def test_a_cache_that_cannot_be_written_falls_back_to_decoding(tmp_path, capsys):
    root = make_folder(tmp_path / "f", per_class=2)
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ImageStore(folders.list_folder(root).paths, (5, 5), "rgb", workers=0)
    assert not store.use_cache(blocker / "cache")
    assert "the decoded-picture cache could not be written" in capsys.readouterr().err
    assert store.decode([0]).shape == (1, 5, 5, 3)


def test_a_file_changed_during_training_is_a_clear_error(tmp_path):
    root = make_folder(tmp_path / "f", per_class=2)
    paths = folders.list_folder(root).paths
    store = ImageStore(paths, (5, 5), "rgb", workers=2)
    Path(paths[1]).write_bytes(b"")
    with pytest.raises(DataError, match="could not be read during training .* It was readable "
                                        "when training started"):
        list(store.stream([np.array([0]), np.array([1]), np.array([2])]))
