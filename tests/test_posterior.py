"""pae.science.posterior: corruptions, Eq. 13-14 log posterior, MAP, Hessians, Laplace mixture, Eq. 10-11, metrics.

Toys: a linear decoder with an affine flow is probabilistic PCA (paper Sec. 3), where the posterior, the
Laplace covariance and p(x) are Gaussian and known in closed form; a 1-D two-root decoder gives a bimodal
posterior whose basin masses we integrate numerically.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, norm
from torch import nn

from pae.science.posterior import (
    Corruption,
    LaplaceMixture,
    PosteriorModel,
    PosteriorSettings,
    batched_jacobian,
    corrupt,
    eq11_score,
    gauss_newton_hessian,
    laplace_log_px,
    log_likelihood,
    log_posterior,
    newton_decrement,
    posterior_analysis,
    posterior_hessian,
)
from pae.science.posterior_metrics import eval_region, interval_coverage, label_statistics, psnr, ssim
from synthetic import flow_arch

K, SHAPE = 3, (1, 4, 4)
P = int(np.prod(SHAPE))


class AffineFlow(nn.Module):
    """u = A (z − m): p(z) = N(m, (AᵀA)⁻¹); the LatentFlow interface (transform_to_noise, inverse, log_prob)."""

    def __init__(self, A: torch.Tensor, m: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("m", m)
        self.K = A.shape[0]

    def transform_to_noise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.m) @ self.A.T

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.A, u.T).T + self.m

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u = self.transform_to_noise(z)
        return -0.5 * (u.square() + math.log(2 * math.pi)).sum(1) + torch.linalg.slogdet(self.A)[1]


class LinearDecoder(nn.Module):
    """g(z) = W z + c as (N, 1, 4, 4) images; with `tanh` a smooth non-linear variant."""

    def __init__(self, W: torch.Tensor, c: torch.Tensor, nonlinear: bool = False) -> None:
        super().__init__()
        self.register_buffer("W", W)
        self.register_buffer("c", c)
        self.nonlinear = nonlinear

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z @ self.W.T
        return ((0.4 * torch.tanh(h) if self.nonlinear else h) + self.c).reshape(-1, *SHAPE)


def ppca(seed: int = 0, dtype=torch.float64) -> tuple[LinearDecoder, AffineFlow, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W = 0.3 * torch.randn(P, K, generator=g, dtype=dtype)
    c = 0.1 * torch.randn(P, generator=g, dtype=dtype)
    A = torch.eye(K, dtype=dtype) + 0.3 * torch.randn(K, K, generator=g, dtype=dtype)
    m = 0.5 * torch.randn(K, generator=g, dtype=dtype)
    sigma = 0.05 + 0.1 * torch.rand(SHAPE, generator=g, dtype=dtype)
    return LinearDecoder(W, c), AffineFlow(A, m), sigma


def analytic_u_posterior(dec, flow, x_tilde, observed, var):
    """Exact Gaussian posterior over u for the linear model: precision I + BᵀDB, B = W A⁻¹."""
    B = dec.W @ torch.linalg.inv(flow.A)
    d = (observed.reshape(-1).to(var.dtype) / var.reshape(-1))
    prec = torch.eye(K, dtype=B.dtype) + B.T @ (d[:, None] * B)
    resid = x_tilde.reshape(-1) - dec.c - dec.W @ flow.m
    mean = torch.linalg.solve(prec, B.T @ (d * resid))
    return mean, prec


# ---------------------------------------------------------------------------------------------------------
# corruptions and the likelihood


def test_solid_mask_hides_left_columns_and_noise_is_seeded() -> None:
    x = torch.rand(5, 1, 28, 28) - 0.5
    c = Corruption(mask="left", hidden_cols=16, noise=1.2)
    xt, obs = corrupt(x, c, torch.Generator().manual_seed(3))
    assert obs.shape == x.shape and not obs[..., :16].any() and obs[..., 16:].all()
    assert (xt[..., :16] == 0).all()
    resid = (xt - x)[..., 16:]
    assert resid.std().item() == pytest.approx(1.2, rel=0.05)
    xt2, _ = corrupt(x, c, torch.Generator().manual_seed(3))
    assert torch.equal(xt, xt2)
    _, obs_r = corrupt(x, Corruption(mask="random", hidden_fraction=0.9), torch.Generator().manual_seed(0))
    assert (~obs_r).float().mean().item() == pytest.approx(0.9, abs=0.03)


def test_corruption_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="posterior.corruptions.bad"):
        Corruption.from_config("bad", {"mask": "top"})
    with pytest.raises(ValueError, match="posterior.corruptions.sparse"):
        Corruption.from_config("sparse", {"mask": "random", "hidden_fraction": 1.5})
    with pytest.raises(ValueError, match="unknown field"):
        Corruption.from_config("x", {"mask": "left", "hidden_cols": 3, "colour": 1})


def test_masked_pixels_do_not_change_the_likelihood() -> None:
    g = torch.Generator().manual_seed(0)
    x_hat = torch.rand(4, *SHAPE, generator=g, dtype=torch.float64) - 0.5
    x_tilde = torch.rand(4, *SHAPE, generator=g, dtype=torch.float64) - 0.5
    obs = torch.rand(4, *SHAPE, generator=g) > 0.4
    var = 0.01 + 0.05 * torch.rand(SHAPE, generator=g, dtype=torch.float64)
    ll = log_likelihood(x_hat, x_tilde, obs, var)
    garbage = torch.where(obs, x_tilde, torch.full_like(x_tilde, float("nan")))
    torch.testing.assert_close(log_likelihood(x_hat, garbage, obs, var), ll)
    torch.testing.assert_close(log_likelihood(x_hat, torch.where(obs, x_tilde, 7.0), obs, var), ll)
    v = var.expand_as(x_tilde)
    expected = [norm.logpdf(x_tilde[i][obs[i]], x_hat[i][obs[i]], v[i][obs[i]].sqrt()).sum() for i in range(4)]
    np.testing.assert_allclose(ll.numpy(), expected, rtol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# Hessians


def test_exact_hessian_matches_autograd_on_a_tiny_nonlinear_model() -> None:
    g = torch.Generator().manual_seed(1)
    dec = LinearDecoder(torch.randn(P, K, generator=g, dtype=torch.float64),
                        0.1 * torch.randn(P, generator=g, dtype=torch.float64), nonlinear=True)
    _, flow, sigma = ppca(2)
    model = PosteriorModel(dec, flow)
    u = torch.randn(6, K, generator=g, dtype=torch.float64)
    x_tilde = torch.rand(6, *SHAPE, generator=g, dtype=torch.float64) - 0.5
    obs = torch.rand(6, *SHAPE, generator=g) > 0.3
    var = sigma.square() + 0.2**2
    H = posterior_hessian(u, x_tilde, obs, var, model)
    for i in range(6):
        ref = torch.autograd.functional.hessian(
            lambda v, i=i: -log_posterior(v[None], x_tilde[i : i + 1], obs[i : i + 1], var, model)[0], u[i])
        torch.testing.assert_close(H[i], ref, rtol=1e-8, atol=1e-10)


def test_gauss_newton_equals_exact_hessian_for_a_linear_decoder() -> None:
    dec, flow, sigma = ppca(3)
    model = PosteriorModel(dec, flow)
    g = torch.Generator().manual_seed(4)
    u = torch.randn(5, K, generator=g, dtype=torch.float64)
    x_tilde = torch.rand(5, *SHAPE, generator=g, dtype=torch.float64)
    obs = torch.rand(5, *SHAPE, generator=g) > 0.5
    var = sigma.square()
    torch.testing.assert_close(gauss_newton_hessian(u, obs, var, model),
                               posterior_hessian(u, x_tilde, obs, var, model), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# MAP and Laplace mixture


FAST = PosteriorSettings(random_starts=4, encoder_start=False, lr_stages=(0.1, 0.01, 0.001),
                         steps_per_stage=400, anneal_max=0.5, merge_distance=3.0, n_samples=4000)


def test_linear_gaussian_map_and_laplace_equal_the_analytic_posterior() -> None:
    """PAE with a linear decoder and an affine flow = probabilistic PCA: the posterior over u is Gaussian."""
    dec, flow, sigma = ppca(5)
    g = torch.Generator().manual_seed(6)
    x = dec(flow.inverse(torch.randn(3, K, generator=g, dtype=torch.float64)))
    x_tilde, obs = corrupt(x, Corruption(mask="left", hidden_cols=2, noise=0.1), g)
    var = sigma.square() + 0.1**2
    res = posterior_analysis(x_tilde, obs, var, PosteriorModel(dec, flow), FAST, torch.Generator().manual_seed(0))
    mix = res.mixture
    assert mix.n_modes.tolist() == [1, 1, 1]  # every start converges to the one mode
    for i in range(3):
        mean, prec = analytic_u_posterior(dec, flow, x_tilde[i], obs[i], var.expand(SHAPE))
        torch.testing.assert_close(res.map_u[i], mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(mix.covariance()[i, 0], torch.linalg.inv(prec), rtol=1e-6, atol=1e-9)
        # Laplace evidence = the exact marginal likelihood of the observed pixels (Gaussian model)
        o = obs[i].reshape(-1)
        B = dec.W @ torch.linalg.inv(flow.A)
        mu = (dec.c + dec.W @ flow.m)[o]
        cov = B[o] @ B[o].T + torch.diag(var.reshape(-1)[o])
        exact = multivariate_normal(mu.numpy(), cov.numpy()).logpdf(x_tilde[i].reshape(-1)[o].numpy())
        assert mix.log_evidence[i].item() == pytest.approx(exact, abs=1e-6)
    # the Newton decrement is ≈ 0 at the mode and ½ δᵀPδ at mode + δ (quadratic log posterior)
    model = PosteriorModel(dec, flow)
    mean, prec = analytic_u_posterior(dec, flow, x_tilde[0], obs[0], var.expand(SHAPE))
    delta = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.05]], dtype=torch.float64)
    H, grad = posterior_hessian(mean + delta, x_tilde[:1].expand(2, *SHAPE), obs[:1].expand(2, *SHAPE), var, model,
                                return_grad=True)
    torch.testing.assert_close(newton_decrement(H, grad), 0.5 * ((delta @ prec) * delta).sum(1), atol=1e-9, rtol=1e-7)
    # samples follow N(mean, prec⁻¹); z samples are b⁻¹(u)
    s = res.samples_u[0]
    torch.testing.assert_close(s.mean(0), mean, atol=4 * math.sqrt(prec.inverse().diag().max() / len(s)), rtol=0)
    torch.testing.assert_close(torch.cov(s.T), prec.inverse(), atol=0.1 * prec.inverse().diag().max().item(), rtol=0)
    torch.testing.assert_close(res.samples_z[0], flow.inverse(s))


def two_root_model(v: float):
    """1-D u, one pixel x̂ = (u − 1)(u + 2) observed as 0: modes near u = 1 and u = −2, split at u = −0.5."""
    dec = lambda z: ((z - 1.0) * (z + 2.0)).reshape(-1, 1, 1, 1)  # noqa: E731
    return PosteriorModel(dec, None, latent_dim=1), torch.zeros(1, 1, 1, 1, dtype=torch.float64), v


def test_bimodal_toy_finds_both_modes_weighted_by_their_evidence() -> None:
    v = 0.15**2
    model, x_tilde, _ = two_root_model(v)
    obs = torch.ones_like(x_tilde, dtype=torch.bool)
    var = torch.full((1, 1, 1), v, dtype=torch.float64)
    st = PosteriorSettings(random_starts=12, encoder_start=False, lr_stages=(0.1, 0.01, 0.001), steps_per_stage=300,
                           anneal_max=0.5, merge_distance=3.0, n_samples=20000)
    res = posterior_analysis(x_tilde, obs, var, model, st, torch.Generator().manual_seed(0))
    mix = res.mixture
    assert mix.n_modes.item() == 2
    modes = mix.means[0, :, 0]
    assert sorted(modes.tolist()) == pytest.approx([-2.0, 1.0], abs=0.05)
    # exact basin masses by numerical integration of the unnormalised posterior
    grid = torch.linspace(-5, 4, 200001, dtype=torch.float64)[:, None]
    lp = log_posterior(grid, x_tilde.expand(len(grid), 1, 1, 1), obs.expand(len(grid), 1, 1, 1), var, model)
    p = (lp - lp.max()).exp()
    right = p[grid[:, 0] > -0.5].sum() / p.sum()
    w_right = mix.weights[0][modes > -0.5].sum()
    assert w_right.item() == pytest.approx(right.item(), abs=0.01)
    assert 0.7 < right.item() < 0.9  # the two modes really differ in weight (prior N(0, 1) favours u = 1)
    assert (res.samples_u[0, :, 0] > -0.5).double().mean().item() == pytest.approx(right.item(), abs=0.015)


def test_credible_intervals_of_a_correct_gaussian_posterior_cover_nominally() -> None:
    """Truths drawn from the prior of the linear toy; posterior samples decoded; coverage ≈ the level
    (2000 truths; 1000 samples, since sample quantiles of few draws give intervals slightly too narrow)."""
    dec, flow, sigma = ppca(7)
    g = torch.Generator().manual_seed(8)
    n = 2000
    x = dec(flow.inverse(torch.randn(n, K, generator=g, dtype=torch.float64)))
    x_tilde, obs = corrupt(x, Corruption(mask="right", hidden_cols=2, noise=0.3), g)
    var = torch.full(SHAPE, 0.3**2, dtype=torch.float64)  # the truth is noiseless g(z): σ = 0, σ_noise = 0.3
    st = PosteriorSettings(random_starts=1, encoder_start=False, lr_stages=(0.1, 0.01), steps_per_stage=300,
                           anneal_max=None, n_samples=1000, batch_size=4096)
    res = posterior_analysis(x_tilde, obs, var, PosteriorModel(dec, flow), st, torch.Generator().manual_seed(1))
    with torch.no_grad():
        xs = dec(res.samples_z.reshape(-1, K)).reshape(n, st.n_samples, *SHAPE)
    cov = interval_coverage(xs.numpy(), x.numpy(), eval_region(obs.numpy(), True))
    assert np.nanmean(cov[0.68]) == pytest.approx(0.68, abs=0.02)
    assert np.nanmean(cov[0.95]) == pytest.approx(0.95, abs=0.012)


def test_no_positive_definite_start_falls_back_to_gauss_newton() -> None:
    """At u = 0 the two-root toy's exact Hessian is negative; with zero steps every start stays there."""
    model, x_tilde, v = two_root_model(0.01)
    obs = torch.ones_like(x_tilde, dtype=torch.bool)
    var = torch.full((1, 1, 1), v, dtype=torch.float64)

    class Zero:
        def __call__(self, x):
            return torch.zeros(len(x), 1, dtype=x.dtype)

    model.encoder = Zero()
    st = PosteriorSettings(random_starts=0, encoder_start=True, lr_stages=(1e-12,), steps_per_stage=1,
                           anneal_max=None, n_samples=10)
    res = posterior_analysis(x_tilde, obs, var, model, st)
    assert not res.positive_definite.any() and res.mixture.fallback.all()
    # Gauss-Newton at u = 0: 1 + h'(0)²/v = 1 + 1/0.01
    torch.testing.assert_close(res.mixture.covariance()[0, 0, 0, 0].double(),
                               torch.tensor(1 / 101, dtype=torch.float64))


def test_mixture_log_density_is_normalised() -> None:
    means = torch.tensor([[[-1.0, 0.0], [2.0, 1.0]]], dtype=torch.float64)
    L = torch.linalg.cholesky(torch.tensor([[[[4.0, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, 9.0]]]], dtype=torch.float64))
    lw = torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64))
    mix = LaplaceMixture(means, L, lw, lw, torch.zeros(1), torch.tensor([2]))
    g = torch.linspace(-6, 6, 401, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(1, -1, 2)
    mass = mix.log_density(pts).exp().sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------------------------------------------
# Eq. 10-11


def test_eq11_equals_the_exact_log_px_of_the_linear_gaussian_model() -> None:
    dec, flow, sigma = ppca(9)
    g = torch.Generator().manual_seed(10)
    x = dec(flow.inverse(torch.randn(4, K, generator=g, dtype=torch.float64))) \
        + sigma * torch.randn(4, *SHAPE, generator=g, dtype=torch.float64)
    # exact MAP in z: precision AᵀA + Wᵀσ⁻²W, mean solves it against AᵀA m + Wᵀσ⁻²(x − c)
    s2 = sigma.reshape(-1).square()
    prec = flow.A.T @ flow.A + dec.W.T @ (dec.W / s2[:, None])
    rhs = (flow.A.T @ flow.A @ flow.m)[None] + ((x.reshape(4, -1) - dec.c) / s2) @ dec.W
    z_map = torch.linalg.solve(prec, rhs.T).T
    cov_z = torch.linalg.inv(flow.A.T @ flow.A)
    exact = multivariate_normal((dec.c + dec.W @ flow.m).numpy(), (dec.W @ cov_z @ dec.W.T + torch.diag(s2)).numpy())
    expected = exact.logpdf(x.reshape(4, -1).numpy())
    np.testing.assert_allclose(laplace_log_px(x, z_map, dec, flow, sigma).numpy(), expected, rtol=1e-10)
    # the Table 2 driver: MAP by Adam from a rough start, then Eq. 11 (float32 like the real models)
    f32 = LinearDecoder(dec.W.float(), dec.c.float()), AffineFlow(flow.A.float(), flow.m.float())
    got = eq11_score(x.float(), z_map.float() + 0.3, f32[0], f32[1], sigma.float(), map_steps=500, map_lr=0.01)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)


# ---------------------------------------------------------------------------------------------------------
# metrics


def test_psnr_ssim_and_label_statistics() -> None:
    x = np.zeros((2, 1, 8, 8))
    x_hat = x.copy()
    x_hat[0, 0, :, :4] = 0.1  # MSE 0.01 on the left half → 20 dB there
    left = np.zeros_like(x, dtype=bool)
    left[..., :4] = True
    assert psnr(x_hat, x, left)[0] == pytest.approx(20.0)
    assert psnr(x_hat, x, ~left)[0] > 100  # perfect where nothing changed
    rng = np.random.default_rng(0)
    img = rng.random((1, 1, 16, 16)) - 0.5
    assert ssim(img, img, np.ones_like(img, bool))[0] == pytest.approx(1.0)
    assert ssim(img + 0.3 * rng.standard_normal(img.shape), img, np.ones_like(img, bool))[0] < 0.9
    share, ent = label_statistics(np.array([[3, 3, 3, 3], [3, 5, 3, 5]]), np.array([3, 5]), 10)
    np.testing.assert_allclose(share, [1.0, 0.5])
    np.testing.assert_allclose(ent, [0.0, math.log(2)])


# ---------------------------------------------------------------------------------------------------------
# calibration (pae.science.posterior_metrics)


def test_predictive_intervals_of_a_correct_predictive_cover_nominally_on_each_pixel_class() -> None:
    """Samples g(z) ~ N(μ, τ²) per pixel and truth ~ N(μ, τ² + σ²): the predictive mixture of g(z) + σ ε is the
    truth's distribution, so every level covers its nominal share; the g(z)-only intervals undercover."""
    from pae.science.posterior_metrics import (
        CALIBRATION_LEVELS,
        CoverageCounter,
        central_hits,
        pixel_classes,
        predictive_cdf,
        predictive_interval,
        sample_interval_hits,
    )

    rng = np.random.default_rng(0)
    N, n, tau, sig = 400, 400, 0.1, 0.08
    mu = rng.uniform(-0.3, 0.3, (N, 1, 4, 4))
    xs = mu[:, None] + tau * rng.standard_normal((N, n, 1, 4, 4))
    x = mu + np.hypot(tau, sig) * rng.standard_normal(mu.shape)
    sigma = np.full((1, 4, 4), sig)
    x_u8 = np.where(rng.random(mu.shape) < 0.5, 0, 200)  # half "background", half "foreground" labels
    classes = pixel_classes(x_u8, np.ones(mu.shape, bool))
    assert classes["fg"].sum() + classes["bg"].sum() == classes["all"].sum() == x.size
    cdf = predictive_cdf(xs, sigma, x)
    counter = CoverageCounter()
    counter.add(lambda lev: central_hits(cdf, lev), classes)
    for lev in CALIBRATION_LEVELS:
        for c in ("fg", "bg", "all"):
            assert counter.coverage(c, lev) == pytest.approx(lev, abs=0.03), (c, lev)
    lo, hi = predictive_interval(xs[:20], sigma, 0.9)
    np.testing.assert_allclose(predictive_cdf(xs[:20], sigma, lo), 0.05, atol=1e-6)
    np.testing.assert_allclose(predictive_cdf(xs[:20], sigma, hi), 0.95, atol=1e-6)
    inside, zero = sample_interval_hits(xs, x, 0.95)
    assert not zero.any() and inside.mean() < 0.9  # τ alone is too narrow (expected 0.874)
    cols = counter.columns("pred_cover")
    assert set(cols) == {f"pred_cover_{c}_{round(100 * lev)}" for c in ("fg", "bg", "all") for lev in CALIBRATION_LEVELS}


def test_zero_width_sample_intervals_count_as_misses() -> None:
    """Saturated samples (all equal) give a zero-width interval: a miss even where the truth equals them."""
    from pae.science.posterior_metrics import sample_interval_hits

    xs = np.full((2, 10, 1, 2, 2), -0.5)
    x = np.full((2, 1, 2, 2), -0.5)
    inside, zero = sample_interval_hits(xs, x, 0.95)
    assert zero.all() and not inside.any()
    xs[:, :5] = -0.4
    inside, zero = sample_interval_hits(xs, x, 0.95)
    assert not zero.any() and inside.all()


def _row_jacobians(fn, u: torch.Tensor) -> torch.Tensor:
    """Reference: each row's Jacobian by reverse mode, (B, *out, K)."""
    return torch.stack([torch.autograd.functional.jacobian(lambda r: fn(r[None])[0], row) for row in u])


@pytest.mark.parametrize("what", ["decoder", "realnvp", "nsf", "nsf inverse"])
def test_batched_jacobian_matches_reverse_mode_row_by_row(what) -> None:
    from pae.science.flows import build_flow
    from pae.science.nets import AutoEncoder

    torch.manual_seed(0)
    k = 6
    if what == "decoder":
        fn = AutoEncoder(latent_dim=k, image_shape=(1, 8, 8), norm="batch", spectral_norm=True, dropout=0.0).eval().decoder
    else:
        max_k = {"realnvp": k, "nsf": k - 1}[what.split()[0]]  # K ≤ realnvp_max_K: RealNVP, else NSF
        flow = build_flow(k, flow_arch(k, {"realnvp_max_K": max_k, "realnvp_depth": {k: 4}, "nsf_layers": 3}), np.random.default_rng(0).normal(size=(200, k)).astype("float32"),
                          seed=0).eval()
        assert flow.kind == what.split()[0]
        fn = flow.inverse if what.endswith("inverse") else flow.transform_to_noise
    u = torch.randn(5, k)
    got = batched_jacobian(fn, u, max_rows=10)  # two tangents per pass: the chunked path
    assert got.shape[0] == 5 and got.shape[-1] == k
    torch.testing.assert_close(got, _row_jacobians(fn, u), rtol=1e-4, atol=1e-6)
