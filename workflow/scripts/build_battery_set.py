"""Rule build_battery_set: one set of the extended OoD battery (pae.stages.battery.run_build_battery_set)."""

from pae.files.io import redirect_output
from pae.stages.battery import run_build_battery_set

with redirect_output(snakemake.log[0]):
    p = snakemake.params
    run_build_battery_set(snakemake.input[0], snakemake.output[0], dict(p.spec), p.n_images, p.seed)
