"""Rule train_flow: fit the latent normalizing flow (Eq. 5) on RUN/ae_stats.npz."""

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.science.flows import FlowArchitecture, FlowTraining
from pae.stages.train import run_train_flow

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    run_train_flow(
        stats_path=snakemake.input.stats,
        flow_out=snakemake.output.flow,
        metrics_out=snakemake.output.metrics,
        history_out=snakemake.output.history,
        arch=FlowArchitecture(**snakemake.params.arch),
        training=FlowTraining(**snakemake.params.training),
        seed=int(snakemake.wildcards.seed),
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
