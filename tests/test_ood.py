"""pae.science.metrics and pae.stages.ood: AUROC and TP/FP definitions, the score-file path (incl. flipped sets), Table 2, Fig. 5."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pae.config import ConfigError
from pae.files import io
from pae.files.artifacts import load_scores, save_flow, save_model
from pae.science.flows import build_flow
from pae.science.metrics import aupr, auroc, fpr_at_tpr, tp_fp_rates, tp_fp_ratio
from pae.science.nets import VAE, AutoEncoder
from pae.settings import ScoreJob, Settings
from pae.stages.figures import fig5_ratios
from pae.stages.ood import (
    TABLE2_ROWS,
    ScoreFiles,
    run_make_table2,
    run_ood_scores,
    run_vae_scores,
    score_generator,
    subset_index,
)
from pae.stages.rules import (
    score_rule_inputs,
    score_rule_runtime,
    score_sets,
    table2_experiment,
    table2_inputs,
    table2_plan,
)
from synthetic import flow_arch

EXPERIMENT = table2_experiment(Settings.from_config({}))  # the paper's Table 2: F-MNIST against four sets
OOD_SETS = tuple(EXPERIMENT["columns"])

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


def test_aupr_and_fpr95_known_answers() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    assert aupr(a + 10, a - 10) == 1.0 and fpr_at_tpr(a + 10, a - 10) == 0.0  # perfectly separated
    assert fpr_at_tpr(a - 10, a + 10) == 1.0  # every in-distribution image lies beyond every OoD one
    assert aupr(np.zeros(30), np.zeros(10)) == pytest.approx(10 / 40)  # all tied: the OoD fraction
    # hand case: t = −score ranks ood 0 > in −1 > in −2 > ood −2.5 > in −3; AP = ½·1 + ½·(2/4)
    assert aupr([3, 2, 1], [2.5, 0]) == pytest.approx(0.75)
    # FPR95 on the Fig. 5 hand case below: OoD t = 1..20, threshold t ≥ 2 keeps 19/20; in t ≥ 2: 3 of 10
    ood = -np.arange(1, 21, dtype=float)
    inn = -np.array([0, 0.5, 1, 1.5, 2, 2.5, 3, 0, 0, 0])
    assert fpr_at_tpr(inn, ood, 0.95) == pytest.approx(0.3)
    assert fpr_at_tpr(inn, ood, 0.90) == pytest.approx(0.1)  # t ≥ 3
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_tpr(inn, ood, 0.0)


def test_metrics_without_skill_on_large_samples() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40000), rng.normal(size=20000)  # identical distributions
    assert auroc(a, b) == pytest.approx(0.5, abs=0.01)
    assert fpr_at_tpr(a, b) == pytest.approx(0.95, abs=0.01)
    assert aupr(a, b) == pytest.approx(1 / 3, abs=0.01)  # the OoD fraction
    for positive in ("ood", "in"):
        tpr, fpr = tp_fp_rates(a, b, 0.05, positive)
        assert tpr == pytest.approx(0.95, abs=1e-3) and fpr == pytest.approx(0.95, abs=0.01)


def test_tp_fp_in_distribution_positive() -> None:
    inn = np.arange(1, 21, dtype=float)  # in-distribution positive: t = score = 1..20
    ood = np.array([0, 0.5, 1, 1.5, 2, 2.5, 3, 0, 0, 0])
    # fn_rate 0.05 rejects k = 1 in-distribution image → τ = 2: TPR 19/20; OoD accepted (≥ 2): 3 of 10
    assert tp_fp_rates(inn, ood, 0.05, "in") == pytest.approx((0.95, 0.3))
    assert tp_fp_ratio(inn, ood, 0.05, "in") == pytest.approx(0.95 / 0.3)
    # the two conventions swap the roles of the sets and the sign of the statistic
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(size=200) - 1
    assert tp_fp_rates(a, b, 0.1, "in") == tp_fp_rates(-b, -a, 0.1, "ood")
    assert tp_fp_rates(a, b, 0.1, "ood") != tp_fp_rates(a, b, 0.1, "in")  # they answer different questions
    assert tp_fp_ratio(inn, np.zeros(5) - 5, 0.05, "in") == math.inf  # no OoD image accepted
    with pytest.raises(ValueError, match="positive"):
        tp_fp_rates(inn, ood, 0.05, "both")


def test_subset_index() -> None:
    np.testing.assert_array_equal(subset_index(5, None), np.arange(5))
    np.testing.assert_array_equal(subset_index(5, 10), np.arange(5))
    np.testing.assert_array_equal(subset_index(11, 3), [0, 5, 10])
    with pytest.raises(ValueError, match="ood.iwae_count"):
        subset_index(11, 0, "ood.iwae_count")


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
    save_flow(root / "flow.pt", build_flow(4, flow_arch(4, cfg), rng.normal(size=(64, 4)).astype(np.float32), seed=0))
    io.save_npz(root / "ae_stats.npz", sigma=np.full((1, 28, 28), 0.05, dtype=np.float32))
    save_model(root / "vae.pt", VAE(4, (1, 28, 28), "batch", True, 0.2), {"objective": {"beta": 1.0, "sigma": 0.1}})
    return root


def job(**kw) -> ScoreJob:
    """A ScoreJob with every key unset but the pixel scale and the batch size (10 unless given)."""
    unset = dict.fromkeys(f.name for f in dataclasses.fields(ScoreJob))
    return ScoreJob(**(unset | {"scale": 255, "batch_size": 10, "recon_sigma": "unweighted"} | kw))


def files(root, out, ood=None, **paths) -> ScoreFiles:
    ood = {o: root / f"{o}.npz" for o in OOD_SETS} if ood is None else ood
    return ScoreFiles(root / "fmnist.npz", ood, out, **paths)


def _run(root, part, out, seed=0, **kw):
    return run_ood_scores(
        part, files(root, out, ae_path=root / "ae.pt", flow_path=root / "flow.pt", stats_path=root / "ae_stats.npz"),
        job(**kw), "cpu", 1, meta={"K": 4, "seed": seed}, log=lambda s: None,
    )


def test_score_parts(tiny_run, tmp_path) -> None:
    recon = _run(tiny_run, "recon", tmp_path / "r.npz")
    density = _run(tiny_run, "density", tmp_path / "d.npz")
    mapped = _run(tiny_run, "map", tmp_path / "m.npz", map_steps=3, map_lr=0.01, map_count=10, laplace_count=4)
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
    # Eq. 11 on 4 evenly spaced images of the MAP subset: finite, one value per chosen image
    np.testing.assert_array_equal(mapped["laplace_index__mnist"], mapped["index__mnist"][subset_index(10, 4)])
    assert mapped["laplace__mnist"].shape == (4,) and np.isfinite(mapped["laplace__mnist"]).all()


def test_score_errors_write_nothing(tiny_run, tmp_path) -> None:
    out, meta = tmp_path / "x.npz", {"K": 4, "seed": 0}
    with pytest.raises(FileNotFoundError, match="ae_stats"):
        run_ood_scores("density", files(tiny_run, out, {}, ae_path=tiny_run / "ae.pt", flow_path=tiny_run / "flow.pt",
                                        stats_path=tmp_path / "ae_stats.npz"), job(), "cpu", 1, meta)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 1, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        run_ood_scores("recon", files(tiny_run, out, {"mnist": bad}, ae_path=tiny_run / "ae.pt"), job(), "cpu", 1,
                       meta, log=lambda s: None)
    with pytest.raises(ValueError, match="unknown score part"):
        run_ood_scores("elbo", files(tiny_run, out, {}, ae_path=tiny_run / "ae.pt"), job(), "cpu", 1, meta)
    assert not list(tmp_path.glob("x.npz*"))


def _vae_run(root, out, seed=0, **kw):
    settings = job(**({"vae_sigma": 0.1, "iwae_samples": 3, "batch_size": 4} | kw))
    return run_vae_scores(files(root, out, vae_path=root / "vae.pt"), settings, seed, "cpu", 1,
                          meta={"K": 4, "seed": seed}, log=lambda s: None)


def test_vae_score_part(tiny_run, tmp_path) -> None:
    from pae.science.vae import vae_scores

    out = _vae_run(tiny_run, tmp_path / "v.npz", iwae_count=10)
    scores, meta = load_scores(tmp_path / "v.npz")
    assert meta["part"] == "vae" and meta["iwae_samples"] == 3 and meta["iwae_count"] == 10 and meta["K"] == 4
    assert set(scores) == {f"{s}__{n}" for s in ("elbo", "iwae", "index") for n in ("test", *OOD_SETS)}
    np.testing.assert_array_equal(scores["index__omniglot"], subset_index(16, 10))
    assert scores["elbo__mnist"].shape == (10,) and scores["iwae__test"].dtype == np.float64
    assert np.mean(scores["iwae__test"]) >= np.mean(scores["elbo__test"])
    again = _vae_run(tiny_run, tmp_path / "v2.npz", iwae_count=10)  # seeded: reproducible
    np.testing.assert_array_equal(again["iwae__mnist"], out["iwae__mnist"])
    other = _vae_run(tiny_run, tmp_path / "v3.npz", seed=1, iwae_count=10)
    assert not np.array_equal(other["iwae__mnist"], out["iwae__mnist"])
    # one batch: exactly pae.science.vae.vae_scores on the subset, with the set's own generator (test = set 0)
    from pae.files.artifacts import load_model
    from pae.science.images import to_model_input

    model, _ = load_model(tiny_run / "vae.pt")
    x = np.load(tiny_run / "omniglot.npz")["x"][subset_index(16, 10)]
    with torch.no_grad():
        ref = vae_scores(model, to_model_input(x), 0.1, 3, score_generator(0, 1 + OOD_SETS.index("omniglot")))
    one_batch = _vae_run(tiny_run, tmp_path / "v4.npz", iwae_count=10, batch_size=100)
    np.testing.assert_allclose(one_batch["iwae__omniglot"], ref["iwae"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(one_batch["elbo__omniglot"], ref["elbo"].numpy(), rtol=1e-6)


def test_vae_score_errors_write_nothing(tiny_run, tmp_path) -> None:
    with pytest.raises(ValueError, match="vae.models.vae.sigma"):
        _vae_run(tiny_run, tmp_path / "x.npz", vae_sigma=0.01)
    with pytest.raises(ValueError, match="not a VAE"):
        run_vae_scores(files(tiny_run, tmp_path / "x.npz", {}, vae_path=tiny_run / "ae.pt"),
                       job(vae_sigma=0.1, iwae_samples=3), 0, "cpu", 1, {})
    with pytest.raises(ValueError, match="ood.iwae_count"):
        _vae_run(tiny_run, tmp_path / "x.npz", iwae_count=0)
    with pytest.raises(ValueError, match="ood.iwae_samples"):
        _vae_run(tiny_run, tmp_path / "x.npz", iwae_samples=0)
    with pytest.raises(ValueError, match="run_vae_scores"):
        run_ood_scores("vae", files(tiny_run, tmp_path / "x.npz", {}, ae_path=tiny_run / "ae.pt"), job(), "cpu", 1, {})
    assert not list(tmp_path.glob("x.npz*"))


# ------------------------------------------------------------------------------------------------ rules


def _config(**ood):
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    config["ood"] |= ood
    return config


def _settings(config) -> Settings:
    return Settings.from_config(config)


def test_table2_plan_follows_ood_rows() -> None:
    config = _settings(_config())
    plan = table2_plan(config)
    assert list(plan) == config.ood.rows == ["density", "recon", "eq12", "eq12_map", "laplace", "elbo", "iwae"]
    assert plan["laplace"] == plan["eq12_map"]  # Eq. 11 comes with the MAP part, at the Eq. 12 K
    assert plan["elbo"] == plan["iwae"] == ("vae", config.vae.latent_dim)
    assert plan["recon"] == ("recon", config.ood.recon_K) and plan["eq12_map"] == ("map", 64)
    assert list(table2_plan(_settings(_config(rows=["iwae", "density"])))) == ["iwae", "density"]
    inputs = table2_inputs(_settings(_config(map_steps=0)), "R/{dataset}/K{K}/s{seed}/{part}.npz", "fmnist", [0, 1])
    assert inputs["eq12_map"] == inputs["laplace"] == [] and inputs["iwae"] == ["R/fmnist/K32/s0/vae.npz", "R/fmnist/K32/s1/vae.npz"]
    with pytest.raises(ConfigError, match="ood.rows"):
        table2_plan(_settings(_config(rows=["density", "waic"])))
    with pytest.raises(ValueError, match="ood.rows"):
        table2_plan(_settings(_config(rows=["density", "density"])))
    no_vae = _config(rows=["elbo"])
    del no_vae["vae"]["models"]["vae"]
    with pytest.raises(ValueError, match="vae.models"):
        table2_plan(_settings(no_vae))
    assert set(TABLE2_ROWS) == {"density", "recon", "eq12", "eq12_map", "laplace", "elbo", "iwae"}


def test_score_jobs_no_table2_row_reads_score_the_fig5_set_only() -> None:
    settings = _settings(_config())  # Table 2: density/map at K 64, recon at K 4, VAE at K 32; Fig. 5: mnist
    assert score_sets(settings, "fmnist", "density", 64, OOD_SETS) == list(OOD_SETS)
    assert score_sets(settings, "fmnist", "recon", 4, OOD_SETS) == list(OOD_SETS)
    assert score_sets(settings, "fmnist", "recon", 64, OOD_SETS) == ["mnist"]  # Fig. 5 / recon-vs-K only
    assert score_sets(settings, "fmnist", "density", 16, OOD_SETS) == ["mnist"]
    assert score_sets(settings, "mnist", "recon", 16, OOD_SETS) == list(OOD_SETS)  # not ood.in_dataset
    recon_at_16 = _settings(_config(recon_K=16))
    assert score_sets(recon_at_16, "fmnist", "recon", 16, OOD_SETS) == list(OOD_SETS)


def test_vae_part_rule_helpers() -> None:
    settings = _settings(_config(iwae_count=500))
    inputs = score_rule_inputs("R", "P", "fmnist", "vae", "unweighted", OOD_SETS)
    assert inputs["vae"] == "R/vae.pt" and "ae" not in inputs and "flow" not in inputs and "stats" not in inputs
    assert settings.score_job("vae") == job(batch_size=500, recon_sigma=None, iwae_samples=100, iwae_count=500,
                                            vae_sigma=0.01)
    assert settings.score_job("density").iwae_samples is None  # a new k reruns only `vae`
    all_images = _settings(_config(iwae_count=None))
    assert score_rule_runtime("vae", settings.ood) < score_rule_runtime("vae", all_images.ood)


def test_battery_score_jobs_cap_the_costly_counts_only() -> None:
    settings = _settings(_config(map_count=1000, laplace_count=50, iwae_count=None, battery_costly_count=100))
    assert settings.score_job("map", battery=True).map_count == 100
    assert settings.score_job("map", battery=True).laplace_count == 50  # already below the cap
    assert settings.score_job("vae", battery=True).iwae_count == 100  # null = all, capped
    assert settings.score_job("map").map_count == 1000 and settings.score_job("vae").iwae_count is None  # Table 2
    uncapped = _settings(_config(map_count=1000, battery_costly_count=None))
    assert uncapped.score_job("map", battery=True) == uncapped.score_job("map")


# ------------------------------------------------------------------------------------------------ Table 2, Fig. 5


def _fake_scores(path, part, K, seed, shift):
    """Synthetic score file: OoD sets shifted down by `shift` (larger shift = easier)."""
    rng = np.random.default_rng(seed)
    keys = {"recon": ["recon"], "density": ["density", "eq12"], "map": ["eq12_map"], "vae": ["elbo", "iwae"]}[part]
    arrays = {}
    for key in keys:
        arrays[f"{key}__test"] = rng.normal(size=200)
        for i, o in enumerate(OOD_SETS):
            arrays[f"{key}__{o}"] = rng.normal(size=150) - shift * (i + 1) / 4
    io.save_npz(path, **arrays, meta__K=np.asarray(K), meta__seed=np.asarray(seed), meta__part=np.asarray(part))
    return path


def test_table2(tmp_path) -> None:
    files = {"density": [], "recon": [], "eq12": [], "eq12_map": [], "laplace": [], "elbo": [], "iwae": []}
    for seed in (0, 1):
        files["density"].append(_fake_scores(tmp_path / f"d{seed}.npz", "density", 64, seed, 3.0))
        files["recon"].append(_fake_scores(tmp_path / f"r{seed}.npz", "recon", 4, seed, 2.0))
        files["elbo"].append(_fake_scores(tmp_path / f"v{seed}.npz", "vae", 32, seed, -1.0))  # OoD scored higher
    files["eq12"] = files["density"]
    files["iwae"] = files["elbo"]
    ks = {"density": 64, "recon": 4, "eq12": 64, "eq12_map": 64, "laplace": 64, "elbo": 32, "iwae": 32}
    settings = job(batch_size=500, map_steps=0, map_lr=0.01, iwae_samples=100, iwae_count=500, vae_sigma=0.01)
    table = run_make_table2(files, tmp_path / "t.csv", tmp_path / "t.md", ks, settings, EXPERIMENT, log=lambda s: None)
    csv = pd.read_csv(tmp_path / "t.csv")
    assert list(dict.fromkeys(csv["row"])) == ["PAE density", "AE reconstruction error", "Eq. 12", "Eq. 12 with MAP",
                                               "Laplace log p(x) (Eq. 11)", "VAE ELBO", "VAE IWAE"]
    dens = csv[(csv["row"] == "PAE density") & (csv["column"] == "MNIST")].iloc[0]
    pairs = [[load_scores(p)[0][f"density__{s}"] for s in ("test", "mnist")] for p in files["density"]]
    expected = [auroc(*pair) for pair in pairs]
    assert float(dens["ours"]) == pytest.approx(np.mean(expected), rel=1e-5)  # CSV keeps 6 digits
    assert float(dens["ours_std"]) == pytest.approx(np.std(expected, ddof=1), rel=1e-5)
    assert dens["paper"] == pytest.approx(0.997) and dens["K"] == 64 and dens["n_seeds"] == 2
    # AUPR and FPR95 (OoD positive) per cell: mean and std over seeds
    assert dens["aupr"] == pytest.approx(np.mean([aupr(*pair) for pair in pairs]), rel=1e-5)
    assert dens["fpr95"] == pytest.approx(np.mean([fpr_at_tpr(*pair) for pair in pairs]), rel=1e-5, abs=1e-6)
    assert dens["aupr_std"] == pytest.approx(np.std([aupr(*pair) for pair in pairs], ddof=1), rel=1e-4)
    elbo = csv[csv["row"] == "VAE ELBO"]
    assert (pd.to_numeric(elbo["ours"]) < 0.5).all() and (elbo["K"] == 32).all() and elbo["paper"].isna().all()
    not_run = csv[csv["row"] == "Eq. 12 with MAP"]
    assert not_run["ours"].str.startswith("not run").all() and not_run["aupr"].isna().all()
    assert set(table["column"]) == {"MNIST", "OMNIGLOT", "FMNIST-hflip", "FMNIST-vflip"}
    md = (tmp_path / "t.md").read_text()
    ours, reported = md.split("## Reported in the paper")  # quoted baselines in their own block
    main, extra = ours.split("## AUPR / FPR at 95 % TPR")  # our other metrics after the AUROC table
    assert "VIB" in reported and "VIB" not in ours and "(0.986)" in main and "IWAE (Choi et al. 2018)" in reported
    assert "| VAE IWAE |" in main and "| VAE IWAE |" in extra and f"{dens['aupr']:.3f} / {dens['fpr95']:.3f}" in extra
    assert "AE reconstruction error K = 4" in md and "k = 100" in md and "on 500 evenly spaced images" in md
    # a run may leave rows out: only those listed, in the order given
    run_make_table2({"iwae": files["iwae"], "recon": files["recon"]}, tmp_path / "u.csv", tmp_path / "u.md", ks, settings,
                    EXPERIMENT, log=lambda s: None)
    assert list(dict.fromkeys(pd.read_csv(tmp_path / "u.csv")["row"])) == ["VAE IWAE", "AE reconstruction error"]
    with pytest.raises(ValueError, match="unknown Table 2 row"):
        run_make_table2({"waic": files["recon"]}, tmp_path / "w.csv", tmp_path / "w.md", ks, settings, EXPERIMENT)


def test_fig5(tmp_path) -> None:
    from pae.science.figures import fig5
    from pae.stages.common import save_figure

    recon = {K: [_fake_scores(tmp_path / f"r{K}_{s}.npz", "recon", K, s, 8.0 / K) for s in (0, 1)] for K in (4, 8)}
    dens = {K: [_fake_scores(tmp_path / f"d{K}_{s}.npz", "density", K, s, K / 2.0) for s in (0, 1)] for K in (4, 8)}
    ratios = fig5_ratios(recon, dens, 0.05)
    assert len(ratios) == 8 and set(ratios["score"]) == {"reconstruction error", "latent density"}
    r0 = load_scores(recon[4][0])[0]
    first = ratios[(ratios["score"] == "reconstruction error") & (ratios["K"] == 4) & (ratios["seed"] == 0)].iloc[0]
    a, b = r0["recon__test"], r0["recon__mnist"]
    assert first["ratio"] == pytest.approx(tp_fp_ratio(a, b, 0.05))  # plotted: OoD positive
    assert (first["tpr"], first["fpr"]) == pytest.approx(tp_fp_rates(a, b, 0.05, "ood"))
    # the other convention (in-distribution positive) in extra columns
    assert first["ratio_in_positive"] == pytest.approx(tp_fp_ratio(a, b, 0.05, "in"))
    assert (first["tpr_in_positive"], first["fpr_in_positive"]) == pytest.approx(tp_fp_rates(a, b, 0.05, "in"))
    assert first["n_in"] == a.size and first["n_ood"] == b.size
    assert (ratios["tpr"] >= 0.95).all() and (ratios["tpr_in_positive"] >= 0.95).all()
    ratios.loc[0, "ratio"] = math.inf  # an unbounded ratio is drawn at its bound
    images = np.random.default_rng(0).integers(0, 256, size=(3, 1, 28, 28), dtype=np.uint8)
    paths = save_figure(fig5(images, {4: images, 8: images}, ratios, 0.05), tmp_path / "fig5")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_fig5_single_seed_ratios_draw(tmp_path) -> None:
    """One seed per K: exp(mean(log r)) can differ from r by round-off; the error bars must stay ≥ 0."""
    import pandas as pd

    from pae.science.figures import fig5
    from pae.stages.common import save_figure

    values = [9.635, 13.75, 8.282, 4.002, 1.279, 1.751, 19.31, 53.37]  # ratios that once broke errorbar
    ratios = pd.DataFrame({
        "score": ["reconstruction error"] * 4 + ["latent density"] * 4,
        "K": [4, 8, 16, 32] * 2, "seed": [0] * 8, "ratio": values, "n_in": [10000] * 8,
    })
    images = np.random.default_rng(0).integers(0, 256, size=(3, 1, 28, 28), dtype=np.uint8)
    paths = save_figure(fig5(images, {K: images for K in (4, 8, 16, 32)}, ratios, 0.05), tmp_path / "fig5")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_run_fig5_writes_both_conventions(tiny_run, tmp_path, monkeypatch) -> None:
    import pae.stages.figures
    from pae.stages.figures import FIG5_COLUMNS, run_fig5

    recon = {K: [_fake_scores(tmp_path / f"r{K}.npz", "recon", K, 0, 1.0)] for K in (4, 8)}
    dens = {K: [_fake_scores(tmp_path / f"d{K}.npz", "density", K, 0, 2.0)] for K in (4, 8)}
    labels = []
    save = pae.stages.figures.save_figure

    def capture(fig, stem):
        labels.extend(ax.get_ylabel() + " | " + ax.get_title() for ax in fig.axes if ax.get_ylabel())
        return save(fig, stem)

    monkeypatch.setattr(pae.stages.figures, "save_figure", capture)
    ratios = run_fig5({4: tiny_run / "ae.pt", 8: tiny_run / "ae.pt"}, recon, dens, tiny_run / "mnist.npz",
                      tmp_path / "fig5", n_images=3, device="cpu", log=lambda s: None)
    csv = pd.read_csv(tmp_path / "fig5.csv")
    assert list(csv.columns) == FIG5_COLUMNS and len(csv) == 4
    np.testing.assert_allclose(csv["ratio_in_positive"], ratios["ratio_in_positive"], rtol=1e-5)
    assert len(labels) == 1 and "positive class = OoD" in labels[0] and "OoD, the positive class" in labels[0]


def test_map_convergence_is_recorded_and_summarised_in_the_table_notes(tiny_run, tmp_path) -> None:
    """The map part stores ‖∇_z Eq. 9‖ at the start and at z' per image; with enough Adam steps it falls, and
    Table 2's notes report its median for the Eq. 12-with-MAP and Eq. 11 rows."""
    few = _run(tiny_run, "map", tmp_path / "m0.npz", map_steps=0, map_lr=0.01, map_count=8, laplace_count=4)
    np.testing.assert_allclose(few["map_grad__mnist"], few["map_grad_start__mnist"], rtol=1e-5)  # no step taken
    mapped = _run(tiny_run, "map", tmp_path / "m.npz", map_steps=60, map_lr=0.01, map_count=8, laplace_count=4)
    for name in ("test", *OOD_SETS):
        g0, g = mapped[f"map_grad_start__{name}"], mapped[f"map_grad__{name}"]
        assert g.shape == g0.shape == (8,) and np.isfinite(g).all() and (g0 > 0).all()
        assert mapped[f"laplace_map_grad__{name}"].shape == (4,)
        assert np.median(g) < 0.5 * np.median(g0), name  # the MAP moved towards a stationary point
    ks = {"eq12_map": 4, "laplace": 4}
    settings = job(map_steps=60, map_lr=0.01, map_count=8, laplace_count=4, iwae_samples=1, vae_sigma=0.01)
    files = {"eq12_map": [tmp_path / "m.npz"], "laplace": [tmp_path / "m.npz"]}
    run_make_table2(files, tmp_path / "t.csv", tmp_path / "t.md", ks, settings, EXPERIMENT, log=lambda s: None)
    md = (tmp_path / "t.md").read_text()
    all_g = np.concatenate([mapped[f"map_grad__{n}"] for n in ("test", *OOD_SETS)])
    assert "MAP convergence" in md and f"Eq. 12 with MAP: median {np.median(all_g):.3g}" in md
    assert "Eq. 11: median" in md


def test_battery_table_notes_name_the_rows_scored_on_subsets() -> None:
    from pae.stages.battery import _subset_note

    subsets = {"map_count": 100, "laplace_count": 100, "iwae_count": 100}
    note = _subset_note(["density", "eq12_map", "iwae"], subsets, 2000)
    assert "Eq. 12" in note and "IWAE" in note.upper() and note.count(" on 100") == 2
    assert _subset_note(["density", "recon"], subsets, 2000) == ""  # no costly row
    assert _subset_note(["iwae"], subsets, 100) == ""  # the subset is the whole set
