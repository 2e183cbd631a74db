"""Stage drivers of workflow/rules/summary.smk: the reconstruction error of the in-distribution AEs against K.

(Table 2 over the seeds of ood.table2_seeds is written by `pae.stages.ood.run_make_table2`, the same driver
as Table 2.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pae.files.artifacts import load_images, load_scores
from pae.science.catalog import IN_SET
from pae.science.paper import ORIGINAL_RECON_MSE
from pae.science.tables import comparison_table
from pae.stages.common import write_table

RECON_ROW = "reconstruction MSE / pixel (test split)"


def run_recon_table(files: Mapping[int, Sequence[str | Path]], data_path: str | Path, csv_path: str | Path,
                    md_path: str | Path, dataset: str, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Reconstruction MSE per pixel of the AE at each K (`files`: K → the run's ood_scores_recon.npz, one per
    seed) on the test split, mean ± std over seeds, beside the original code's converged value (paper Eq. 2's
    objective; ORIGINAL_RECON_MSE). Read from the `recon` scores (−Σ (x − g(z))² per image, model units), so
    it needs ood.recon_sigma unweighted; with pixelwise the cells say so. data_path: the preprocessed dataset
    (for the number of pixels per image)."""
    n_pixels = int(np.prod(load_images(data_path, "test").shape[1:]))
    records = []
    for K, paths in sorted(files.items()):
        for p in paths:
            scores, meta = load_scores(p)
            if meta["recon_sigma"] != "unweighted":
                value: float | str = "unavailable: ood.recon_sigma is pixelwise (the scores are σ-weighted)"
            else:
                sse = -np.asarray(scores[f"recon__{IN_SET}"], dtype=np.float64)
                value = float(sse.mean() / n_pixels)
            records.append({"row": RECON_ROW, "column": f"K = {K}", "seed": meta.get("seed"), "value": value})
    meas = pd.DataFrame.from_records(records, columns=["row", "column", "seed", "value"])
    paper = {RECON_ROW: {f"K = {K}": v for K, v in ORIGINAL_RECON_MSE.items()}}
    table = comparison_table(meas, paper, rows=[RECON_ROW], columns=[f"K = {K}" for K in sorted(files)])
    for _, cell in table.iterrows():
        log(f"{cell['column']}: MSE {cell['ours']} (original code {cell['paper']})")
    notes = [f"Mean squared error per pixel of the {dataset} test split through the AE at z = encoder mean, "
             "pixels x/255 − 0.5 (mean ± std over seeds). In brackets: the original code's converged AEs "
             "(mean stored σ² of its parameter files, K = 128: its v2rot model); not a value of the paper."]
    write_table(table, csv_path, md_path, f"Reconstruction error against K, {dataset}", digits=5, notes=notes)
    return table
