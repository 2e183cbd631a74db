"""Rule encode_ae: latents of every split, σ of Eq. 8 and reconstruction MSEs (pae.stages.train.run_encode_ae)."""

from pae.files.io import redirect_output
from pae.science.runtime import set_threads
from pae.stages.train import run_encode_ae

with redirect_output(snakemake.log[0]):
    set_threads(snakemake.threads)
    run_encode_ae(
        model_path=snakemake.input.model,
        data_path=snakemake.input.data,
        stats_path=snakemake.output.stats,
        metrics_path=snakemake.output.metrics,
        scale=snakemake.params.scale,
        batch_size=500,  # evaluation batches: no setting, they do not change the result
        device=snakemake.params.device,
    )
