"""pae.science.density: latent density (Eq. 5), Eq. 12, MAP refinement (Eq. 9), the per-image score driver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from pae.science.density import (
    eq12_score,
    floor_sigma,
    latent_log_density,
    map_objective,
    map_refine,
    quantization_sigma,
)
from pae.science.flows import build_flow
from pae.science.nets import AutoEncoder
from pae.science.scores import image_scores
from synthetic import flow_arch

K, SHAPE = 3, (1, 4, 4)
SHIFT, SCALE = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.5, 1.5])


class AffineFlow(nn.Module):
    """u = SCALE·z + SHIFT with u ~ N(0, I): z ~ N(−SHIFT/SCALE, 1/SCALE²) per dimension, log-det Σ log SCALE."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", SHIFT.clone())
        self.register_buffer("scale", SCALE.clone())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u = z * self.scale + self.shift
        return (-0.5 * u.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1) + torch.log(self.scale).sum()


def affine_flow() -> AffineFlow:
    return AffineFlow().eval()


def analytic_log_density(z: np.ndarray) -> np.ndarray:
    mean, std = (-SHIFT / SCALE).numpy(), (1 / SCALE).numpy()
    return norm.logpdf(z, loc=mean, scale=std).sum(1)


class LinearDecoder(nn.Module):
    """g(z) = tanh(Wz)·0.4, reshaped to images: smooth, non-linear, and with a known exact output."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(int(np.prod(SHAPE)), K, generator=g))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (0.4 * torch.tanh(z @ self.w.T)).reshape(-1, *SHAPE)


def test_latent_density_matches_analytic_gaussian() -> None:
    z = np.random.default_rng(0).normal(size=(37, K)).astype(np.float32)
    got = latent_log_density(affine_flow(), z, batch_size=10).numpy()
    np.testing.assert_allclose(got, analytic_log_density(z), rtol=1e-5, atol=1e-5)


def test_eq12_with_perfect_decoder_is_log_prior() -> None:
    flow, dec = affine_flow(), LinearDecoder()
    z = torch.randn(9, K, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = dec(z)  # the decoder reproduces x exactly: the likelihood term vanishes
    sigma = floor_sigma(torch.full(SHAPE, 0.05), 1e-3)
    np.testing.assert_allclose(eq12_score(x, z, dec, flow, sigma, batch_size=4).numpy(),
                               analytic_log_density(z.numpy()), rtol=1e-5, atol=1e-5)


def test_eq12_likelihood_term_is_weighted_chi2() -> None:
    flow, dec = affine_flow(), LinearDecoder()
    z = torch.randn(5, K, generator=torch.Generator().manual_seed(2))
    r = 0.01 * torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(3))
    sigma = floor_sigma(torch.linspace(0.02, 0.2, 16).reshape(SHAPE), 1e-3)
    with torch.no_grad():
        x = dec(z) + r
    expected = -0.5 * (r.square() / sigma.square()).flatten(1).sum(1).numpy() + analytic_log_density(z.numpy())
    np.testing.assert_allclose(eq12_score(x, z, dec, flow, sigma).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_floor_sigma() -> None:
    s = floor_sigma(np.array([[[0.0, 1e-6], [0.1, 0.3]]]), 1e-3)
    np.testing.assert_allclose(s.numpy(), [[[1e-3, 1e-3], [0.1, 0.3]]], rtol=1e-6)
    assert quantization_sigma(255) == pytest.approx(1 / (255 * math.sqrt(12)))
    with pytest.raises(ValueError, match="NaN"):
        floor_sigma(np.full((1, 2, 2), np.nan), 1e-3)
    with pytest.raises(ValueError, match="shape"):
        floor_sigma(np.ones((2, 2)), 1e-3)


def test_map_lowers_objective_and_is_batch_independent() -> None:
    flow, dec = affine_flow(), LinearDecoder()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        x = dec(torch.randn(6, K, generator=gen)) + 0.02 * torch.randn(6, *SHAPE, generator=gen)
    z0 = torch.randn(6, K, generator=gen)  # a poor start, as an encoder on OoD data would give
    sigma = floor_sigma(torch.full(SHAPE, 0.05), 1e-3)
    z_map, f0, f1 = map_refine(x, z0, dec, flow, sigma, steps=40, lr=0.05, return_objectives=True)
    with torch.no_grad():
        np.testing.assert_allclose(f0.numpy(), map_objective(x, z0, dec, flow, sigma).numpy(), rtol=1e-5)
        np.testing.assert_allclose(f1.numpy(), map_objective(x, z_map, dec, flow, sigma).numpy(), rtol=1e-5)
    assert (f1 <= f0).all() and (f1 < f0 - 1.0).all()
    # eq12 at the MAP is the negated objective; the decoder's weights are left untouched
    np.testing.assert_allclose(eq12_score(x, z_map, dec, flow, sigma).numpy(), -f1.numpy(), rtol=1e-5)
    assert dec.w.grad is None
    z_small = map_refine(x, z0, dec, flow, sigma, steps=40, lr=0.05, batch_size=2)
    np.testing.assert_allclose(z_small.numpy(), z_map.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(map_refine(x, z0, dec, flow, sigma, steps=0, lr=0.05).numpy(), z0.numpy())


def test_map_restores_module_modes() -> None:
    dec, flow = LinearDecoder(), affine_flow()
    dec.train()
    map_refine(torch.zeros(2, *SHAPE), torch.zeros(2, K), dec, flow, torch.ones(SHAPE), steps=1, lr=0.1)
    assert dec.training and not flow.training
    with pytest.raises(ValueError, match="map_lr"):
        map_refine(torch.zeros(2, *SHAPE), torch.zeros(2, K), dec, flow, torch.ones(SHAPE), steps=1, lr=0.0)


@pytest.fixture(scope="module")
def tiny_pae() -> tuple[AutoEncoder, torch.nn.Module]:
    torch.manual_seed(0)
    ae = AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=False, dropout=0.2).eval()
    cfg = {"realnvp_max_K": 4, "realnvp_depth": {4: 2}, "realnvp_hidden": 8, "standardize": True}
    flow = build_flow(4, flow_arch(4, cfg), np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32), seed=0).eval()
    return ae, flow


def test_image_scores_definitions(tiny_pae) -> None:
    from pae.science.images import to_model_input

    ae, flow = tiny_pae
    x = np.random.default_rng(1).integers(0, 256, size=(7, 1, 28, 28), dtype=np.uint8)
    sigma = floor_sigma(np.full((1, 28, 28), 0.1, dtype=np.float32), 1e-3)
    res = image_scores(ae, x, ("density", "recon", "eq12", "eq12_map"), 255, flow, sigma, "unweighted",
                       map_steps=3, map_lr=0.01, batch_size=3, log=None)
    xf = to_model_input(x, 255)
    with torch.no_grad():
        z = ae.encode(xf)
        sse = (ae.decode(z) - xf).square().flatten(1).sum(1).double().numpy()
        logp = flow.log_prob(z).double().numpy()
    np.testing.assert_allclose(res["recon"], -sse, rtol=1e-5)
    np.testing.assert_allclose(res["density"], logp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["eq12"], -0.5 * sse / 0.01 + logp, rtol=1e-4)
    assert (res["eq12_map"] >= res["eq12"] - 1e-6).all()
    weighted = image_scores(ae, x, ("recon",), 255, sigma=sigma, recon_sigma="pixelwise", log=None)
    np.testing.assert_allclose(weighted["recon"], -sse / 0.01, rtol=1e-4)
    with pytest.raises(ValueError, match="need a flow"):
        image_scores(ae, x, ("density",), 255)
    with pytest.raises(ValueError, match="unknown score"):
        image_scores(ae, x, ("elbo",), 255)
