"""Provenance beside each table: OUT/{table}.provenance.json and .md (commit, config hash, versions, device,
wall time per stage from the benchmark files under BENCH). Written by the table's own job (write_table1,
make_table2: outputs provenance_json / provenance_md, param provenance), so asking for
results/table2.csv by path builds the record as the `table2` target does. Included before the rule files
that use it."""


def provenance_settings(wildcards):
    """The `provenance` param of a table rule (pae.stages.provenance.run_table_provenance); evaluated when the
    DAG is built, when every rule file has been included."""
    return {
        "config": config,
        "repo": workflow.basedir,
        "bench": BENCH,
        "rules": sorted(r.name for r in workflow.rules),
    }


def provenance_md(table):
    """The Markdown record of `table` as a report item."""
    return report(
        f"{OUT}/{table}.provenance.md",
        caption="../report/provenance.rst",
        category="Provenance",
        labels={"result": f"{table} provenance", "format": "Markdown"},
    )
