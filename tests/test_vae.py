"""pae.vae: analytic KL, Gaussian likelihood, capacity schedule, the β-VAE objective (Eq. 15), train_vae."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from pae import vae
from pae.nets import VAE, load_model
from pae.train import fit

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
    return {**base, **over}


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
    metrics = vae.train_vae(data, tmp_path / "betavae.pt", tmp_path / "betavae_metrics.json", tmp_path / "betavae.ckpt",
                            3, net, objective, settings(epochs=2), log=lambda s: None)  # fmt: skip
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
        vae.train_vae(data, tmp_path / "v.pt", tmp_path / "v.json", tmp_path / "v.ckpt", 3, net,
                      {**objective, "gamma": 1.0}, settings(), log=lambda s: None)  # fmt: skip
    assert not (tmp_path / "v.pt").exists() and np.isfinite(metrics["val_mse"])
