"""Rule make_table2: Table 2 (OoD AUROC, AUPR, FPR95) from the per-run score files, rows in ood.rows order."""

from pae.files.io import redirect_output
from pae.settings import ScoreJob
from pae.stages.ood import run_make_table2
from pae.stages.provenance import run_table_provenance

with redirect_output(snakemake.log[0]):
    run_make_table2(
        files={key: list(snakemake.input.get(key, [])) for key in snakemake.params.rows},
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
        ks=dict(snakemake.params.ks),
        settings=ScoreJob(**snakemake.params.settings),
        experiment=dict(snakemake.params.experiment),
    )
    # the record is part of the table's job, so `snakemake results/<table>.csv` writes it too
    run_table_provenance(snakemake.output.csv, snakemake.output.provenance_json, snakemake.output.provenance_md,
                         snakemake.params.provenance)
