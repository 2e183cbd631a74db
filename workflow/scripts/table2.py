"""Rule make_table2: Table 2 (OoD AUROCs) from the per-run score files."""

from pae.io import redirect_output
from pae.ood import TABLE2_LABELS, run_table2

with redirect_output(snakemake.log[0]):
    run_table2(
        files={key: list(snakemake.input.get(key, [])) for key in TABLE2_LABELS},
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
        ks=dict(snakemake.params.ks),
        settings=dict(snakemake.params.settings),
    )
