"""Stage drivers of workflow/rules/data.smk: verified raw files, preprocessed splits and the OoD sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pae.files.artifacts import read_npz
from pae.files.data import fetch_raw
from pae.files.datasets import write_processed
from pae.files.io import save_npz
from pae.settings import Data


def run_fetch_raw(source: str, filename: str, raw_dir: str | Path, data: Data) -> str:
    """Rule fetch_raw: one verified raw file from the mirror (data.mirror or $PAE_DATA_MIRROR), a system folder
    (data.system_dirs) or its URL (data.download; `pae.files.data.fetch_raw`). Returns where it came from."""
    _, origin = fetch_raw(source, filename, raw_dir, mirror=data.mirror, system_dirs=data.system_dirs,
                          download=data.download)
    return origin


def run_preprocess_dataset(name: str, entry: dict[str, Any], raw_dir: str | Path, out: str | Path,
                           info_out: str | Path | None = None) -> dict[str, np.ndarray]:
    """Rule preprocess_dataset: the registry entry `entry` of dataset `name` → checked uint8 arrays in `out`
    (and what was read, as JSON, in `info_out`); built-ins read their raw files from `raw_dir`, verified
    again. Nothing is written unless everything was read and checked (`pae.files.datasets.write_processed`)."""
    return write_processed(entry, out, raw_dir, name=name, info_path=info_out, fetch=False).arrays


TRANSFORMS = ("none", "hflip", "vflip")


def run_build_ood_set(data_path: str | Path, out: str | Path, transform: str = "none") -> dict[str, np.ndarray]:
    """Rule build_ood_set: the test split of a preprocessed dataset (`x` of an OoD-only set such as
    Omniglot), flipped left-right (hflip) or up-down (vflip) when asked, as `x` (+ `y` where known)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"config key ood.sets: transform {transform!r} is not one of {TRANSFORMS}")
    arrays = read_npz(data_path, "rebuild it with `snakemake data`")
    key = "x_test" if "x_test" in arrays else "x"
    if key not in arrays:
        raise ValueError(f"{data_path} has neither x_test nor x (it holds {sorted(arrays)}); rebuild it")
    x = arrays[key]
    if transform == "hflip":
        x = np.ascontiguousarray(x[..., ::-1])
    elif transform == "vflip":
        x = np.ascontiguousarray(x[..., ::-1, :])
    labels = {"y": arrays["y" + key[1:]]} if "y" + key[1:] in arrays else {}
    save_npz(out, x=x, **labels)
    print(f"[data] OoD set from {data_path} ({key}, {transform}): wrote {out}: x {x.dtype}{x.shape}")
    return {"x": x, **labels}
