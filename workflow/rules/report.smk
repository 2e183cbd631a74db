"""The reproduction report of OUT (pae.stages.report): report.md, an offline report.html and report.json.

It needs the main job's Table 2 and shows whatever else exists when the DAG is built, or is built by the same
run (target paper_quick): Table 1, the 3-seed and reverse Tables 2, the battery, the reconstruction error
against K, the posterior metrics and Figs. 2, 3, 5, 6. `make report` forces it, so it always shows the
current files.
"""

import pae.stages.report as pae_report

REPORT_FILES = [f"{OUT}/report.{ext}" for ext in ["md", "html", "json"]]
REPORT_REVERSE = S.report.reverse_dir
REPORT_SHOWS = pae_report.report_inputs(OUT, REPORT_REVERSE)


rule write_report:
    """The reproduction report: every table and figure present, the paper's value beside ours with the
    difference, seed std and gaps beyond 2 std, provenance (commit, config hash, versions, device, wall time
    per stage)."""
    input:
        # Table 2, and every other file the report shows that exists now or that this run builds. The run's
        # targets are read here, when the DAG is built: Snakemake sets them only after parsing the rule files.
        lambda wc: pae_report.report_input_files(
            TABLE2_FILES[:2],
            REPORT_SHOWS,
            PAPER_QUICK_FILES,
            "paper_quick" in getattr(workflow.dag_settings, "targets", ()),
        ),
    output:
        md=REPORT_FILES[0],
        html=REPORT_FILES[1],
        json=REPORT_FILES[2],
    log:
        f"{LOGS}/report.log",
    conda:
        ENV
    threads: 1  # bookkeeping only: reads small files
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        outdir=lambda wildcards, output: os.path.dirname(output.md),
        reverse_dir=REPORT_REVERSE,
        config=config,
        repo=workflow.basedir,
        bench=BENCH,
        rules=lambda wildcards: sorted(r.name for r in workflow.rules),
    script:
        "../scripts/write_report.py"
