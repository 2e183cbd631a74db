"""Unit tests of pae.files.data: registry, fetching with checksums, idx reading, splits, OoD sets, CelebA, scaling."""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest
import torch

import pae.files.data as D
from pae.files import artifacts
from pae.science.images import ImageError, to_model_input, to_uint8
from pae.science.splits import random_split
from pae.stages import data as stage_data
from synthetic import (
    class_images,
    synthetic_env,
    write_celeba,
    write_checksums,
    write_idx,
    write_synthetic_mirror,
)

FMNIST_TEST = "t10k-images-idx3-ubyte.gz"


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A synthetic mirror with its checksum manifest active; no real mirror or system dir leaks in."""
    env = synthetic_env(tmp_path, celeba=True)
    monkeypatch.setenv("PAE_DATA_CHECKSUMS", env["PAE_DATA_CHECKSUMS"])
    monkeypatch.delenv("PAE_DATA_MIRROR", raising=False)
    return tmp_path / "mirror"


def fetch_all(files, mirror, raw_dir):
    for f in files:
        D.fetch_raw(f.source, f.filename, raw_dir, mirror=mirror, download=False)
    return raw_dir


def corrupt_gz(path):
    """Same size and format, different content: a valid gzip of modified bytes."""
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[-1] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(data), mtime=0))


# ---------------------------------------------------------------------------------------------- registry
def test_registry_covers_every_dataset_and_ood_set():
    assert set(D.SOURCES) == {"fashion-mnist", "mnist", "omniglot", "celeba"}
    for entry in D.REGISTRY.values():
        algorithm, digest = entry.checksum
        assert len(digest) == {"sha256": 64, "md5": 32}[algorithm]
        assert entry.urls and all(u.startswith(("http://", "https://")) for u in entry.urls)
    assert [f.filename for f in D.dataset_files("fmnist")][2] == FMNIST_TEST
    assert [f.key for f in D.ood_files("omniglot")] == ["omniglot/images_evaluation.npz"]
    with pytest.raises(D.DataError, match="unknown raw file 'mnist/nope'"):
        D.raw_file("mnist", "nope")


# ---------------------------------------------------------------------------------------------- idx reader
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_round_trip(tmp_path, name):
    x = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)
    np.testing.assert_array_equal(D.read_idx(write_idx(tmp_path / name, x)), x)


def test_read_idx_rejects_malformed_files(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x08\x03\x00\x00" + b"\x00" * 40))
    with pytest.raises(D.IdxFormatError, match="bad.gz: malformed idx header"):
        D.read_idx(bad)
    short = write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(D.IdxFormatError, match=r"shape \(4, 2, 2\).*truncated"):
        D.read_idx(short)
    with pytest.raises(D.MissingDataError, match="does not exist"):
        D.read_idx(tmp_path / "absent.gz")


# ---------------------------------------------------------------------------------------------- fetching
def test_fetch_copies_and_verifies_from_mirror(mirror, tmp_path):
    path, origin = D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "raw", mirror=mirror, download=False)
    assert path == tmp_path / "raw" / "fashion-mnist" / FMNIST_TEST
    assert origin == f"mirror {mirror / 'fashion-mnist' / FMNIST_TEST}"
    assert path.read_bytes() == (mirror / "fashion-mnist" / FMNIST_TEST).read_bytes()
    _, origin = D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "raw", mirror=mirror, download=False)
    assert origin.startswith("existing file")


def test_checksum_failure_names_file_and_expected_and_writes_nothing(mirror, tmp_path):
    corrupt_gz(mirror / "fashion-mnist" / FMNIST_TEST)
    entry = D.raw_file("fashion-mnist", FMNIST_TEST)
    _, expected = D.expected_checksum(entry)
    with pytest.raises(D.DataFetchError) as info:
        D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "raw", mirror=mirror, system_dirs=[tmp_path / "sys"],
                    download=False)
    msg = str(info.value)
    assert "fashion-mnist/t10k-images-idx3-ubyte.gz" in msg and expected in msg
    assert "checksum mismatch" in msg and "got " in msg
    assert f"system dir {tmp_path / 'sys' / 'fashion-mnist' / FMNIST_TEST}: missing" in msg
    assert "download: disabled" in msg and "PAE_DATA_MIRROR" in msg and "data.mirror" in msg
    leftovers = list((tmp_path / "raw").rglob("*")) if (tmp_path / "raw").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_real_registry_rejects_synthetic_files(tmp_path, monkeypatch):
    monkeypatch.delenv("PAE_DATA_CHECKSUMS", raising=False)
    write_synthetic_mirror(tmp_path / "m")
    with pytest.raises(D.DataFetchError, match="c59f468a2f672dc8"):  # the official decompressed sha256
        D.fetch_raw("fashion-mnist", "train-images-idx3-ubyte.gz", tmp_path / "raw", mirror=tmp_path / "m",
                    download=False)


def test_search_order_mirror_then_system_dir_then_url(mirror, tmp_path, monkeypatch):
    sysdir = tmp_path / "sys"
    (sysdir / "fashion-mnist").mkdir(parents=True)
    good = mirror / "fashion-mnist" / FMNIST_TEST
    (sysdir / "fashion-mnist" / FMNIST_TEST).write_bytes(good.read_bytes())
    # mirror first
    _, origin = D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "r1", mirror=mirror, system_dirs=[sysdir])
    assert origin.startswith("mirror ")
    # corrupt mirror → system dir
    url_copy = tmp_path / "url" / FMNIST_TEST
    url_copy.parent.mkdir()
    url_copy.write_bytes(good.read_bytes())
    corrupt_gz(good)
    _, origin = D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "r2", mirror=mirror, system_dirs=[sysdir])
    assert origin == f"system dir {sysdir / 'fashion-mnist' / FMNIST_TEST}"
    # neither → the registry URL (a file:// URL stands in for the network)
    entry = D.raw_file("fashion-mnist", FMNIST_TEST)
    monkeypatch.setitem(D.REGISTRY, entry.key, dataclasses.replace(entry, urls=(url_copy.as_uri(),)))
    _, origin = D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "r3", mirror=mirror, system_dirs=[])
    assert origin == f"download {url_copy.as_uri()}"
    with pytest.raises(D.DataFetchError, match="download: disabled"):
        D.fetch_raw("fashion-mnist", FMNIST_TEST, tmp_path / "r4", mirror=mirror, download=False)


def test_mirror_from_config_beats_environment(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("PAE_DATA_MIRROR", str(mirror))
    assert D.resolve_mirror(None) == mirror
    assert D.resolve_mirror(tmp_path / "other") == tmp_path / "other"
    _, origin = D.fetch_raw("mnist", FMNIST_TEST, tmp_path / "raw", download=False)
    assert origin.startswith(f"mirror {mirror}")
    monkeypatch.delenv("PAE_DATA_MIRROR")
    with pytest.raises(D.DataFetchError, match="mirror: not configured"):
        D.fetch_raw("mnist", "t10k-labels-idx1-ubyte.gz", tmp_path / "raw", download=False)


def test_corrupt_existing_file_is_replaced(mirror, tmp_path):
    dest = tmp_path / "raw" / "mnist" / FMNIST_TEST
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"garbage")
    path, origin = D.fetch_raw("mnist", FMNIST_TEST, tmp_path / "raw", mirror=mirror, download=False)
    assert origin.startswith("mirror ") and path.read_bytes() == (mirror / "mnist" / FMNIST_TEST).read_bytes()
    path.write_bytes(b"garbage")
    with pytest.raises(D.DataFetchError, match=r"existing file .*not a readable gzip file.*\(removed\)"):
        D.fetch_raw("mnist", FMNIST_TEST, tmp_path / "raw", mirror=tmp_path / "nowhere", download=False)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------- splits
def test_random_split_disjoint_and_deterministic():
    tr, va, te = random_split(100, 30, 10, seed=3)
    assert (len(tr), len(va), len(te)) == (60, 30, 10) and not (set(tr) & set(va) or set(va) & set(te))
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(100))
    np.testing.assert_array_equal(va, random_split(100, 30, 10, seed=3)[1])
    assert not np.array_equal(va, random_split(100, 30, 10, seed=4)[1])
    with pytest.raises(ValueError, match="cannot split 100 images"):
        random_split(100, 100, 0, seed=0)


def test_preprocess_idx_dataset(mirror, tmp_path):
    raw = fetch_all(D.dataset_files("fmnist"), mirror, tmp_path / "raw")
    out = tmp_path / "fmnist.npz"
    entry = {"kind": "fmnist", "valid_size": 20, "split_seed": 1}
    arrays = stage_data.run_preprocess_dataset("fmnist", entry, raw, out)
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(["x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"])
        assert npz["x_train"].shape == (44, 1, 28, 28) and npz["x_valid"].shape == (20, 1, 28, 28)
        assert npz["x_test"].shape == (32, 1, 28, 28) and npz["x_train"].dtype == np.uint8
    x_all = D.read_idx(raw / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    tr, va, _ = random_split(64, 20, 0, 1)
    np.testing.assert_array_equal(arrays["x_valid"][:, 0], x_all[va])
    np.testing.assert_array_equal(artifacts.load_split(out, "train"), arrays["x_train"])
    with pytest.raises(D.DataError, match="valid_size = 64"):
        stage_data.run_preprocess_dataset("fmnist", {**entry, "valid_size": 64}, raw, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_preprocess_reverifies_raw_files(mirror, tmp_path):
    raw = fetch_all(D.dataset_files("mnist"), mirror, tmp_path / "raw")
    corrupt_gz(raw / "mnist" / FMNIST_TEST)
    _, expected = D.expected_checksum(D.raw_file("mnist", FMNIST_TEST))
    with pytest.raises(D.DataError, match=f"mnist/{FMNIST_TEST}.*expected {expected}"):
        stage_data.run_preprocess_dataset("mnist", {"kind": "mnist", "valid_size": 20, "split_seed": 0}, raw,
                                          tmp_path / "mnist.npz")
    assert list(tmp_path.glob("mnist.npz*")) == [] and list(tmp_path.glob(".mnist.npz*")) == []


def test_load_split_errors(tmp_path):
    with pytest.raises(D.MissingDataError, match="absent.npz does not exist"):
        artifacts.load_split(tmp_path / "absent.npz", "train")
    np.savez(tmp_path / "o.npz", x=np.zeros((2, 1, 4, 4), np.uint8))
    assert artifacts.load_split(tmp_path / "o.npz", "x").shape == (2, 1, 4, 4)
    with pytest.raises(D.SplitKeyError, match=r"o.npz has no array 'valid'.*\['x'\]"):
        artifacts.load_split(tmp_path / "o.npz", "valid")


# ---------------------------------------------------------------------------------------------- OoD sets
def test_ood_flips_and_mnist(mirror, tmp_path):
    raw = fetch_all(D.dataset_files("fmnist") + D.dataset_files("mnist"), mirror, tmp_path / "raw")
    test = D.read_idx(raw / "fashion-mnist" / FMNIST_TEST)
    idx = {"valid_size": 8, "split_seed": 0}
    stage_data.run_preprocess_dataset("fmnist", {"kind": "fmnist", **idx}, raw, tmp_path / "fmnist.npz")
    stage_data.run_preprocess_dataset("mnist", {"kind": "mnist", **idx}, raw, tmp_path / "mnist.npz")
    h = stage_data.run_build_ood_set(tmp_path / "fmnist.npz", tmp_path / "h.npz", "hflip")["x"]
    v = stage_data.run_build_ood_set(tmp_path / "fmnist.npz", tmp_path / "v.npz", "vflip")["x"]
    np.testing.assert_array_equal(h[:, 0], test[:, :, ::-1])
    np.testing.assert_array_equal(v[:, 0], test[:, ::-1, :])
    assert h[0, 0, 0, 0] == test[0, 0, -1] and v[0, 0, 0, 0] == test[0, -1, 0]
    m = stage_data.run_build_ood_set(tmp_path / "mnist.npz", tmp_path / "m.npz")
    np.testing.assert_array_equal(m["x"][:, 0], D.read_idx(raw / "mnist" / FMNIST_TEST))
    assert artifacts.load_split(tmp_path / "m.npz", "y").shape == (32,)


def test_omniglot_inverted_28x28(mirror, tmp_path):
    raw = fetch_all(D.ood_files("omniglot"), mirror, tmp_path / "raw")
    stage_data.run_preprocess_dataset("omniglot", {"kind": "omniglot", "count": 50}, raw, tmp_path / "om.npz")
    out = stage_data.run_build_ood_set(tmp_path / "om.npz", tmp_path / "o.npz")
    x, y = out["x"], out["y"]
    assert x.shape == (50, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(y[:25], [0] * 20 + [1] * 5)  # character-major order
    # background (True) becomes dark, strokes bright: the mean is low and every image has a bright stroke
    assert x.mean() < 60 and (x.reshape(50, -1).max(axis=1) > 150).all()
    blank = D.omniglot_to_28(np.ones((1, 105, 105), bool))
    ink = D.omniglot_to_28(np.zeros((1, 105, 105), bool))
    assert (blank == 0).all() and (ink == 255).all()
    with pytest.raises(D.DataError, match="81"):
        stage_data.run_preprocess_dataset("omniglot", {"kind": "omniglot", "count": 81}, raw, tmp_path / "o2.npz")
    assert not (tmp_path / "o2.npz").exists()
    with pytest.raises(ValueError, match="transform 'rot90'"):
        stage_data.run_build_ood_set(tmp_path / "om.npz", tmp_path / "o3.npz", "rot90")


# ---------------------------------------------------------------------------------------------- CelebA
def test_celeba_crop_and_resize():
    img = np.zeros((218, 178, 3), np.uint8)
    img[45:173, 25:153] = 200
    out = D.celeba_image(img, size=16, resample="nearest")
    assert out.shape == (3, 16, 16) and (out == 200).all()
    assert D.celeba_image(img, size=64, resample="bicubic").shape == (3, 64, 64)
    with pytest.raises(D.DataError, match="data.celeba_resample"):
        D.celeba_image(img, resample="box")


def test_celeba_preprocess_sorted_official_split(mirror, tmp_path):
    raw = fetch_all(D.dataset_files("celeba"), mirror, tmp_path / "raw")
    arrays = stage_data.run_preprocess_dataset("celeba", {"kind": "celeba", "size": 8, "resample": "bilinear"}, raw,
                                               tmp_path / "celeba.npz")
    assert {k: v.shape for k, v in arrays.items()} == {
        "x_train": (6, 3, 8, 8), "x_valid": (3, 3, 8, 8), "x_test": (3, 3, 8, 8)}
    red = np.concatenate([arrays[k][:, 0].mean(axis=(1, 2)) for k in ("x_train", "x_valid", "x_test")])
    np.testing.assert_allclose(red, 10 * np.arange(1, 13), atol=3)  # file-name order despite shuffled zip


def test_celeba_partition_mismatch(tmp_path, monkeypatch):
    folder = write_celeba(tmp_path / "m" / "celeba")
    part = folder / "list_eval_partition.txt"
    part.write_text(part.read_text() + "999999.jpg 2\n")
    monkeypatch.setenv("PAE_DATA_CHECKSUMS", str(write_checksums(tmp_path / "m", tmp_path / "c.json")))
    raw = fetch_all(D.dataset_files("celeba"), tmp_path / "m", tmp_path / "raw")
    with pytest.raises(D.DataError, match="1 listed images missing"):
        stage_data.run_preprocess_dataset("celeba", {"kind": "celeba", "size": 64, "resample": "bicubic"}, raw,
                                          tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


# ---------------------------------------------------------------------------------------------- scaling
@pytest.mark.parametrize("scale", [255, 256])
def test_to_model_input_ranges(scale):
    x = np.array([0, 1, 128, 254, 255], np.uint8)
    plain = to_model_input(x, scale=scale)
    assert plain.dtype == torch.float32
    assert plain[0] == -0.5 and plain[-1] == pytest.approx(255 / scale - 0.5)
    big = torch.tensor([0, 255], dtype=torch.uint8).repeat(5000)
    g = torch.Generator().manual_seed(0)
    deq = to_model_input(big, scale=scale, dequantize=True, generator=g)
    assert deq.min() >= -0.5 and deq.max() < 256 / scale - 0.5
    assert deq[big == 0].max() < -0.5 + 1 / scale and deq[big == 255].min() >= 255 / scale - 0.5
    noise = (deq - to_model_input(big, scale=scale)) * scale  # the U(0,1) draws
    assert abs(noise.mean() - 0.5) < 0.02 and abs(noise.std() - 12**-0.5) < 0.02
    again = to_model_input(big, scale=scale, dequantize=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(deq, again)


@pytest.mark.parametrize("scale", [255, 256])
def test_to_uint8_inverts(scale):
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    np.testing.assert_array_equal(to_uint8(to_model_input(x, scale=scale), scale=scale), x)
    assert to_uint8(np.array([-3.0, 3.0]), scale).tolist() == [0, 255]
    with pytest.raises(ImageError, match="1 non-finite"):
        to_uint8(torch.tensor([0.0, float("nan")]), scale)
    with pytest.raises(ImageError, match="expects integer pixel values"):
        to_model_input(np.zeros(3, np.float32))


def test_class_images_helper_is_learnable():
    x = class_images(np.array([0, 9]))
    assert x.shape == (2, 28, 28) and x[0, 2:4].mean() > x[1, 2:4].mean()


# ---------------------------------------------------------------------------------------------- real mirror
@pytest.mark.slow
def test_real_mirror(real_mirror, tmp_path, monkeypatch):
    monkeypatch.delenv("PAE_DATA_CHECKSUMS", raising=False)
    present = [e for e in D.REGISTRY.values() if (real_mirror / e.key).is_file()]
    assert {e.source for e in present} >= {"fashion-mnist", "mnist", "omniglot"}
    for entry in present:  # the registry's checksums match the verified mirror
        D.verify_file(real_mirror / entry.key, entry)
    fm = real_mirror / "fashion-mnist"
    x, y = D.read_idx_images(fm / "train-images-idx3-ubyte.gz", fm / "train-labels-idx1-ubyte.gz")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.uint8 and (x.min(), x.max()) == (0, 255)
    assert np.bincount(y).tolist() == [6000] * 10
    _, y_mnist = D.read_idx_images(real_mirror / "mnist" / FMNIST_TEST, real_mirror / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(y_mnist).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    tr, va, _ = random_split(60000, 10000, 0, 0)
    assert len(tr) == 50000 and len(va) == 10000
    images, labels = D.read_omniglot(real_mirror / "omniglot" / "images_evaluation.npz")
    assert images.shape == (13180, 105, 105) and labels.max() == 658
    om = D.omniglot_to_28(images[:100])
    assert om.shape == (100, 1, 28, 28) and om.min() == 0 and om.mean() < 60
    t = to_model_input(x[:1000], scale=255)
    assert t.min() == -0.5 and t.max() == 0.5
