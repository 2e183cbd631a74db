"""Rule fig2: AE, VAE, β-VAE and PAE samples and AE test reconstructions side by side."""

from pathlib import Path

from pae.files.io import redirect_output
from pae.stages.figures import run_fig2

with redirect_output(snakemake.log[0]):
    run_fig2(
        dict(zip(snakemake.params.titles, snakemake.input, strict=True)),
        Path(snakemake.output.png).with_suffix(""),
        snakemake.params.n_images,
    )
