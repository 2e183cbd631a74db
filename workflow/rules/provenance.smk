"""Provenance beside each table: OUT/{table}.provenance.json and .md (commit, config hash, versions, device,
wall time per stage from the benchmark files under BENCH)."""


rule provenance:
    """Trace a table back to the code, resolved configuration, software, hardware and wall times."""
    input:
        table=f"{OUT}/{{table}}.csv",
    output:
        json=f"{OUT}/{{table}}.provenance.json",
        md=report(
            f"{OUT}/{{table}}.provenance.md",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"result": "{table} provenance", "format": "Markdown"},
        ),
    log:
        f"{LOGS}/provenance/{{table}}.log",
    benchmark:
        f"{BENCH}/provenance/{{table}}.tsv"
    wildcard_constraints:
        table="table1|table2",
    conda:
        ENV
    threads: 1  # bookkeeping only: reads small files, no tensor work
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
        repo=workflow.basedir,
        bench=BENCH,
        outdir=lambda wildcards, input: os.path.dirname(input.table),
        # evaluated when the DAG is built, when every rule file has been included
        rules=lambda wildcards: sorted(r.name for r in workflow.rules),
    script:
        "../scripts/provenance.py"
