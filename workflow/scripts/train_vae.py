"""Rule train_vae: VAE / β-VAE baseline on Eq. 15 (pae.stages.baselines.run_train_vae); resumes from RUN/{vaemodel}.ckpt."""

from pathlib import Path

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.science.runtime import set_threads
from pae.settings import Settings
from pae.stages.baselines import run_train_vae

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    set_threads(snakemake.threads)
    model_path = Path(snakemake.output.model)
    S = Settings.from_config(snakemake.config, validate=False)
    run_train_vae(
        data_path=snakemake.input.data,
        model_path=model_path,
        metrics_path=snakemake.output.metrics,
        checkpoint_path=model_path.with_suffix(".ckpt"),
        latent_dim=int(snakemake.wildcards.K),
        net=dict(snakemake.params.net),
        objective=dict(snakemake.params.objective),
        settings=S.training("vae", int(snakemake.wildcards.seed)),
    )
