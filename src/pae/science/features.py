"""Image features for the FID of samples and reconstructions, and reconstruction errors (paper Sec. 4.1,
Table 1).

FID (Heusel et al. 2017) between two image sets = Fréchet distance (`pae.science.metrics.frechet_distance`) of
Gaussians fitted to their features (`image_statistics`). Two feature extractors:

* ``inception``: pytorch-fid's port of the TF Inception graph the original used (pool3, 2048-d). Protocol of the
  original code (D9): grayscale copied to 3 channels, each image min–max normalised to [0, 1]
  (config ``fid.normalize``), bilinear resize to 299×299 inside pytorch-fid. The weights are never replaced by
  anything else: when they cannot be had, the result is the text "unavailable: <reason>".
* ``domain``: the penultimate layer of a small CNN classifier trained here (pae.science.classifier); works offline. Its
  inputs are the models' evaluation inputs x/scale − 0.5 (no min–max normalisation).

The Inception weights are found and loaded by `pae.files.artifacts` (`inception_weights_source`, `load_inception`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pae.science.metrics import feature_statistics

_LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

UNAVAILABLE = "unavailable"
EXTRACTORS = ("domain", "inception")  # order of the columns
ERROR_KEYS = ("mse_per_pixel", "rms_per_pixel", "mae_per_pixel", "mean_image_rms", "mean_pixel_sigma")


class InceptionUnavailable(RuntimeError):
    """The Inception weights cannot be had (no file and no download); the message is the reason."""



# ----------------------------------------------------------------------------------------------------------
# Feature extractors
# ----------------------------------------------------------------------------------------------------------


def normalize_images(x_uint8: np.ndarray, mode: str = "minmax") -> torch.Tensor:
    """uint8 (N, C, H, W) → float32 (N, 3, H, W) in [0, 1] for Inception (original code, D9).

    minmax: each image (all its channels together) mapped to [0, 1] by its own min and max (constant images → 0);
    none: x/255. Grayscale is copied to 3 channels.
    """
    import torch

    if mode not in ("minmax", "none"):
        raise ValueError(f"config key 'fid.normalize': {mode!r} is not allowed; use 'minmax' or 'none'")
    x = torch.as_tensor(np.asarray(x_uint8)).float()
    if mode == "minmax":
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
        x = torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), torch.zeros_like(x))
    else:
        x = x / 255.0
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


class FeatureExtractor(Protocol):
    """Maps a batch of uint8 images (N, C, H, W) to features (N, D)."""

    name: str
    dim: int

    def __call__(self, x_uint8: np.ndarray) -> np.ndarray: ...


class InceptionExtractor:
    """pytorch-fid InceptionV3 pool3 features (2048-d) with the original's preprocessing."""

    name = "inception"
    dim = 2048

    def __init__(self, net: torch.nn.Module, normalize: str = "minmax", channels_last: bool = False) -> None:
        import torch

        self.net = net.eval()
        self.normalize = normalize
        self.channels_last = channels_last
        self.device = next(net.parameters()).device
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def __call__(self, x_uint8: np.ndarray) -> np.ndarray:
        import torch

        x = normalize_images(x_uint8, self.normalize).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            f = self.net(x)[0]
        return f.reshape(f.shape[0], -1).double().cpu().numpy()


class DomainExtractor:
    """Penultimate-layer features of the domain classifier (pae.science.classifier) on x/scale − 0.5."""

    name = "domain"

    def __init__(self, classifier: torch.nn.Module, scale: float = 255) -> None:
        self.net = classifier.eval()
        self.scale = float(scale)
        self.dim = int(classifier.init_kwargs["feature_dim"])
        self.device = next(classifier.parameters()).device

    def __call__(self, x_uint8: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(x_uint8)).float().to(self.device) / self.scale - 0.5
        with torch.no_grad():
            return self.net.features(x).double().cpu().numpy()


def extract_features(images: np.ndarray, extractor: FeatureExtractor, batch_size: int = 50) -> np.ndarray:
    """Features (N, D) of uint8 images, computed in batches."""
    if batch_size < 1:
        raise ValueError(f"config key 'fid.batch_size' must be >= 1, got {batch_size}")
    out = [extractor(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    f = np.concatenate(out)
    if f.shape != (len(images), extractor.dim):
        raise RuntimeError(f"{extractor.name} features have shape {f.shape}, expected {(len(images), extractor.dim)}")
    return f


def image_statistics(images: np.ndarray, extractor: FeatureExtractor, batch_size: int = 50
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of the extractor's features of uint8 images."""
    t0 = time.time()
    stats = feature_statistics(extract_features(images, extractor, batch_size))
    _LOG.info(f"  {extractor.name}: features of {len(images)} images in {time.time() - t0:.1f} s")
    return stats


# ----------------------------------------------------------------------------------------------------------
# Inception weights
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# Reconstruction errors
# ----------------------------------------------------------------------------------------------------------
def reconstruction_errors(x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
    """Candidate definitions of Table 1's "mean reconstruction error" on float images in [−0.5, 0.5].

    mse_per_pixel    mean over images and pixels of (x − x̂)²  (the original's printed "mean variance")
    rms_per_pixel    √mse_per_pixel                            (candidate for the paper's 0.077/0.084/0.114)
    mae_per_pixel    mean |x − x̂|
    mean_image_rms   mean over images of the per-image RMS error
    mean_pixel_sigma mean over pixels of σ_i = RMS over images (the Eq. 8 σ; the other candidate)
    """
    x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
    if x.shape != x_hat.shape or x.ndim != 4:
        raise ValueError(f"images and reconstructions differ in shape: {x.shape} vs {x_hat.shape}")
    sq = (x - x_hat) ** 2
    mse = float(sq.mean())
    return {
        "mse_per_pixel": mse,
        "rms_per_pixel": float(np.sqrt(mse)),
        "mae_per_pixel": float(np.abs(x - x_hat).mean()),
        "mean_image_rms": float(np.sqrt(sq.reshape(len(x), -1).mean(1)).mean()),
        "mean_pixel_sigma": float(np.sqrt(sq.mean(0)).mean()),
        "n_images": int(len(x)),
    }


# ----------------------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# Table 1
# ----------------------------------------------------------------------------------------------------------


