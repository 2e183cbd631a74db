"""Samples, reconstructions and interpolations of the AE, the (β-)VAE and the PAE (paper Sec. 2.1, 4.1).

Sample definitions (the original code; paper Sec. 4.1):
* AE "samples":   x = g(z),    z ~ N(0, I)             (the AE has no prior; N(0, I) is the paper's baseline)
* VAE samples:    x = g(z),    z ~ N(0, I)             (the VAE prior)
* PAE samples:    x = g(b⁻¹(u)), u ~ N(0, T²I)          (Eq. 6; temperature T = 1 in the paper)
* reconstructions x̂ = g(f(x)) with f the encoder mean, on x/scale − 0.5 (no dequantization)

All noise is drawn up front on the CPU from a seeded torch.Generator, so results do not depend on the batch
size or the device; decoding runs batched, in eval mode, without gradients. Images are returned as float32
numpy arrays (N, C, H, W) in [−0.5, 0.5].
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from pae.images import to_model_input

SAMPLE_SEED_OFFSET = 1_000_003  # sampling seed = run seed + this, so sampling noise ≠ training-init noise


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode (no dropout, running BN statistics) and restore their mode afterwards."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _latent_dim(model: nn.Module, latent_dim: int | None) -> int:
    if latent_dim is not None:
        return int(latent_dim)
    K = getattr(model, "latent_dim", None)
    if K is None:
        raise ValueError(f"{type(model).__name__} has no 'latent_dim' attribute; pass latent_dim explicitly")
    return int(K)


def _decode_batched(model: nn.Module, z: torch.Tensor, batch_size: int) -> np.ndarray:
    dev = _device(model)
    out = [model.decode(z[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out).numpy()


def _encode_mean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Encoder mean f(x); tolerates encoders that return (mean, std)."""
    z = model.encode(x)
    return z[0] if isinstance(z, (tuple, list)) else z


def _noise(n: int, K: int, seed: int) -> torch.Tensor:
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    return torch.randn(n, K, generator=torch.Generator().manual_seed(int(seed)))


def sample_ae(ae: nn.Module, n: int, seed: int, batch_size: int = 500, latent_dim: int | None = None) -> np.ndarray:
    """AE baseline samples g(z), z ~ N(0, I) (paper Sec. 4.1)."""
    z = _noise(n, _latent_dim(ae, latent_dim), seed)
    with _eval_mode(ae):
        return _decode_batched(ae, z, batch_size)


def sample_vae(vae: nn.Module, n: int, seed: int, batch_size: int = 500, latent_dim: int | None = None) -> np.ndarray:
    """VAE / β-VAE samples from the prior: g(z), z ~ N(0, I) (Eq. 15's p(z))."""
    return sample_ae(vae, n, seed, batch_size, latent_dim)


def sample_pae(
    ae: nn.Module, flow: nn.Module, n: int, seed: int, temperature: float = 1.0, batch_size: int = 500
) -> np.ndarray:
    """PAE samples x = g(b⁻¹(u)), u ~ N(0, T²I) (Eq. 6)."""
    if temperature <= 0:
        raise ValueError(f"config key samples.temperature must be > 0, got {temperature}")
    K = _latent_dim(ae, None) if hasattr(ae, "latent_dim") else int(flow.K)
    if int(flow.K) != K:
        raise ValueError(f"flow latent size K={flow.K} does not match the auto-encoder's K={K}")
    u = _noise(n, K, seed) * float(temperature)
    fdev = _device(flow)
    with _eval_mode(ae, flow):
        z = torch.cat([flow.inverse(u[i : i + batch_size].to(fdev)).cpu() for i in range(0, n, batch_size)])
        if not torch.all(torch.isfinite(z)):
            raise FloatingPointError("the flow inverse produced non-finite latents; retrain the flow (train_flow)")
        return _decode_batched(ae, z, batch_size)


def reconstructions(model: nn.Module, x_uint8: np.ndarray, scale: float, batch_size: int = 500) -> np.ndarray:
    """x̂ = g(f(x)) with the encoder mean (the argument of Eq. 2), for uint8 images (N, C, H, W)."""
    x = to_model_input(np.asarray(x_uint8), scale)
    dev = _device(model)
    out = []
    with _eval_mode(model):
        for i in range(0, len(x), batch_size):
            out.append(model.decode(_encode_mean(model, x[i : i + batch_size].to(dev))).float().cpu())
    return torch.cat(out).numpy()


def interpolate(
    model: nn.Module, x_a: np.ndarray, x_b: np.ndarray, steps: int, scale: float = 255
) -> np.ndarray:
    """Decodings of z_a + t (z_b − z_a), t = 0 … 1 in `steps` steps, z = encoder mean (paper Sec. 2.1, Fig. 4).

    x_a, x_b: one image each, (C, H, W) uint8 (scaled with `scale`) or float already in [−0.5, 0.5].
    Returns (steps, C, H, W); the first and last rows are the reconstructions of x_a and x_b.
    """
    if steps < 2:
        raise ValueError(f"interpolation needs steps >= 2, got {steps}")

    def prep(x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x)
        t = to_model_input(x, scale) if x.dtype == np.uint8 else torch.as_tensor(x, dtype=torch.float32)
        return t.unsqueeze(0) if t.ndim == 3 else t

    dev = _device(model)
    with _eval_mode(model):
        z = _encode_mean(model, torch.cat([prep(x_a), prep(x_b)]).to(dev))
        t = torch.linspace(0, 1, steps, device=dev).unsqueeze(1)
        zs = z[0:1] + t * (z[1:2] - z[0:1])
        return model.decode(zs).float().cpu().numpy()


def sampling_seed(run_seed: int) -> int:
    """Seed of the sampling noise for a run trained with `run_seed`."""
    return int(run_seed) + SAMPLE_SEED_OFFSET


