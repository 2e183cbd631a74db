"""End-to-end: the whole workflow (`all`) on a synthetic mirror with config/test.yaml, the HTML report, a
no-op rerun, and a killed `train_ae` that resumes from its checkpoint (last: it retrains one AE of the run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from synthetic import MIRROR, run, snakemake_cmd, synthetic_env  # the session run: tests/conftest.py


@pytest.mark.slow
def test_table2_has_every_cell(workflow_run):
    out = workflow_run.work / "results" / "test"
    table = pd.read_csv(out / "table2.csv")
    assert list(dict.fromkeys(table["row"])) == [
        "PAE density", "AE reconstruction error", "Eq. 12", "Eq. 12 with MAP", "Laplace log p(x) (Eq. 11)",
        "VAE ELBO", "VAE IWAE"]
    assert list(dict.fromkeys(table["column"])) == ["MNIST", "OMNIGLOT", "FMNIST-hflip", "FMNIST-vflip"]
    for metric in ("ours", "aupr", "fpr95"):  # AUROC, AUPR, FPR at 95 % TPR in every cell
        assert pd.to_numeric(table[metric]).between(0, 1).all(), metric
    paper = table[table["row"] == "PAE density"].set_index("column")["paper"]
    assert paper["MNIST"] == pytest.approx(0.997)
    markdown = (out / "table2.md").read_text()
    assert "Reported in the paper" in markdown and "VIB (Choi et al. 2018)" in markdown


@pytest.mark.slow
def test_table1_marks_inception_unavailable_and_fills_domain_fid(workflow_run):
    table = pd.read_csv(workflow_run.work / "results" / "test" / "table1.csv")
    assert set(table["row"]) == {"AE", "VAE", "β-VAE", "PAE"}
    inception = table[table["column"].str.contains("Inception")]
    domain = table[table["column"].str.contains("domain")]
    assert len(inception) and inception["ours"].str.startswith("unavailable").all()
    assert len(domain) and (pd.to_numeric(domain["ours"]) >= 0).all()


@pytest.mark.slow
def test_figures_and_provenance_are_written(workflow_run):
    out = workflow_run.work / "results" / "test"
    for name in ("fig2", "fig3", "fig5"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    record = json.loads((out / "table2.provenance.json").read_text())
    assert len(record["config_hash"]) >= 16
    assert record["packages"]["torch"]
    assert record["stages"]["train_ae"]["total_s"] > 0


@pytest.mark.slow
def test_rerun_has_nothing_to_do(repo_root, workflow_run):
    work, env = workflow_run.work, workflow_run.env
    proc = run(snakemake_cmd(repo_root, work, "-n", "all"), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_report_contains_every_table_and_figure(repo_root, workflow_run):
    work, env = workflow_run.work, workflow_run.env
    report = work / "report.html"
    proc = run(snakemake_cmd(repo_root, work, "all", "--report", str(report)), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in ("table1.csv", "table2.csv", "fig2.png", "fig3.png", "fig5.png", "table2.provenance.md"):
        assert name in html, f"{name} missing from the report"
    assert "Sec. 4.1" in html and "Sec. 4.2" in html


@pytest.mark.slow
def test_killed_train_ae_resumes_from_checkpoint(repo_root, workflow_run):
    """Kill snakemake while train_ae runs (after its first checkpoint); the rerun continues from it."""
    work, env = workflow_run.work, workflow_run.env
    target = "results/test/fmnist/K6/seed0/ae.pt"  # relative to --directory, like the rules' outputs
    run_dir = work / Path(target).parent
    overlay = work / "long_ae.yaml"
    overlay.write_text("ae: {epochs: 40}\n")  # long enough to be caught mid-run; merged into test.yaml
    proc = subprocess.Popen(snakemake_cmd(repo_root, work, target, cores=1, overlay=overlay), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = run_dir / "ae.ckpt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "train_ae wrote no checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "ae.pt").exists()

    assert run(snakemake_cmd(repo_root, work, target, "--unlock", overlay=overlay), env).returncode == 0
    rerun = run(snakemake_cmd(repo_root, work, target, "--rerun-incomplete", cores=1, overlay=overlay), env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (work / "results" / "test" / "logs" / "train_ae" / "fmnist_K6_seed0.log").read_text()
    assert "resumed from" in log and "after epoch" in log
    assert (run_dir / "ae.pt").exists() and not checkpoint.exists()


@pytest.mark.slow
def test_every_seed_feeds_the_tables(repo_root, tmp_path):
    """With two seeds, Table 1 and Table 2 depend on the runs of both (they report mean ± std)."""
    env = synthetic_env(tmp_path, **MIRROR)
    overlay = tmp_path / "seeds.yaml"
    overlay.write_text("seeds: [0, 1]\n")
    proc = run(snakemake_cmd(repo_root, tmp_path / "work", "-n", "table1", "table2", overlay=overlay), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed in (0, 1):
        assert f"fmnist/K8/seed{seed}/ood_scores_density.npz" in proc.stdout  # test.yaml: density_K 8
        assert f"fmnist/K8/seed{seed}/ood_scores_vae.npz" in proc.stdout  # test.yaml: vae.latent_dim 8
        assert f"fmnist/K8/seed{seed}/fid/pae.json" in proc.stdout
