"""VAE and β-VAE baselines (paper Sec. 4, Eq. 15; facts §2b) on the AE's infoGAN nets.

Objective per image, minimised (the negative of Eq. 15 with the capacity term of Burgess et al.):

    L = −log N(x; g(z), σ²I) + β·|KL(q(z|x) ‖ N(0, I)) − C_t|,   z = μ + std·ε, ε ~ N(0, I) (one sample)
    −log N(x; x̂, σ²I) = Σ_i (x_i − x̂_i)²/(2σ²) + N·log σ + (N/2)·log 2π

summed over the N pixels, then averaged over the batch. The per-pixel constants log σ + ½ log 2π are
included, so for β = 1, C = 0 the loss is exactly the negative ELBO in nats (of the data scaled to
[−0.5, 0.5]); they do not change gradients. C_t = C·min(1, t/capacity_steps) with t the global step
(capacity_steps = 0 → C from the start). Plain VAE: β = 1, C = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pae.data import load_split
from pae.io import resolve_device, save_json, seed_everything
from pae.nets import VAE
from pae.train import LogFn, LossFn, load_train_valid, reconstruction_mse, train_and_save


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
    """C_t = C·min(1, t/capacity_steps); capacity_steps 0 → C (facts §2b: linear over 100 000 steps)."""
    if capacity_steps <= 0:
        return float(capacity)
    return float(capacity) * min(1.0, step / capacity_steps)


def beta_vae_loss(beta: float, capacity: float, capacity_steps: int, sigma: float) -> LossFn:
    """Loss function for :func:`pae.train.fit` implementing (the negative of) Eq. 15 for a
    :class:`pae.nets.VAE`; returns (mean loss, {rec, kl, capacity})."""
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


def train_vae(
    data_path: str | Path,
    model_path: str | Path,
    metrics_path: str | Path,
    checkpoint_path: str | Path,
    latent_dim: int,
    net: Mapping[str, Any],
    objective: Mapping[str, Any],
    settings: Mapping[str, Any],
    log: LogFn = print,
) -> dict[str, Any]:
    """Rule train_vae: build a VAE on the AE nets, train on Eq. 15 (objective: beta, capacity,
    capacity_steps, sigma), write the model and metrics (test-split MSE per pixel, history), then
    remove the checkpoint."""
    unknown = sorted(set(objective) - {"beta", "capacity", "capacity_steps", "sigma"})
    if unknown:
        raise ValueError(
            f"config key 'vae.models.*': unknown key(s) {unknown}; use beta, capacity, capacity_steps, sigma"
        )
    loss_fn = beta_vae_loss(
        float(objective["beta"]),
        float(objective["capacity"]),
        int(objective["capacity_steps"]),
        float(objective["sigma"]),
    )
    x_train, x_valid = load_train_valid(data_path)
    seed_everything(int(settings.get("seed", 0)))
    model = VAE(latent_dim, x_train.shape[1:], **net)
    log(f"VAE K={latent_dim} {dict(objective)} {dict(net)} on {data_path} ({x_train.shape})")
    meta = {"latent_dim": int(latent_dim), "data": str(data_path), "objective": dict(objective)}
    history = train_and_save(
        model, loss_fn, x_train, x_valid, model_path, checkpoint_path, settings, meta, log
    )
    scale = settings.get("scale", 255)
    test_mse = reconstruction_mse(
        model, load_split(data_path, "test"), scale, 500, resolve_device(settings.get("device", "auto"))
    )
    metrics = {
        "latent_dim": int(latent_dim),
        **{k: objective[k] for k in ("beta", "capacity", "capacity_steps", "sigma")},
        "test_mse": test_mse,
        "val_mse": history[-1]["val_mse"],
        "kl": history[-1].get("kl"),
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "history": history,
    }
    save_json(metrics_path, metrics)
    Path(checkpoint_path).unlink(missing_ok=True)
    log(f"test_mse {test_mse:.6g} val_mse {metrics['val_mse']:.6g}")
    return metrics
