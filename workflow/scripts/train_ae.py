"""Rule train_ae: infoGAN auto-encoder on Eq. 2 (pae.stages.train.run_train_ae); resumes from RUN/ae.ckpt."""

from pathlib import Path

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.science.runtime import set_threads
from pae.settings import Settings
from pae.stages.train import run_train_ae

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    set_threads(snakemake.threads)
    model_path = Path(snakemake.output.model)
    S = Settings.from_config(snakemake.config, validate=False)
    run_train_ae(
        data_path=snakemake.input.data,
        model_path=model_path,
        history_path=snakemake.output.history,
        checkpoint_path=model_path.with_suffix(".ckpt"),
        latent_dim=int(snakemake.wildcards.K),
        net=dict(snakemake.params.net),
        settings=S.training("ae", int(snakemake.wildcards.seed)),
    )
