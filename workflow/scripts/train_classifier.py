"""Rule train_classifier: the domain-FID CNN classifier on the training split."""

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.stages.fid import run_train_classifier

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    run_train_classifier(
        data_npz=snakemake.input.data,
        out_model=snakemake.output.model,
        out_metrics=snakemake.output.metrics,
        epochs=snakemake.params.epochs,
        seed=int(snakemake.wildcards.seed),
        scale=snakemake.params.scale,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
