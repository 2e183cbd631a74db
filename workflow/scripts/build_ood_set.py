"""Rule build_ood_set: one Table 2 outlier set from verified raw files (pae.stages.data.run_build_ood_set)."""

from pathlib import Path

from pae.io import redirect_output
from pae.stages.data import run_build_ood_set

with redirect_output(snakemake.log[0]):
    raw_dir = Path(snakemake.input[0]).parents[1]  # DATA/raw/<source>/<file>
    run_build_ood_set(raw_dir=raw_dir, out=snakemake.output[0], **dict(snakemake.params.items()))
