"""End-to-end: the `fig6` outputs (posterior, posterior_metrics, make_fig6 and the MNIST AE / flow / classifier they
need) of the session's workflow run on a synthetic mirror with config/test.yaml (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.mark.slow
def test_fig6_target_runs_on_synthetic_data(workflow_run):
    out = workflow_run.work / "results" / "test"
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"fig6.{ext}").stat().st_size > 1000
    table = pd.read_csv(out / "posterior_metrics.csv")
    assert list(dict.fromkeys(table["corruption"])) == ["mask", "noise"]  # config/test.yaml posterior.run
    assert len(table) == 6 and table["method"].nunique() == 3
    assert np.isfinite(table["psnr_map"]).all() and table["pred_cover_all_95"].between(0, 1).all()
    assert table["pred_cover_fg_95"].between(0, 1).all() and table["pred_cover_bg_50"].between(0, 1).all()
    post = np.load(out / "mnist" / "K8" / "seed0" / "posterior" / "mask_u.npz")
    n, s = 4, 3  # test.yaml: n_images 4; 2 random starts + the encoder start
    assert post["final_u"].shape == (s, n, 8) and post["samples_z"].shape == (n, 8, 8)
    assert not post["observed"][..., :16].any()  # the solid mask hides the left 16 columns
    np.testing.assert_allclose(post["weights"].sum(1), 1.0, rtol=1e-5)
    markdown = (out / "posterior_metrics.md").read_text()
    assert "## mask" in markdown and "## noise" in markdown and "AE on the corrupted input" in markdown
