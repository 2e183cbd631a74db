"""pae.files.user_images: a user's images in (folders, image files, .npz, .npy) and out (grids, PNG folders,
arrays), FID statistics files; errors name the path and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pae.files.datasets import DatasetError
from pae.files.user_images import (
    load_fid_stats,
    read_user_images,
    read_user_training,
    save_fid_stats,
    write_user_images,
)


def _pngs(folder, images, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img if img.ndim == 2 else img.transpose(1, 2, 0), mode).save(folder / f"{i:03d}.png")


def test_folders_image_files_and_arrays_read_alike(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    _pngs(tmp_path / "gray", x)
    np.savez(tmp_path / "x.npz", x=x)
    np.save(tmp_path / "x.npy", x)
    for path in ("gray", "x.npz", "x.npy"):
        got = read_user_images(tmp_path / path)
        assert got.shape == (5, 1, 28, 28) and np.array_equal(got[:, 0], x), path
    assert np.array_equal(read_user_images(tmp_path / "gray" / "002.png")[0, 0], x[2])
    rgb = rng.integers(0, 256, (3, 3, 28, 28), dtype=np.uint8)
    _pngs(tmp_path / "rgb", rgb)
    assert np.array_equal(read_user_images(tmp_path / "rgb"), rgb)  # RGB files stay RGB
    _pngs(tmp_path / "split" / "train", x[:4])
    _pngs(tmp_path / "split" / "valid", x[4:])
    xt, xv = read_user_training(tmp_path / "split")
    assert len(xt) == 4 and len(xv) == 1


def test_bad_folders_say_what_is_wrong(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: an existing folder with no readable image files \\(it is empty\\)"):
        read_user_images(tmp_path / "empty")
    with pytest.raises(DatasetError, match="missing: no such file or folder"):
        read_user_images(tmp_path / "missing")
    _pngs(tmp_path / "mixed", [np.zeros((28, 28), np.uint8)])
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mixed" / "big.png")
    with pytest.raises(DatasetError, match="different sizes.*resize them to one size"):
        read_user_images(tmp_path / "mixed")


def test_outputs_png_grid_folder_and_arrays(tmp_path):
    images = np.random.default_rng(1).random((6, 1, 28, 28)).astype(np.float32)
    write_user_images(tmp_path / "grid.png", images)
    assert Image.open(tmp_path / "grid.png").size == (3 * 29 - 1, 2 * 29 - 1)
    folder = write_user_images(tmp_path / "out", images)
    back = read_user_images(folder)
    np.testing.assert_array_equal(back, np.rint(images * 255).astype(np.uint8))
    with pytest.raises(DatasetError, match="out: exists and is not an empty folder"):
        write_user_images(tmp_path / "out", images)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    with pytest.raises(DatasetError, match="unsupported output type .gif"):
        write_user_images(tmp_path / "s.gif", images)


def test_fid_statistics_round_trip_and_checks(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3) * 2
    save_fid_stats(tmp_path / "s.npz", mu, sigma, features="inception", normalize="minmax", n_images=10)
    m, s, meta = load_fid_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(m, mu) and np.testing.assert_array_equal(s, sigma)
    assert meta["features"] == "inception" and meta["n_images"] == 10
    np.savez(tmp_path / "pytorch_fid.npz", mu=mu, sigma=sigma)  # pytorch-fid's own files: no meta
    assert load_fid_stats(tmp_path / "pytorch_fid.npz")[2] == {}
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=np.eye(2))
    with pytest.raises(DatasetError, match="not a mean and its covariance"):
        load_fid_stats(tmp_path / "bad.npz")
    with pytest.raises(DatasetError, match="holds FID statistics"):
        read_user_images(tmp_path / "s.npz")
