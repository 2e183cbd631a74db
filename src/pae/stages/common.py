"""What every stage shares: writing a table (CSV + Markdown) and a figure (PNG + PDF) atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from pae.io import atomic_path
from pae.tables import to_markdown


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str,
                **markdown: Any) -> None:
    """Write the tidy CSV and its Markdown rendering (`pae.tables.to_markdown(table, title, **markdown)`),
    atomically."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(md_path) as tmp:
        tmp.write_text(to_markdown(table, title, **markdown))


def save_figure(fig: Figure, stem: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as stem.png and stem.pdf (atomically) and close it; return the paths."""
    stem = Path(stem)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths
