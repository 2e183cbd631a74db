"""Rule make_fig6: corrupted inputs, MAPs, truths, a 2-D latent marginal and posterior samples (paper Fig. 6)."""

from pae.files.io import redirect_output
from pae.stages.posterior import run_make_fig6

with redirect_output(snakemake.log[0]):
    p = snakemake.params
    run_make_fig6(
        examples=[dict(e) for e in p.examples],
        posterior_files=dict(zip(p.corruptions, snakemake.input.posterior, strict=True)),
        ae_path=snakemake.input.ae,
        stem=p.stem,
        seed=p.seed,
        device=p.device,
        threads=snakemake.threads,
    )
