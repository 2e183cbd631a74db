"""Rule build_ood_set: one OoD set of ood.sets from a preprocessed dataset (pae.stages.data.run_build_ood_set)."""

from pae.files.io import redirect_output
from pae.stages.data import run_build_ood_set

with redirect_output(snakemake.log[0]):
    run_build_ood_set(snakemake.input[0], snakemake.output[0], snakemake.params.transform)
