"""Stage drivers of workflow/rules/battery.smk: the extended OoD battery (sets of config ood.battery, built by
`pae.science.battery`), and its table: every Table 2 row (ood.rows) scored on every battery set.

The battery sets are scored by rule battery_scores into RUN/battery_scores_{part}.npz, in the format of the
Table 2 score files (`pae.stages.ood`), so the table reuses Table 2's measurements (AUROC, AUPR, FPR95 with the
OoD set as the positive class). The paper has no values for them; they exist so that a change of schedule can
be judged on more than the four sets Table 2 scores.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pae.files.artifacts import read_npz
from pae.files.io import save_npz
from pae.science.battery import BATTERY_KINDS, battery_images
from pae.science.tables import comparison_table, markdown_block
from pae.settings import Settings
from pae.stages.common import write_table
from pae.stages.ood import NOT_RUN, TABLE2_LABELS, TABLE2_ROWS, _metric_summary, table2_measurements
from pae.stages.rules import dataset_registry, score_rule_inputs


def battery_sets(settings: Settings) -> list[dict[str, Any]]:
    """config ood.battery completed (dataset = ood.in_dataset for the generators, label = name) and checked:
    unique names that differ from ood.sets' names, known kinds with their parameters, datasets of the registry."""
    registry = dataset_registry(settings)
    table2_names = {s["name"] for s in settings.ood.sets}
    sets = [{"dataset": settings.ood.in_dataset, "label": s["name"]} | dict(s) for s in settings.ood.battery]
    names = [s["name"] for s in sets]
    if len(set(names)) != len(names) or table2_names & set(names):
        raise ValueError(f"config key ood.battery: names must be unique and differ from ood.sets' "
                         f"{sorted(table2_names)}, got {names}")
    for s in sets:
        if s["kind"] not in BATTERY_KINDS:
            raise ValueError(f"config key ood.battery: set {s['name']!r} has kind {s['kind']!r}; choose from "
                             f"{sorted(BATTERY_KINDS)}")
        missing = [p for p in BATTERY_KINDS[s["kind"]][1] if p not in s]
        if missing:
            raise ValueError(f"config key ood.battery: set {s['name']!r} (kind {s['kind']}) needs {missing}")
        if s["dataset"] not in registry:
            raise ValueError(f"config key ood.battery: set {s['name']!r} names dataset {s['dataset']!r}, which is "
                             f"not in the registry {sorted(registry)}")
    return sets


def battery_rule_inputs(run: str, processed: str, dataset: str, part: str, recon_sigma: str,
                        names: Sequence[str]) -> dict[str, Any]:
    """Inputs of rule battery_scores: those of rule ood_scores (`score_rule_inputs`) with the battery sets
    (PROCESSED/battery/{name}.npz) in place of Table 2's."""
    return score_rule_inputs(run, processed, dataset, part, recon_sigma, []) | {
        "ood": [f"{processed}/battery/{name}.npz" for name in names]}


def set_seed(seed: int, name: str) -> np.random.Generator:
    """The generator of battery set `name`: seeded by (ood.battery_seed, a CRC of the name), so adding a set
    changes no other set."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def run_build_battery_set(data_path: str | Path, out: str | Path, spec: Mapping[str, Any], count: int | None,
                          seed: int) -> np.ndarray:
    """Rule build_battery_sets (one call per set): battery set `spec` (one completed entry of ood.battery) from the test split of
    the dataset at `data_path` (all `x` of an OoD-only set), `count` images, written as `x` to `out`."""
    arrays = read_npz(data_path, "rebuild it with `snakemake data`")
    key = "x_test" if "x_test" in arrays else "x"
    if key not in arrays:
        raise ValueError(f"{data_path} has neither x_test nor x (it holds {sorted(arrays)}); rebuild it")
    params = {p: spec[p] for p in BATTERY_KINDS[spec["kind"]][1]}
    x = battery_images(spec["kind"], arrays[key], count, set_seed(seed, spec["name"]), params)
    save_npz(out, x=x)
    print(f"[battery] {spec['name']} ({spec['kind']} {params or ''} of {data_path} {key}): wrote {out}: "
          f"x {x.dtype}{x.shape}, mean {x.mean():.1f}")
    return x


def describe_set(spec: Mapping[str, Any]) -> str:
    """One line of the table notes: what battery set `spec` holds."""
    source = f"the {spec['dataset']} test split"
    what = {
        "uniform_noise": "uniform noise, every pixel 0..255 independently",
        "gaussian_noise": f"Gaussian noise with the per-pixel mean and std of {source}",
        "constant": "constant images, one uniform grey level 0..255 each",
        "invert": f"{source} inverted (255 − x)",
        "blur": f"{source} blurred (Gaussian, σ = {spec.get('sigma')} px)",
        "shift": f"{source} shifted by {spec.get('pixels')} px up, down, left or right (black fill)",
        "rot90": f"{source} rotated by 90°",
    }[spec["kind"]]
    return f"{spec['label']} = {what}"


#: score keys of Table 2 rows computed on a subset of each set → the ScoreJob count that sets it
_SUBSET_OF = {"eq12_map": "map_count", "laplace": "laplace_count", "elbo": "iwae_count", "iwae": "iwae_count"}


def _subset_note(rows: Iterable[str], subsets: Mapping[str, int | None], count: int | None) -> str:
    """' (the costly rows on evenly spaced subsets: Eq. 12 with MAP on 100, …)' naming the rows scored on fewer
    images than the set has, or '' when none is."""
    cut = [f"{TABLE2_ROWS[row].label} on {subsets[key]}" for row, key in _SUBSET_OF.items()
           if row in rows and subsets.get(key) is not None and (count is None or subsets[key] < count)]
    return f" (the costly rows on evenly spaced subsets: {', '.join(cut)})" if cut else ""


def run_battery_table(files: Mapping[str, Sequence[str | Path]], csv_path: str | Path, md_path: str | Path,
                      ks: Mapping[str, int], sets: Sequence[Mapping[str, Any]], in_dataset: str, count: int | None,
                      subsets: Mapping[str, int | None] | None = None,
                      log: Callable[[str], None] = print) -> pd.DataFrame:
    """The battery table: AUROC (mean ± std over seeds; AUPR and FPR95 in the CSV) of every Table 2 row
    (`files`: score key → battery score files, one per seed; an empty list = not run) on every battery set,
    plus a column `mean` = the mean AUROC over the sets. Same CSV columns as Table 2 (paper empty). `subsets`:
    the score job's map_count, laplace_count and iwae_count, named in the notes when they cut a set."""
    columns = {s["name"]: s["label"] for s in sets}
    meas = table2_measurements({k: p for k, p in files.items() if p}, columns)
    cols = list(columns.values())
    for key in (k for k, p in files.items() if not p):
        meas = pd.concat([meas, pd.DataFrame({"row": TABLE2_LABELS[key], "column": cols, "seed": -1, "K": ks[key],
                                              "value": NOT_RUN.get(key, "not run"), "aupr": math.nan,
                                              "fpr95": math.nan})], ignore_index=True)
    numeric = meas[pd.to_numeric(meas["value"], errors="coerce").notna()]
    means = numeric.assign(value=pd.to_numeric(numeric["value"])).groupby(["row", "seed"], as_index=False).agg(
        value=("value", "mean"), aupr=("aupr", "mean"), fpr95=("fpr95", "mean")).assign(column="mean")
    meas = pd.concat([meas, means], ignore_index=True)
    labels = [TABLE2_LABELS[k] for k in files]
    table = comparison_table(meas, {}, rows=labels, columns=[*cols, "mean"])
    table.insert(1, "K", [{TABLE2_LABELS[k]: ks[k] for k in files}[r] for r in table["row"]])
    table = table.merge(_metric_summary(meas), on=["row", "column"], how="left")
    for _, cell in table.iterrows():
        log(f"{cell['row']} {cell['column']}: AUROC {cell['ours']}")

    def aupr_fpr(cell: pd.Series) -> str:
        return "–" if pd.isna(cell["aupr"]) else f"{cell['aupr']:.3f} / {cell['fpr95']:.3f}"

    extra = markdown_block(table, "AUPR / FPR at 95 % TPR (ours; OoD = positive)", aupr_fpr)
    notes = [f"AUROC with the OoD set as the positive class; in-distribution: the {in_dataset} test split; "
             f"{count or 'all'} images per set{_subset_note(files, subsets or {}, count)}; `mean` = mean AUROC "
             "over the sets. No paper values: the paper scores only Table 2's sets.",
             *(describe_set(s) for s in sets),
             "Rows as in Table 2 (" + "; ".join(f"{TABLE2_ROWS[k].label} K = {ks[k]}" for k in files) + ")."]
    write_table(table, csv_path, md_path, f"Extended OoD battery, models trained on {in_dataset}", notes=notes,
                extra=extra)
    return table
