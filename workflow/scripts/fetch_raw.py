"""Rule fetch_raw: one verified raw file from the mirror, a system folder or its URL (pae.data.fetch_raw)."""

import sys
from pathlib import Path

from pae.data import fetch_raw
from pae.io import redirect_output

with redirect_output(snakemake.log[0]):
    data_cfg = snakemake.config["data"]  # where to look is not a param: see workflow/rules/data.smk
    dest = Path(snakemake.output[0])
    _, origin = fetch_raw(
        snakemake.wildcards.source,
        snakemake.wildcards.file,
        dest.parent.parent,
        mirror=data_cfg.get("mirror"),
        system_dirs=data_cfg.get("system_dirs", []),
        download=data_cfg.get("download", True),
    )
print(f"[data] {snakemake.wildcards.source}/{snakemake.wildcards.file}: {origin}", file=sys.stderr)
