"""Rule write_table1: Table 1 as CSV and Markdown, beside the paper's values."""

from pae.files.io import redirect_output
from pae.stages.fid import run_write_table1
from pae.stages.provenance import run_table_provenance

with redirect_output(snakemake.log[0]):
    run_write_table1(
        score_files=list(snakemake.input.scores),
        reference_npz=snakemake.input.reference,
        classifier_metrics=clf[0] if (clf := snakemake.input.get("classifier")) else None,  # none: unlabelled
        dataset=snakemake.params.dataset,
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
        K=snakemake.params.K,
        vae_K=snakemake.params.vae_K,
    )
    # the record is part of the table's job, so `snakemake results/<table>.csv` writes it too
    run_table_provenance(snakemake.output.csv, snakemake.output.provenance_json, snakemake.output.provenance_md,
                         snakemake.params.provenance)
