"""Provenance record beside a table: commit, config hash, package versions, device, wall time per stage."""

from pae.files.io import redirect_output
from pae.stages.provenance import run_provenance

with redirect_output(snakemake.log[0]):
    prov = run_provenance(
        snakemake.output.json,
        snakemake.output.md,
        config=snakemake.params.config,
        repo_dir=snakemake.params.repo,
        bench_dir=snakemake.params.bench,
        targets=[snakemake.input.table],
        out_dir=snakemake.params.outdir,
        rules=snakemake.params.rules,
    )
    print(f"config hash {prov['config_hash']}, commit {prov['git']['commit']}, {len(prov['stages'])} stages")
