"""Rule fig3: PAE samples at each K of fid.fig3_K, titled with their sample FIDs."""

from pathlib import Path

from pae.files.io import redirect_output
from pae.stages.figures import run_fig3

with redirect_output(snakemake.log[0]):
    ks = snakemake.params.ks
    run_fig3(
        dict(zip(ks, snakemake.input.samples, strict=True)),
        dict(zip(ks, snakemake.input.scores, strict=True)),
        Path(snakemake.output.png).with_suffix(""),
        snakemake.params.n_images,
    )
