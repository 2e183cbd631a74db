"""PAE density scores for out-of-distribution detection (paper Sec. 2.2, Eq. 5, 7-12).

Sign convention: every score returned here is "higher = more in-distribution" (a log-density or the
negative of an error). OoD detection (`pae.science.metrics`, `pae.stages.ood`) therefore uses the statistic −score, large for outliers.

Scores per image x, with z = f_φ(x) the encoder mean (the AE posterior is a Dirac delta, Eq. 3):

* latent density   log p_γ(z)                                   (Eq. 5; Table 2 "PAE density")
* reconstruction   −Σ_i (x_i − g_θ(z)_i)² [/ σ_i²]               (Table 2 "AE reconstruction error"; the
                   original code divided by σ = 10 everywhere, i.e. ranked by the plain summed squared
                   error, D6)
* Eq. 12           −½ Σ_i (x_i − g_θ(z)_i)² / σ_i² + log p_γ(z)  at z = f_φ(x)
* Eq. 12 with MAP  the same at z' = argmin_z Eq. 9, found by Adam from f_φ(x) (`map_refine`)

σ_i is the pixel-wise reconstruction RMS of Eq. 8 (ae_stats.npz `sigma`), floored at `sigma_floor`
(default: the quantisation noise 1/(scale·√12) of 8-bit pixels): always-black border pixels are
reconstructed almost exactly, and an unfloored σ_i ≈ 1e-5 would let one pixel dominate the score.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

Tensorish = torch.Tensor | np.ndarray


def quantization_sigma(scale: float = 255.0) -> float:
    """Std of the uniform quantisation noise of 8-bit pixels in model units: 1/(scale·√12) ≈ 1.13e-3."""
    return 1.0 / (float(scale) * math.sqrt(12.0))


def floor_sigma(sigma: Tensorish, floor: float) -> torch.Tensor:
    """Eq. 8 σ (C, H, W) as a float32 tensor, checked (finite, ≥ 0) and clamped below at `floor` (> 0)."""
    s = torch.as_tensor(np.asarray(sigma) if isinstance(sigma, np.ndarray) else sigma, dtype=torch.float32)
    if s.ndim != 3:
        raise ValueError(f"pixel-wise sigma must have shape (C, H, W), got {tuple(s.shape)}")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError("pixel-wise sigma contains NaN, inf or negative values; re-run encode_ae")
    if not floor > 0:
        raise ValueError(f"sigma floor must be > 0, got {floor!r}")
    return s.clamp_min(float(floor))


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode (no dropout, BatchNorm running statistics) and restore their modes after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def _device_of(module: nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _as_tensor(x: Tensorish, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32).to(device)


def squared_error(x: torch.Tensor, x_hat: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image Σ_i (x_i − x̂_i)² (σ None) or Σ_i (x_i − x̂_i)²/σ_i² (the χ² of Eq. 8); shape (N,)."""
    r2 = (x - x_hat).square()
    if sigma is not None:
        r2 = r2 / sigma.to(r2.device).square()
    return r2.flatten(1).sum(1)


def latent_log_density(flow: nn.Module, z: Tensorish, batch_size: int = 4096) -> torch.Tensor:
    """log p_γ(z) of the flow (Eq. 5) per latent, in nats, shape (N,), no gradients, flow in eval mode.

    `flow` is anything with `log_prob(z)` (e.g. a `pae.science.flows.LatentFlow`).
    """
    device = _device_of(flow)
    out = []
    with torch.no_grad(), eval_mode(flow):
        zt = _as_tensor(z, device)
        for i in range(0, len(zt), batch_size):
            out.append(flow.log_prob(zt[i : i + batch_size]))
    return torch.cat(out) if out else torch.zeros(0, device=device)


def eq12_terms(
    x: torch.Tensor, z: torch.Tensor, decoder: nn.Module, flow: nn.Module, sigma: torch.Tensor
) -> torch.Tensor:
    """Differentiable Eq. 12: −½ Σ_i (x_i − g_θ(z)_i)²/σ_i² + log p_γ(z), shape (N,).

    −½ b(z)ᵀb(z) + ln det J (Eq. 12) equals the flow's log p_γ(z) = log N(b(z); 0, I) + ln det J (Eq. 5)
    up to the constant −(K/2) ln 2π, which we keep (it shifts every score of one model equally and cannot
    change a ranking). `decoder` maps (N, K) → images in model units; modes are the caller's business.
    """
    return -0.5 * squared_error(x, decoder(z), sigma) + flow.log_prob(z)


def eq12_score(
    x: Tensorish, z: Tensorish, decoder: nn.Module, flow: nn.Module, sigma: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Eq. 12 per image (see `eq12_terms`), batched, no gradients, decoder and flow in eval mode.

    x: model-unit images (N, C, H, W); z: latents (N, K) (the encoder mean, or the MAP z' of `map_refine`);
    sigma: the floored Eq. 8 σ (C, H, W). Higher = more in-distribution.
    """
    device = _device_of(decoder)
    out = []
    with torch.no_grad(), eval_mode(decoder, flow):
        for i in range(0, len(x), batch_size):
            xb = _as_tensor(x[i : i + batch_size], device)
            zb = _as_tensor(z[i : i + batch_size], device)
            out.append(eq12_terms(xb, zb, decoder, flow, sigma.to(device)))
    return torch.cat(out) if out else torch.zeros(0, device=device)


def map_objective(
    x: torch.Tensor, z: torch.Tensor, decoder: nn.Module, flow: nn.Module, sigma: torch.Tensor
) -> torch.Tensor:
    """Eq. 9 per image: −ln p_θ(x|z) − ln p_γ(z) without the z-independent ½ ln det(2πσ²) = −Eq. 12."""
    return -eq12_terms(x, z, decoder, flow, sigma)


def map_refine(
    x: Tensorish,
    z0: Tensorish,
    decoder: nn.Module,
    flow: nn.Module,
    sigma: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int = 500,
    return_objectives: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAP latent z' = argmin_z Eq. 9 by `steps` Adam steps (learning rate `lr`) from z0 = f_φ(x).

    Batched; decoder and flow in eval mode with their weights untouched (gradients are taken w.r.t. z only).
    The objective is a sum of per-image terms and Adam acts element-wise, so each image's trajectory is
    independent of the batch it shares. The returned z' is, per image, the best iterate seen (the start
    included), so Eq. 9 at z' never exceeds its value at z0. With `return_objectives`, also returns the
    objective at z0 and at z' (shape (N,) each).
    """
    if int(steps) < 0:
        raise ValueError(f"config key ood.map_steps must be >= 0, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"config key ood.map_lr must be > 0, got {lr!r}")
    device = _device_of(decoder)
    sigma = sigma.to(device)
    z_out, f_start, f_best = [], [], []
    with eval_mode(decoder, flow):
        for i in range(0, len(z0), batch_size):
            xb = _as_tensor(x[i : i + batch_size], device)
            z = _as_tensor(z0[i : i + batch_size], device).clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=float(lr))
            best_z = z.detach().clone()
            best_f = torch.full((len(z),), math.inf, device=device)
            for step in range(int(steps) + 1):
                f = map_objective(xb, z, decoder, flow, sigma)
                with torch.no_grad():
                    if step == 0:
                        f_start.append(f.detach().clone())
                    better = f < best_f  # NaN never counts as better
                    best_f = torch.where(better, f, best_f)
                    best_z[better] = z.detach()[better]
                if step == int(steps):
                    break
                (grad,) = torch.autograd.grad(f.sum(), z)
                z.grad = grad
                opt.step()
            z_out.append(best_z)
            f_best.append(best_f)
    z_map = torch.cat(z_out) if z_out else torch.zeros(0, device=device)
    if return_objectives:
        empty = torch.zeros(0, device=device)
        return z_map, torch.cat(f_start) if f_start else empty, torch.cat(f_best) if f_best else empty
    return z_map


def map_gradient_norm(
    x: Tensorish, z: Tensorish, decoder: nn.Module, flow: nn.Module, sigma: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """‖∇_z Eq. 9‖ per image (N,) at z (nats per latent unit): ≈ 0 at a converged MAP z' (where the Laplace
    formula of Eq. 11 holds); compare with its value at the start z0 = f_φ(x)."""
    device = _device_of(decoder)
    sigma = sigma.to(device)
    out = []
    with eval_mode(decoder, flow):
        for i in range(0, len(z), batch_size):
            xb = _as_tensor(x[i : i + batch_size], device)
            zb = _as_tensor(z[i : i + batch_size], device).detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(map_objective(xb, zb, decoder, flow, sigma).sum(), zb)
            out.append(grad.norm(dim=1))
    return torch.cat(out) if out else torch.zeros(0, device=device)
