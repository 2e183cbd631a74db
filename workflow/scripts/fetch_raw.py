"""Rule fetch_raw: one verified raw file from the mirror, a system folder or its URL (pae.stages.data.run_fetch_raw)."""

import sys
from pathlib import Path

from pae.files.io import redirect_output
from pae.settings import Settings
from pae.stages.data import run_fetch_raw

with redirect_output(snakemake.log[0]):
    # where to look (data.mirror, system_dirs, download) is not a param: see workflow/rules/data.smk
    origin = run_fetch_raw(
        snakemake.wildcards.source,
        snakemake.wildcards.file,
        Path(snakemake.output[0]).parent.parent,
        Settings.from_config(snakemake.config, validate=False).data,
    )
print(f"[data] {snakemake.wildcards.source}/{snakemake.wildcards.file}: {origin}", file=sys.stderr)  # on the console
