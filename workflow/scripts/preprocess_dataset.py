"""Rules preprocess_dataset / preprocess_celeba: verified raw files → uint8 splits (pae.data.preprocess)."""

from pathlib import Path

from pae.data import preprocess
from pae.io import redirect_output

with redirect_output(snakemake.log[0]):
    raw_dir = Path(snakemake.input[0]).parents[1]  # DATA/raw/<source>/<file>
    preprocess(raw_dir=raw_dir, out=snakemake.output[0], **dict(snakemake.params.items()))
