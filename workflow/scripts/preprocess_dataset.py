"""Rule preprocess_dataset: one registry dataset → checked uint8 splits (pae.stages.data.run_preprocess_dataset)."""

from pae.files.io import redirect_output
from pae.stages.data import run_preprocess_dataset

with redirect_output(snakemake.log[0]):
    run_preprocess_dataset(
        name=snakemake.wildcards.dataset,
        entry=dict(snakemake.params.entry),
        raw_dir=snakemake.params.raw,
        out=snakemake.output[0],
    )
