"""Rules preprocess_dataset / preprocess_celeba: verified raw files → uint8 splits (pae.stages.data.run_preprocess_dataset)."""

from pathlib import Path

from pae.io import redirect_output
from pae.stages.data import run_preprocess_dataset

with redirect_output(snakemake.log[0]):
    raw_dir = Path(snakemake.input[0]).parents[1]  # DATA/raw/<source>/<file>
    run_preprocess_dataset(raw_dir=raw_dir, out=snakemake.output[0], **dict(snakemake.params.items()))
