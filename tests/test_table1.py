"""Table 1 writer (rows, columns, paper values, differences, unavailable text) and Figs. 2 and 3."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pae.science.paper import PAPER_FIG3_FID, PAPER_TABLE1
from pae.stages import fid as fid_stage
from pae.stages.figures import run_fig2, run_fig3

UNAVAILABLE = "unavailable: no Inception weights"


def _scores(model: str, seed: int, inception: bool) -> dict:
    base = {"ae": 10.0, "vae": 20.0, "betavae": 30.0, "pae": 5.0}[model] + seed
    recon_of = "ae" if model == "pae" else model
    rbase = {"ae": 1.0, "vae": 2.0, "betavae": 3.0}[recon_of]
    return {
        "model": model, "seed": seed, "n_samples": 100, "normalize": "minmax",
        "sample_fid": {"domain": base, "inception": 100 + base if inception else UNAVAILABLE},
        "reconstruction_fid": {"domain": rbase, "inception": 30 + rbase if inception else UNAVAILABLE},
        "reconstruction_error": {"mse_per_pixel": 0.0064 * rbase, "rms_per_pixel": math.sqrt(0.0064 * rbase),
                                 "mean_pixel_sigma": 0.07 * rbase},
    }


@pytest.fixture
def inputs(tmp_path):
    def make(inception: bool):
        files = []
        for m in ("ae", "vae", "betavae", "pae"):
            for s in (0, 1):
                f = tmp_path / f"{m}_{s}.json"
                f.write_text(json.dumps(_scores(m, s, inception)))
                files.append(f)
        ref = {"n_reference": np.array(100), "domain_status": np.array("ok"), "domain_mu": np.zeros(2),
               "domain_cov": np.eye(2), "domain_floor_fid": np.array(0.5)}
        if inception:
            ref |= {"inception_status": np.array("ok"), "inception_mu": np.zeros(2), "inception_cov": np.eye(2),
                    "inception_floor_fid": np.array(2.6)}
        else:
            ref |= {"inception_status": np.array(UNAVAILABLE)}
        np.savez(tmp_path / "ref.npz", **ref)
        (tmp_path / "clf.json").write_text(json.dumps({"feature_dim": 128, "epochs": 2, "test_accuracy": 0.9}))
        return files, tmp_path / "ref.npz", tmp_path / "clf.json"

    return make


def test_table1_unavailable_inception(inputs, tmp_path):
    files, ref, clf = inputs(False)
    fid_stage.run_write_table1(files, ref, clf, tmp_path / "t.csv", tmp_path / "t.md", K=32, vae_K=32)
    t = pd.read_csv(tmp_path / "t.csv")
    assert list(dict.fromkeys(t["row"])) == ["AE", "VAE", "β-VAE", "PAE"]
    assert list(dict.fromkeys(t["column"])) == fid_stage.table1_columns()
    assert "sample FID (Inception)" in set(t["column"]) and "sample FID (domain CNN)" in set(t["column"])
    cell = t[(t.row == "AE") & (t.column == "sample FID (Inception)")].iloc[0]
    assert cell["ours"] == UNAVAILABLE and cell["paper"] == 102.9 and math.isnan(cell["difference"])
    dom = t[(t.row == "VAE") & (t.column == "sample FID (domain CNN)")].iloc[0]
    assert float(dom["ours"]) == pytest.approx(20.5) and dom["ours_std"] == pytest.approx(np.std([20, 21], ddof=1))
    assert dom["n_seeds"] == 2 and math.isnan(dom["paper"])
    rms = t[(t.row == "β-VAE") & (t.column == fid_stage.RMS_COLUMN)].iloc[0]
    assert rms["paper"] == PAPER_TABLE1["mean reconstruction error"]["β-VAE"]
    assert rms["difference"] == pytest.approx(math.sqrt(0.0064 * 3) - 0.114, abs=1e-6)  # CSV: 6 digits
    sig = t[(t.row == "AE") & (t.column == fid_stage.SIGMA_COLUMN)].iloc[0]
    assert float(sig["ours"]) == pytest.approx(0.07) and sig["paper"] == 0.077
    pae = t[(t.row == "PAE") & (t.column == fid_stage.MSE_COLUMN)].iloc[0]
    assert float(pae["ours"]) == pytest.approx(0.0064) and math.isnan(pae["paper"])
    md = (tmp_path / "t.md").read_text()
    assert UNAVAILABLE in md and "(102.9)" in md and "Δ" in md and "domain CNN 0.50" in md


def test_table1_with_inception_differences(inputs, tmp_path):
    files, ref, clf = inputs(True)
    table = fid_stage.run_write_table1(files, ref, clf, tmp_path / "t.csv", tmp_path / "t.md", K=32, vae_K=32)
    cell = table[(table.row == "PAE") & (table.column == "sample FID (Inception)")].iloc[0]
    assert cell["ours"] == pytest.approx(105.5) and cell["difference"] == pytest.approx(105.5 - 35.4)
    rec = table[(table.row == "PAE") & (table.column == "reconstruction FID (Inception)")].iloc[0]
    assert rec["ours"] == pytest.approx(31.0) and rec["paper"] == 31.5
    md = (tmp_path / "t.md").read_text()
    assert "105.5 ± 0.7 (35.4; Δ +70.1)" in md and "Inception 2.60" in md


def test_fig2_and_fig3(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for name in ("AE", "VAE", "β-VAE", "PAE", "reconstructions (test)"):
        files[name] = tmp_path / f"{len(files)}.npz"
        np.savez(files[name], x=rng.integers(0, 256, (70, 1, 28, 28), dtype=np.uint8))
    out = run_fig2(files, tmp_path / "figures" / "fig2", n_images=16)
    assert [p.suffix for p in out] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in out)
    scores = {}
    for K in (64, 128):
        scores[K] = tmp_path / f"pae{K}.json"
        scores[K].write_text(json.dumps({"sample_fid": {"domain": 1.5, "inception": UNAVAILABLE}}))
    out = run_fig3({64: files["PAE"], 128: files["AE"]}, scores, tmp_path / "figures" / "fig3", n_images=16)
    assert all(p.exists() for p in out) and PAPER_FIG3_FID[64] == 31.7
    with pytest.raises(FileNotFoundError, match="sample_model"):
        run_fig2({"AE": tmp_path / "missing.npz"}, tmp_path / "f")
