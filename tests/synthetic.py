"""Tiny synthetic stand-ins for the raw data files, in the mirror's formats; reusable by every stage's tests.

    env = synthetic_env(tmp_path)          # mirror + checksum manifest; env has PAE_DATA_MIRROR/PAE_DATA_CHECKSUMS
    run(snakemake_cmd(repo, tmp_path / "work", "table2"), env)   # snakemake with config/test.yaml

The files cannot match the registry's SHA-256 of the real data, so `write_checksums` writes a manifest
that pae.files.data reads from $PAE_DATA_CHECKSUMS (test data only) in place of the registry values.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from pae.files.data import REGISTRY, file_digest

# config/test.yaml holds out 40 validation images; 232 leaves 192 for training (6 batches of 32).
MIRROR = {"n_train": 232, "n_test": 64}

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """An idx file (uint8 type code 0x08) of ``array``; gzip-compressed when the name ends in .gz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if path.name.endswith(".gz"):
        blob = gzip.compress(blob, mtime=0)
    path.write_bytes(blob)
    return path


def class_images(labels: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """uint8 (N, size, size): faint noise plus a bright bar whose row depends on the label (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, size=(len(labels), size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + 2 * int(label) % (size - 4)
        x[i, row : row + 2, 4 : size - 4] = 200 + rng.integers(0, 56)
    return x


def write_idx_dataset(folder: str | Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """The four official idx .gz files of an MNIST-like dataset, with labels cycling 0..9."""
    folder = Path(folder)
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / IDX_FILES[split][0], class_images(labels, seed=s))
        write_idx(folder / IDX_FILES[split][1], labels)
    return folder


def write_omniglot_npz(path: str | Path, n_chars: int = 4, n_drawers: int = 20, size: int = 105,
                       seed: int = 0) -> Path:
    """The bitsandscraps layout: images bool (chars, drawers, size, size), True = white background,
    False = ink; labels int64 (chars, drawers) = character index. Each image holds one dark stroke."""
    rng = np.random.default_rng(seed)
    images = np.ones((n_chars, n_drawers, size, size), dtype=bool)
    for c in range(n_chars):
        for d in range(n_drawers):
            r, c0 = rng.integers(10, size - 30, size=2)
            images[c, d, r : r + 6, c0 : c0 + 25] = False
    labels = np.repeat(np.arange(n_chars, dtype=np.int64)[:, None], n_drawers, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, images=images, labels=labels)
    return path


def celeba_names(n: int) -> list[str]:
    return [f"{i:06d}.jpg" for i in range(1, n + 1)]


def write_celeba(folder: str | Path, splits: tuple[int, int, int] = (6, 3, 3), seed: int = 0) -> Path:
    """img_align_celeba.zip (218x178 jpgs, stored in shuffled order) and list_eval_partition.txt.

    Image ``i`` (1-based) is a flat colour (10·i, 255 − 10·i, 128): order checks survive JPEG.
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = celeba_names(sum(splits))
    codes = np.repeat([0, 1, 2], splits)
    order = np.random.default_rng(seed).permutation(len(names))
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:
        for j in order:
            i = j + 1
            img = Image.new("RGB", (178, 218), (10 * i % 256, (255 - 10 * i) % 256, 128))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=95)
            zf.writestr(f"img_align_celeba/{names[j]}", buf.getvalue())
    lines = [f"{n} {c}" for n, c in zip(names, codes, strict=True)]
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_synthetic_mirror(root: str | Path, *, n_train: int = 64, n_test: int = 32, omniglot_chars: int = 4,
                           celeba: bool = False, seed: int = 0) -> Path:
    """A mirror folder laid out like the real one: fashion-mnist/, mnist/, omniglot/ (and celeba/)."""
    root = Path(root)
    write_idx_dataset(root / "fashion-mnist", n_train, n_test, seed)
    write_idx_dataset(root / "mnist", n_train, n_test, seed + 10)
    write_omniglot_npz(root / "omniglot" / "images_evaluation.npz", n_chars=omniglot_chars, seed=seed)
    if celeba:
        write_celeba(root / "celeba", seed=seed)
    return root


def write_checksums(mirror: str | Path, path: str | Path) -> Path:
    """JSON manifest {'<source>/<file>': sha256} of the registry files present in ``mirror``
    (decompressed content for .gz), for $PAE_DATA_CHECKSUMS."""
    mirror = Path(mirror)
    table = {
        key: file_digest(mirror / key, "sha256", decompress=entry.gzipped)
        for key, entry in REGISTRY.items()
        if (mirror / key).is_file()
    }
    path = Path(path)
    path.write_text(json.dumps(table, indent=1))
    return path


def synthetic_env(tmp_path: str | Path, **mirror_kwargs) -> dict[str, str]:
    """Write ``tmp_path/mirror`` and ``tmp_path/checksums.json``; return os.environ plus the two variables."""
    tmp_path = Path(tmp_path)
    mirror = write_synthetic_mirror(tmp_path / "mirror", **mirror_kwargs)
    manifest = write_checksums(mirror, tmp_path / "checksums.json")
    env = dict(os.environ)
    env["PAE_DATA_MIRROR"] = str(mirror)
    env["PAE_DATA_CHECKSUMS"] = str(manifest)
    return env


def flow_arch(K, overrides):
    """The flow architecture for latent size K of the `flow` section with `overrides` (schema defaults elsewhere)."""
    from pae.settings import Settings

    return Settings.from_config({"flow": dict(overrides)}).flow.architecture(K)


def flow_training(overrides):
    """The flow training settings of the `flow` section with `overrides` (schema defaults elsewhere)."""
    from pae.settings import Settings

    return Settings.from_config({"flow": dict(overrides)}).flow.training


def snakemake_cmd(repo: Path, workdir: Path, *args: str, cores: int = 2, overlay: Path | None = None) -> list[str]:
    """The workflow of `repo` on `workdir` with config/test.yaml (and `overlay` after it)."""
    configs = [str(repo / "config" / "test.yaml")] + ([str(overlay)] if overlay else [])
    return [sys.executable, "-m", "snakemake", "-s", str(repo / "workflow" / "Snakefile"), "--directory", str(workdir),
            "--cores", str(cores), *args, "--configfile", *configs]


def run(cmd: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
