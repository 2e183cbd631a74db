"""A small CNN classifier of the in-distribution classes whose penultimate layer defines the "domain FID".

The paper's FIDs (Sec. 4.1, Table 1) use Inception features. Those need downloaded ImageNet weights; this
classifier is trained here, offline, on the training split of the same dataset, and its 128-d penultimate
activations replace Inception's 2048-d pool3 features in the same Fréchet distance (pae.science.metrics.frechet_distance). Its numbers
are *not* comparable to the paper's FIDs (different features), only between models of this pipeline.

Inputs are evaluation inputs x/scale − 0.5 (no dequantization, no augmentation), as for the auto-encoders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pae.science import runtime
from pae.science.images import to_model_input

_LOG = logging.getLogger(__name__)

FEATURE_DIM = 128
TRAIN_BATCH_SIZE = 128
LEARNING_RATE = 1e-3
DROPOUT = 0.3


class DomainClassifier(nn.Module):
    """conv3×3(32)–ReLU–maxpool2 → conv3×3(64)–ReLU–maxpool2 → linear(feature_dim)–ReLU → dropout → linear(classes).

    `features(x)` returns the post-ReLU penultimate activations used for the domain FID.
    """

    def __init__(self, image_shape: tuple[int, int, int] | list[int], n_classes: int,
                 feature_dim: int = FEATURE_DIM, dropout: float = DROPOUT) -> None:
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if h % 4 or w % 4:
            raise ValueError(f"image height and width must be multiples of 4, got {h}x{w}")
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.init_kwargs: dict[str, Any] = {
            "image_shape": [c, h, w], "n_classes": int(n_classes), "feature_dim": int(feature_dim),
            "dropout": float(dropout),
        }
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, feature_dim)."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, n_classes)."""
        return self.head(self.features(x))


@torch.no_grad()
def predict(model: DomainClassifier, x_uint8: np.ndarray, scale: float = 255, batch_size: int = 500) -> np.ndarray:
    """Predicted class of each image (eval mode)."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        out = [model(to_model_input(x_uint8[i : i + batch_size], scale).to(dev)).argmax(1).cpu()
               for i in range(0, len(x_uint8), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(model: DomainClassifier, x_uint8: np.ndarray, y: np.ndarray, scale: float = 255) -> float:
    """Fraction of correctly classified images."""
    return float(np.mean(predict(model, x_uint8, scale) == np.asarray(y)))


def check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise ValueError(f"{name}: expected {n} non-negative integer labels, got {y.dtype} {y.shape}")
    return y.astype(np.int64)


def fit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    epochs: int,
    seed: int,
    scale: float = 255,
    batch_size: int = TRAIN_BATCH_SIZE,
    lr: float = LEARNING_RATE,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] = _LOG.info,
) -> tuple[DomainClassifier, list[dict[str, float]]]:
    """Train a DomainClassifier with Adam and cross-entropy on uint8 images; seeded, reshuffled each epoch."""
    if epochs < 1:
        raise ValueError(f"config key 'fid.classifier_epochs' must be >= 1, got {epochs}")
    y = check_labels(y_train, len(x_train), "y_train")
    gen = runtime.seed_everything(seed)
    dev = torch.device(device)
    model = DomainClassifier(x_train.shape[1:], int(y.max()) + 1).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(np.array(x_train, dtype=np.uint8, order="C")), torch.from_numpy(y)
    history = []
    for epoch in range(1, epochs + 1):
        t0, total, n = time.time(), 0.0, 0
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(batch_size):
            xb = (xt[idx].float() / float(scale) - 0.5).to(dev)
            loss = F.cross_entropy(model(xb), yt[idx].to(dev))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"classifier loss is {loss.item()} in epoch {epoch}; check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        history.append({"epoch": epoch, "train_loss": total / n, "seconds": time.time() - t0})
        log(f"epoch {epoch}/{epochs}  train cross-entropy {total / n:.4f}  {time.time() - t0:.1f} s")
    model.eval()
    return model, history


