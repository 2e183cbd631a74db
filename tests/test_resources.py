"""Cluster resources from the data (pae.stages.rules.image_shape / train_resources): a 28×28 user npz gets
the resources of 28×28 images, not a 64×64 RGB guess; the preprocessed file wins once it exists."""

from __future__ import annotations

import numpy as np
import pytest

from pae.files.datasets import normalize_entry
from pae.stages import rules


def test_user_npz_without_size_gets_its_own_shape(tmp_path):
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=np.zeros((10, 28, 28), np.uint8), x_test=np.zeros((4, 28, 28), np.uint8))
    entry = normalize_entry("digits", {"kind": "npz", "path": str(path)})
    assert rules.image_shape(entry) == (1, 28, 28)
    res = rules.train_resources(rules.image_shape(entry), epochs=100)
    assert res == {"mem_mb": 4000, "runtime": 110}  # not 24000 MB / 560 min as for 3x64x64
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, x=np.zeros((10, 64, 64, 3), np.uint8))
    assert rules.image_shape(normalize_entry("rgb", {"kind": "npz", "path": str(rgb)})) == (3, 64, 64)
    assert rules.train_resources((3, 64, 64), 10)["mem_mb"] == 24000


def test_preprocessed_file_wins_and_builtins_need_no_file(tmp_path):
    processed = tmp_path / "processed.npz"
    np.savez_compressed(processed, x_train=np.zeros((3, 3, 32, 48), np.uint8))
    entry = normalize_entry("faces", {"kind": "npz", "path": str(tmp_path / "absent.npz")})
    assert rules.image_shape(entry, processed) == (3, 32, 48)
    assert rules.image_shape(normalize_entry("fmnist", None), tmp_path / "not-yet.npz") == (1, 28, 28)


def test_unreadable_user_file_is_one_clear_error(tmp_path):
    entry = normalize_entry("gone", {"kind": "npz", "path": str(tmp_path / "gone.npz")})
    with pytest.raises(ValueError, match="gone.npz"):
        rules.image_shape(entry)


def test_folder_reads_its_first_image(tmp_path):
    from PIL import Image

    (tmp_path / "imgs" / "train").mkdir(parents=True)
    Image.new("L", (20, 12)).save(tmp_path / "imgs" / "train" / "a.png")
    entry = normalize_entry("imgs", {"kind": "folder", "path": str(tmp_path / "imgs"), "channels": 1,
                                     "split": {"valid": 0.1}})
    assert rules.image_shape(entry) == (1, 12, 20)
