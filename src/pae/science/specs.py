"""The settings the science functions take: plain frozen dataclasses, no torch (so `pae.settings` and
`import pae` stay light). `pae.settings` builds them from the configuration; the science modules re-export
the ones they own (`pae.science.train.TrainSettings`, `pae.science.flows.FlowArchitecture`, ...)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrainSettings:
    """Settings of :func:`fit`; the config keys live under ``ae`` (VAEs share them, with ``vae.epochs``)."""

    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str  # step: ×lr_decay_factor from epoch round(lr_decay_at·epochs) | cosine (D4)
    lr_decay_at: float
    lr_decay_factor: float
    scale: float  # x/scale − 0.5 (D1)
    dequantize: bool  # x + U(0,1) on training batches
    augmentation: str  # rotate: one angle ~ U(±rot_degrees) per batch (D2) | none
    rot_degrees: float
    seed: int
    device: str
    precision: str  # fp32 | bf16 (autocast)
    channels_last: bool
    checkpoint_every: int  # epochs
    validate_every: int = 1  # epochs between validation passes; the last epoch always has one
    eval_batch_size: int = 500  # validation batches (not a config key: it does not change the result)

    # settings that may change between an interrupted run and its resumption without invalidating it
    RESUMABLE_CHANGES = ("device", "channels_last", "checkpoint_every", "validate_every", "eval_batch_size")

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> None:
            raise ValueError(f"training setting '{key}' = {getattr(self, key)!r}: {why}")

        for key in ("epochs", "batch_size", "checkpoint_every", "validate_every", "eval_batch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                bad(key, "must be a positive integer")
        for key in ("lr", "scale"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                bad(key, "must be a positive finite number")
        for key in ("lr_decay_at", "lr_decay_factor"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                bad(key, "must be a number in [0, 1]")
        if not isinstance(self.rot_degrees, (int, float)) or not 0 <= self.rot_degrees <= 180:
            bad("rot_degrees", "must be a number in [0, 180]")
        choices = {
            "lr_schedule": ("step", "cosine"),
            "augmentation": ("rotate", "none"),
            "precision": ("fp32", "bf16"),
            "device": ("auto", "cpu", "cuda"),
        }
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed and not (key == "device" and str(value).startswith("cuda:")):
                bad(key, f"use one of {', '.join(allowed)}")

    @classmethod
    def coerce(cls, settings: TrainSettings | Mapping[str, Any]) -> TrainSettings:
        """Build from a mapping (e.g. Snakemake params); unknown keys raise an error naming them."""
        if isinstance(settings, cls):
            return settings
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        missing = sorted(f.name for f in fields(cls) if f.name not in settings and f.name != "eval_batch_size")
        if missing:
            raise ValueError(f"training setting(s) {missing} are required")
        return cls(**dict(settings))

    def trajectory(self) -> dict[str, Any]:
        """The settings that determine the training trajectory (compared when resuming)."""
        d = asdict(self)
        for key in self.RESUMABLE_CHANGES:
            d.pop(key)
        return d


@dataclass(frozen=True)
class FlowArchitecture:
    """The bijection b of Eq. 4: kind "realnvp" (affine couplings; num_bins and tail_bound None) or "nsf"
    (rational-quadratic splines with num_bins bins on [-tail_bound, tail_bound]); n_layers couplings with
    coupling networks of `hidden` units; standardize: the first bijection (z - mean) / std."""

    kind: str
    n_layers: int
    hidden: int
    num_bins: int | None
    tail_bound: float | None
    standardize: bool


@dataclass(frozen=True)
class FlowTraining:
    """Maximum-likelihood training of Eq. 5: Adam at lr, × lr_decay_factor from epoch round(lr_decay_at · epochs)
    on, `batch_size` latents per step, N(0, latent_noise²) added to the standardised training latents."""

    epochs: int
    batch_size: int
    lr: float
    lr_decay_at: float
    lr_decay_factor: float
    latent_noise: float


def realnvp_depth_for(K: int, depth_table: Mapping[Any, int]) -> int:
    """Depth for K from flow.realnvp_depth, falling back to the nearest smaller listed K."""
    table = {int(k): int(v) for k, v in depth_table.items()}
    smaller = [k for k in table if k <= K]
    if not smaller:
        raise ValueError(
            f"config key flow.realnvp_depth lists no K <= {K} (listed: {sorted(table)}); "
            f"add an entry such as '{K}: 8'"
        )
    return table[max(smaller)]
