"""pae.science.flows: bijectivity, exact log-densities (Eq. 5), save/load, training, standardisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pae.files import artifacts
from pae.science import flows
from pae.files.artifacts import load_flow, save_flow
from pae.science.flows import LatentFlow, build_flow, realnvp_depth_for, train_flow
from pae.stages import train as stage_train

BASE_CFG = {
    "realnvp_max_K": 4,
    "realnvp_depth": {4: 4},
    "realnvp_hidden": 16,
    "nsf_layers": 2,
    "nsf_hidden": 16,
    "nsf_bins": 8,
    "nsf_tail_bound": 3.0,
    "standardize": True,
    "epochs": 4,
    "batch_size": 64,
    "lr": 3e-3,
    "lr_decay_at": 0.75,
    "lr_decay_factor": 0.1,
    "latent_noise": 0.02,
}
KINDS = [pytest.param(4, "realnvp", id="realnvp-K4"), pytest.param(8, "nsf", id="nsf-K8")]


def latents(n: int, K: int, seed: int = 0) -> np.ndarray:
    """Correlated, shifted, non-unit-scale Gaussian latents (so standardisation matters)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(K, K)) / math.sqrt(K)
    z = rng.normal(size=(n, K)) @ A.T * 2.0 + np.arange(K)
    z[:, 0] = np.tanh(z[:, 0]) + 0.3 * z[:, 1] ** 2  # a little non-Gaussianity
    return z.astype(np.float32)


def perturbed(flow: LatentFlow, seed: int = 1, amount: float = 0.15) -> LatentFlow:
    """Random non-trivial weights (the coupling output layers start at zero); larger amounts make
    near-singular splines (log-det < -40) whose float64 round trip loses many digits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(amount * torch.randn(p.shape, generator=g))
    return flow.eval()


def make(K: int, kind: str, seed: int = 0) -> LatentFlow:
    flow = perturbed(build_flow(K, BASE_CFG, latents(256, K), seed=seed))
    assert flow.kind == kind
    return flow


@pytest.mark.parametrize("K,kind", KINDS)
def test_invertible(K: int, kind: str) -> None:
    flow = make(K, kind).double()  # exact bijection: float64 round trip to ~1e-10
    z = torch.as_tensor(latents(64, K, seed=5), dtype=torch.float64)
    u = flow.transform_to_noise(z)
    assert u.shape == z.shape
    assert torch.allclose(flow.inverse(u), z, atol=1e-8)
    u2 = torch.randn(32, K, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(flow.transform_to_noise(flow.inverse(u2)), u2, atol=1e-8)


@pytest.mark.parametrize("K,kind", KINDS)
def test_invertible_float32_after_training(K: int, kind: str) -> None:
    z = latents(512, K)
    flow = build_flow(K, BASE_CFG, z, seed=0)
    train_flow(flow, z[:384], z[384:], {**BASE_CFG, "epochs": 2}, log=lambda s: None)
    zt = torch.as_tensor(z[:64])
    assert torch.allclose(flow.inverse(flow.transform_to_noise(zt)), zt, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("K,kind", KINDS)
def test_log_prob_matches_autograd_jacobian(K: int, kind: str) -> None:
    """log p(z) = log N(u; 0, I) + log|det du/dz| with the Jacobian from autograd (Eq. 5)."""
    flow = make(K, kind).double()
    z = torch.as_tensor(latents(5, K, seed=7), dtype=torch.float64)
    lp = flow.log_prob(z)
    for i in range(len(z)):
        J = torch.autograd.functional.jacobian(lambda x: flow.transform_to_noise(x[None])[0], z[i])
        u = flow.transform_to_noise(z[i : i + 1])[0]
        log_normal = -0.5 * (u**2).sum() - 0.5 * K * math.log(2 * math.pi)
        expected = log_normal + torch.linalg.slogdet(J).logabsdet
        assert lp[i].item() == pytest.approx(expected.item(), abs=1e-6)
        _, logdet = flow.forward_and_logdet(z[i : i + 1])
        assert logdet.item() == pytest.approx(torch.linalg.slogdet(J).logabsdet.item(), abs=1e-6)


@pytest.mark.parametrize("K,kind", KINDS)
def test_standardisation_is_in_the_log_det(K: int, kind: str) -> None:
    z_train = latents(256, K)
    with_std = build_flow(K, BASE_CFG, z_train, seed=0)
    plain = build_flow(K, {**BASE_CFG, "standardize": False}, None, seed=0)
    perturbed(with_std)
    # same coupling weights, identity standardiser in `plain`
    state = {k: v for k, v in with_std.state_dict().items() if not k.startswith("standardizer.")}
    plain.load_state_dict(state, strict=False)
    plain.eval()
    m, s = flows.latent_statistics(z_train)
    assert torch.allclose(with_std.standardizer.shift, m) and torch.allclose(with_std.standardizer.scale, s)
    z = torch.as_tensor(latents(16, K, seed=2))
    expected = plain.log_prob((z - m) / s) - torch.log(s).sum()
    assert torch.allclose(with_std.log_prob(z), expected, atol=1e-4)
    assert torch.allclose(plain.standardizer.scale, torch.ones(K))


@pytest.mark.parametrize("K,kind", KINDS)
def test_save_load_round_trip(K: int, kind: str, tmp_path) -> None:
    flow = make(K, kind)
    z = torch.as_tensor(latents(32, K, seed=9))
    u = torch.randn(8, K, generator=torch.Generator().manual_seed(0))
    save_flow(tmp_path / "flow.pt", flow, {"seed": 0, "note": "test"})
    loaded, meta = load_flow(tmp_path / "flow.pt", "cpu")
    assert meta["note"] == "test" and not loaded.training
    assert loaded.init_kwargs == flow.init_kwargs
    assert torch.equal(loaded.log_prob(z), flow.log_prob(z))
    assert torch.equal(loaded.inverse(u), flow.inverse(u))
    # train/eval switches must not change the function
    loaded.train()
    lp_train = loaded.log_prob(z)
    loaded.eval()
    assert torch.allclose(lp_train, flow.log_prob(z), atol=1e-6)


@pytest.mark.parametrize("K,kind", KINDS)
def test_training_lowers_nll(K: int, kind: str) -> None:
    z = latents(768, K)
    flow = build_flow(K, BASE_CFG, z[:512], seed=0)
    before = flows.mean_nll(flow, torch.as_tensor(z[512:]))
    logs: list[str] = []
    hist = train_flow(flow, z[:512], z[512:], BASE_CFG, seed=0, device="cpu", log=logs.append)
    after = flows.mean_nll(flow, torch.as_tensor(z[512:]))
    assert after < before - 0.05
    assert len(hist["train_nll"]) == BASE_CFG["epochs"] and len(logs) == BASE_CFG["epochs"] + 1
    assert after == pytest.approx(min(hist["valid_nll"]), abs=1e-4)  # best-validation weights are kept
    assert hist["lr"][0] == BASE_CFG["lr"] and hist["lr"][-1] == pytest.approx(BASE_CFG["lr"] * 0.1)
    assert not flow.training


@pytest.mark.parametrize("K,kind", KINDS)
def test_training_is_seeded(K: int, kind: str) -> None:
    z = latents(300, K)
    cfg = {**BASE_CFG, "epochs": 1}
    runs, states = [], []
    for global_seed in (123, 456):
        torch.manual_seed(global_seed)  # the global RNG must not matter, only the explicit seeds
        f = build_flow(K, cfg, z[:200], seed=0)
        runs.append(train_flow(f, z[:200], z[200:], cfg, seed=4, log=lambda s: None)["valid_nll"])
        states.append(f.state_dict())
    assert runs[0] == runs[1]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # identical weights
    other = build_flow(K, cfg, z[:200], seed=1)
    train_flow(other, z[:200], z[200:], cfg, seed=5, log=lambda s: None)
    assert not all(torch.equal(states[0][k], v) for k, v in other.state_dict().items())


@pytest.mark.parametrize("K,kind", KINDS)
def test_flow_starts_as_a_permutation(K: int, kind: str) -> None:
    """Couplings and LU layers start as the identity: the untrained flow only permutes (log-det 0)."""
    flow = build_flow(K, {**BASE_CFG, "standardize": False}, None, seed=3)
    z = torch.as_tensor(latents(32, K))
    u, logdet = flow.forward_and_logdet(z)
    assert torch.allclose(logdet, torch.zeros(32), atol=1e-6)
    assert torch.allclose(u.sort(1).values, z.sort(1).values, atol=1e-6) and not torch.equal(u, z)
    assert torch.allclose(flow.inverse(u), z, atol=1e-6)


def test_affine_log_scale_is_soft_clamped_both_ways() -> None:
    """Each affine coupling can stretch and squeeze, up to e^±LOG_SCALE_BOUND per coordinate."""
    flow = build_flow(4, {**BASE_CFG, "standardize": False}, None)
    coupling = flow.layers[0]
    z = torch.as_tensor(latents(8, 4))
    for sign in (1.0, -1.0):
        with torch.no_grad():
            coupling.net[-1].bias[coupling.nb :] = sign * 50.0  # saturate the raw log-scale
        _, ld = coupling(z)
        assert torch.allclose(ld, torch.full((8,), sign * coupling.nb * flows.LOG_SCALE_BOUND), atol=1e-4)


def _fit(z_train: np.ndarray, z_valid: np.ndarray, K: int, cfg_extra: dict) -> float:
    cfg = {**BASE_CFG, "realnvp_max_K": 32, "realnvp_depth": {2: 8}, "realnvp_hidden": 32, "latent_noise": 0.0,
           "epochs": 12, "batch_size": 128, "lr": 3e-3, "lr_decay_at": 0.75, **cfg_extra}
    flow = build_flow(K, cfg, z_train, seed=0)
    train_flow(flow, z_train, z_valid, cfg, seed=0, log=lambda s: None)
    return flows.mean_nll(flow, torch.as_tensor(z_valid))


def _gaussian_nll(z_train: np.ndarray, z_valid: np.ndarray) -> float:
    """Validation NLL of the maximum-likelihood full-covariance Gaussian fitted to z_train."""
    mu, cov = z_train.mean(0), np.cov(z_train, rowvar=False, bias=True)
    d = z_valid - mu
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    return float(np.mean(0.5 * maha + 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]))


def test_realnvp_reaches_the_entropy_of_a_thin_correlated_gaussian() -> None:
    """4-D Gaussian with std 2, 1, 0.3, 0.05 along rotated axes: the flow must stretch the thin directions
    (a coupling scale bounded by 1 in z -> u cannot, and ends nats above the entropy)."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    cov = Q @ np.diag([2.0, 1.0, 0.3, 0.05]) ** 2 @ Q.T
    z = rng.multivariate_normal(np.arange(4.0), cov, size=6000).astype(np.float32)
    entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    true_nll = float(-np.mean(multivariate_normal_logpdf(z[4000:], np.arange(4.0), cov)))
    nll = _fit(z[:4000], z[4000:], 4, {"realnvp_depth": {4: 6}})
    assert abs(nll - entropy) < 0.1 and nll - true_nll < 0.1, (nll, true_nll, entropy)


def multivariate_normal_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = x - mean
    return -0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) - 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]


@pytest.mark.parametrize("kind", ["realnvp", "nsf"])
def test_flow_beats_the_best_gaussian_on_a_thin_half_moon(kind: str) -> None:
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, np.pi, 6000)
    z = np.stack([np.cos(theta), np.sin(theta)], 1) * (1 + 0.05 * rng.normal(size=(6000, 1)))
    z = (z * [3.0, 0.5] + [1.0, -2.0]).astype(np.float32)  # non-unit scales: standardisation matters
    extra = {"realnvp_max_K": 0 if kind == "nsf" else 32, "nsf_layers": 2, "nsf_hidden": 32, "nsf_bins": 8,
             "epochs": 8, "batch_size": 256}
    nll, gauss = _fit(z[:4000], z[4000:], 2, extra), _gaussian_nll(z[:4000], z[4000:])
    assert nll < gauss - 0.5, (nll, gauss)


def test_sample_seeded_and_tempered() -> None:
    flow = make(4, "realnvp")
    a = flow.sample(16, torch.Generator().manual_seed(0))
    b = flow.sample(16, torch.Generator().manual_seed(0))
    c = flow.sample(16, torch.Generator().manual_seed(1))
    assert a.shape == (16, 4) and torch.equal(a, b) and not torch.allclose(a, c)
    cold = flow.sample(16, torch.Generator().manual_seed(0), temperature=1e-6)
    mode = flow.inverse(torch.zeros(1, 4))
    assert torch.allclose(cold, mode.expand(16, 4), atol=1e-3)


def test_depth_table_fallback_and_errors() -> None:
    assert realnvp_depth_for(8, {4: 8, 8: 10, 16: 12}) == 10
    assert realnvp_depth_for(12, {"4": 8, "8": 10, "16": 12}) == 10
    with pytest.raises(ValueError, match="realnvp_depth"):
        realnvp_depth_for(2, {4: 8})
    with pytest.raises(ValueError, match="standardize"):
        build_flow(4, BASE_CFG, None)


def test_bad_latents_and_divergence_are_reported(tmp_path) -> None:
    z = latents(200, 4)
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build_flow(4, BASE_CFG, bad)
    flow = build_flow(4, BASE_CFG, z)
    with pytest.raises(ValueError, match="z_valid"):
        train_flow(flow, z, bad, BASE_CFG, log=lambda s: None)
    flow.log_prob = lambda x: torch.full((len(x),), float("nan"))  # type: ignore[method-assign]
    with pytest.raises(FloatingPointError, match="flow.lr"):
        train_flow(flow, z, z, BASE_CFG, log=lambda s: None)
    # missing / corrupt / foreign files name the path
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_flow(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt"):
        load_flow(tmp_path / "junk.pt")
    np.savez(tmp_path / "stats.npz", z_train=z)
    with pytest.raises(ValueError, match="z_valid"):
        artifacts.load_latents(tmp_path / "stats.npz")


def test_old_format_is_rejected(tmp_path) -> None:
    flow = make(4, "realnvp")
    save_flow(tmp_path / "flow.pt", flow)
    blob = torch.load(tmp_path / "flow.pt", weights_only=True)
    blob["version"] = 1  # an nflows-era file
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt.*version 1.*rerun the rule train_flow"):
        load_flow(tmp_path / "old.pt")


@pytest.mark.parametrize("standardize", [True, False])
def test_latent_noise_is_in_standardised_units(standardize: bool) -> None:
    """flow.latent_noise σ is added after standardisation: latent k gets N(0, (σ·std_k)²) in raw units."""
    rng = np.random.default_rng(0)
    z = np.stack([rng.choice([-100.0, 100.0], 512), rng.choice([-0.01, 0.01], 512)], 1).astype(np.float32)
    cfg = {**BASE_CFG, "epochs": 1, "batch_size": 128, "latent_noise": 0.05, "standardize": standardize}
    flow = build_flow(2, {**cfg, "realnvp_depth": {2: 1}}, z)
    seen: list[torch.Tensor] = []
    real_log_prob = flow.log_prob

    def spy(x: torch.Tensor) -> torch.Tensor:
        if flow.training:
            seen.append(x.detach().clone())
        return real_log_prob(x)

    flow.log_prob = spy  # type: ignore[method-assign]
    train_flow(flow, z, z[:64], {**cfg, "realnvp_depth": {2: 1}}, log=lambda s: None)
    noisy = torch.cat(seen).numpy()
    assert len(noisy) == 512
    if standardize:  # σ·std: 5 and 0.0005, small enough to recover the clean values ±100 and ±0.01
        residual = noisy - np.sign(noisy) * [100.0, 0.01]
        np.testing.assert_allclose(residual.std(0), [5.0, 0.0005], rtol=0.1)
    else:  # raw units: σ = 0.05 for both, swamping the second latent (std 0.01)
        np.testing.assert_allclose((noisy[:, 0] - np.sign(noisy[:, 0]) * 100.0).std(), 0.05, rtol=0.1)
        np.testing.assert_allclose(noisy[:, 1].std(), np.hypot(0.01, 0.05), rtol=0.1)


def test_run_train_flow_writes_outputs(tmp_path) -> None:
    z = latents(400, 4)
    np.savez(tmp_path / "ae_stats.npz", z_train=z[:300], z_valid=z[300:350], z_test=z[350:],
             sigma=np.ones((1, 4, 4), np.float32))
    cfg = {**BASE_CFG, "epochs": 2}
    metrics = stage_train.run_train_flow(tmp_path / "ae_stats.npz", tmp_path / "flow.pt", tmp_path / "m.json",
                                   tmp_path / "h.csv", cfg, seed=0, device="cpu", threads=1)
    assert {"train_nll", "valid_nll", "test_nll", "epochs", "wall_seconds"} <= set(metrics)
    assert metrics["epochs"] == 2 and math.isfinite(metrics["valid_nll"])
    flow, meta = load_flow(tmp_path / "flow.pt")
    assert meta["seed"] == 0
    assert flows.mean_nll(flow, torch.as_tensor(z[300:350])) == pytest.approx(metrics["valid_nll"], rel=1e-5)
    assert len((tmp_path / "h.csv").read_text().strip().splitlines()) == 3
    assert not list(tmp_path.glob("*.part"))


def test_rule_params_hold_only_what_matters_for_K() -> None:
    cfg = {**BASE_CFG, "realnvp_max_K": 16, "realnvp_depth": {4: 4, 16: 6}}
    small, large = flows.flow_config_for(8, cfg), flows.flow_config_for(64, cfg)
    assert small["realnvp_depth"] == {4: 4} and "nsf_bins" not in small
    assert "realnvp_depth" not in large and large["nsf_bins"] == BASE_CFG["nsf_bins"]
    assert flows.flow_config_for(8, {**cfg, "nsf_bins": 99}) == small  # NSF edits do not rerun RealNVP flows
    assert build_flow(8, small, latents(64, 8)).init_kwargs["n_layers"] == 4
