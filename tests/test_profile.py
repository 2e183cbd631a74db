"""profiles/slurm + the workflow profile profiles/default: the seven GPU rules get a GPU (sbatch --gpus), every
other job is CPU-only; `--workflow-profile none` is the CPU-only variant; no rule file asks for a GPU.

Checked three ways: the profile files themselves, a dry run of a stand-in workflow through the profiles with the
sbatch command line built by the installed plugin's own code, and dry runs of the real workflow (Table 2 with
config/test.yaml).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

# Every rule that asks for a GPU (profiles/default/config.yaml; the README's cluster section lists the same).
GPU_RULES = ("train_ae", "train_vae", "train_flow", "train_classifier", "fid_reference", "fid_scores", "posterior")
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def _profile(repo_root: Path, name: str = "slurm") -> dict[str, Any]:
    return yaml.safe_load((repo_root / "profiles" / name / "config.yaml").read_text())


def _value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def parse_dry_run(output: str) -> list[dict[str, Any]]:
    """Jobs of a `snakemake -n` printout: [{"rule": name, "threads": n, "resources": {...}}, ...]."""
    jobs: list[dict[str, Any]] = []
    for line in output.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            jobs.append({"rule": head.group(1), "threads": 1, "resources": {}})
            continue
        field = re.match(r"^\s+(threads|resources): (.*)$", line)
        if field and jobs:
            if field.group(1) == "threads":
                jobs[-1]["threads"] = int(field.group(2))
            else:
                pairs = (kv.split("=", 1) for kv in field.group(2).split(", ") if "=" in kv)
                jobs[-1]["resources"] = {k: _value(v) for k, v in pairs}
    return jobs


class _Resources(dict):
    """What the plugin expects of job.resources: dict access plus attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Job:
    def __init__(self, job: dict[str, Any]) -> None:
        self.name = job["rule"]
        self.threads = job["threads"]
        self.resources = _Resources(job["resources"])


def sbatch_call(job: dict[str, Any]) -> str:
    """The sbatch command line snakemake-executor-plugin-slurm would build for a parsed dry-run job."""
    submit = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
    params = {
        "run_uuid": "uuid",
        "slurm_logfile": "log",
        "comment_str": job["rule"],
        "account": "",
        "partition": "",
        "workdir": None,
    }
    # the executor appends set_gres_string(job) to get_submit_command(...) (plugin 2.8, __init__.py)
    return submit.get_submit_command(_Job(job), params) + utils.set_gres_string(_Job(job))


def _dry_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed beside this Python")
    return subprocess.run(
        # a dry run caps threads at --cores (1 when absent); a real submission does not cap them
        [str(SNAKEMAKE), "-n", "--cores", "64", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_gpu_only_for(jobs: list[dict[str, Any]], gpu_rules: tuple[str, ...] = GPU_RULES) -> None:
    assert jobs, "the dry run listed no jobs"
    for job in jobs:
        res = job["resources"]
        if job["rule"] in gpu_rules:
            assert res.get("gpu") == 1, f"{job['rule']} must request gpu=1, has {res}"
            assert re.search(r"--gpus=1\b", sbatch_call(job)), sbatch_call(job)
        else:
            assert not res.get("gpu") and "gpu" not in str(res.get("gres", "")), f"{job['rule']}: {res}"
            call = sbatch_call(job)
            assert "--gpus" not in call and "--gres" not in call, call


# ------------------------------------------------------------------------------------ the profile file


def test_profile_file_settings(repo_root: Path) -> None:
    prof = _profile(repo_root)
    assert prof["executor"] == "slurm"
    assert prof["jobs"] >= 1 and prof["latency-wait"] >= 30 and prof["retries"] >= 1
    defaults = prof["default-resources"]
    assert defaults["mem_mb"] > 0 and defaults["runtime"] > 0
    assert not {"gpu", "gres", "gpu_model", "slurm_extra"} & set(defaults), "CPU jobs must not get a GPU"
    assert prof["slurm-status-command"] == "squeue", "sacct hangs on clusters without accounting"
    assert "set-resources" not in prof, "profiles/default owns set-resources (it would override this one's)"
    workflow_profile = _profile(repo_root, "default")
    assert set(workflow_profile) == {"set-resources"}, "the workflow profile must not override site keys"
    assert set(workflow_profile["set-resources"]) == set(GPU_RULES)
    for rule, res in workflow_profile["set-resources"].items():
        assert res == {"gpu": 1}, f"{rule}: {res}"


def test_no_rule_file_asks_for_a_gpu(repo_root: Path) -> None:
    for path in (repo_root / "workflow" / "rules").glob("*.smk"):
        assert not re.search(r"\b(gpu|gres)\s*=", path.read_text()), f"{path.name} declares a GPU resource"


def test_readme_lists_the_gpu_rules(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    section = readme[readme.index("## Paper scale and clusters"):]
    assert "exactly the seven rules" in section and all(f"`{r}`" in section for r in GPU_RULES)


def test_workstation_profile_limits_gpu_jobs(repo_root: Path) -> None:
    prof = yaml.safe_load((repo_root / "profiles" / "workstation" / "config.yaml").read_text())
    assert prof["resources"]["gpu"] >= 1 and prof["cores"] >= 1
    assert "executor" not in prof  # local execution


def test_parse_dry_run() -> None:
    text = textwrap.dedent(
        """
        rule train_ae:
            output: a
            threads: 2
            resources: tmpdir=/tmp, mem_mb=4000, mem=4 GB, runtime=120, gpu=1
        localrule table2:
            input: a
            resources: tmpdir=/tmp, runtime=60
        """
    )
    assert parse_dry_run(text) == [
        {
            "rule": "train_ae",
            "threads": 2,
            "resources": {"tmpdir": "/tmp", "mem_mb": 4000, "mem": "4 GB", "runtime": 120, "gpu": 1},
        },
        {"rule": "table2", "threads": 1, "resources": {"tmpdir": "/tmp", "runtime": 60}},
    ]


# ------------------------------------------------------------------ a stand-in workflow through the profile


def test_profile_dry_run_stand_in_workflow(tmp_path: Path, repo_root: Path) -> None:
    """Only the workflow profile gives train_ae and train_flow their GPU; the other rules stay CPU-only."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """
            rule all:
                input: "flow.pt", "table.csv"
            rule preprocess:
                output: "data.npz"
                threads: 2
                resources: mem_mb=8000, runtime=30
                shell: "touch {output}"
            rule train_ae:
                input: "data.npz"
                output: "ae.pt"
                threads: 2
                resources: mem_mb=16000, runtime=600
                shell: "touch {output}"
            rule train_flow:
                input: "ae.pt"
                output: "flow.pt"
                shell: "touch {output}"
            rule table:
                input: "ae.pt"
                output: "table.csv"
                shell: "touch {output}"
            """
        )
    )
    out = _dry_run(["--profile", str(repo_root / "profiles" / "slurm"), "--workflow-profile",
                    str(repo_root / "profiles" / "default")], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = parse_dry_run(out.stdout + out.stderr)
    assert {j["rule"] for j in jobs} == {"all", "preprocess", "train_ae", "train_flow", "table"}
    _assert_gpu_only_for(jobs)
    by_rule = {j["rule"]: j for j in jobs}
    assert by_rule["table"]["resources"]["mem_mb"] == _profile(repo_root)["default-resources"]["mem_mb"]
    assert by_rule["train_ae"]["resources"]["mem_mb"] == 16000  # the rule's own value wins
    assert "--cpus-per-task=2" in sbatch_call(by_rule["train_ae"])
    assert "-t 600" in sbatch_call(by_rule["train_ae"]) and "--mem 16000" in sbatch_call(by_rule["train_ae"])


# ------------------------------------------------------------------------------------ the real workflow


def _real_dry_run(repo_root: Path, tmp_path: Path, workflow_profile: str) -> list[dict[str, Any]]:
    out = _dry_run(
        [
            "--profile",
            str(repo_root / "profiles" / "slurm"),
            "--workflow-profile",
            workflow_profile,
            "--snakefile",
            str(repo_root / "workflow" / "Snakefile"),
            "--configfile",
            str(repo_root / "config" / "test.yaml"),
            "--directory",
            str(tmp_path),
            "results/test/table2.csv",
        ],
        repo_root,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return parse_dry_run(out.stdout + out.stderr)


def test_profile_dry_run_real_workflow_table2(tmp_path: Path, repo_root: Path) -> None:
    jobs = _real_dry_run(repo_root, tmp_path, str(repo_root / "profiles" / "default"))
    rules = {j["rule"] for j in jobs}
    assert {"train_ae", "train_flow"} <= rules, f"no training jobs in the Table 2 DAG: {sorted(rules)}"
    _assert_gpu_only_for(jobs)
    for job in jobs:
        if job["rule"] not in {"all", "table1", "table2", "figures", "data"}:
            assert job["resources"].get("mem_mb") and job["resources"].get("runtime"), job


def test_cpu_only_variant_requests_no_gpu(tmp_path: Path, repo_root: Path) -> None:
    """`--workflow-profile none`: the same DAG, and no job's sbatch line has --gpus or --gres."""
    jobs = _real_dry_run(repo_root, tmp_path, "none")
    assert {"train_ae", "train_flow", "make_table2"} <= {j["rule"] for j in jobs}
    _assert_gpu_only_for(jobs, gpu_rules=())
