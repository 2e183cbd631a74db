"""The one training loop (AE, VAE, β-VAE), the AE objective (Eq. 2) and AE evaluation (Eq. 8).

``fit`` slices batches from an in-memory uint8 tensor with a seeded permutation per epoch, dequantizes
and (optionally) rotates each batch, steps Adam with a step or cosine learning-rate schedule defined over
the total number of epochs, checks for non-finite losses, and writes a resumable checkpoint every
``checkpoint_every`` epochs. Restarting ``fit`` with the same settings on an existing checkpoint continues
from it and ends in the same state as an uninterrupted run (bit-identical on CPU).
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from pae.science.images import to_model_input
from pae.science.runtime import resolve_device, seed_everything
from pae.science.specs import TrainSettings  # noqa: F401 (re-exported: fit takes it)

_LOG = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, torch.Tensor, int], tuple[torch.Tensor, dict[str, Any]]]
LogFn = Callable[[str], Any]

NAN_CHECK_EVERY = 50  # steps between host syncs for the non-finite-loss guard (exact step still reported)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; no final model is written."""


# --------------------------------------------------------------------------------------------------------
# Settings


def learning_rate(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """lr at global step `step`; the schedule spans the total configured epochs (D4).

    step: lr until epoch round(lr_decay_at·epochs), then lr·lr_decay_factor (paper: 1e-3 → 1e-4 after
    400 of 500 epochs). cosine: lr·(f + (1−f)·½(1 + cos(π t/T))) per step, f = lr_decay_factor.
    """
    s = settings
    if s.lr_schedule == "step":
        boundary = round(s.lr_decay_at * s.epochs)
        return s.lr * (s.lr_decay_factor if step // steps_per_epoch >= boundary else 1.0)
    total = s.epochs * steps_per_epoch
    frac = min(step / total, 1.0)
    return s.lr * (s.lr_decay_factor + (1 - s.lr_decay_factor) * 0.5 * (1 + math.cos(math.pi * frac)))


# --------------------------------------------------------------------------------------------------------
# Inputs


def _as_uint8(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
        got = f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
        raise ValueError(f"{name}: expected uint8 images of shape (N, C, H, W), got {got}")
    return x


def rotate_batch(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate every image of a batch by the same angle (bilinear, zero = black fill, as in the original's
    scipy.ndimage.rotate with cval 0 on the unscaled pixels)."""
    n, _, h, w = x.shape
    a = torch.as_tensor(degrees, dtype=torch.float32, device=x.device) * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    zero = torch.zeros((), device=x.device)
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, zero]), torch.stack([sin * w / h, cos, zero])]
    ).expand(n, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x + 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 0.5


# --------------------------------------------------------------------------------------------------------
# Objective


def ae_loss(model: nn.Module, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Eq. 2: squared error summed over pixels, mean over the batch.

    This is −log N(x; g(f(x)), σ²I) of the original (scalar σ) times 2σ² minus a constant;
    the factor 1/(2σ²) is not applied (Adam is invariant to it up to its ε), so logged losses stay O(10).
    """
    x_hat = model(x).float()
    sse = (x_hat - x.float()).pow(2).flatten(1).sum(1).mean()
    return sse, {"mse": sse.detach() / x[0].numel()}


# --------------------------------------------------------------------------------------------------------
# Checkpoints


def data_fingerprint(*arrays: torch.Tensor) -> str:
    """A hash of the training/validation images, so a checkpoint is never resumed on different data."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(str(tuple(a.shape)).encode())
        h.update(np.ascontiguousarray(a.cpu().numpy()).data)  # no copy for contiguous CPU arrays
    return h.hexdigest()


def _loss_identity(loss_fn: LossFn) -> str:
    name = getattr(loss_fn, "__qualname__", type(loss_fn).__name__)
    return f"{getattr(loss_fn, '__module__', '')}.{name}{getattr(loss_fn, 'params', '')}"


def _rng_state(gens: dict[str, torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
    state = {name: g.get_state() for name, g in gens.items()}
    state["torch"] = torch.get_rng_state()
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(
    state: dict[str, torch.Tensor], gens: dict[str, torch.Generator], device: torch.device
) -> None:
    for name, g in gens.items():
        g.set_state(state[name])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class Checkpoint(Protocol):
    """Where `fit` keeps its resumable state: the caller decides (`pae.files.io.FileCheckpoint` for a file)."""

    name: str

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none."""

    def save(self, state: dict[str, Any]) -> None:
        """Replace the saved state (atomically)."""


def train_model(
    build: Callable[[tuple[int, ...]], nn.Module],
    loss_fn: LossFn,
    x_train: np.ndarray,
    x_valid: np.ndarray,
    settings: TrainSettings,
    checkpoint: Checkpoint | None,
    log: LogFn = _LOG.info,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Seed (settings.seed: weight initialisation), build the network for the images' shape and `fit` it:
    the one training of the AE (Eq. 2) and the VAE baselines (Eq. 15), for the workflow and `pae.PAE` alike.
    `progress`: a per-epoch progress bar."""
    seed_everything(int(settings.seed))
    model = build(tuple(x_train.shape[1:]))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{type(model).__name__} on {tuple(x_train.shape)} images: {n_params} parameters, {settings.epochs} epochs")
    return model, fit(model, loss_fn, x_train, x_valid, settings, checkpoint, log, progress)


def _make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam with TF's defaults (β 0.9/0.999, ε 1e-8), fused kernels where this torch build has them."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


# --------------------------------------------------------------------------------------------------------
# The loop


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    x_train: np.ndarray | torch.Tensor,
    x_valid: np.ndarray | torch.Tensor,
    settings: TrainSettings | Mapping[str, Any],
    checkpoint: Checkpoint | None = None,
    log: LogFn = _LOG.info,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train `model` in place on uint8 images; return the per-epoch history. `progress`: show a per-epoch
    progress bar (tqdm) on stderr; `log` receives one line per epoch.

    ``loss_fn(model, x_batch, step) -> (loss, metrics)``: x_batch is the dequantized, scaled (and rotated)
    float batch, step the global 0-based step; metric values are floats or detached 0-dim tensors
    (tensors avoid a host sync per step). Each history entry holds epoch, train_loss, the epoch means of
    the metrics, val_mse (per pixel, eval mode, no dequantization; None between the validation passes of
    ``validate_every``, the last epoch always has one), lr and seconds.

    With `checkpoint`, a checkpoint (model, optimizer, step, epoch, RNG states, history) is written
    atomically every ``checkpoint_every`` epochs and after the last one; an existing checkpoint written
    with the same trajectory settings, model and data is resumed, any other one is ignored (and replaced).
    Raises :class:`NonFiniteLossError` on a NaN/inf loss.
    """
    s = TrainSettings.coerce(settings)
    device = resolve_device(s.device)
    xt, xv = _checked_images(model, x_train, x_valid)
    steps_per_epoch = xt.shape[0] // s.batch_size  # drop the remainder, as the original (drop_remainder=True)
    if steps_per_epoch == 0:
        raise ValueError(
            f"training setting 'batch_size' = {s.batch_size} exceeds the {xt.shape[0]} training images; lower it"
        )
    model.to(device=device, memory_format=_memory_format(s))
    optimizer = _make_optimizer(model, s.lr, device)
    torch.manual_seed(s.seed)  # dropout and reparameterisation noise (CPU and CUDA default generators)
    gens = {
        "order": torch.Generator().manual_seed(s.seed),  # permutations and rotation angles
        "noise": torch.Generator(device=device).manual_seed(s.seed + 1),  # dequantization noise
    }
    identity = {
        "settings": s.trajectory(),
        "model": f"{type(model).__qualname__}{getattr(model, 'init_kwargs', '')}",
        "loss": _loss_identity(loss_fn),
        "data": data_fingerprint(xt, xv),
    }
    start_epoch, history = _resume(checkpoint, identity, model, optimizer, gens, device, s.epochs, log)
    xt_dev = xt.to(device)
    for epoch in range(start_epoch, s.epochs):
        t0 = time.perf_counter()
        train_loss, means, lr = _train_epoch(model, loss_fn, optimizer, xt_dev, s, gens, epoch, steps_per_epoch,
                                             progress)
        validate = (epoch + 1) % s.validate_every == 0 or epoch + 1 == s.epochs
        val_mse = reconstruction_mse(model, xv, s.scale, s.eval_batch_size, device) if validate else None
        if val_mse is not None and not math.isfinite(val_mse):
            raise NonFiniteLossError(
                f"validation MSE is {val_mse} after epoch {epoch + 1}; no model was written. "
                "Lower the learning rate (config key 'ae.lr') or check the input data"
            )
        entry = {"epoch": epoch + 1, "train_loss": train_loss, **means, "val_mse": val_mse, "lr": lr,
                 "seconds": time.perf_counter() - t0}
        history.append(entry)
        if checkpoint is not None and ((epoch + 1) % s.checkpoint_every == 0 or epoch + 1 == s.epochs):
            checkpoint.save({"identity": identity, "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "rng": _rng_state(gens, device), "history": history})
        log(
            f"epoch {epoch + 1}/{s.epochs} train_loss {train_loss:.6g} val_mse {'-' if val_mse is None else f'{val_mse:.6g}'} "
            f"lr {lr:.3g} seconds {entry['seconds']:.1f}"
        )
    model.eval()
    return history


def _checked_images(model: nn.Module, x_train: np.ndarray | torch.Tensor, x_valid: np.ndarray | torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both splits as uint8 tensors of the model's image shape."""
    xt, xv = _as_uint8(x_train, "x_train"), _as_uint8(x_valid, "x_valid")
    expected = tuple(getattr(model, "image_shape", xt.shape[1:]))
    for name, x in (("x_train", xt), ("x_valid", xv)):
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{name}: images have shape {tuple(x.shape[1:])}, the model expects {expected}")
    return xt, xv


def _memory_format(s: TrainSettings) -> torch.memory_format:
    return torch.channels_last if s.channels_last else torch.contiguous_format


def _resume(checkpoint: Checkpoint | None, identity: dict[str, Any], model: nn.Module,
            optimizer: torch.optim.Optimizer, gens: dict[str, torch.Generator], device: torch.device,
            epochs: int, log: LogFn) -> tuple[int, list[dict[str, float]]]:
    """(first epoch to train, history so far): from the checkpoint when it has this run's identity (model,
    optimizer and RNG states restored), else (0, [])."""
    state = checkpoint.load() if checkpoint is not None else None
    if state is None:
        return 0, []
    if state.get("identity") != identity:
        saved = state["identity"] if isinstance(state.get("identity"), dict) else {}
        stale = sorted(k for k in identity if saved.get(k) != identity[k])
        log(f"checkpoint {checkpoint.name} differs in {stale}; ignoring it and training from scratch")
        return 0, []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"], gens, device)
    log(f"resumed from {checkpoint.name} after epoch {int(state['epoch'])}/{epochs}")
    return int(state["epoch"]), list(state["history"])


def _train_epoch(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, xt_dev: torch.Tensor,
                 s: TrainSettings, gens: dict[str, torch.Generator], epoch: int, steps_per_epoch: int,
                 progress: bool) -> tuple[float, dict[str, float], float]:
    """One epoch of Adam steps over a fresh permutation: (mean loss, epoch means of the metrics, last lr)."""
    memory_format = _memory_format(s)
    model.train()
    order = torch.randperm(xt_dev.shape[0], generator=gens["order"])[: steps_per_epoch * s.batch_size]
    order = order.view(steps_per_epoch, s.batch_size).to(xt_dev.device)
    losses: list[torch.Tensor] = []
    sums: dict[str, torch.Tensor | float] = {}
    bar = tqdm(
        range(steps_per_epoch), desc=f"epoch {epoch + 1}/{s.epochs}", file=sys.stderr,
        leave=False, mininterval=5.0 if not sys.stderr.isatty() else 0.2, ncols=100, disable=not progress,
    )  # fmt: skip
    lr = s.lr
    for i in bar:
        step = epoch * steps_per_epoch + i
        lr = learning_rate(s, step, steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = to_model_input(xt_dev[order[i]], s.scale, s.dequantize, gens["noise"])
        if s.augmentation == "rotate":
            angle = (torch.rand((), generator=gens["order"]) * 2 - 1) * s.rot_degrees
            x = rotate_batch(x, angle)
        x = x.contiguous(memory_format=memory_format)
        with torch.autocast(xt_dev.device.type, dtype=torch.bfloat16, enabled=s.precision == "bf16"):
            loss, metrics = loss_fn(model, x, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().float())
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + (value.detach().float() if torch.is_tensor(value) else value)
        if (i + 1) % NAN_CHECK_EVERY == 0 or i + 1 == steps_per_epoch:
            _check_finite(losses, epoch, steps_per_epoch)
            bar.set_postfix(loss=f"{losses[-1].item():.4g}", refresh=False)
    return float(torch.stack(losses).mean()), {k: float(v) / steps_per_epoch for k, v in sums.items()}, lr


def _check_finite(losses: list[torch.Tensor], epoch: int, steps_per_epoch: int) -> None:
    """Raise on the first non-finite loss of the epoch, naming its epoch and global step."""
    finite = torch.isfinite(torch.stack(losses))
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    raise NonFiniteLossError(
        f"non-finite training loss ({float(losses[i])}) at epoch {epoch + 1}, step {epoch * steps_per_epoch + i} "
        f"(batch {i + 1} of the epoch); no model was written. Lower the learning rate (config key 'ae.lr') "
        "or check the input data for corrupt values"
    )


# --------------------------------------------------------------------------------------------------------
# Evaluation


def _eval_batches(
    model: nn.Module,
    x_uint8: np.ndarray | torch.Tensor,
    scale: float,
    batch_size: int,
    device: str | torch.device,
    fn: Callable[[torch.Tensor], torch.Tensor],
    name: str = "images",
):
    """Yield (x_scaled, fn(x_scaled)) per batch in eval mode without dequantization."""
    x = _as_uint8(x_uint8, name)
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev).eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = to_model_input(x[start : start + batch_size].to(dev), scale, dequantize=False)
            yield xb, fn(xb)


def encode(
    model: nn.Module,
    x_uint8: np.ndarray | torch.Tensor,
    scale: float = 255,
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Encoder means z = f_φ(x) (Eq. 1), shape (N, K) float32; eval mode, no dequantization."""
    parts = [
        z.float().cpu() for _, z in _eval_batches(model, x_uint8, scale, batch_size, device, model.encode)
    ]
    return torch.cat(parts).numpy()


def encode_splits(
    model: nn.Module, splits: Mapping[str, np.ndarray], scale: float, batch_size: int, device: str | torch.device,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Encoder means of every split ({"z_<split>": (N, K)}, Eq. 1), the pixel-wise σ of Eq. 8 on the "valid"
    split (the flow's training data and the likelihood width of Eq. 9-12) and the reconstruction MSE per
    pixel of every split but "train". One encoder pass per image: each latent that is not a training one is
    decoded from the same batch."""
    latents, mse, sigma = {}, {}, None
    for split, x in splits.items():
        if split == "train":
            z = encode(model, x, scale, batch_size, device)
        else:
            z, total, count = _encode_with_residuals(model, x, scale, batch_size, device)
            mse[split] = float(total.mean() / count)
            if split == "valid":
                sigma = (total / count).sqrt().float().cpu().numpy()
        if not np.isfinite(z).all():
            raise FloatingPointError(f"the auto-encoder gives non-finite latents on the {split} images; retrain it "
                                     "(lower the learning rate, ae.lr)")
        latents[f"z_{split}"] = z
    if sigma is None:
        raise ValueError("encode_splits needs a 'valid' split for the σ of Eq. 8")
    return latents, sigma, mse


def _encode_with_residuals(model, x_uint8, scale, batch_size, device) -> tuple[np.ndarray, torch.Tensor, int]:
    """Encoder means (N, K), the per-pixel sum of squared residuals g(f(x)) − x (float64) over the images, and
    their count: one encoder pass serves both."""
    zs, total = [], None
    with torch.no_grad():
        for xb, z in _eval_batches(model, x_uint8, scale, batch_size, device, model.encode):
            r2 = (model.decode(z).double() - xb.double()).pow(2).sum(0)
            total = r2 if total is None else total + r2
            zs.append(z.float().cpu())
    if total is None:
        raise ValueError("no images to evaluate (empty array)")
    return torch.cat(zs).numpy(), total, len(x_uint8)


def reconstruction_mse(
    model: nn.Module,
    x_uint8: np.ndarray | torch.Tensor,
    scale: float = 255,
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> float:
    """Mean squared reconstruction error per pixel (Table 1 'reconstruction error'; equals mean σ_i²)."""
    _, total, count = _encode_with_residuals(model, x_uint8, scale, batch_size, device)
    return float(total.mean() / count)


# --------------------------------------------------------------------------------------------------------
# Pipeline entry points (one call per Snakemake script)


