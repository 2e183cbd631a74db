"""Unit tests of pae.files.datasets: registry entries, npz / folder / CelebA / idx / Omniglot readers, checks, schema."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

import pae.files.data as D
import pae.files.datasets as S
from pae.science.splits import random_split
from synthetic import celeba_names, write_checksums, write_idx_dataset, write_omniglot_npz

# The YAML example of docs/notes-data.md ("Any image dataset through config"), kept in sync by a test below.
EXAMPLE = """
datasets:
  fmnist: null                       # built-in, options from the data section
  celeba: {kind: celeba, size: 64, resample: bicubic}
  digits:                            # one .npz with one array x (and labels y), split here
    kind: npz
    path: /data/digits.npz
    split: {valid: 0.1, test: 0.1, seed: 0}
    channels: 1
  faces:                             # an image folder with train/ valid/ test/ subfolders
    kind: folder
    path: /data/faces
    channels: 3
    crop: [45, 25, 128, 128]         # top, left, height, width
    size: [64, 64]
    resample: bicubic
"""


def save(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def gray(n: int, h: int = 28, w: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, h, w), dtype=np.uint8)


def write_png_dir(folder: Path, images: np.ndarray, prefix: str = "img") -> list[Path]:
    """uint8 (N, C, H, W) → one PNG per image (sorted names)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, img in enumerate(images):
        p = folder / f"{prefix}{i:03d}.png"
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(p)
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------- npz
def test_npz_three_splits_with_labels(tmp_path):
    x = {s: gray(n, seed=i) for i, (s, n) in enumerate((("train", 12), ("valid", 4), ("test", 5)))}
    y = {s: np.arange(len(v)) % 3 for s, v in x.items()}
    path = save(tmp_path / "d.npz", **{f"x_{s}": v for s, v in x.items()}, **{f"y_{s}": v for s, v in y.items()})
    res = S.build_dataset({"kind": "npz", "path": str(path)}, name="mine")
    for s in S.SPLITS:
        np.testing.assert_array_equal(res.arrays[f"x_{s}"], x[s])
        assert res.arrays[f"y_{s}"].dtype == np.int64
    assert res.info["image_shape"] == [1, 28, 28] and res.info["labels"] is True
    assert res.info["counts"] == {"x_train": 12, "x_valid": 4, "x_test": 5}
    assert res.info["entry"]["split"] is None and res.info["name"] == "mine"


def test_npz_one_x_float_split_by_fraction_and_count(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((50, 28, 28)).astype(np.float32)  # (N, H, W) floats in [0, 1]
    x[0, 0, 0], x[1, 0, 0] = 0.0, 1.0
    path = save(tmp_path / "one.npz", x=x, y=np.arange(50))
    entry = {"kind": "npz", "path": str(path), "split": {"valid": 0.2, "test": 7, "seed": 3}}
    a = S.build_dataset(entry).arrays
    assert [len(a[f"x_{s}"]) for s in S.SPLITS] == [33, 10, 7]
    ids = np.concatenate([a[f"y_{s}"] for s in S.SPLITS])
    assert sorted(ids) == list(range(50))  # disjoint and complete
    for s in S.SPLITS:  # labels travel with their images; floats → round(255·x)
        np.testing.assert_array_equal(a[f"x_{s}"][:, 0], np.rint(x[a[f"y_{s}"]] * 255).astype(np.uint8))
    assert a["x_train"].dtype == np.uint8 and a["x_train"].shape[1:] == (1, 28, 28)
    b = S.build_dataset(entry).arrays
    np.testing.assert_array_equal(a["y_valid"], b["y_valid"])  # same seed, same split
    c = S.build_dataset({**entry, "split": {"valid": 0.2, "test": 7, "seed": 4}}).arrays
    assert not np.array_equal(a["y_valid"], c["y_valid"])


def test_npz_train_test_draws_valid_and_resizes(tmp_path):
    path = save(tmp_path / "tt.npz", x_train=gray(20, 32, 32), x_test=gray(6, 32, 32, seed=2))
    res = S.build_dataset({"kind": "npz", "path": str(path), "split": {"valid": 5}, "size": 28,
                           "resample": "bilinear"})
    assert {k: v.shape for k, v in res.arrays.items()} == {
        "x_train": (15, 1, 28, 28), "x_valid": (5, 1, 28, 28), "x_test": (6, 1, 28, 28)}


BAD_NPZ = {  # name: (arrays, extra entry options, words the error must contain besides the file name)
    "float_range": ({"x": np.full((8, 28, 28), 2.0)}, {}, "x / 255"),
    "negative_float": ({"x": np.full((8, 28, 28), -0.5)}, {}, "rescale them to [0, 1]"),
    "nan": ({"x": np.where(np.eye(28)[None] > 0, np.nan, 0.5).repeat(8, 0)}, {}, "NaN/inf"),
    "int64": ({"x": np.zeros((8, 28, 28), np.int64)}, {}, "x.astype(np.uint8)"),
    "flat_vectors": ({"x": np.zeros((8, 784), np.uint8)}, {}, "(N, H, W) or (N, C, H, W)"),
    "channels_last": ({"x": np.zeros((8, 28, 28, 3), np.uint8)}, {}, "x.transpose(0, 3, 1, 2)"),
    "two_channels": ({"x": np.zeros((8, 2, 28, 28), np.uint8)}, {}, "must be 1 (grayscale) or 3 (RGB)"),
    "channel_mismatch": ({"x": np.zeros((8, 1, 28, 28), np.uint8)}, {"channels": 3}, "channels: 3"),
    "empty_split": ({"x_train": gray(4), "x_valid": gray(0), "x_test": gray(2)}, {"split": None},
                    "at least one image"),
    "odd_size": ({"x": np.zeros((8, 30, 30), np.uint8)}, {}, "size: [64, 64]"),
    "label_count": ({"x": gray(8), "y": np.arange(7)}, {}, "one per image"),
    "float_labels": ({"x": gray(8), "y": np.zeros(8)}, {}, "y.astype(np.int64)"),
    "wrong_arrays": ({"images": gray(8)}, {}, "expected x_train, x_valid, x_test"),
    "split_missing": ({"x": gray(8)}, {"split": None}, "add split"),
    "split_not_needed": ({"x_train": gray(4), "x_valid": gray(2), "x_test": gray(2)},
                         {"split": {"valid": 1, "test": 1}}, "set split: null"),
    "too_few_images": ({"x": gray(3)}, {"split": {"valid": 2, "test": 1}}, "lower split.valid"),
    "mixed_split_sizes": ({"x_train": gray(4), "x_valid": gray(2, 32, 32), "x_test": gray(2)}, {"split": None},
                          "size: [H, W]"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_npz_bad_input_names_file_and_fix(tmp_path, case):
    arrays, extra, fix = BAD_NPZ[case]
    path = save(tmp_path / f"{case}.npz", **arrays)
    entry = {"kind": "npz", "path": str(path), "split": {"valid": 0.25, "test": 0.25}, **extra}
    with pytest.raises(S.DatasetError) as info:
        S.write_processed(entry, tmp_path / "out.npz")
    assert str(path) in str(info.value) and fix in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)
    assert list(tmp_path.glob("out.npz*")) == [] and list(tmp_path.glob(".out.npz*")) == []  # nothing written


def test_npz_unreadable_pickled_and_checksum(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(S.DatasetError, match=f"{garbage}: cannot read it as a NumPy .npz archive.*np.savez"):
        S.read_npz(garbage)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(S.DatasetError, match="pickled.npz: cannot read it as a NumPy .npz archive"):
        S.read_npz(pickled)
    with pytest.raises(S.DatasetError, match="missing.npz: npz file not found; fix the entry's path"):
        S.read_npz(tmp_path / "missing.npz")
    good = save(tmp_path / "good.npz", x_train=gray(4), x_valid=gray(2), x_test=gray(2))
    with pytest.raises(S.DatasetError, match="good.npz: sha256 .* does not match"):
        S.read_npz(good, sha256="0" * 64)
    assert S.read_npz(good, sha256=D.file_digest(good)).info["counts"]["x_train"] == 4


# ---------------------------------------------------------------------------------------------- folder
def test_folder_split_subfolders_with_classes(tmp_path):
    root = tmp_path / "imgs"
    x = {s: gray(n, seed=i) for i, (s, n) in enumerate((("train", 6), ("valid", 2), ("test", 4)))}
    for s, imgs in x.items():  # two class folders per split: first half "cat", second half "dog"
        h = len(imgs) // 2
        write_png_dir(root / s / "cat", imgs[:h])
        write_png_dir(root / s / "dog", imgs[h:])
    (root / "train" / "README.txt").write_text("not an image")  # other files are ignored
    res = S.build_dataset({"kind": "folder", "path": str(root), "channels": 1})
    for s in S.SPLITS:
        np.testing.assert_array_equal(res.arrays[f"x_{s}"], x[s])  # PNG is lossless; sorted order
        np.testing.assert_array_equal(res.arrays[f"y_{s}"], np.repeat([0, 1], len(x[s]) // 2))
    assert res.info["classes"] == ["cat", "dog"]


def test_folder_flat_with_split_rgb_crop_resize(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(20, 3, 40, 36), dtype=np.uint8)
    write_png_dir(tmp_path / "flat", imgs)
    entry = {"kind": "folder", "path": str(tmp_path / "flat"), "channels": 3, "crop": [4, 2, 32, 32],
             "size": [16, 16], "split": {"valid": 0.25, "test": 0.25, "seed": 1}}
    a = S.build_dataset(entry).arrays
    assert [a[f"x_{s}"].shape for s in S.SPLITS] == [(10, 3, 16, 16), (5, 3, 16, 16), (5, 3, 16, 16)]
    assert "y_train" not in a
    expected = np.stack([S.transform_image(i, [4, 2, 32, 32], [16, 16]) for i in imgs])
    got = np.concatenate([a[f"x_{s}"] for s in S.SPLITS])
    assert sorted(map(bytes, got)) == sorted(map(bytes, expected))  # every image once, cropped then resized
    gray_a = S.build_dataset({**entry, "channels": 1}).arrays  # colour files converted to grayscale
    assert gray_a["x_train"].shape == (10, 1, 16, 16)


def test_folder_bad_inputs(tmp_path):
    mixed = tmp_path / "mixed"
    write_png_dir(mixed, gray(3, 28, 28))
    write_png_dir(mixed, gray(1, 32, 32), prefix="zbig")
    entry = {"kind": "folder", "path": str(mixed), "channels": 1, "split": {"valid": 1, "test": 1}}
    with pytest.raises(S.DatasetError, match=r"different sizes: .*img000.png is 28×28, .*zbig000.png is 32×32.*"
                                             r"set size: \[H, W\]"):
        S.build_dataset(entry)
    assert S.build_dataset({**entry, "size": [28, 28]}).info["counts"]["x_train"] == 2  # the fix works

    broken = tmp_path / "broken"
    write_png_dir(broken, gray(3))
    (broken / "img001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(S.DatasetError, match=r"broken/img001.png: cannot read this image file.*replace or delete"):
        S.build_dataset({**entry, "path": str(broken)})

    empty = tmp_path / "empty"
    write_png_dir(empty / "train", gray(3))
    write_png_dir(empty / "valid", gray(1))
    (empty / "test").mkdir()
    with pytest.raises(S.DatasetError, match=r"empty/test: no image files .* at least one image"):
        S.build_dataset({"kind": "folder", "path": str(empty), "channels": 1})

    with pytest.raises(S.DatasetError, match=r"img000.png: the crop .* does not fit in a 28×28 image"):
        S.build_dataset({**entry, "path": str(broken), "crop": [0, 0, 32, 32]})
    odd = tmp_path / "odd"
    write_png_dir(odd, gray(4, 30, 30))
    with pytest.raises(S.DatasetError, match=r"odd: images are 30×30.*28×28 and 64×64.*size: \[64, 64\]"):
        S.build_dataset({**entry, "path": str(odd)})
    with pytest.raises(S.DatasetError, match="flat folder .* needs split"):
        S.build_dataset({**entry, "path": str(odd), "split": None})
    with pytest.raises(S.DatasetError, match="image folder not found"):
        S.build_dataset({**entry, "path": str(tmp_path / "nowhere")})


# ---------------------------------------------------------------------------------------------- CelebA
def write_celeba_like(folder: Path, splits=(20, 8, 8)) -> tuple[Path, Path, Path]:
    """Official layout: img_align_celeba.zip (178×218 JPEGs under img_align_celeba/, stored unsorted) and
    list_eval_partition.txt. Inside rows 45:173 / cols 25:153 each image is a flat colour (≈ 7·i, 200, 60);
    outside it is black, so a shifted crop would show. Also returns a folder with the same JPEGs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = celeba_names(sum(splits))
    extracted = folder / "extracted"
    extracted.mkdir()
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:
        for i in np.random.default_rng(0).permutation(len(names)):
            arr = np.zeros((218, 178, 3), np.uint8)
            arr[45:173, 25:153] = (7 * (i + 1), 200, 60)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=95)
            zf.writestr(f"img_align_celeba/{names[i]}", buf.getvalue())
            (extracted / names[i]).write_bytes(buf.getvalue())
    codes = np.repeat([0, 1, 2], splits)
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {c}\n" for n, c in zip(names, codes, strict=True)))
    return folder / "img_align_celeba.zip", folder / "list_eval_partition.txt", extracted


def test_celeba_reader_paper_crop_and_folder_equivalence(tmp_path):
    zip_path, part, extracted = write_celeba_like(tmp_path / "celeba")
    res = S.read_celeba(zip_path, part, size=64, resample="bicubic")
    a = res.arrays
    assert {k: v.shape for k, v in a.items()} == {
        "x_train": (20, 3, 64, 64), "x_valid": (8, 3, 64, 64), "x_test": (8, 3, 64, 64)}
    allx = np.concatenate([a[f"x_{s}"] for s in S.SPLITS]).astype(int)
    green = allx[:, 1]
    assert green[:, 2:-2, 2:-2].min() > 185  # only the bright crop region: the crop sits at rows 45, cols 25
    np.testing.assert_allclose(allx[:, 0].mean(axis=(1, 2)), 7 * np.arange(1, 37), atol=4)  # file-name order
    # The folder kind with the paper's crop as options gives identical arrays (same PIL crop + resize).
    for s in S.SPLITS:
        (tmp_path / "f" / s).mkdir(parents=True)
    for k, name in enumerate(celeba_names(36)):
        s = "train" if k < 20 else "valid" if k < 28 else "test"
        (extracted / name).rename(tmp_path / "f" / s / name)
    f = S.build_dataset({"kind": "folder", "path": str(tmp_path / "f"), "channels": 3,
                         "crop": [45, 25, 128, 128], "size": [64, 64], "resample": "bicubic"}).arrays
    for s in S.SPLITS:
        np.testing.assert_array_equal(f[f"x_{s}"], a[f"x_{s}"])


def test_celeba_entry_via_mirror_checksum_and_missing_terms(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_celeba_like(mirror / "celeba", splits=(6, 3, 3))
    monkeypatch.delenv("PAE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("PAE_DATA_CHECKSUMS", str(write_checksums(mirror, tmp_path / "sums.json")))
    out = tmp_path / "processed" / "celeba.npz"
    res = S.write_processed({"kind": "celeba", "size": 32}, out, tmp_path / "raw", name="celeba",
                            mirror=mirror, download=False, info_path=tmp_path / "processed" / "celeba.json")
    with np.load(out) as npz:
        assert sorted(npz.files) == ["x_test", "x_train", "x_valid"]
        assert npz["x_train"].shape == (6, 3, 32, 32)
        np.testing.assert_array_equal(npz["x_test"], res.arrays["x_test"])
    assert (tmp_path / "raw" / "celeba" / "img_align_celeba.zip").is_file()  # fetched, verified copy
    assert json.loads((tmp_path / "processed" / "celeba.json").read_text())["entry"]["size"] == 32

    monkeypatch.delenv("PAE_DATA_CHECKSUMS")  # the real MD5s: the synthetic zip no longer verifies
    with pytest.raises(S.DatasetError, match="checksum mismatch"):
        S.build_dataset({"kind": "celeba"}, tmp_path / "raw", fetch=False)
    with pytest.raises(S.DatasetError) as info:
        S.build_dataset({"kind": "celeba"}, tmp_path / "raw2", name="celeba", mirror=tmp_path / "empty",
                        system_dirs=[], download=False)
    msg = str(info.value)
    for words in ("datasets.celeba", "non-commercial", S.CELEBA_PAGE, "<mirror>/celeba/", "img_align_celeba.zip",
                  "list_eval_partition.txt", "data.mirror"):
        assert words in msg, words
    assert not (tmp_path / "raw2" / "celeba" / "img_align_celeba.zip").exists()


# ---------------------------------------------------------------------------------------------- built-in idx / Omniglot
def test_builtin_fmnist_and_omniglot_match_data_stage(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_idx_dataset(mirror / "fashion-mnist", n_train=40, n_test=12)
    write_omniglot_npz(mirror / "omniglot" / "images_evaluation.npz", n_chars=2, n_drawers=5)
    monkeypatch.delenv("PAE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("PAE_DATA_CHECKSUMS", str(write_checksums(mirror, tmp_path / "sums.json")))
    defaults = {"valid_size": 8, "split_seed": 2, "omniglot_count": 7}
    res = S.build_dataset(None, tmp_path / "raw", name="fmnist", mirror=mirror, data_defaults=defaults)
    # the raw idx files read directly, split by the one split helper
    fm = tmp_path / "raw" / "fashion-mnist"
    x_tr, y_tr = D.read_idx_images(fm / "train-images-idx3-ubyte.gz", fm / "train-labels-idx1-ubyte.gz")
    x_te, _ = D.read_idx_images(fm / "t10k-images-idx3-ubyte.gz", fm / "t10k-labels-idx1-ubyte.gz")
    train, valid, _ = random_split(40, 8, 0, 2)
    assert sorted(res.arrays) == ["x_test", "x_train", "x_valid", "y_test", "y_train", "y_valid"]
    np.testing.assert_array_equal(res.arrays["x_train"], x_tr[train])
    np.testing.assert_array_equal(res.arrays["y_valid"], y_tr[valid])
    np.testing.assert_array_equal(res.arrays["x_test"], x_te)
    om = S.build_dataset({"kind": "omniglot"}, tmp_path / "raw", name="omniglot", mirror=mirror,
                         data_defaults=defaults)
    assert om.arrays["x"].shape == (7, 1, 28, 28) and om.arrays["y"].shape == (7,)


# ---------------------------------------------------------------------------------------------- registry
def test_validate_registry_example_and_defaults():
    reg = S.validate_registry(yaml.safe_load(EXAMPLE)["datasets"],
                              {"valid_size": 5000, "split_seed": 1, "celeba_size": 32})
    assert reg["fmnist"] == {"kind": "fmnist", "valid_size": 5000, "split_seed": 1}
    assert reg["celeba"]["size"] == 64  # explicit option beats the data-section default
    assert reg["digits"]["split"] == {"valid": 0.1, "test": 0.1, "seed": 0} and reg["digits"]["size"] is None
    assert reg["faces"]["crop"] == [45, 25, 128, 128] and reg["faces"]["size"] == [64, 64]
    assert S.expected_shape(reg["faces"]) == (3, 64, 64) and S.expected_shape(reg["digits"]) == (1, None, None)
    assert list(S.validate_registry(["fmnist", "mnist"])) == ["fmnist", "mnist"]  # today's list form


def test_validate_registry_reports_every_problem_once():
    bad = {
        "odd": {"kind": "folder", "path": "/x", "channels": 3, "size": [30, 30]},
        "nochan": {"kind": "folder", "path": "/x"},
        "typo": {"kind": "npz", "path": "/x.npz", "chanels": 1},
        "what": {"kind": "hdf5", "path": "/x"},
        "fmnist": {"kind": "npz", "path": "/x.npz"},
        "bad name": {"kind": "fmnist"},
        "frac": {"kind": "npz", "path": "/x.npz", "split": {"valid": 1.5}},
        "smallceleba": {"kind": "celeba", "size": 30},
        "nokind": {"valid_size": 5},
    }
    with pytest.raises(S.DatasetError) as info:
        S.validate_registry(bad)
    msg = str(info.value)
    assert msg.startswith("datasets: 9 problems:")
    for words in ("datasets.odd: images are 30×30", "28×28 and 64×64", "datasets.nochan: kind folder needs option "
                  "'channels'", "datasets.typo: unknown options ['chanels']", "datasets.what.kind: 'hdf5'",
                  "reserved for the built-in fmnist", "name 'bad name' is not allowed",
                  "datasets.frac.split.valid: a fraction must lie strictly between 0 and 1",
                  "datasets.smallceleba: images are 30×30", "datasets.nokind: needs kind"):
        assert words in msg, words
    with pytest.raises(S.DatasetError, match="needs an entry"):
        S.validate_registry({"mine": None})
    with pytest.raises(S.DatasetError, match=r"\['omniglot', 'mine'\] cannot be listed by name"):
        S.validate_registry(["fmnist", "omniglot", "mine"])
    with pytest.raises(S.DatasetError, match="registry is empty"):
        S.validate_registry({})


def test_net_size_rule_matches_nets():
    from pae.science.nets import _check_image_shape

    for h, w in [(28, 28), (64, 64), (32, 48), (30, 30), (28, 30), (2, 2)]:
        try:
            _check_image_shape((1, h, w))
            nets_ok = True
        except ValueError:
            nets_ok = False
        assert (S.net_size_problem(h, w) is None) == nets_ok, (h, w)


def test_schema_fragment_accepts_examples_rejects_bad():
    schema = S.registry_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    v.validate(yaml.safe_load(EXAMPLE)["datasets"])
    v.validate(["fmnist", "celeba"])
    for bad in ({"x": {"kind": "npz"}},  # no path
                {"x": {"kind": "folder", "path": "/p"}},  # no channels
                {"x": {"kind": "fmnist", "size": 64}},  # option of another kind
                {"x": {"kind": "npz", "path": "/p", "crop": [1, 2, 3]}},
                {"x y": {"kind": "fmnist"}},
                ["omniglot"]):  # OoD only, not a training dataset
        assert not v.is_valid(bad), bad
    for entry in S.validate_registry(yaml.safe_load(EXAMPLE)["datasets"]).values():
        v.validate({"e": entry})  # normalised entries are valid too


def test_docs_show_the_tested_example(repo_root):
    notes = (repo_root / "docs" / "notes-data.md").read_text()
    assert EXAMPLE.strip() in notes


# ---------------------------------------------------------------------------------------------- OoD-only user sets
def test_ood_only_user_npz_and_folder_are_one_set_without_split(tmp_path):
    """An .npz with one array x, or a folder of images, as an OoD set: all images, no split fractions."""
    from pae.settings import Settings
    from pae.stages.rules import ood_sets, trained_datasets, training_dataset

    x = gray(7)
    npz = save(tmp_path / "mine.npz", x=x)
    write_png_dir(tmp_path / "pngs", gray(5, seed=1))
    built = S.build_dataset({"kind": "npz", "path": str(npz), "ood_only": True}, name="mine")
    assert list(built.arrays) == ["x"] and np.array_equal(built.arrays["x"], x)
    folder = S.build_dataset({"kind": "folder", "path": str(tmp_path / "pngs"), "channels": 1, "ood_only": True})
    assert list(folder.arrays) == ["x"] and folder.arrays["x"].shape == (5, 1, 28, 28)
    with pytest.raises(S.DatasetError, match="ood_only: true uses all images as one OoD set; remove split"):
        S.normalize_entry("mine", {"kind": "npz", "path": str(npz), "ood_only": True,
                                   "split": {"valid": 0.1, "test": 0.1}})
    with pytest.raises(S.DatasetError, match="datasets.mine.ood_only: expected true"):
        S.normalize_entry("mine", {"kind": "npz", "path": str(npz), "ood_only": "yes"})
    with pytest.raises(S.DatasetError, match="holds \\['x'\\] only; add split"):  # without the option: as before
        S.build_dataset({"kind": "npz", "path": str(npz)})
    from pae.config import paper_defaults

    config = paper_defaults()
    config["datasets"] = {"fmnist": None, "mine": {"kind": "npz", "path": str(npz), "ood_only": True}}
    config["ood"]["sets"] = [{"name": "mine", "dataset": "mine"}]
    config["ood"]["fig5_set"] = "mine"
    config = Settings.from_config(config)
    assert ood_sets(config)[0]["images"] == "all"
    assert trained_datasets(config) == ["fmnist"]
    with pytest.raises(ValueError, match="OoD-only set"):
        training_dataset(config, "mine", "ood.in_dataset")
    schema = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("workflow/schemas/config.schema.yaml")
                            .read_text())
    assert "ood_only" in json.dumps(schema)
