"""Shared fixtures: small thread count, paths to the repository and the optional real data mirror, and the one
end-to-end workflow run on the synthetic mirror that the slow tests of several modules read."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_mirror() -> Path:
    """The offline mirror of the official files (PAE_DATA_MIRROR, or ../shared/data); skip when absent."""
    candidates = [os.environ.get("PAE_DATA_MIRROR"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "fashion-mnist").is_dir():
            return Path(c)
    pytest.skip("no real data mirror (set PAE_DATA_MIRROR)")


@dataclass(frozen=True)
class WorkflowRun:
    work: Path                  # the --directory of the run; outputs under work/results/test
    env: dict[str, str]         # PAE_DATA_MIRROR etc. of the synthetic mirror
    report_after_table2: dict   # report.json as `reproduction_report` wrote it when only `table2` had run


@pytest.fixture(scope="session")
def workflow_run(repo_root, tmp_path_factory) -> WorkflowRun:
    """config/test.yaml on a synthetic mirror, once per session: `table2`, the report of it (make report after
    make table2), then `all` and `paper_quick` (every table and figure, the battery, the report of them all)."""
    from synthetic import MIRROR, run, snakemake_cmd, synthetic_env

    tmp = tmp_path_factory.mktemp("workflow_run")
    env = synthetic_env(tmp, **MIRROR)
    work = tmp / "work"
    for targets in (["table2"], ["reproduction_report"]):
        proc = run(snakemake_cmd(repo_root, work, *targets), env, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-6000:]
    after_table2 = json.loads((work / "results" / "test" / "report.json").read_text())
    proc = run(snakemake_cmd(repo_root, work, "all", "paper_quick"), env, timeout=2700)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return WorkflowRun(work, env, after_table2)
