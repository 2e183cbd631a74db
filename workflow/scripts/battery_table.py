"""Rule make_battery_table: every Table 2 row on every battery set (pae.stages.battery.run_battery_table)."""

from pae.files.io import redirect_output
from pae.stages.battery import run_battery_table

with redirect_output(snakemake.log[0]):
    p = snakemake.params
    run_battery_table(
        files={key: list(snakemake.input.get(key, [])) for key in p.rows},
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
        ks=dict(p.ks),
        sets=[dict(s) for s in p.sets],
        in_dataset=p.in_dataset,
        count=p.n_images,
        subsets=dict(p.subsets),
    )
