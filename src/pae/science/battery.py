"""The extended OoD battery: image sets beyond Table 2's, generated or transformed from images the pipeline has.

Pure: uint8 arrays (N, C, H, W) in, uint8 arrays out, every random draw from the `numpy.random.Generator`
passed in. Each kind answers a different question about a detector: does it flag images without structure
(uniform and Gaussian noise, constant images), images with the in-distribution's statistics reversed (inverted),
with its fine detail removed (blurred), moved off the centre the nets were trained on (shifted), or turned
(rotated by 90°). The paper scores only Table 2's four sets (Sec. 4.2); none of these enter any choice of
settings they are reported with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# kind → (needs source images rather than only their shape and statistics, the parameters it takes)
BATTERY_KINDS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "uniform_noise": (False, ()),
    "gaussian_noise": (False, ()),
    "constant": (False, ()),
    "invert": (True, ()),
    "blur": (True, ("sigma",)),
    "shift": (True, ("pixels",)),
    "rot90": (True, ()),
}


def evenly_spaced(n: int, count: int | None) -> np.ndarray:
    """`count` evenly spaced indices of range(n) (all of them when count is None or ≥ n)."""
    if count is None or count >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, int(count)).round().astype(np.int64))


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-d Gaussian kernel of standard deviation `sigma` pixels, truncated at 3 σ."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    radius = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of uint8 images (N, C, H, W); edges padded by reflection."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    out = x.astype(np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shift(x: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by `pixels` down, up, right or left (drawn per image); the emptied pixels are black."""
    if not 0 < pixels < min(x.shape[-2:]):
        raise ValueError(f"shift pixels must be in 1..{min(x.shape[-2:]) - 1}, got {pixels}")
    p = int(pixels)
    out = np.zeros_like(x)
    direction = rng.integers(0, 4, size=len(x))
    moves = {0: (p, 0), 1: (-p, 0), 2: (0, p), 3: (0, -p)}  # (rows, columns)
    h, w = x.shape[-2:]

    def span(step: int, size: int) -> tuple[slice, slice]:  # (target, source) along one axis
        return slice(max(step, 0), size + min(step, 0)), slice(max(-step, 0), size + min(-step, 0))

    for d, (dy, dx) in moves.items():
        idx = np.flatnonzero(direction == d)
        (rows_to, rows_from), (cols_to, cols_from) = span(dy, h), span(dx, w)
        out[idx, :, rows_to, cols_to] = x[idx, :, rows_from, cols_from]
    return out


def battery_images(kind: str, reference: np.ndarray, count: int | None, rng: np.random.Generator,
                   params: Mapping[str, Any] | None = None) -> np.ndarray:
    """One battery set of `kind` (BATTERY_KINDS) as uint8 (N, C, H, W).

    reference: uint8 images (N, C, H, W): the source images for the transforms (evenly spaced `count` of
    them are used), and for the generators their shape (and, for gaussian_noise, the per-pixel mean and std
    of the reference, so the noise has the in-distribution's first two moments). `count` None = as many as
    the reference has. params: sigma (blur, pixels) or pixels (shift).
    """
    if kind not in BATTERY_KINDS:
        raise ValueError(f"unknown battery kind {kind!r}; choose from {sorted(BATTERY_KINDS)}")
    if reference.dtype != np.uint8 or reference.ndim != 4 or not len(reference):
        raise ValueError(f"reference images must be non-empty uint8 (N, C, H, W), got {reference.dtype}{reference.shape}")
    params = dict(params or {})
    missing = [p for p in BATTERY_KINDS[kind][1] if p not in params]
    if missing:
        raise ValueError(f"battery kind {kind!r} needs parameter(s) {missing}")
    n = len(reference) if count is None else int(count)
    if n < 1:
        raise ValueError(f"battery count must be >= 1, got {count}")
    shape = (n, *reference.shape[1:])
    if kind == "uniform_noise":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if kind == "gaussian_noise":
        ref = reference.astype(np.float64)
        x = rng.normal(ref.mean(axis=0), ref.std(axis=0) + 1.0, size=shape)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if kind == "constant":
        levels = rng.integers(0, 256, size=(n, 1, 1, 1), dtype=np.uint8)
        return np.broadcast_to(levels, shape).copy()
    x = reference[evenly_spaced(len(reference), count)]
    if kind == "invert":
        return 255 - x
    if kind == "blur":
        return blur(x, float(params["sigma"]))
    if kind == "shift":
        return shift(x, int(params["pixels"]), rng)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rot90 needs square images, got {x.shape[-2:]}")
    return np.ascontiguousarray(np.rot90(x, k=1, axes=(-2, -1)))
