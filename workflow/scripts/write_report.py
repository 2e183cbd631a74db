"""Rule write_report: the reproduction report (pae.stages.report.run_write_report)."""

from pae.files.io import redirect_output
from pae.stages.report import run_write_report

with redirect_output(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    run_write_report(p.outdir, out.md, out.html, out.json, config=p.config, repo_dir=p.repo, bench_dir=p.bench,
                     reverse_dir=p.reverse_dir, rules=p.rules)
