"""Table 2 and the extended OoD battery side by side for several AE schedules of the quick configuration.

    .venv/bin/python benchmarks/compare_schedules.py quick=results/quick \
        former=results/schedule-former paper-3-epochs=results/schedule-paper-3-epochs \
        --out docs/results/schedules.md

Each NAME=FOLDER is a finished run of `snakemake table2 battery` (make schedule-comparison runs the two
overlays of config/schedules/ after config/quick.yaml). Reads FOLDER/table2.csv and FOLDER/battery.csv and
writes one Markdown table: per row of Table 2 (PAE density, AE reconstruction error, Eq. 12), the AUROC of each
schedule on every Table 2 set and its mean, and the mean over the battery's sets; then the battery per set; then,
for every AE all runs trained, its validation MSE and its training time.
The battery's sets are not tuned on: a schedule is chosen on both means, not on Table 2 alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def read_run(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table2, battery) of one run folder: tidy CSVs with columns row, column, ours."""
    frames = []
    for name in ("table2.csv", "battery.csv"):
        path = folder / name
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: run `snakemake table2 battery` with that run's config first")
        frames.append(pd.read_csv(path)[["row", "column", "ours"]])
    return frames[0], frames[1]


def _mean(frame: pd.DataFrame, row: str, column: str | None = None, skip: str | None = None) -> float:
    """Mean AUROC of `row` on `column` (all of its sets when None; `skip` left out)."""
    keep = frame["row"] == row
    if column is not None:
        keep &= frame["column"] == column
    if skip is not None:
        keep &= frame["column"] != skip
    return float(frame.loc[keep, "ours"].mean())


def validation(folder: Path) -> dict[str, dict[str, float]]:
    """Per trained AE `dataset K = k` of a run folder (seed 0): its validation MSE per pixel after the last epoch
    and its training seconds (ae_history.json). The flows' NLLs are left out: each is in its own AE's latent
    coordinates, so they do not compare across schedules."""
    out = {}
    for path in sorted(folder.glob("*/K*/seed0/ae_history.json"), key=lambda p: (p.parts[-4], int(p.parts[-3][1:]))):
        epochs = json.loads(path.read_text())
        out[f"{path.parts[-4]} K = {path.parts[-3][1:]}"] = {
            "AE validation MSE per pixel": epochs[-1]["val_mse"], "AE training s": sum(e["seconds"] for e in epochs)}
    return out


def _commit(folder: Path) -> str:
    """' (commit abc1234)' from the run's Table 2 provenance record, or '' without one."""
    path = folder / "table2.provenance.json"
    return f" (commit {json.loads(path.read_text())['git']['commit'][:7]})" if path.is_file() else ""


def _sets(frame: pd.DataFrame, row: str) -> list[str]:
    return [c for c in dict.fromkeys(frame.loc[frame["row"] == row, "column"]) if c != "mean"]


def comparison(runs: dict[str, Path]) -> str:
    """The Markdown tables of the module docstring."""
    tables = {name: read_run(folder) for name, folder in runs.items()}
    names = list(runs)
    first_table2, first_battery = tables[names[0]]
    shared = set.intersection(*(set(t[0]["row"]) for t in tables.values()))  # rows every run scored
    rows = [r for r in dict.fromkeys(first_table2["row"]) if r in shared]
    def header(first: str, second: str) -> str:
        return f"| {first} | {second} | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names) + "\n"


    def line(row: str, label: str, values: list[float]) -> str:
        return f"| {row} | {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |"

    summary, per_set = [], []
    for row in rows:
        for column in _sets(first_table2, row):
            summary.append(line(row, column, [_mean(tables[n][0], row, column) for n in names]))
        summary.append(line(row, "**Table 2 mean**", [_mean(tables[n][0], row) for n in names]))
        summary.append(line(row, "**battery mean**", [_mean(tables[n][1], row, skip="mean") for n in names]))
        for column in _sets(first_battery, row):
            per_set.append(line(row, column, [_mean(tables[n][1], row, column) for n in names]))
    valid = {n: validation(f) for n, f in runs.items()}
    models = [m for m in valid[names[0]] if all(m in v for v in valid.values())]  # models every run trained
    val_lines = [f"| {m} | {q} | " + " | ".join(f"{valid[n][m][q]:.5g}" for n in names) + " |"
                 for m in models for q in valid[names[0]][m]]
    folders = ", ".join(f"{n} = `{f.as_posix()}`{_commit(f)}" for n, f in runs.items())
    return ("# AE schedules of the quick configuration: Table 2 and the OoD battery (AUROC)\n\n"
            f"Written by `benchmarks/compare_schedules.py` from the runs {folders}. "
            "Higher is better; the battery's sets are never tuned on.\n\n"
            + header("row", "set") + "\n".join(summary) + "\n\n## The battery per set\n\n" + header("row", "set")
            + "\n".join(per_set)
            + "\n\n## Validation split (seed 0; MSE: lower is better; training seconds depend on what ran beside the job)\n\n"
            + header("model", "quantity") + "\n".join(val_lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="NAME=FOLDER")
    p.add_argument("--out", help="also write the Markdown to this file")
    args = p.parse_args()
    runs = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            p.error(f"{item!r}: give NAME=FOLDER, e.g. quick=results/quick")
        runs[name] = Path(folder)
    text = comparison(runs)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
