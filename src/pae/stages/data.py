"""Stage drivers of workflow/rules/data.smk: verified raw files, preprocessed splits and the OoD sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pae.data import (
    dataset_files,
    fetch_raw,
    idx_dataset,
    omniglot_to_28,
    ood_files,
    preprocess_celeba,
    read_idx_images,
    read_omniglot,
    verified_paths,
)
from pae.io import save_npz


def run_fetch_raw(source: str, filename: str, raw_dir: str | Path, data_cfg: dict) -> str:
    """Rule fetch_raw: one verified raw file from the mirror, a system folder or its URL (`pae.data.fetch_raw`;
    data_cfg: the config section `data`). Returns where it came from."""
    _, origin = fetch_raw(source, filename, raw_dir, mirror=data_cfg.get("mirror"),
                          system_dirs=data_cfg.get("system_dirs", []), download=data_cfg.get("download", True))
    return origin


def run_preprocess_dataset(
    dataset: str,
    raw_dir: str | Path,
    out: str | Path,
    *,
    valid_size: int = 10000,
    split_seed: int = 0,
    celeba_size: int = 64,
    celeba_resample: str = "bicubic",
    verify: bool = True,
) -> dict[str, np.ndarray]:
    """Verify the raw files of ``dataset``, build its uint8 splits and write them atomically to ``out``.

    fmnist / mnist: the 60k official training images are split into ``60k − valid_size`` train and
    ``valid_size`` validation images (seed ``split_seed``), plus the 10k test set; keys
    ``x_train, y_train, x_valid, y_valid, x_test, y_test``. celeba: ``x_train, x_valid, x_test``.
    """
    paths = verified_paths(dataset_files(dataset), raw_dir, verify)
    if dataset == "celeba":
        arrays = preprocess_celeba(paths[0], paths[1], celeba_size, celeba_resample)
    else:
        arrays = idx_dataset(paths, valid_size, split_seed)
    save_npz(out, **arrays)
    print(f"[data] {dataset}: wrote {out}: " + ", ".join(f"{k} {v.dtype}{v.shape}" for k, v in arrays.items()))
    return arrays


def run_build_ood_set(
    name: str,
    raw_dir: str | Path,
    out: str | Path,
    *,
    omniglot_count: int | None = None,
    verify: bool = True,
) -> dict[str, np.ndarray]:
    """Verify the raw files of OoD set ``name`` and write ``x`` (uint8 (N, 1, 28, 28)) and ``y`` to ``out``.

    mnist: MNIST test set. omniglot: evaluation alphabets, first ``omniglot_count`` images, 28×28,
    inverted. fmnist_hflip / fmnist_vflip: F-MNIST test set flipped left-right / up-down (Table 2).
    """
    paths = verified_paths(ood_files(name), raw_dir, verify)
    if name == "omniglot":
        images, y = read_omniglot(paths[0], omniglot_count)
        x = omniglot_to_28(images)
    else:
        x, y = read_idx_images(paths[0], paths[1])
        if name == "fmnist_hflip":
            x = np.ascontiguousarray(x[..., ::-1])
        elif name == "fmnist_vflip":
            x = np.ascontiguousarray(x[..., ::-1, :])
    save_npz(out, x=x, y=y)
    print(f"[data] OoD set {name}: wrote {out}: x {x.dtype}{x.shape}, y {y.shape}")
    return {"x": x, "y": y}
