"""VAE and β-VAE baselines (paper Sec. 4, Eq. 15; as in the original code) on the AE's infoGAN nets.

Objective per image, minimised (the negative of Eq. 15 with the capacity term of Burgess et al.):

    L = −log N(x; g(z), σ²I) + β·|KL(q(z|x) ‖ N(0, I)) − C_t|,   z = μ + std·ε, ε ~ N(0, I) (one sample)
    −log N(x; x̂, σ²I) = Σ_i (x_i − x̂_i)²/(2σ²) + N·log σ + (N/2)·log 2π

summed over the N pixels, then averaged over the batch. The per-pixel constants log σ + ½ log 2π are
included, so for β = 1, C = 0 the loss is exactly the negative ELBO in nats (of the data scaled to
[−0.5, 0.5]); they do not change gradients. C_t = C·min(1, t/capacity_steps) with t the global step
(capacity_steps = 0 → C from the start). Plain VAE: β = 1, C = 0.

Likelihood scores of a trained VAE (Table 2 baselines; "higher = more in-distribution"), with
log w_i = log N(x; g(z_i), σ²I) + log N(z_i; 0, I) − log q(z_i|x), z_i ~ q(z|x), i = 1..k:

    ELBO (Eq. 15, β = 1) = (1/k) Σ_i log N(x; g(z_i), σ²I) − KL(q(z|x) ‖ N(0, I))   (analytic KL)
    IWAE (Burda et al. 2016) = log (1/k) Σ_i w_i  ≤ log p(x), increasing in k
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pae.science.train import LossFn


def kl_standard_normal(mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag std²) ‖ N(0, I)) = ½ Σ_k (std² + μ² − log std² − 1), one value per sample."""
    var = std.pow(2)
    return 0.5 * (var + mu.pow(2) - torch.log(var) - 1.0).flatten(1).sum(1)


def gaussian_nll(x: torch.Tensor, x_hat: torch.Tensor, sigma: float) -> torch.Tensor:
    """−log N(x; x̂, σ²I) per sample, summed over pixels (scalar σ; Eq. 8 with σ_i = σ)."""
    n = x[0].numel()
    sse = (x - x_hat).pow(2).flatten(1).sum(1)
    return sse / (2.0 * sigma**2) + n * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi))


def capacity_at(capacity: float, capacity_steps: int, step: int) -> float:
    """C_t = C·min(1, t/capacity_steps); capacity_steps 0 → C (the original code: linear over 100 000 steps)."""
    if capacity_steps <= 0:
        return float(capacity)
    return float(capacity) * min(1.0, step / capacity_steps)


def beta_vae_loss(beta: float, capacity: float, capacity_steps: int, sigma: float) -> LossFn:
    """Loss function for :func:`pae.science.train.fit` implementing (the negative of) Eq. 15 for a
    :class:`pae.science.nets.VAE`; returns (mean loss, {rec, kl, capacity})."""
    for key, value, ok in (
        ("beta", beta, beta >= 0),
        ("capacity", capacity, capacity >= 0),
        ("capacity_steps", capacity_steps, capacity_steps >= 0),
        ("sigma", sigma, sigma > 0),
    ):
        if not (ok and math.isfinite(value)):
            raise ValueError(
                f"config key 'vae.models.*.{key}' = {value!r} is invalid; it must be non-negative"
                + (" and non-zero" if key == "sigma" else "")
            )

    def loss_fn(model: nn.Module, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        mu, std = model.posterior(x)
        mu, std = mu.float(), std.float()
        z = mu + std * torch.randn_like(std)
        rec = gaussian_nll(x.float(), model.decode(z).float(), sigma)
        kl = kl_standard_normal(mu, std)
        c_t = capacity_at(capacity, capacity_steps, step)
        loss = (rec + beta * (kl - c_t).abs()).mean()
        return loss, {"rec": rec.mean().detach(), "kl": kl.mean().detach(), "capacity": c_t}

    loss_fn.params = {  # type: ignore[attr-defined]
        "beta": float(beta),
        "capacity": float(capacity),
        "capacity_steps": int(capacity_steps),
        "sigma": float(sigma),
    }
    return loss_fn


def log_importance_weights(
    model: nn.Module,
    x: torch.Tensor,
    sigma: float,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw z_i = μ + std·ε_i ~ q(z|x), i = 1..k, for a batch x (B, C, H, W) of a VAE (``posterior``,
    ``decode``) with scalar decoder σ. Returns float64 (log_w (k, B), log_lik (k, B), kl (B,)):
    log_w_i = log N(x; g(z_i), σ²I) + log N(z_i; 0, I) − log q(z_i|x), log_lik_i = log N(x; g(z_i), σ²I),
    kl = KL(q(z|x) ‖ N(0, I)) in closed form. Decodes at most ``max_rows`` images at once (k·B in chunks
    of whole samples). ``generator`` None draws from torch's global generator (as the training loss does).
    """
    if int(k) < 1:
        raise ValueError(f"config key ood.iwae_samples must be >= 1, got {k!r}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"config key vae.models.vae.sigma must be a positive number, got {sigma!r}")
    mu, std = model.posterior(x)
    b = mu.shape[0]
    eps = torch.randn((int(k), *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + std * eps  # (k, B, K)
    # log N(z; 0, I) − log N(z; μ, std²): the ½ log 2π terms cancel; (z − μ)/std = ε
    log_prior_ratio = (-0.5 * z.pow(2) + 0.5 * eps.pow(2) + torch.log(std)).flatten(2).sum(2)
    per = max(1, int(max_rows) // b)  # samples per decoder call
    log_lik = []
    for i in range(0, int(k), per):
        zc = z[i : i + per]
        x_hat = model.decode(zc.reshape(-1, zc.shape[-1]))
        xr = x.unsqueeze(0).expand(zc.shape[0], *x.shape).reshape(-1, *x.shape[1:])
        log_lik.append(-gaussian_nll(xr, x_hat, sigma).view(zc.shape[0], b))
    ll = torch.cat(log_lik).double()
    return ll + log_prior_ratio.double(), ll, kl_standard_normal(mu, std).double()


def vae_scores(
    model: nn.Module,
    x: torch.Tensor,
    sigma: float,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = 2048,
) -> dict[str, torch.Tensor]:
    """Per-image ELBO (Eq. 15 with β = 1: mean over the k samples of log N(x; g(z_i), σ²I) minus the
    analytic KL) and IWAE bound log (1/k) Σ_i w_i, both from the same k samples of q(z|x); float64 (B,)."""
    log_w, log_lik, kl = log_importance_weights(model, x, sigma, k, generator, max_rows)
    return {"elbo": log_lik.mean(0) - kl, "iwae": torch.logsumexp(log_w, 0) - math.log(int(k))}


def elbo(model: nn.Module, x: torch.Tensor, sigma: float, n_samples: int = 1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image ELBO (Eq. 15, β = 1, C = 0) with ``n_samples`` samples of q(z|x); n_samples = 1 with the
    same random state gives exactly −(training loss) of ``beta_vae_loss(1, 0, 0, sigma)`` per image."""
    return vae_scores(model, x, sigma, n_samples, generator)["elbo"]


def iwae_bound(model: nn.Module, x: torch.Tensor, sigma: float, k: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image IWAE bound log (1/k) Σ_i p(x, z_i)/q(z_i|x) (Burda et al. 2016) with k samples of q(z|x)."""
    return vae_scores(model, x, sigma, k, generator)["iwae"]


