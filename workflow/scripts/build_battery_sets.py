"""Rule build_battery_sets: every set of the extended OoD battery (pae.stages.battery.run_build_battery_set)."""

from pae.files.io import redirect_output
from pae.stages.battery import run_build_battery_set

with redirect_output(snakemake.log[0]):
    p = snakemake.params
    for spec, data, out in zip(p.specs, p.sources, snakemake.output, strict=True):
        run_build_battery_set(data, out, dict(spec), p.n_images, p.seed)
