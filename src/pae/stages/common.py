"""What every stage shares: the floored Eq. 8 σ of a run, and writing a table (CSV + Markdown) and a figure
(PNG + PDF) atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

if TYPE_CHECKING:  # pyplot loads in save_figure: the score and training jobs never draw
    from matplotlib.figure import Figure

from pae.files.artifacts import load_sigma
from pae.files.io import atomic_path
from pae.science.density import floor_sigma, quantization_sigma
from pae.science.tables import to_markdown


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str,
                **markdown: Any) -> None:
    """Write the tidy CSV and its Markdown rendering (`pae.science.tables.to_markdown(table, title, **markdown)`),
    atomically."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(md_path) as tmp:
        tmp.write_text(to_markdown(table, title, **markdown))


def save_figure(fig: Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as stem.png and stem.pdf (atomically) and close it; return the paths."""
    from matplotlib import pyplot as plt

    stem = Path(stem)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def load_floored_sigma(stats_path: str | Path, scale: float, sigma_floor: float | None,
                       image_shape: Sequence[int]) -> tuple[torch.Tensor, float]:
    """The Eq. 8 σ from ae_stats.npz, floored as in pae.science.density (None → the quantisation σ), and the floor."""
    floor = quantization_sigma(scale) if sigma_floor is None else float(sigma_floor)
    sigma = floor_sigma(load_sigma(stats_path), floor)
    if tuple(sigma.shape) != tuple(image_shape):
        raise ValueError(f"sigma in {stats_path} has shape {tuple(sigma.shape)}, the AE's images {tuple(image_shape)}")
    return sigma, floor
