"""pae.ood: AUROC and TP/FP definitions, the score-file path (incl. flipped sets), Table 2, Fig. 5."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pae import io
from pae.flows import build_flow, save_flow
from pae.nets import AutoEncoder, save_model
from pae.ood import (
    OOD_SETS,
    auroc,
    fig5_ratios,
    load_scores,
    run_ood_scores,
    run_table2,
    subset_index,
    tp_fp_ratio,
)

# ------------------------------------------------------------------------------------------------ metrics


def test_auroc_known_answers() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    assert auroc(a + 10, a - 10) == 1.0  # OoD scores all lower: perfectly detected
    assert auroc(a - 10, a + 10) == 0.0
    assert auroc(a, a) == 0.5  # identical distributions, all ties
    # hand case: pairs (in, ood) with ood score < in score: 2.5<3; 0<3, 0<2, 0<1 → 4 of 6
    assert auroc([3, 2, 1], [2.5, 0]) == pytest.approx(4 / 6)
    assert auroc([1.0], [1.0]) == 0.5  # a tie counts one half


def test_auroc_handles_infinite_and_rejects_nan() -> None:
    # a log-density that underflowed to −inf is the most OoD-like, not an error
    assert auroc([0.0, 1.0], [-np.inf, -5.0]) == 1.0
    assert auroc([-np.inf, 1.0], [0.5, 2.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="both classes"):
        auroc([], [1.0])


def test_tp_fp_ratio_hand_example() -> None:
    ood = -np.arange(1, 21, dtype=float)  # statistics t = 1..20
    # fn_rate 0.05 of 20 → k = 1 miss allowed → threshold τ = 2 → TPR = 19/20
    inn = -np.array([0, 0.5, 1, 1.5, 2, 2.5, 3, 0, 0, 0])  # t ≥ 2 for 3 of 10 → FPR = 0.3
    assert tp_fp_ratio(inn, ood, 0.05) == pytest.approx(0.95 / 0.3)
    # fn_rate 0.1 → k = 2 → τ = 3 → TPR 18/20, FPR 1/10
    assert tp_fp_ratio(inn, ood, 0.10) == pytest.approx(0.9 / 0.1)
    # fn_rate 0 → τ = 1 → TPR 1, FPR 5/10 (t = 1, 1.5, 2, 2.5, 3)
    assert tp_fp_ratio(inn, ood, 0.0) == pytest.approx(2.0)
    # no in-distribution image reaches τ: FPR = 0 → inf
    assert tp_fp_ratio(-np.zeros(10), ood, 0.05) == math.inf
    with pytest.raises(ValueError, match="fn_rate"):
        tp_fp_ratio(inn, ood, 1.0)


def test_subset_index() -> None:
    np.testing.assert_array_equal(subset_index(5, None), np.arange(5))
    np.testing.assert_array_equal(subset_index(5, 10), np.arange(5))
    np.testing.assert_array_equal(subset_index(11, 3), [0, 5, 10])


# ------------------------------------------------------------------------------------------------ score files


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny untrained PAE (K=4) saved like a run, plus data files: the in-distribution test images are
    left-right symmetric, so the hflip OoD set equals them and must score identically."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, size=(24, 1, 28, 14), dtype=np.uint8)
    x_test = np.concatenate([half, half[..., ::-1]], axis=3)
    np.savez(root / "fmnist.npz", x_test=x_test)
    ood = {
        "mnist": rng.integers(0, 256, size=(20, 1, 28, 28), dtype=np.uint8),
        "omniglot": rng.integers(0, 256, size=(16, 1, 28, 28), dtype=np.uint8),
        "fmnist_hflip": x_test[..., ::-1].copy(),
        "fmnist_vflip": x_test[:, :, ::-1].copy(),
    }
    for name, x in ood.items():
        np.savez(root / f"{name}.npz", x=x)
    torch.manual_seed(0)
    save_model(root / "ae.pt", AutoEncoder(4, (1, 28, 28), "batch", True, 0.2))
    cfg = {"realnvp_max_K": 4, "realnvp_depth": {4: 2}, "realnvp_hidden": 8, "standardize": True}
    save_flow(root / "flow.pt", build_flow(4, cfg, rng.normal(size=(64, 4)).astype(np.float32)))
    io.save_npz(root / "ae_stats.npz", sigma=np.full((1, 28, 28), 0.05, dtype=np.float32))
    return root


def _run(root, part, out, seed=0, **kw):
    return run_ood_scores(
        part, root / "ae.pt", root / "fmnist.npz", {o: root / f"{o}.npz" for o in OOD_SETS}, out,
        flow_path=root / "flow.pt", stats_path=root / "ae_stats.npz", batch_size=10, device="cpu",
        meta={"K": 4, "seed": seed}, log=lambda s: None, **kw,
    )


def test_score_parts(tiny_run, tmp_path) -> None:
    recon = _run(tiny_run, "recon", tmp_path / "r.npz")
    density = _run(tiny_run, "density", tmp_path / "d.npz")
    mapped = _run(tiny_run, "map", tmp_path / "m.npz", map_steps=3, map_lr=0.01, map_count=10)
    scores, meta = load_scores(tmp_path / "d.npz")
    assert meta["K"] == 4 and meta["seed"] == 0 and meta["part"] == "density"
    assert set(scores) == {f"{s}__{n}" for s in ("density", "eq12") for n in ("test", *OOD_SETS)}
    assert scores["density__mnist"].shape == (20,) and scores["eq12__omniglot"].shape == (16,)
    # hflip of symmetric images is the same input: identical scores, chance-level AUROC
    for res, key in ((recon, "recon"), (density, "density"), (density, "eq12")):
        np.testing.assert_array_equal(res[f"{key}__fmnist_hflip"], res[f"{key}__test"])
        assert auroc(res[f"{key}__test"], res[f"{key}__fmnist_hflip"]) == 0.5
    assert not np.array_equal(recon["recon__fmnist_vflip"], recon["recon__test"])
    # recon is −SSE ≤ 0; MAP ran on 10 evenly spaced images and never lowered Eq. 12
    assert (recon["recon__test"] <= 0).all()
    np.testing.assert_array_equal(mapped["index__mnist"], subset_index(20, 10))
    assert (mapped["eq12_map__mnist"] >= mapped["eq12_start__mnist"] - 1e-6).all()
    np.testing.assert_allclose(mapped["eq12_start__test"], density["eq12__test"][mapped["index__test"]], rtol=1e-5)


def test_score_errors_write_nothing(tiny_run, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ae_stats"):
        run_ood_scores("density", tiny_run / "ae.pt", tiny_run / "fmnist.npz", {}, tmp_path / "x.npz",
                       flow_path=tiny_run / "flow.pt", stats_path=tmp_path / "ae_stats.npz", device="cpu")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 1, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        run_ood_scores("recon", tiny_run / "ae.pt", tiny_run / "fmnist.npz", {"mnist": bad}, tmp_path / "x.npz",
                       device="cpu", log=lambda s: None)
    with pytest.raises(ValueError, match="unknown score part"):
        run_ood_scores("elbo", tiny_run / "ae.pt", tiny_run / "fmnist.npz", {}, tmp_path / "x.npz")
    assert not list(tmp_path.glob("x.npz*"))


# ------------------------------------------------------------------------------------------------ Table 2, Fig. 5


def _fake_scores(path, part, K, seed, shift):
    """Synthetic score file: OoD sets shifted down by `shift` (larger shift = easier)."""
    rng = np.random.default_rng(seed)
    keys = {"recon": ["recon"], "density": ["density", "eq12"], "map": ["eq12_map"]}[part]
    arrays = {}
    for key in keys:
        arrays[f"{key}__test"] = rng.normal(size=200)
        for i, o in enumerate(OOD_SETS):
            arrays[f"{key}__{o}"] = rng.normal(size=150) - shift * (i + 1) / 4
    io.save_npz(path, **arrays, meta__K=np.asarray(K), meta__seed=np.asarray(seed), meta__part=np.asarray(part))
    return path


def test_table2(tmp_path) -> None:
    files = {"density": [], "recon": [], "eq12": [], "eq12_map": []}
    for seed in (0, 1):
        files["density"].append(_fake_scores(tmp_path / f"d{seed}.npz", "density", 64, seed, 3.0))
        files["recon"].append(_fake_scores(tmp_path / f"r{seed}.npz", "recon", 4, seed, 2.0))
    files["eq12"] = files["density"]
    ks = {"density": 64, "recon": 4, "eq12": 64, "eq12_map": 64}
    table = run_table2(files, tmp_path / "t.csv", tmp_path / "t.md", ks,
                       {"recon_sigma": "unweighted", "map_steps": 0, "map_lr": 0.01, "map_count": None},
                       log=lambda s: None)
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(dict.fromkeys(csv["row"])) == ["PAE density", "AE reconstruction error", "Eq. 12", "Eq. 12 with MAP"]
    dens = csv[(csv["row"] == "PAE density") & (csv["column"] == "MNIST")].iloc[0]
    expected = [auroc(*(load_scores(p)[0][f"density__{s}"] for s in ("test", "mnist"))) for p in files["density"]]
    assert float(dens["ours"]) == pytest.approx(np.mean(expected), rel=1e-5)  # CSV keeps 6 digits
    assert float(dens["ours_std"]) == pytest.approx(np.std(expected, ddof=1), rel=1e-5)
    assert dens["paper"] == pytest.approx(0.997) and dens["K"] == 64 and dens["n_seeds"] == 2
    assert csv[csv["row"] == "Eq. 12 with MAP"]["ours"].str.startswith("not run").all()
    assert set(table["column"]) == {"MNIST", "OMNIGLOT", "FMNIST-hflip", "FMNIST-vflip"}
    md = (tmp_path / "t.md").read_text()
    ours, reported = md.split("## Reported in the paper")  # quoted baselines in their own block
    assert "VIB" in reported and "VIB" not in ours and "(0.986)" in ours
    assert "AE reconstruction error K = 4" in md


def test_fig5(tmp_path) -> None:
    from pae.figures import fig5

    recon = {K: [_fake_scores(tmp_path / f"r{K}_{s}.npz", "recon", K, s, 8.0 / K) for s in (0, 1)] for K in (4, 8)}
    dens = {K: [_fake_scores(tmp_path / f"d{K}_{s}.npz", "density", K, s, K / 2.0) for s in (0, 1)] for K in (4, 8)}
    ratios = fig5_ratios(recon, dens, 0.05)
    assert len(ratios) == 8 and set(ratios["score"]) == {"reconstruction error", "latent density"}
    r0 = load_scores(recon[4][0])[0]
    first = ratios[(ratios["score"] == "reconstruction error") & (ratios["K"] == 4) & (ratios["seed"] == 0)]
    assert first["ratio"].iloc[0] == pytest.approx(tp_fp_ratio(r0["recon__test"], r0["recon__mnist"], 0.05))
    ratios.loc[0, "ratio"] = math.inf  # an unbounded ratio is drawn at its bound
    images = np.random.default_rng(0).integers(0, 256, size=(3, 1, 28, 28), dtype=np.uint8)
    paths = fig5(images, {4: images, 8: images}, ratios, 0.05, tmp_path / "fig5")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_fig5_single_seed_ratios_draw(tmp_path) -> None:
    """One seed per K: exp(mean(log r)) can differ from r by round-off; the error bars must stay ≥ 0."""
    import pandas as pd

    from pae.figures import fig5

    values = [9.635, 13.75, 8.282, 4.002, 1.279, 1.751, 19.31, 53.37]  # ratios that once broke errorbar
    ratios = pd.DataFrame({
        "score": ["reconstruction error"] * 4 + ["latent density"] * 4,
        "K": [4, 8, 16, 32] * 2, "seed": [0] * 8, "ratio": values, "n_in": [10000] * 8,
    })
    images = np.random.default_rng(0).integers(0, 256, size=(3, 1, 28, 28), dtype=np.uint8)
    paths = fig5(images, {K: images for K in (4, 8, 16, 32)}, ratios, 0.05, tmp_path / "fig5")
    assert all(p.stat().st_size > 1000 for p in paths)
