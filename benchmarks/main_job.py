"""Time per stage and Table 2 agreement of a finished run, from its output folder.

    .venv/bin/python benchmarks/main_job.py                                  # results/quick
    .venv/bin/python benchmarks/main_job.py --out results/quick --wall 2610 --csv /tmp/stages.csv
    bash benchmarks/main_job.sh     # in a fresh clone: times `make venv` and `make table2`, then prints this report

Reads `<out>/benchmarks/**/*.tsv` (Snakemake's `benchmark:` files: one row per job, wall seconds in column `s`,
CPU seconds in `cpu_time`) and `<out>/table2.csv`. Prints, per stage (benchmark folder, or file stem for the
top-level files), the summed job seconds, the number of jobs, the longest job and the summed CPU seconds; the
sum over all jobs; the wall time when given (--wall; Snakemake's benchmark files carry no timestamps, so it is
never inferred from them); and the largest |ours − paper| over the paper's eight cells of Table 2 (PAE density
and AE reconstruction error × four OoD sets).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pae.stages.provenance import BENCHMARK_SUFFIXES, benchmark_rule, stage_times

#: Table 2 rows that carry a paper value (the other rows are ours only).
PAPER_ROWS: tuple[str, ...] = ("PAE density", "AE reconstruction error")
#: Column names that would carry a job's start / end time if a benchmark format had them (Snakemake's has none).
TIMESTAMP_COLUMNS: tuple[str, ...] = ("start", "end", "start_time", "end_time", "timestamp")


@dataclass(frozen=True)
class Gap:
    """One Table 2 cell with a paper value: |ours − paper| and where it is."""

    row: str
    column: str
    ours: float
    paper: float

    @property
    def abs_diff(self) -> float:
        return abs(self.ours - self.paper)


def benchmark_files(bench_dir: Path) -> list[Path]:
    """The benchmark files stage_times reads (same suffixes, hidden files skipped)."""
    if not bench_dir.is_dir():
        return []
    return sorted(
        p for p in bench_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in BENCHMARK_SUFFIXES
    )


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def stage_cpu_seconds(bench_dir: Path) -> dict[str, float | None]:
    """Summed `cpu_time` per stage (a job with several rows counts with its mean); None where a job lacks it."""
    per_rule: dict[str, list[float | None]] = {}
    for path in benchmark_files(bench_dir):
        value: float | None = None
        try:
            header, rows = _rows(path)
            if "cpu_time" in header and rows:
                values = [float(r["cpu_time"]) for r in rows]
                value = sum(values) / len(values) if all(math.isfinite(v) for v in values) else None
        except (OSError, ValueError, TypeError):
            value = None
        per_rule.setdefault(benchmark_rule(path.relative_to(bench_dir)), []).append(value)
    return {rule: None if None in vals else sum(vals) for rule, vals in per_rule.items()}  # type: ignore[misc]


def has_timestamps(bench_dir: Path) -> bool:
    """Whether any benchmark file has a start/end/timestamp column (Snakemake 9's format has none)."""
    for path in benchmark_files(bench_dir):
        try:
            header, _ = _rows(path)
        except OSError:
            continue
        if any(c in TIMESTAMP_COLUMNS for c in header):
            return True
    return False


def mtime_span(bench_dir: Path) -> float | None:
    """Seconds from the earliest (modification time − s) to the latest modification time of the benchmark
    files: the span from the first job's start to the last job's end if the files were never touched
    since, including any idle time between separate Snakemake invocations."""
    starts, ends = [], []
    for path in benchmark_files(bench_dir):
        try:
            _, rows = _rows(path)
            seconds = max(float(r["s"]) for r in rows)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        end = path.stat().st_mtime
        starts.append(end - seconds)
        ends.append(end)
    return max(ends) - min(starts) if ends else None


def table2_gaps(path: Path) -> list[Gap]:
    """The paper's cells of Table 2 (rows PAPER_ROWS, every column) that have both our and the paper's value."""
    gaps = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("row") not in PAPER_ROWS:
                continue
            try:
                ours, paper = float(r["ours"]), float(r["paper"])
            except (KeyError, TypeError, ValueError):
                continue  # no paper value (or no number of ours): skipped
            if math.isfinite(ours) and math.isfinite(paper):
                gaps.append(Gap(r["row"], r["column"], ours, paper))
    return gaps


def hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def summarize(out: Path, wall: float | None = None, csv_path: Path | None = None,
              show_mtime_span: bool = False, setup: float | None = None, cores: int = 2) -> dict[str, Any]:
    """Print the per-stage table, the job-second sum, the wall time and the Table 2 gap; return them."""
    bench_dir = out / "benchmarks"
    stages = stage_times(bench_dir)
    skipped = stages.pop("_skipped", {}).get("files", [])
    cpu = stage_cpu_seconds(bench_dir)
    n_files = len(benchmark_files(bench_dir))
    print(f"benchmarks: {bench_dir} ({n_files} files, {sum(s['jobs'] for s in stages.values())} jobs read)")
    for line in skipped:
        print(f"  skipped {line}")
    rows = []
    if stages:
        print(f"{'stage':<22} {'total s':>10} {'jobs':>5} {'max job s':>10} {'cpu s':>10}")
        for rule, st in sorted(stages.items(), key=lambda kv: -kv[1]["total_s"]):
            c = cpu.get(rule)
            rows.append({"stage": rule, "jobs": st["jobs"], "total_s": st["total_s"], "max_s": st["max_s"],
                         "mean_s": st["mean_s"], "cpu_s": None if c is None else round(c, 2)})
            c_txt = "n/a" if c is None else f"{c:.1f}"
            print(f"{rule + ':':<22} {st['total_s']:>10.1f} {st['jobs']:>5d} {st['max_s']:>10.1f} {c_txt:>10}")
    total = sum(s["total_s"] for s in stages.values())
    cpu_known = [c for c in cpu.values() if c is not None]
    print(f"sum of job seconds: {total:.1f} s ({hms(total)}); parallel jobs overlap, so this is not the wall time")
    if cpu_known:
        print(f"sum of job CPU seconds: {sum(cpu_known):.1f} s ({hms(sum(cpu_known))})"
              + ("" if len(cpu_known) == len(cpu) else f", {len(cpu) - len(cpu_known)} stage(s) without cpu_time"))
    if wall is not None:
        print(f"wall: {wall:.1f} s ({hms(wall)}, given with --wall); sum of job seconds / wall = {total / wall:.2f}")
        if cpu_known:
            print(f"cores busy: job CPU seconds / (wall × {cores} cores) = {sum(cpu_known) / (wall * cores):.2f}")
        if setup is not None:
            print(f"environment set-up: {setup:.1f} s; set-up + wall: {setup + wall:.1f} s ({hms(setup + wall)})")
    elif has_timestamps(bench_dir):
        print("wall: not given (the benchmark files have a timestamp column, which this script does not read; "
              "pass --wall SECONDS)")
    else:
        print("wall: not given (Snakemake's benchmark files carry no start/end timestamps; pass --wall SECONDS)")
    span = mtime_span(bench_dir) if show_mtime_span else None
    if show_mtime_span:
        print("benchmark-file modification-time span: "
              + (f"{span:.1f} s ({hms(span)}), earliest (mtime − s) to latest mtime; includes idle time between "
                 "separate Snakemake invocations, and is wrong if the files were copied or touched"
                 if span is not None else "no readable files"))
    table2 = out / "table2.csv"
    worst: Gap | None = None
    if table2.is_file():
        gaps = table2_gaps(table2)
        if gaps:
            worst = max(gaps, key=lambda g: g.abs_diff)
            print(f"Table 2, largest |ours - paper| over {len(gaps)} paper cells: {worst.abs_diff:.4f} at "
                  f"{worst.row} / {worst.column} (ours {worst.ours:.4f}, paper {worst.paper:.4f})")
        else:
            print(f"Table 2: {table2} has no cell of {', '.join(PAPER_ROWS)} with a paper value")
    else:
        print(f"Table 2: {table2} not found")
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["stage", "jobs", "total_s", "max_s", "mean_s", "cpu_s"])
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {csv_path}")
    return {"stages": rows, "total_s": total, "wall_s": wall, "setup_s": setup, "mtime_span_s": span, "worst": worst}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/quick", help="the run's output folder (config outdir)")
    p.add_argument("--wall", type=float, help="measured wall-clock seconds of the run, printed beside the sum")
    p.add_argument("--cores", type=int, default=2, help="cores the run had (for the share of them kept busy)")
    p.add_argument("--setup", type=float, help="measured seconds of the environment set-up (make venv), added to --wall")
    p.add_argument("--csv", help="also write the per-stage table to this CSV file")
    p.add_argument("--mtime-span", action="store_true",
                   help="also print the span of the benchmark files' modification times (see mtime_span)")
    args = p.parse_args(argv)
    if args.wall is not None and not (math.isfinite(args.wall) and args.wall > 0):
        p.error(f"--wall must be a positive number of seconds, got {args.wall}")
    if args.setup is not None and not (math.isfinite(args.setup) and args.setup >= 0):
        p.error(f"--setup must be a non-negative number of seconds, got {args.setup}")
    if args.cores < 1:
        p.error(f"--cores must be a positive integer, got {args.cores}")
    if args.setup is not None and args.wall is None:
        p.error("--setup needs --wall (the workflow's wall-clock seconds)")
    out = Path(os.path.expanduser(args.out))
    return summarize(out, args.wall, Path(args.csv) if args.csv else None, args.mtime_span, args.setup,
                     args.cores)


if __name__ == "__main__":
    main()
