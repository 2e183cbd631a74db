"""benchmarks/gpu_check.py runs on CPU (`--device cpu`, config/test.yaml, synthetic data) so that it works the
first time a GPU appears; and its paper-scale arithmetic."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import synthetic_env

REPO = Path(__file__).resolve().parents[1]
TINY = ("ood: {rows: [density, recon], recon_K: 8, density_K: 8, fig5_set: fmnist_hflip,\n"
        "      sets: [{name: fmnist_hflip, dataset: fmnist, transform: hflip, label: FMNIST-hflip}]}\n"
        "ae: {latent_dims: [8]}\n")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_gpu_hours_arithmetic():
    paper = {"seeds": [0, 1], "datasets": ["fmnist"], "ae": {"latent_dims": [4, 8], "epochs": 10},
             "flow": {"epochs": 5}, "vae": {"epochs": 10, "models": {"vae": {}, "betavae": {}}}}
    est = _module().paper_gpu_hours({"ae": 1e-3, "flow": 2e-4}, paper, n_train=36_000)
    assert est["jobs"] == {"train_ae": 4, "train_flow": 4, "train_vae": 4}
    # AE: 4 jobs x 10 epochs x 36 s; flow: 4 x 5 x 7.2 s; VAE (AE's rate): 4 x 10 x 36 s
    assert est["gpu_hours"] == {"train_ae": 0.4, "train_flow": 0.04, "train_vae": 0.4}
    assert est["total_gpu_hours"] == pytest.approx(0.84)


@pytest.mark.slow
def test_gpu_check_runs_on_cpu(tmp_path):
    env = synthetic_env(tmp_path, n_train=232, n_test=64)
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text(TINY)
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--configfile", str(REPO / "config" / "test.yaml"), str(overlay), "--out", str(out),
                           "--cores", "2", "--repeats", "1"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert [r["precision"] for r in result["runs"]] == ["fp32", "bf16"]
    for run in result["runs"]:
        assert run["stages_s"]["train_ae"] > 0 and len(run["table"]) == 2 and run["wall_s"] > 0
    assert math.isfinite(result["fp32_bf16_max_diff"]) and result["fp32_repeat_max_diff"] is None
    assert result["resume"]["resumed"], result["resume"]
    assert result["paper_scale"]["total_gpu_hours"] > 0 and result["seconds_per_image_epoch"]["ae"] > 0
    assert "# GPU check on CPU" in proc.stdout
