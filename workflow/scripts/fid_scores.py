"""Rule fid_scores: sample / reconstruction FIDs and reconstruction errors of one model."""

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.settings import FidJob
from pae.stages.fid import run_fid_scores

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    run_fid_scores(
        model=snakemake.wildcards.model,
        samples_npz=snakemake.input.samples,
        data_npz=snakemake.input.data,
        reference_npz=snakemake.input.reference,
        classifier_path=snakemake.input.get("classifier") or None,
        inception_source=snakemake.params.inception,
        out=snakemake.output[0],
        settings=FidJob(**snakemake.params.settings),
        device=snakemake.params.device,
        threads=snakemake.threads,
        record=dict(snakemake.wildcards.items()),
        network=snakemake.input.get("network"),
        ae_scores=snakemake.input.get("ae_scores"),
    )
