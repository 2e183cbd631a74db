"""pae.science.vae: analytic KL, Gaussian likelihood, capacity schedule, the β-VAE objective (Eq. 15), train_vae."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from pae.files.artifacts import load_model
from pae.science import vae
from pae.science.nets import VAE
from pae.science.train import TrainSettings, fit
from pae.settings import Settings
from pae.stages import baselines as stage_baselines

SHAPE = (1, 8, 8)


def structured_images(n: int, seed: int = 0) -> np.ndarray:
    """Blobs at random positions (compressible 8×8 images)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:8, 0:8]
    cy, cx = rng.uniform(1, 7, (2, n, 1, 1))
    img = rng.uniform(120, 255, (n, 1, 1)) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    return img.round().astype(np.uint8)[:, None]


def settings(**over) -> dict:
    base = dict(
        epochs=2, batch_size=16, lr=1e-3, augmentation="rotate", seed=3, device="cpu", checkpoint_every=1
    )
    return asdict(Settings.from_config({}).training("vae", 0)) | base | over


def write_dataset(path) -> None:
    splits = {
        "train": structured_images(64, 0),
        "valid": structured_images(32, 1),
        "test": structured_images(24, 2),
    }
    np.savez(path, **{f"x_{k}": v for k, v in splits.items()})


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 5, generator=g) * 2
    std = torch.rand(6, 5, generator=g) * 3 + 1e-3
    expected = kl_divergence(Normal(mu, std), Normal(torch.zeros(5), torch.ones(5))).sum(-1)
    kl = vae.kl_standard_normal(mu, std)
    assert kl.shape == (6,)
    assert torch.allclose(kl, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(vae.kl_standard_normal(torch.zeros(2, 3), torch.ones(2, 3)), torch.zeros(2))


def test_gaussian_nll_matches_log_prob() -> None:
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(4, 1, 3, 3, generator=g) - 0.5, torch.rand(4, 1, 3, 3, generator=g) - 0.5
    expected = -Normal(x_hat, 0.1).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(vae.gaussian_nll(x, x_hat, 0.1), expected, rtol=1e-5)


def test_capacity_schedule() -> None:
    assert vae.capacity_at(15.0, 100, 0) == 0.0
    assert vae.capacity_at(15.0, 100, 40) == pytest.approx(6.0)
    assert vae.capacity_at(15.0, 100, 100) == 15.0 and vae.capacity_at(15.0, 100, 10**6) == 15.0
    assert vae.capacity_at(15.0, 0, 0) == 15.0  # no annealing


class FixedPosterior(nn.Module):
    """Stub VAE: posterior (μ, std) and reconstruction are fixed, so every term is known in closed form."""

    def __init__(self, mu: torch.Tensor, std: torch.Tensor, x_hat: torch.Tensor) -> None:
        super().__init__()
        self.mu, self.std, self.x_hat = mu, std, x_hat

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu, self.std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.x_hat + 0.0 * z.sum(1).view(-1, 1, 1, 1)


def test_beta_vae_objective_on_a_known_case() -> None:
    # per sample: SSE = 4 pixels × 0.1² = 0.04; KL = ½(std² + μ² − log std² − 1) summed over K = 2
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.full((2, 1, 2, 2), 0.1)
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    std = torch.ones(2, 2)
    stub = FixedPosterior(mu, std, x_hat)
    kl = torch.tensor([0.5, 2.0])
    sigma = 0.1
    nll = 0.04 / (2 * sigma**2) + 4 * (math.log(sigma) + 0.5 * math.log(2 * math.pi))

    plain = vae.beta_vae_loss(beta=1.0, capacity=0.0, capacity_steps=0, sigma=sigma)
    loss, metrics = plain(stub, x, 0)
    assert loss.item() == pytest.approx(nll + kl.mean().item(), rel=1e-6)  # negative ELBO
    assert metrics["kl"].item() == pytest.approx(1.25) and metrics["rec"].item() == pytest.approx(
        nll, rel=1e-6
    )

    beta = vae.beta_vae_loss(beta=10.0, capacity=1.0, capacity_steps=100, sigma=sigma)
    for step, c in ((0, 0.0), (50, 0.5), (100, 1.0), (500, 1.0)):
        loss, metrics = beta(stub, x, step)
        expected = nll + 10.0 * (kl - c).abs().mean().item()  # |KL − C| per sample, then the batch mean
        assert loss.item() == pytest.approx(expected, rel=1e-6)
        assert metrics["capacity"] == pytest.approx(c)


def test_beta_vae_reparameterised_gradients() -> None:
    torch.manual_seed(0)
    model = VAE(3, SHAPE, norm="batch", spectral_norm=True, dropout=0.0)
    x = torch.rand(4, *SHAPE) - 0.5
    loss, _ = vae.beta_vae_loss(2.0, 1.0, 10, 0.1)(model, x, 3)
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_invalid_objective_values() -> None:
    with pytest.raises(ValueError, match="vae.models.*sigma"):
        vae.beta_vae_loss(1.0, 0.0, 0, 0.0)
    with pytest.raises(ValueError, match="vae.models.*beta"):
        vae.beta_vae_loss(float("nan"), 0.0, 0, 0.1)


def test_vae_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = VAE(3, SHAPE, norm="batch", spectral_norm=True, dropout=0.0)
    x = structured_images(128)
    history = fit(model, vae.beta_vae_loss(1.0, 0.0, 0, 0.1), x, x[:32],
                  settings(epochs=3, augmentation="none"), None, log=lambda s: None)  # fmt: skip
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"rec", "kl", "capacity"} <= set(history[0])


def test_train_vae_entry_point(tmp_path) -> None:
    data = tmp_path / "toy.npz"
    write_dataset(data)
    objective = {"beta": 100.0, "capacity": 15.0, "capacity_steps": 4, "sigma": 0.1}
    net = {"norm": "batch", "spectral_norm": True, "dropout": 0.2}
    metrics = stage_baselines.run_train_vae(data, tmp_path / "betavae.pt", tmp_path / "betavae_metrics.json", tmp_path / "betavae.ckpt",
                            3, net, objective, TrainSettings(**settings(epochs=2)), log=lambda s: None)  # fmt: skip
    assert not (tmp_path / "betavae.ckpt").exists()
    model, meta = load_model(tmp_path / "betavae.pt")
    assert isinstance(model, VAE) and meta["objective"] == objective
    stored = json.loads((tmp_path / "betavae_metrics.json").read_text())
    assert stored["test_mse"] == pytest.approx(metrics["test_mse"]) and stored["beta"] == 100.0
    assert len(stored["history"]) == 2
    x_test = structured_images(24, 2)
    with torch.no_grad():
        xin = torch.from_numpy(x_test).float() / 255 - 0.5
        expected = float(((model(xin) - xin) ** 2).mean())
    assert metrics["test_mse"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="unknown key"):
        stage_baselines.run_train_vae(data, tmp_path / "v.pt", tmp_path / "v.json", tmp_path / "v.ckpt", 3, net,
                      {**objective, "gamma": 1.0}, TrainSettings(**settings()), log=lambda s: None)  # fmt: skip
    assert not (tmp_path / "v.pt").exists() and np.isfinite(metrics["val_mse"])


# ------------------------------------------------------------------------------------------------ ELBO / IWAE scores


class LinearGaussian(nn.Module):
    """Toy VAE: p(z) = N(0, I_K), p(x|z) = N(Wz + b, σ²I) on 1×2×2 images, so log p(x) = log N(x; b, WWᵀ + σ²I)
    is known; the posterior is the mean-field Gaussian with the exact posterior mean and std
    std_factor/√A_kk (A = I + WᵀW/σ², the exact posterior precision; std_factor 1 is the mean-field
    optimum). float64 throughout."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, sigma: float, std_factor: float = 1.0) -> None:
        super().__init__()
        self.w, self.b, self.sigma, self.std_factor = w, b, sigma, std_factor
        self.a = torch.eye(w.shape[1], dtype=w.dtype) + w.T @ w / sigma**2

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = x.flatten(1) - self.b
        mu = torch.linalg.solve(self.a, (r @ self.w / self.sigma**2).T).T
        return mu, self.std_factor * (1.0 / torch.diagonal(self.a)).sqrt().expand_as(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w.T + self.b).view(-1, 1, 2, 2)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.w @ self.w.T + self.sigma**2 * torch.eye(self.w.shape[0], dtype=self.w.dtype)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1))

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.w.shape[1], generator=g, dtype=self.w.dtype)
        noise = self.sigma * torch.randn(n, self.w.shape[0], generator=g, dtype=self.w.dtype)
        return (z @ self.w.T + self.b + noise).view(-1, 1, 2, 2)


def linear_gaussian(orthogonal: bool) -> LinearGaussian:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 2, generator=g, dtype=torch.float64)
    if orthogonal:  # WᵀW diagonal ⇒ the exact posterior is mean-field
        w = torch.linalg.qr(w)[0] * torch.tensor([2.0, 0.7], dtype=torch.float64)
    b = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64)
    return LinearGaussian(w, b, 0.3, 1.0 if orthogonal else 1.6)  # an inexact posterior: a bound with a gap


def test_elbo_and_iwae_exact_when_the_posterior_is_exact() -> None:
    toy = linear_gaussian(orthogonal=True)
    x = toy.sample(50, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    log_px = toy.log_px(x)
    for k in (1, 7):  # every importance weight equals p(x)
        s = vae.vae_scores(toy, x, toy.sigma, k, g)
        torch.testing.assert_close(s["iwae"], log_px, rtol=0, atol=1e-9)
    # the ELBO's reconstruction term is a k-sample estimate: exact only in expectation
    assert vae.elbo(toy, x, toy.sigma, 20000, g).sub(log_px).abs().max() < 0.05


def test_iwae_approaches_log_px_and_increases_with_k() -> None:
    toy = linear_gaussian(orthogonal=False)
    x = toy.sample(400, torch.Generator().manual_seed(1))
    log_px = toy.log_px(x).mean().item()
    g = torch.Generator().manual_seed(3)
    elbo = vae.elbo(toy, x, toy.sigma, 2000, g).mean().item()
    iwae = {k: vae.iwae_bound(toy, x, toy.sigma, k, g).mean().item() for k in (3, 10, 3000)}
    iwae[1] = vae.iwae_bound(toy, x.repeat(50, 1, 1, 1), toy.sigma, 1, g).mean().item()  # 20 000 draws
    gap = log_px - elbo
    assert gap > 0.3  # the (too wide, mean-field) posterior is not exact
    assert iwae[1] == pytest.approx(elbo, abs=0.05)  # k = 1: the ELBO (single-sample KL)
    # (beyond k ≈ 30 the increase is below the Monte-Carlo noise of 400 images)
    assert iwae[1] < iwae[3] < iwae[10] < log_px
    assert abs(log_px - iwae[3000]) < 0.03 * gap  # k = 3000: within 3 % of the ELBO's gap


def test_elbo_is_minus_the_training_loss() -> None:
    torch.manual_seed(0)
    model = VAE(3, SHAPE, norm="batch", spectral_norm=True, dropout=0.0).eval()
    x = torch.rand(6, *SHAPE) - 0.5
    torch.manual_seed(11)
    loss, _ = vae.beta_vae_loss(1.0, 0.0, 0, 0.1)(model, x, 0)
    torch.manual_seed(11)  # same ε: the ELBO with one sample is exactly −loss
    assert vae.elbo(model, x, 0.1).mean().item() == pytest.approx(-loss.item(), rel=1e-6)
    # closed form on the fixed stub: −(Gaussian NLL + KL) per image, whatever the sample
    stub = FixedPosterior(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.ones(2, 2), torch.full((2, 1, 2, 2), 0.1))
    nll = 0.04 / (2 * 0.1**2) + 4 * (math.log(0.1) + 0.5 * math.log(2 * math.pi))
    expected = -(nll + torch.tensor([0.5, 2.0], dtype=torch.float64))
    torch.testing.assert_close(vae.elbo(stub, torch.zeros(2, 1, 2, 2), 0.1), expected, rtol=1e-6, atol=1e-6)


def test_vae_scores_on_the_vae_net() -> None:
    torch.manual_seed(0)
    model = VAE(3, SHAPE, norm="batch", spectral_norm=True, dropout=0.2).eval()
    x = torch.from_numpy(structured_images(16)).float() / 255 - 0.5
    with torch.no_grad():
        one = vae.vae_scores(model, x, 0.1, 30, torch.Generator().manual_seed(5))
        chunked = vae.vae_scores(model, x, 0.1, 30, torch.Generator().manual_seed(5), max_rows=40)
        again = vae.vae_scores(model, x, 0.1, 30, torch.Generator().manual_seed(5))
    for key in ("elbo", "iwae"):
        assert one[key].shape == (16,) and one[key].dtype == torch.float64 and torch.isfinite(one[key]).all()
        torch.testing.assert_close(one[key], again[key], rtol=0, atol=0)  # seeded
        torch.testing.assert_close(one[key], chunked[key], rtol=1e-6, atol=1e-3)  # decoder chunking is invisible
    assert one["iwae"].mean() >= one["elbo"].mean()
    with pytest.raises(ValueError, match="ood.iwae_samples"):
        vae.vae_scores(model, x, 0.1, 0)
    with pytest.raises(ValueError, match="vae.models.vae.sigma"):
        vae.vae_scores(model, x, 0.0, 3)
