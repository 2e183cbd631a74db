"""Stage driver of workflow/rules/provenance.smk: the provenance of a result table (code version, configuration,
software, hardware and wall time per stage).

Written beside every table (``OUT/table2.provenance.json`` and ``.md``) so a number can be traced back to
the commit, the resolved configuration and the machine that produced it. Nothing here touches the
science; every collector degrades to ``None`` plus a reason instead of failing (a provenance record
must never be the reason a pipeline run fails).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pae.files.data import file_digest
from pae.files.io import atomic_path, save_json

#: Packages whose versions decide the numbers (or the workflow semantics).
KEY_PACKAGES: tuple[str, ...] = (
    "torch",
    "torchvision",
    "pytorch-fid",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "scikit-image",
    "snakemake",
    "snakemake-executor-plugin-slurm",
)

#: Benchmark file suffixes Snakemake writes (any name is allowed; these are the usual ones).
BENCHMARK_SUFFIXES: tuple[str, ...] = (".tsv", ".txt", ".benchmark")


# ----------------------------------------------------------------------------------------- code version


def git_info(repo_dir: str | Path) -> dict[str, Any]:
    """Commit, dirty flag and branch of the git checkout at ``repo_dir``.

    Outside a repository (a release tarball, a copied workflow) or without a ``git`` binary this returns
    ``{"commit": None, "dirty": None, "branch": None, "error": <why>}`` instead of raising. ``dirty`` counts
    modified tracked files and untracked, non-ignored files (results/ and data/ are ignored).
    """

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(repo_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip() or f"git {' '.join(args)} exited {out.returncode}")
        return out.stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain")  # "XY path" lines; X may be a space, so no strip()
        branch = git("rev-parse", "--abbrev-ref", "HEAD").strip()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"commit": None, "dirty": None, "branch": None, "error": f"no git information: {exc}"}
    changed = [line[3:] for line in status.splitlines() if len(line) > 3]
    return {
        "commit": commit,
        "dirty": bool(changed),
        "changed_files": changed[:50],
        "branch": None if branch == "HEAD" else branch,
    }


# ------------------------------------------------------------------------------------------ configuration


def _canonical(obj: Any) -> Any:
    """A JSON-ready copy of ``obj`` whose serialisation does not depend on key order or container type.

    Mapping keys become strings (YAML gives ``{4: 8}`` for ``realnvp_depth``), tuples become lists, sets
    become sorted lists, numpy scalars become Python numbers, paths become strings.
    """
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_canonical(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # NaN / inf are not JSON; keep them distinguishable
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _canonical(obj.item())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"config value {obj!r} of type {type(obj).__name__} cannot be hashed as JSON")


def config_hash(config: Mapping[str, Any], length: int = 16) -> str:
    """SHA-256 (hex, first ``length`` characters) of the resolved configuration.

    Stable across processes and independent of key order: the config is serialised as canonical JSON
    (sorted keys, no whitespace). Two configs hash equal exactly when they hold the same values.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# SHA-256 of a file's bytes (ties the record to the exact table it describes).
file_sha256 = file_digest


# ------------------------------------------------------------------------------------ software, hardware


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (``None`` for packages that are not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def device_info() -> dict[str, Any]:
    """CPU model and count, OS, Python, and the CUDA devices torch sees (of the host running this)."""
    info: dict[str, Any] = {
        "hostname": platform.node() or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    try:
        import torch

        info["torch_cuda_build"] = torch.version.cuda
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["cuda_devices"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if info["cuda_available"]
            else []
        )
    except Exception as exc:  # a broken CUDA setup must not stop the record
        info["cuda_available"] = None
        info["cuda_devices"] = None
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return info


def devices_from_metrics(out_dir: str | Path, pattern: str = "**/*metrics.json") -> dict[str, list[str]]:
    """Devices recorded by the jobs themselves: ``{"cuda:NVIDIA A100": ["fmnist/K64/seed0/ae_metrics.json"]}``.

    The provenance job may run on another node than the trainings (e.g. a CPU node of the cluster), so
    it also collects the top-level ``"device"`` (and optional ``"device_name"``) keys of the metrics JSON
    files the training scripts write. Files without these keys are skipped.
    """
    out_dir = Path(out_dir)
    found: dict[str, list[str]] = {}
    for path in sorted(out_dir.glob(pattern)):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "device" not in data:
            continue
        label = str(data["device"])
        if data.get("device_name"):
            label += f":{data['device_name']}"
        found.setdefault(label, []).append(path.relative_to(out_dir).as_posix())
    return found


# ------------------------------------------------------------------------------------------- wall time


def read_benchmark(path: str | Path) -> list[float]:
    """Wall-clock seconds (the ``s`` column) of every row of one Snakemake benchmark TSV.

    More than one row appears with ``benchmark: repeat(..., n)``. Raises ``ValueError`` naming the file
    when the header has no ``s`` column or a value is not a finite number.
    """
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or "s" not in reader.fieldnames:
            raise ValueError(
                f"{path}: not a Snakemake benchmark file (no 's' column in header {reader.fieldnames}); "
                "delete it and rerun the rule"
            )
        seconds: list[float] = []
        for lineno, row in enumerate(reader, start=2):
            try:
                value = float(row["s"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{lineno}: 's' value {row['s']!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{path}:{lineno}: 's' value {value} is not finite")
            seconds.append(value)
    return seconds


def benchmark_rule(rel_path: str | Path, rules: Iterable[str] | None = None) -> str:
    """The rule a benchmark file belongs to, from its path relative to the benchmark folder.

    ``train_ae/fmnist_K4_seed0.tsv`` → ``train_ae`` (first folder). A top-level file is named after
    its stem: ``train_ae_fmnist_K4.tsv`` → the longest name in ``rules`` that prefixes the stem
    followed by ``_``, ``.``, ``-`` or nothing; without ``rules``, the stem up to the first ``.``.
    """
    parts = Path(rel_path).parts
    head = parts[0] if len(parts) > 1 else Path(parts[0]).name.split(".", 1)[0]
    if rules:
        matches = [r for r in rules if head == r or any(head.startswith(r + sep) for sep in "_.-")]
        if matches:
            return max(matches, key=len)
    return head


def stage_times(
    bench_dir: str | Path, rules: Iterable[str] | None = None, strict: bool = False
) -> dict[str, dict[str, Any]]:
    """Wall time per stage (rule) from every benchmark file below ``bench_dir``.

    Returns ``{rule: {"jobs": n, "total_s": Σ, "max_s": max, "mean_s": Σ/n}}`` sorted by rule name;
    a file with several rows (``repeat``) counts as one job with its mean time. Unreadable files are
    skipped and listed under the key ``"_skipped"`` unless ``strict`` (then the error propagates). An
    absent folder gives ``{}``.
    """
    bench_dir = Path(bench_dir)
    rule_list = list(rules) if rules is not None else None
    per_rule: dict[str, list[float]] = {}
    skipped: list[str] = []
    if not bench_dir.is_dir():
        return {}
    for path in sorted(p for p in bench_dir.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.suffix not in BENCHMARK_SUFFIXES:
            continue
        rel = path.relative_to(bench_dir)
        try:
            rows = read_benchmark(path)
        except (OSError, ValueError) as exc:
            if strict:
                raise
            skipped.append(f"{rel.as_posix()}: {exc}")
            continue
        if rows:
            per_rule.setdefault(benchmark_rule(rel, rule_list), []).append(sum(rows) / len(rows))
    result: dict[str, dict[str, Any]] = {
        rule: {
            "jobs": len(times),
            "total_s": round(sum(times), 3),
            "max_s": round(max(times), 3),
            "mean_s": round(sum(times) / len(times), 3),
        }
        for rule, times in sorted(per_rule.items())
    }
    if skipped:
        result["_skipped"] = {"files": skipped}  # type: ignore[assignment]
    return result


# ------------------------------------------------------------------------------------------- the record


def collect_provenance(
    config: Mapping[str, Any],
    repo_dir: str | Path,
    bench_dir: str | Path,
    targets: Iterable[str | Path] = (),
    out_dir: str | Path | None = None,
    rules: Iterable[str] | None = None,
    packages: Iterable[str] = KEY_PACKAGES,
) -> dict[str, Any]:
    """Everything a reader needs to trace ``targets`` (the table files) back to code, config and machine."""
    targets = [Path(t) for t in targets]
    stages = stage_times(bench_dir, rules)
    timed = {k: v for k, v in stages.items() if not k.startswith("_")}
    return {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "targets": {
            t.as_posix(): {"sha256": file_sha256(t), "bytes": t.stat().st_size} if t.exists() else None
            for t in targets
        },
        "git": git_info(repo_dir),
        "config_hash": config_hash(config),
        "config": _canonical(config),
        "packages": package_versions(packages),
        "device": device_info(),
        "devices_used": devices_from_metrics(out_dir) if out_dir is not None else {},
        "benchmarks_dir": Path(bench_dir).as_posix(),
        "stages": stages,
        "total_job_s": round(sum(v["total_s"] for v in timed.values()), 3),
    }


def _fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def render_markdown(prov: Mapping[str, Any]) -> str:
    """A short human-readable rendering of a :func:`collect_provenance` record."""
    git = prov["git"]
    if git.get("commit"):
        code = f"`{git['commit']}`" + (" (uncommitted changes)" if git.get("dirty") else "")
        if git.get("branch"):
            code += f" on `{git['branch']}`"
    else:
        code = f"unknown ({git.get('error', 'no git')})"
    dev = prov["device"]
    gpus = ", ".join(dev.get("cuda_devices") or []) or "none"
    lines = [
        "# Provenance",
        "",
        f"- created (UTC): {prov.get('created_utc')}",
        f"- code: {code}",
        f"- config hash: `{prov.get('config_hash')}` (SHA-256 of the resolved config, canonical JSON)",
        f"- host: {dev.get('cpu_model')} × {dev.get('cpu_count')} CPUs, GPUs: {gpus}, "
        f"Python {dev.get('python')}",
    ]
    if prov.get("devices_used"):
        used = "; ".join(f"{k} ({len(v)} jobs)" for k, v in prov["devices_used"].items())
        lines.append(f"- devices recorded by the jobs: {used}")
    lines += ["", "## Targets", "", "| file | sha256 |", "|---|---|"]
    for name, meta in prov["targets"].items():
        lines.append(f"| {name} | {meta['sha256'][:16] + '…' if meta else 'missing'} |")
    lines += ["", "## Packages", "", "| package | version |", "|---|---|"]
    for name, version in prov["packages"].items():
        lines.append(f"| {name} | {version or 'not installed'} |")
    lines += ["", "## Wall time per stage (Snakemake benchmarks)", ""]
    stages = {k: v for k, v in prov["stages"].items() if not k.startswith("_")}
    if stages:
        lines += ["| stage | jobs | total | longest job |", "|---|---:|---:|---:|"]
        for rule, st in stages.items():
            lines.append(
                f"| {rule} | {st['jobs']} | {_fmt_seconds(st['total_s'])} | {_fmt_seconds(st['max_s'])} |"
            )
        lines.append(f"| **sum over jobs** (parallel jobs overlap, so this exceeds the elapsed time) | | **{_fmt_seconds(prov['total_job_s'])}** | |")
    else:
        lines.append(f"No benchmark files under `{prov.get('benchmarks_dir')}`.")
    skipped = prov["stages"].get("_skipped")
    if skipped:
        lines += ["", "Skipped benchmark files: " + "; ".join(skipped["files"])]
    return "\n".join(lines) + "\n"


def run_provenance(
    json_path: str | Path, md_path: str | Path | None = None, **collect_kwargs: Any
) -> dict[str, Any]:
    """Collect the record (:func:`collect_provenance` arguments) and write JSON (+ Markdown), atomically."""
    prov = collect_provenance(**collect_kwargs)
    json.dumps(prov, allow_nan=False)  # fail before writing anything if the record is not valid JSON
    if md_path is not None:
        with atomic_path(md_path) as tmp:
            tmp.write_text(render_markdown(prov))
    save_json(json_path, prov)
    return prov


def run_table_provenance(table: str | Path, json_path: str | Path, md_path: str | Path,
                         settings: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance record of one table, written by the table's own job (so that asking for the table's
    CSV by path builds it too). settings: the rule's `provenance` param (workflow/rules/provenance.smk):
    config, repo, bench, rules."""
    return run_provenance(json_path, md_path, config=settings["config"], repo_dir=settings["repo"],
                          bench_dir=settings["bench"], targets=[str(table)], out_dir=Path(table).parent,
                          rules=settings["rules"])
