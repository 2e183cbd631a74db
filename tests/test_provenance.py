"""pae.stages.provenance: config hash, benchmark parsing, git info, the record, and the provenance rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pae.stages import provenance as pv

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path: Path, *seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{s}\t0:00:00\t1.0\t2.0\t1.0\t1.0\t0.0\t0.0\t50.0\t{s}\n" for s in seconds)
    path.write_text(BENCH_HEADER + rows)
    return path


# ------------------------------------------------------------------------------------------ config hash


def test_config_hash_is_order_independent_and_deterministic() -> None:
    a = {"outdir": "results", "ae": {"epochs": 500, "lr": 1e-3}, "seeds": [0, 1], "flow": {"depth": {4: 8}}}
    b = {"flow": {"depth": {4: 8}}, "seeds": [0, 1], "ae": {"lr": 1e-3, "epochs": 500}, "outdir": "results"}
    h = pv.config_hash(a)
    assert h == pv.config_hash(b)
    assert len(h) == 16 and int(h, 16) >= 0
    # the same value in another process (no dependence on PYTHONHASHSEED or dict insertion order)
    code = f"from pae.stages.provenance import config_hash; print(config_hash({b!r}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == h


def test_config_hash_changes_with_any_value_and_list_order() -> None:
    base = {"ae": {"epochs": 500, "lr": 1e-3}, "seeds": [0, 1]}
    h = pv.config_hash(base)
    assert pv.config_hash({"ae": {"epochs": 501, "lr": 1e-3}, "seeds": [0, 1]}) != h
    assert pv.config_hash({"ae": {"epochs": 500, "lr": 1e-3}, "seeds": [1, 0]}) != h  # lists are ordered
    assert pv.config_hash({"ae": {"epochs": 500}, "seeds": [0, 1]}) != h


def test_config_hash_accepts_yaml_and_numpy_types_and_rejects_objects() -> None:
    assert pv.config_hash({"k": np.int64(3), "t": (1, 2)}) == pv.config_hash({"k": 3, "t": [1, 2]})
    with pytest.raises(TypeError, match="cannot be hashed"):
        pv.config_hash({"bad": object()})
    with pytest.raises(TypeError, match="mapping"):
        pv.config_hash([("a", 1)])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- benchmarks


def test_read_benchmark_returns_the_s_column(tmp_path: Path) -> None:
    path = _bench(tmp_path / "b.tsv", 12.5, 13.5)
    assert pv.read_benchmark(path) == [12.5, 13.5]


def test_read_benchmark_names_the_file_on_bad_input(tmp_path: Path) -> None:
    bad_header = tmp_path / "bad.tsv"
    bad_header.write_text("seconds\tfoo\n1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.tsv.*no 's' column"):
        pv.read_benchmark(bad_header)
    bad_value = tmp_path / "nan.tsv"
    bad_value.write_text(BENCH_HEADER + "NA\t0:00:00\t1\t1\t1\t1\t0\t0\t0\t0\n")
    with pytest.raises(ValueError, match=r"nan\.tsv:2"):
        pv.read_benchmark(bad_value)


def test_benchmark_rule_from_folder_or_file_name() -> None:
    rules = ["train_ae", "train_flow", "train", "table2"]
    assert pv.benchmark_rule("train_ae/fmnist_K4_seed0.tsv") == "train_ae"
    assert pv.benchmark_rule("train_ae_fmnist_K4_seed0.tsv", rules) == "train_ae"  # longest prefix
    assert pv.benchmark_rule("train_flow.fmnist.tsv", rules) == "train_flow"
    assert pv.benchmark_rule("table2.tsv", rules) == "table2"
    assert pv.benchmark_rule("train_aex.tsv", ["train_ae"]) == "train_aex"  # no false prefix match
    assert pv.benchmark_rule("fid_scores.fmnist.tsv") == "fid_scores"


def test_stage_times_groups_by_rule_and_sums(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    _bench(bench / "train_ae" / "fmnist_K4_seed0.tsv", 100.0)
    _bench(bench / "train_ae" / "fmnist_K8_seed0.tsv", 300.0)
    _bench(bench / "train_flow" / "fmnist" / "K4_seed0.tsv", 10.0, 20.0)  # repeat(): one job, mean 15
    _bench(bench / "table2.tsv", 1.0)
    (bench / "train_ae" / ".fmnist_K4_seed0.tsv.part").write_text("junk")  # temp files are ignored
    broken = bench / "fid_scores" / "x.tsv"
    broken.parent.mkdir()
    broken.write_text("no header\n")
    stages = pv.stage_times(bench, rules=["train_ae", "train_flow", "table2", "fid_scores"])
    assert stages["train_ae"] == {"jobs": 2, "total_s": 400.0, "max_s": 300.0, "mean_s": 200.0}
    assert stages["train_flow"]["jobs"] == 1 and stages["train_flow"]["total_s"] == 15.0
    assert stages["table2"]["total_s"] == 1.0
    assert "fid_scores" not in stages and "fid_scores/x.tsv" in stages["_skipped"]["files"][0]
    with pytest.raises(ValueError, match="x.tsv"):
        pv.stage_times(bench, strict=True)
    assert pv.stage_times(tmp_path / "absent") == {}


# ------------------------------------------------------------------------------------------------- git


def test_git_info_outside_a_repository_degrades(tmp_path: Path) -> None:
    info = pv.git_info(tmp_path)
    assert info["commit"] is None and info["dirty"] is None
    assert "no git information" in info["error"]


def test_git_info_without_git_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `git` on PATH
    info = pv.git_info(tmp_path)
    assert info["commit"] is None and "error" in info


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_info_commit_and_dirty_flag(tmp_path: Path) -> None:
    env_args = ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("1\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), *env_args, "commit", "-qm", "x"], check=True)
    clean = pv.git_info(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "a.txt").write_text("2\n")
    dirty = pv.git_info(tmp_path)
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] is True
    assert dirty["changed_files"] == ["a.txt"]


# ---------------------------------------------------------------------------------------------- record


def test_package_versions_and_device_info() -> None:
    versions = pv.package_versions(["numpy", "surely-not-installed-pkg"])
    assert versions["numpy"] == np.__version__
    assert versions["surely-not-installed-pkg"] is None
    dev = pv.device_info()
    assert dev["cpu_count"] >= 1 and isinstance(dev["cuda_devices"], list)


def test_devices_from_metrics(tmp_path: Path) -> None:
    run = tmp_path / "fmnist" / "K4" / "seed0"
    run.mkdir(parents=True)
    (run / "ae_metrics.json").write_text(json.dumps({"device": "cuda", "device_name": "NVIDIA H100"}))
    (run / "flow_metrics.json").write_text(json.dumps({"loss": 1.0}))  # no device: skipped
    (run / "vae_metrics.json").write_text("{broken")  # unreadable: skipped
    assert pv.devices_from_metrics(tmp_path) == {"cuda:NVIDIA H100": ["fmnist/K4/seed0/ae_metrics.json"]}


def test_run_provenance_json_and_markdown(tmp_path: Path) -> None:
    table = tmp_path / "table2.csv"
    table.write_text("outlier,auroc\nmnist,0.99\n")
    _bench(tmp_path / "benchmarks" / "train_ae" / "fmnist_K4_seed0.tsv", 3725.0)
    config = {"outdir": str(tmp_path), "ae": {"epochs": 1}}
    prov = pv.run_provenance(
        tmp_path / "table2.provenance.json",
        tmp_path / "table2.provenance.md",
        config=config,
        repo_dir=tmp_path,
        bench_dir=tmp_path / "benchmarks",
        targets=[table],
        out_dir=tmp_path,
        rules=["train_ae"],
    )
    on_disk = json.loads((tmp_path / "table2.provenance.json").read_text())
    assert on_disk["config_hash"] == pv.config_hash(config) == prov["config_hash"]
    assert on_disk["config"] == config
    assert on_disk["targets"][table.as_posix()]["sha256"] == pv.file_sha256(table)
    assert on_disk["stages"]["train_ae"]["total_s"] == 3725.0 and on_disk["total_job_s"] == 3725.0
    assert set(pv.KEY_PACKAGES) <= set(on_disk["packages"])
    md = (tmp_path / "table2.provenance.md").read_text()
    assert "| train_ae | 1 | 1:02:05 | 1:02:05 |" in md
    assert "unknown (no git information" in md
    assert not list(tmp_path.glob(".*.part"))  # atomic writes left no temp files


# -------------------------------------------------------------------------------- the rule, end to end


def test_provenance_rule_runs_in_a_minimal_workflow(tmp_path: Path, repo_root: Path) -> None:
    """workflow/rules/provenance.smk with a stand-in table rule that writes its record like write_table1 and
    make_table2 do; asking for the table's CSV by path writes the record too."""
    snakemake = Path(sys.executable).parent / "snakemake"
    if not snakemake.exists():
        pytest.skip("snakemake is not installed beside this Python")
    rules = repo_root / "workflow" / "rules" / "provenance.smk"
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            config["outdir"] = "res"
            OUT, LOGS, BENCH, ENV = "res", "res/logs", "res/benchmarks", "../envs/pae.yaml"

            include: "{rules}"

            rule table2:
                output:
                    csv=f"{{OUT}}/table2.csv",
                    provenance_json=f"{{OUT}}/table2.provenance.json",
                    provenance_md=provenance_md("table2"),
                params: provenance=provenance_settings
                benchmark: f"{{BENCH}}/table2/table2.tsv"
                run:
                    from pae.stages.provenance import run_table_provenance
                    Path(output.csv).write_text("outlier,auroc\\nmnist,0.99\\n")
                    (Path(BENCH) / "table2").mkdir(parents=True, exist_ok=True)
                    (Path(BENCH) / "table2" / "old.tsv").write_text("s\\n1.5\\n")
                    run_table_provenance(output.csv, output.provenance_json, output.provenance_md,
                                         params.provenance)
            """
        )
    )
    out = subprocess.run(
        [str(snakemake), "--cores", "1", "res/table2.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    prov = json.loads((tmp_path / "res" / "table2.provenance.json").read_text())
    assert prov["config_hash"] == pv.config_hash({"outdir": "res"})
    assert "table2" in prov["stages"] and prov["stages"]["table2"]["jobs"] == 1  # the benchmark file present
    assert prov["targets"]["res/table2.csv"]["sha256"] == pv.file_sha256(tmp_path / "res" / "table2.csv")
    assert (tmp_path / "res" / "table2.provenance.md").read_text().startswith("# Provenance")
