"""Stage driver of workflow/rules/report.smk: the reproduction report of one output folder (report.md, an offline
report.html and report.json with every number it shows), and the snapshot of it that the docs commit.

The report shows what exists when it runs: after `make table2` only Table 2 (and says what to run for the
rest), after `make paper-quick` every table and figure of the quick paper, plus the 3-seed Table 2 and the
reverse Table 2 when they have run. Every cell puts our value beside the paper's with the difference; with
several seeds it shows the std and marks gaps larger than 2 std. The provenance (commit, config hash, package
versions, device, wall time per stage) is collected when the report is written (`pae.stages.provenance`).

    python -m pae.stages.report snapshot results/quick docs/results   # → docs/results/quick.{md,html,json} + quick/
    python -m pae.stages.report summary docs/results/quick.json "Table 2 · PAE density"   # README block rows
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pae.files.io import atomic_path, save_json
from pae.science import report as fmt
from pae.stages.provenance import collect_provenance


@dataclass(frozen=True)
class Section:
    """One table of the report: its title, file (relative to the output folder), how to produce it, and
    its key in report.json's values (None: not a comparison table)."""

    title: str
    file: str
    make: str
    key: str | None
    digits: int = 3
    reference: str = "paper"  # where the CSV's `paper` column comes from


SECTIONS: tuple[Section, ...] = (
    Section("Table 1: sample and reconstruction quality (F-MNIST)", "table1.csv", "make table1",
            "Table 1"),
    Section("Table 2: out-of-distribution detection (AUROC)", "table2.csv", "make table2", "Table 2"),
    Section("Table 2 over seeds (mean ± std)", "table2_seeds.csv", "make table2-seeds", "Table 2 seeds"),
    Section("Extended OoD battery (AUROC; not in the paper)", "battery.csv", "make paper-quick", "Battery"),
    Section("Table 2 in reverse: MNIST in-distribution (not in the paper)", "{reverse}/table2.csv",
            "make table2-reverse", "Reverse Table 2"),
    Section("Reconstruction error against K", "recon_vs_K.csv", "make paper-quick", "Reconstruction vs K", 4,
            "original code"),
    Section("Posterior analysis (Sec. 2.3, Fig. 6)", "posterior_metrics.csv", "make paper-quick", None),
    Section("Fig. 5 TP/FP ratios", "figures/fig5.csv", "make paper-quick", None),
)
FIGURES: tuple[tuple[str, str], ...] = (
    ("figures/fig2.png", "Fig. 2: samples of AE, VAE, β-VAE and PAE, and AE reconstructions of test images"),
    ("figures/fig3.png", "Fig. 3: PAE samples at each K of fid.fig3_K"),
    ("figures/fig5.png", "Fig. 5: OoD images, their reconstructions, and TP/FP at 5 % FN against K"),
    ("figures/fig6.png", "Fig. 6: inpainting and denoising with the PAE posterior"),
)
TABLE_PROVENANCE = ("table1", "table2")


def section_path(out_dir: str | Path, section: Section, reverse_dir: str | Path) -> Path:
    """Where a section's table lives: under `out_dir`, or (the reverse Table 2) under `reverse_dir`."""
    if section.file.startswith("{reverse}"):
        return Path(section.file.format(reverse=Path(reverse_dir).as_posix()))
    return Path(out_dir) / section.file


def report_inputs(out_dir: str, reverse_dir: str) -> list[str]:
    """Every file the report can show (the rule lists those that exist or that the run builds)."""
    return [section_path(out_dir, s, reverse_dir).as_posix() for s in SECTIONS] + [
        f"{out_dir}/{f}" for f, _ in FIGURES]


def report_input_files(required: Iterable[str], shows: Iterable[str], building: Iterable[str], built: bool,
                       exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """Inputs of rule write_report: `required`, then each file of `shows` that exists now or, when this run
    builds them (`built`: the target paper_quick), is one of `building`; so the report waits for a file only
    when it will be there."""
    required, building = list(required), set(building) if built else set()
    return required + [f for f in shows if f not in required and (f in building or exists(f))]


def read_table(path: Path) -> pd.DataFrame:
    """A tidy CSV with text cells kept (an FID 'unavailable: …') and numbers as floats."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)

    def value(v: str) -> Any:
        if v == "" or v.lower() == "nan":
            return float("nan")
        try:
            return float(v)
        except ValueError:
            return v

    return frame.apply(lambda col: col.map(value))


def provenance_blocks(prov: Mapping[str, Any] | None, out_dir: Path) -> list[fmt.Block]:
    """Commit, config hash, device, packages, wall time per stage (`collect_provenance`'s record), and the
    records beside the tables; a report built without a record (None) says so."""
    if prov is None:
        return [("h", 2, "Provenance"), ("p", "No provenance record: this report was built outside the workflow.")]
    git = prov["git"]
    code = (f"`{git['commit']}`" + (" with uncommitted changes" if git.get("dirty") else "")
            + (f" on `{git['branch']}`" if git.get("branch") else "")) if git.get("commit") \
        else f"unknown ({git.get('error')})"
    dev = prov["device"]
    items = [f"report written (UTC): {prov['created_utc']}", f"code: {code}",
             f"config hash: `{prov['config_hash']}` (SHA-256 of the resolved configuration)",
             f"host: {dev.get('cpu_model')} × {dev.get('cpu_count')} CPUs; GPUs: "
             f"{', '.join(dev.get('cuda_devices') or []) or 'none'}; Python {dev.get('python')}"]
    if prov.get("devices_used"):
        items.append("devices recorded by the jobs: " + "; ".join(f"{k} ({len(v)} jobs)"
                                                                   for k, v in prov["devices_used"].items()))
    for table in TABLE_PROVENANCE:
        path = out_dir / f"{table}.provenance.json"
        if path.exists():
            rec = json.loads(path.read_text())
            same = rec.get("config_hash") == prov.get("config_hash")
            items.append(f"`{table}.provenance.json`: commit `{(rec.get('git') or {}).get('commit')}`, config hash "
                         f"`{rec.get('config_hash')}`" + ("" if same else " (differs from this report's)"))
    blocks: list[fmt.Block] = [("h", 2, "Provenance"), ("list", items)]
    packages = [[name, version or "not installed"] for name, version in prov["packages"].items()]
    blocks += [("h", 3, "Packages"), ("table", ["package", "version"], packages)]
    stages = {k: v for k, v in prov["stages"].items() if not k.startswith("_")}
    blocks.append(("h", 3, "Wall time per stage"))
    if stages:
        rows = [[rule, str(st["jobs"]), f"{st['total_s']:.1f}", f"{st['max_s']:.1f}"] for rule, st in stages.items()]
        rows.append(["sum over jobs (parallel jobs overlap)", "", f"{prov['total_job_s']:.1f}", ""])
        blocks += [("p", "Seconds per rule, from the Snakemake benchmark files of the run."),
                   ("table", ["stage", "jobs", "total s", "longest job s"], rows)]
    else:
        blocks.append(("p", f"No benchmark files under `{prov['benchmarks_dir']}`."))
    return blocks


def table_blocks(section: Section, table: pd.DataFrame) -> list[fmt.Block]:
    """A comparison table (tidy: row, column, ours, ours_std, n_seeds, paper, difference) or any other CSV."""
    if section.key is None or not {"row", "column", "ours"} <= set(table.columns):
        return [("table", *fmt.frame_rows(table, section.digits))]
    blocks: list[fmt.Block] = [("table", *fmt.comparison_rows(table, section.digits, section.reference))]
    if {"aupr", "fpr95"} <= set(table.columns):
        metrics = table.assign(ours=table["aupr"], ours_std=table.get("aupr_std"), paper=float("nan"),
                               difference=float("nan"))
        header, rows = fmt.comparison_rows(metrics, 3)
        fpr = table.assign(ours=table["fpr95"], ours_std=table.get("fpr95_std"), paper=float("nan"),
                           difference=float("nan"))
        rows = [[r[0]] + [f"{a} / {b}" for a, b in zip(r[1:], f[1:], strict=True)]
                for r, f in zip(rows, fmt.comparison_rows(fpr, 3)[1], strict=True)]
        blocks += [("p", "AUPR / FPR at 95 % TPR (OoD = positive):"), ("table", header, rows)]
    if (pd.to_numeric(table.get("n_seeds"), errors="coerce") > 1).any():
        gaps = fmt.two_std_gaps(table, section.digits)
        blocks.append(("p", "Gaps to the paper larger than 2 std over seeds (†): " + ("; ".join(gaps) if gaps else
                                                                                    "none.")))
    return blocks


def shown_path(path: Path, out_dir: Path) -> str:
    """`path` relative to the output folder when it lies inside it (as the report names its files)."""
    try:
        return path.relative_to(out_dir).as_posix()
    except ValueError:
        return path.as_posix()


def build_report(out_dir: str | Path, prov: Mapping[str, Any] | None, reverse_dir: str | Path,
                 notes: Iterable[str] = ()) -> tuple[list[fmt.Block], dict[str, Any]]:
    """The report's blocks and its values (report.json) from what exists under `out_dir` now."""
    out_dir = Path(out_dir)
    values: dict[str, Any] = {}
    present, missing = [], []
    body: list[fmt.Block] = []
    for section in SECTIONS:
        path = section_path(out_dir, section, reverse_dir)
        body.append(("h", 2, section.title))
        if not path.exists():
            body.append(("p", f"Not run yet: `{section.make}`."))
            missing.append(f"{section.title} (`{section.make}`)")
            continue
        table = read_table(path)
        md = path.with_suffix(".md")
        body.append(("p", f"From `{shown_path(path, out_dir)}`" + (
            f" (notes and definitions: `{shown_path(md, out_dir)}`)." if md.exists() else ".")))
        body += table_blocks(section, table)
        if section.key is not None and {"row", "column", "ours"} <= set(table.columns):
            values.update(fmt.summary_values(section.key, table))
        present.append(section.title)
    body.append(("h", 2, "Figures"))
    for rel, caption in FIGURES:
        if (out_dir / rel).exists():
            body.append(("img", rel, caption))
            present.append(caption.split(":")[0])
        else:
            body.append(("p", f"{caption.split(':')[0]}: not run yet (`make paper-quick`)."))
            missing.append(f"{caption.split(':')[0]} (`make paper-quick`)")
    head: list[fmt.Block] = [
        ("h", 1, f"Reproduction report: {out_dir.as_posix()}"),
        ("p", "Böhm & Seljak (2020), Probabilistic Auto-Encoder, reproduced by this pipeline. Cells: ours "
              "(± std over seeds when more than one) with the paper's value and Δ = ours − paper; † marks a gap "
              "larger than 2 std over seeds. `make paper-quick` builds every part but the 3-seed and the reverse "
              "Table 2. Generated by the pipeline (rule write_report); do not edit."),
        *[("p", n) for n in notes],
        ("list", [f"present: {', '.join(present) or 'nothing yet'}", f"not run yet: {', '.join(missing) or 'nothing'}"]),
    ]
    blocks = head + body + provenance_blocks(prov, out_dir)
    record = {"outdir": out_dir.as_posix(), "created_utc": None if prov is None else prov["created_utc"],
              "commit": None if prov is None else prov["git"]["commit"],
              "config_hash": None if prov is None else prov["config_hash"],
              "present": present, "missing": missing, "figures": [r for r, _ in FIGURES if (out_dir / r).exists()],
              "values": values}
    return blocks, record


def run_write_report(out_dir: str | Path, md_path: str | Path, html_path: str | Path, json_path: str | Path,
                     config: Mapping[str, Any], repo_dir: str | Path, bench_dir: str | Path,
                     reverse_dir: str | Path, rules: Iterable[str] | None = None) -> dict[str, Any]:
    """Rule write_report: report.md, report.html and report.json of `out_dir`, each written atomically."""
    prov = collect_provenance(config, repo_dir, bench_dir, out_dir=out_dir, rules=rules)
    blocks, record = build_report(out_dir, prov, reverse_dir)
    title = f"PAE reproduction report: {Path(out_dir).name}"
    with atomic_path(md_path) as tmp:
        tmp.write_text(fmt.render_markdown(blocks))
    with atomic_path(html_path) as tmp:
        tmp.write_text(fmt.render_html(blocks, title))
    save_json(json_path, record | {"provenance": {k: prov[k] for k in ("git", "config_hash", "packages", "device",
                                                                         "stages", "total_job_s")}})
    print(f"[report] {md_path}: {len(record['present'])} parts present, missing: {record['missing'] or 'none'}")
    return record


def run_snapshot(report_dir: str | Path, docs_dir: str | Path) -> list[Path]:
    """Copy the report of `report_dir` (report.md, .html, .json and its figures) to `docs_dir` as
    NAME.md / NAME.html / NAME.json and NAME/*.png, with the timing reports of benchmarks/main_job.sh
    (timing-TARGET.txt) in NAME/, NAME = the report's output folder's name (results/quick →
    quick), so a report of another configuration can never land under the quick name."""
    report_dir, docs_dir = Path(report_dir), Path(docs_dir)
    record_path = report_dir / "report.json"
    if not record_path.exists():
        raise FileNotFoundError(f"{record_path} does not exist; run `make report` (or `make paper-quick`) first")
    record = json.loads(record_path.read_text())
    name = Path(record["outdir"]).name
    if Path(record["outdir"]).resolve() != report_dir.resolve() and Path(record["outdir"]).name != report_dir.name:
        raise ValueError(f"{record_path} describes {record['outdir']}, not {report_dir}; rerun `make report`")
    written = []
    timings = sorted(report_dir.glob("timing-*.txt"))  # benchmarks/main_job.sh's reports of this folder
    for src in [report_dir / fig for fig in record["figures"]] + timings:
        dst = docs_dir / name / src.name
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        written.append(dst)
    for ext in ("md", "html"):
        text = fmt.relocate_assets((report_dir / f"report.{ext}").read_text(), "figures/", f"{name}/")
        with atomic_path(docs_dir / f"{name}.{ext}") as tmp:
            tmp.write_text(text)
        written.append(docs_dir / f"{name}.{ext}")
    save_json(docs_dir / f"{name}.json", record)
    written.append(docs_dir / f"{name}.json")
    return written


def main(argv: list[str]) -> int:
    """`snapshot REPORT_DIR DOCS_DIR`, or `summary SNAPSHOT_JSON PREFIX...`: the README block rows of the values
    whose keys start with a prefix (e.g. 'Table 2 · PAE density')."""
    if len(argv) >= 3 and argv[0] == "summary":
        values = json.loads(Path(argv[1]).read_text())["values"]
        print(f"<!-- results: {argv[1]} -->\n| result | ours | paper |\n|---|---|---|")
        print("\n".join(fmt.summary_rows(values, argv[2:])) + "\n<!-- /results -->")
        return 0
    if len(argv) != 3 or argv[0] != "snapshot":
        print("usage: python -m pae.stages.report snapshot REPORT_DIR DOCS_DIR\n"
              "       python -m pae.stages.report summary SNAPSHOT_JSON KEY_PREFIX...", file=sys.stderr)
        return 2
    for path in run_snapshot(argv[1], argv[2]):
        print(path)
    print(f"[snapshot] {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
