"""Samples, reconstructions and interpolations of the AE, the (β-)VAE and the PAE (paper Sec. 2.1, 4.1).

Sample definitions (the original code; paper Sec. 4.1):
* AE "samples":   x = g(z),    z ~ N(0, I)             (the AE has no prior; N(0, I) is the paper's baseline)
* VAE samples:    x = g(z),    z ~ N(0, I)             (the VAE prior)
* PAE samples:    x = g(b⁻¹(u)), u ~ N(0, T²I)          (Eq. 6; temperature T = 1 in the paper)
* reconstructions x̂ = g(f(x)) with f the encoder mean, on x/scale − 0.5 (no dequantization)
* interpolations  x_t = g(b⁻¹((1 − t)·b(f(x_a)) + t·b(f(x_b))))  (PAE, through the flow's u; Fig. 4)
                  x_t = g((1 − t)·f(x_a) + t·f(x_b))              (linear in the AE latent z)

All noise is drawn up front on the CPU from a seeded torch.Generator, so results do not depend on the batch
size or the device; decoding runs batched, in eval mode, without gradients. Images are returned as float32
numpy arrays (N, C, H, W) in [−0.5, 0.5].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from pae.science.images import to_model_input

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


SPACES = ("u", "z")  # interpolation spaces: the flow's u (the PAE's, Fig. 4) or the AE latent z


def _image_batch(x: np.ndarray, scale: float, name: str) -> tuple[torch.Tensor, bool]:
    """uint8 (scaled with `scale`) or float model-space images, one (C, H, W) or a batch (N, C, H, W) →
    (float32 (N, C, H, W), whether a single image was given)."""
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be one image (C, H, W) or a batch (N, C, H, W), got shape {x.shape}")
    t = to_model_input(x, scale) if x.dtype == np.uint8 else torch.as_tensor(x, dtype=torch.float32)
    return (t.unsqueeze(0), True) if t.ndim == 3 else (t, False)


def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, module: nn.Module, batch_size: int
) -> torch.Tensor:
    """fn over v in batches of `batch_size` on `module`'s device; the result on the CPU."""
    dev = _device(module)
    return torch.cat([fn(v[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(v), batch_size)])


def interpolate(
    model: nn.Module,
    x_a: np.ndarray,
    x_b: np.ndarray,
    steps: int,
    scale: float = 255,
    *,
    space: str = "z",
    flow: nn.Module | None = None,
    batch_size: int = 500,
) -> np.ndarray:
    """Interpolations from x_a to x_b at t = linspace(0, 1, steps) (paper Sec. 2.1, 4.1, Fig. 4).

    space "u" (the PAE's, needs `flow`): u = b(f(x)) (Eq. 4), u_t = (1 − t)·u_a + t·u_b, x_t = g(b⁻¹(u_t))
    (the Eq. 6 generator); space "z": z_t = (1 − t)·z_a + t·z_b, x_t = g(z_t); f = encoder mean.
    x_a, x_b: one image (C, H, W) each → (steps, C, H, W), or pairs (n_pairs, C, H, W) → (n_pairs, steps,
    C, H, W); uint8 (scaled with `scale`) or floats already in [−0.5, 0.5]. Both endpoints decode the
    reconstructions g(f(x)) (in u up to the flow's round-trip error). Eval mode, no gradients, batched.
    """
    if int(steps) < 2:
        raise ValueError(f"interpolation needs steps >= 2, got {steps}")
    if space not in SPACES:
        raise ValueError(f"interpolation space must be one of {SPACES}, got {space!r}")
    if space == "u" and flow is None:
        raise ValueError("interpolation in space 'u' needs the latent flow (flow=...)")
    xa, single = _image_batch(x_a, scale, "x_a")
    xb, _ = _image_batch(x_b, scale, "x_b")
    if xa.shape != xb.shape:
        raise ValueError(f"x_a and x_b must have the same shape, got {tuple(xa.shape)} and {tuple(xb.shape)}")
    n = len(xa)
    modules = (model,) if space == "z" else (model, flow)
    with _eval_mode(*modules):
        z = _batched(lambda x: _encode_mean(model, x), torch.cat([xa, xb]), model, batch_size)
        if space == "u":
            if int(flow.K) != z.shape[1]:
                raise ValueError(f"flow latent size K={flow.K} does not match the auto-encoder's K={z.shape[1]}")
            z = _batched(flow.transform_to_noise, z, flow, batch_size)
        t = torch.linspace(0, 1, int(steps)).view(1, -1, 1)
        path = ((1 - t) * z[:n, None] + t * z[n:, None]).reshape(n * int(steps), -1)  # pair-major
        if space == "u":
            path = _batched(flow.inverse, path, flow, batch_size)
            if not torch.all(torch.isfinite(path)):
                raise FloatingPointError("the flow inverse produced non-finite latents; retrain the flow (train_flow)")
        x = _decode_batched(model, path, batch_size)
    x = x.reshape(n, int(steps), *x.shape[1:])
    return x[0] if single else x


def sampling_seed(run_seed: int) -> int:
    """Seed of the sampling noise for a run trained with `run_seed`."""
    return int(run_seed) + SAMPLE_SEED_OFFSET


