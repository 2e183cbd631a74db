"""Image arrays: the one check of user and file images, and the converters between the uint8 storage
format and the models' float inputs (paper Sec. 4: x/scale − 0.5, dequantised when training)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


class ImageError(ValueError):
    """An image array has the wrong dtype, shape, range or channel count; the message names it and the fix."""


PAPER_SIZES = ((28, 28), (64, 64))  # F-MNIST / MNIST / Omniglot and CelebA (paper Sec. 4)


def net_size_problem(h: int, w: int) -> str | None:
    """Why the infoGAN encoder/decoder (pae.science.nets) cannot take h×w images, or None when they can."""
    if h % 4 == 0 and w % 4 == 0 and h >= 4 and w >= 4:
        return None
    sizes = " and ".join(f"{a}×{b}" for a, b in PAPER_SIZES)
    return (f"images are {h}×{w}, but the infoGAN encoder/decoder halve height and width twice, so both must "
            f"be multiples of 4 (the paper's sizes are {sizes}; e.g. 32×32 works too)")


def check_images(x: Any, where: str, *, channels: int | None = None, net_shape: bool = True) -> np.ndarray:
    """Images → uint8 ``(N, C, H, W)``: uint8 kept, floats in [0, 1] → round(255·x); (N, H, W) gets C = 1.

    ``where`` names the file (and array) in the error. Rejects other dtypes, NaN/inf, floats outside [0, 1],
    other shapes, channels-last arrays, C ∉ {1, 3}, C ≠ ``channels``, no images, and (``net_shape``) H or W
    not a multiple of 4.
    """
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind in "USV":
        raise ImageError(f"{where}: dtype {x.dtype} is not an image array; store uint8 pixels or floats in [0, 1]")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ImageError(f"{where}: expected images of shape (N, H, W) or (N, C, H, W), got shape {x.shape}"
                         + ("; for a single image add a batch axis (x[None])" if x.ndim == 2 else ""))
    if x.shape[1] not in (1, 3):
        hint = ("; it looks channels-last (N, H, W, C): store x.transpose(0, 3, 1, 2)"
                if x.shape[-1] in (1, 3) else "")
        raise ImageError(f"{where}: shape {x.shape} has {x.shape[1]} channels; C must be 1 (grayscale) or "
                         f"3 (RGB){hint}")
    if channels is not None and x.shape[1] != channels:
        raise ImageError(f"{where}: images have {x.shape[1]} channel(s) but the entry says channels: "
                         f"{channels}; fix the entry or the data")
    if x.shape[0] == 0 or x.size == 0:
        raise ImageError(f"{where}: holds no images (shape {x.shape}); every split needs at least one image")
    if net_shape and (problem := net_size_problem(x.shape[2], x.shape[3])):
        raise ImageError(f"{where}: {problem}; resize, crop or pad the images (a dataset entry can "
                         "resize with size: [64, 64])")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            raise ImageError(f"{where}: {int(bad.sum())} NaN/inf values (first in image "
                               f"{int(np.argwhere(bad)[0][0])}); remove or replace those images")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            fix = ("these look like 0..255 pixels: store x.astype(np.uint8) or x / 255" if hi <= 255 and lo >= 0
                   else "rescale them to [0, 1]")
            raise ImageError(f"{where}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                               f"{fix}")
        return np.rint(x.astype(np.float64) * 255.0).astype(np.uint8)
    raise ImageError(f"{where}: dtype {x.dtype} is not supported; store uint8 pixels 0..255 "
                       "(x.astype(np.uint8)) or floats in [0, 1]")


def to_model_input(
    x_uint8: np.ndarray | torch.Tensor,
    scale: int = 255,
    dequantize: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 pixels → float32 model inputs (paper Sec. 4; the one converter every model input goes through): ``(x + U(0,1))/scale − 0.5`` or ``x/scale − 0.5``.

    With ``scale`` 255 the range is [−0.5, 0.5] (dequantized: up to 0.5 + 1/255); with 256 it is [−0.5, 0.5).
    """
    import torch

    x = torch.as_tensor(x_uint8)
    if x.is_floating_point() or x.dtype == torch.bool:
        raise ImageError(f"to_model_input expects integer pixel values 0..255 (uint8), got {x.dtype}; "
                        "model-space floats are already scaled")
    x = x.to(torch.float32)
    if dequantize:
        x = x + torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return x / float(scale) - 0.5


def to_uint8(x_float: np.ndarray | torch.Tensor, scale: int = 255) -> np.ndarray:
    """Inverse of :func:`to_model_input` for storage: ``round((x + 0.5)·scale)`` clipped to 0..255."""
    if hasattr(x_float, "detach"):
        x_float = x_float.detach().float().cpu().numpy()
    x = np.asarray(x_float, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        raise ImageError(f"to_uint8: {int(bad.sum())} non-finite values (NaN/inf) in the images; "
                        "the model producing them diverged")
    return np.clip(np.rint((x + 0.5) * scale), 0, 255).astype(np.uint8)


def to_unit_float(x_model: np.ndarray, scale: float) -> np.ndarray:
    """Model units x/scale − 0.5 → float32 images in [0, 1] (pixel/255)."""
    return np.clip((np.asarray(x_model, np.float64) + 0.5) * float(scale) / 255.0, 0.0, 1.0).astype(np.float32)
