"""Rule fid_reference: feature statistics of the test split per extractor, and the train-vs-test FID floor."""

from pae.files.io import redirect_output
from pae.settings import FidJob
from pae.stages.fid import run_fid_reference

with redirect_output(snakemake.log[0]):
    run_fid_reference(
        data_npz=snakemake.input.data,
        classifier_path=snakemake.input.get("classifier") or None,
        inception_source=snakemake.params.inception,
        out=snakemake.output[0],
        settings=FidJob(**snakemake.params.settings),
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
