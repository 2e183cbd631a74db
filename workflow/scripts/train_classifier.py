"""Rule train_classifier: the domain-FID CNN classifier on the training split."""

from pae.files.io import redirect_output
from pae.stages.fid import run_train_classifier

with redirect_output(snakemake.log[0]):
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
