"""Tables with our numbers (mean ± std over seeds) beside the paper's, as tidy CSV and Markdown."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd

COLUMNS = ["row", "column", "ours", "ours_std", "n_seeds", "paper", "difference"]


def comparison_table(
    measurements: pd.DataFrame,
    paper: Mapping[str, Mapping[str, float]],
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Aggregate tidy measurements (columns row, column, seed, value) over seeds and add the paper's value.

    Returns one line per (row, column): mean, sample std over seeds (0 for one seed), number of seeds,
    the paper's value where it has one (NaN otherwise) and ours − paper. Non-numeric cells (an FID marked
    unavailable) are carried as text in `ours` with NaN std.
    """
    need = {"row", "column", "seed", "value"}
    if not need <= set(measurements.columns):
        raise ValueError(f"measurements need columns {sorted(need)}, got {list(measurements.columns)}")
    rows = list(rows) if rows is not None else list(dict.fromkeys(measurements["row"]))
    columns = list(columns) if columns is not None else list(dict.fromkeys(measurements["column"]))
    out = []
    for r in rows:
        for c in columns:
            cell = measurements[(measurements["row"] == r) & (measurements["column"] == c)]
            paper_value = paper.get(r, {}).get(c, math.nan)
            numeric = pd.to_numeric(cell["value"], errors="coerce")
            if len(cell) and numeric.notna().all():
                mean = float(numeric.mean())
                std = float(numeric.std(ddof=1)) if len(numeric) > 1 else 0.0
                out.append([r, c, mean, std, len(numeric), paper_value, mean - paper_value])
            else:
                text = "; ".join(sorted(set(map(str, cell["value"])))) or "not run"
                out.append([r, c, text, math.nan, len(cell), paper_value, math.nan])
    return pd.DataFrame(out, columns=COLUMNS)


def _fmt(value, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def markdown_block(table: pd.DataFrame, title: str, cell: Callable[[pd.Series], str]) -> list[str]:
    """A second wide Markdown table (a '## title' section) over the rows and columns of `table`, each cell
    `cell(line)` of that (row, column) line; e.g. further metrics of the same measurements."""
    columns = list(dict.fromkeys(table["column"]))
    lines = [f"## {title}", "", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in dict.fromkeys(table["row"]):
        sub = table[table["row"] == r].set_index("column")
        lines.append(f"| {r} | " + " | ".join(cell(sub.loc[c]) for c in columns) + " |")
    return lines


def to_markdown(
    table: pd.DataFrame,
    title: str,
    digits: int | Mapping[str, int] = 3,
    notes: Iterable[str] = (),
    reported: Mapping[str, Mapping[str, float]] | None = None,
    difference: bool = False,
    extra: Iterable[str] = (),
) -> str:
    """Wide Markdown: one line per row, each cell 'ours ± std (paper)'; a separate block for quoted baselines.

    `digits` may map column → digits; `difference` adds ours − paper to each cell: 'ours (paper; Δ d)'.
    `extra`: Markdown lines (e.g. from `markdown_block`) placed after the main table, before the quoted
    baselines.
    """
    columns = list(dict.fromkeys(table["column"]))
    lines = [f"# {title}", "", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in dict.fromkeys(table["row"]):
        cells = []
        for c in columns:
            d = digits.get(c, 3) if isinstance(digits, Mapping) else digits
            cell = table[(table["row"] == r) & (table["column"] == c)].iloc[0]
            ours = _fmt(cell["ours"], d)
            if not isinstance(cell["ours"], str) and cell["n_seeds"] > 1:
                ours += f" ± {_fmt(cell['ours_std'], d)}"
            delta = f"; Δ {cell['difference']:+.{d}f}" if difference and not pd.isna(cell["difference"]) else ""
            cells.append(f"{ours} ({_fmt(cell['paper'], d)}{delta})")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: ours (± std over seeds when more than one) and, in brackets, the paper's value."]
    extra = list(extra)
    if extra:
        lines += [""] + extra
    if reported:
        lines += ["", "## Reported in the paper (other work; not run by this pipeline)", ""]
        lines += ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for r, vals in reported.items():
            lines.append(f"| {r} | " + " | ".join(
                _fmt(vals.get(c, math.nan), digits.get(c, 3) if isinstance(digits, Mapping) else digits)
                for c in columns) + " |")
    notes = list(notes)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
