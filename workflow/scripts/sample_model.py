"""Rule sample_model: samples of AE / VAE / β-VAE / PAE (Eq. 6) or test reconstructions, as uint8."""

from pae.files.io import redirect_output
from pae.stages.baselines import run_sample_model

with redirect_output(snakemake.log[0]):
    run_sample_model(
        model=snakemake.wildcards.model,
        inputs=dict(snakemake.input.items()),
        out=snakemake.output.samples,
        count=snakemake.params.n_samples,
        seed=int(snakemake.wildcards.seed),
        scale=snakemake.params.scale,
        temperature=snakemake.params.temperature,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
