"""Rule fid_reference: feature statistics of the test split per extractor, and the train-vs-test FID floor."""

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.settings import FidJob
from pae.stages.fid import run_fid_reference

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    run_fid_reference(
        data_npz=snakemake.input.data,
        classifier_path=snakemake.input.get("classifier") or None,
        inception_source=snakemake.params.inception,
        out=snakemake.output[0],
        settings=FidJob(**snakemake.params.settings),
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
