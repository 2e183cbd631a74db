"""Typed settings: one object per config section, built once from the validated configuration.

This module (with the schema, `workflow/schemas/config.schema.yaml`, which holds every default) is the only
code that knows config key names. The workflow (`workflow/rules/common.smk`: ``S = Settings.from_config(config)``),
the public API (`pae.PAE`) and the command line build their settings here, and the science functions receive
the typed objects or plain arguments made from them. `tests/test_settings.py` checks that every leaf of the
schema is a field here and that every field is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pae.config import ConfigError, fill_defaults, validate_config
from pae.science.specs import FlowArchitecture, FlowTraining, TrainSettings, realnvp_depth_for


@dataclass(frozen=True)
class Threads:
    train: int
    eval: int
    flow: int


@dataclass(frozen=True)
class Data:
    dir: str
    mirror: str | None
    system_dirs: list[str]
    download: bool
    valid_size: int
    split_seed: int
    scale: int
    dequantize: bool
    celeba_size: int
    celeba_resample: str
    omniglot_count: int | None

    def registry_defaults(self) -> dict[str, Any]:
        """The options of the built-in datasets this section sets (`pae.files.datasets.KINDS` data_defaults)."""
        return {"valid_size": self.valid_size, "split_seed": self.split_seed, "celeba_size": self.celeba_size,
                "celeba_resample": self.celeba_resample, "omniglot_count": self.omniglot_count}


@dataclass(frozen=True)
class AE:
    latent_dims: list[int]
    norm: str
    spectral_norm: bool
    dropout: float
    encoder_outputs: str
    augmentation: str
    rot_degrees: float
    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    lr_decay_at: float
    lr_decay_factor: float
    checkpoint_every: int
    validate_every: int

    def encoder_width(self, K: int) -> int:
        """Encoder outputs for latent size K: K (the paper), or 2K (the original code's mean and scale, D3)."""
        return 2 * K if self.encoder_outputs == "2K" else K

    @property
    def layers(self) -> dict[str, Any]:
        """Keyword arguments of the infoGAN nets (`pae.science.nets.AutoEncoder`, `VAE`): norm, spectral_norm, dropout."""
        return {"norm": self.norm, "spectral_norm": self.spectral_norm, "dropout": self.dropout}

    def net(self, K: int) -> dict[str, Any]:
        """Keyword arguments of `pae.science.nets.AutoEncoder` beside latent_dim and image_shape."""
        return self.layers | {"encoder_outputs": self.encoder_width(K)}


@dataclass(frozen=True)
class Flow:
    realnvp_max_K: int
    realnvp_depth: dict[int, int]
    realnvp_hidden: int
    nsf_layers: int
    nsf_hidden: int
    nsf_bins: int
    nsf_tail_bound: float
    standardize: bool
    epochs: int
    batch_size: int
    lr: float
    lr_decay_at: float
    lr_decay_factor: float
    latent_noise: float

    def architecture(self, K: int) -> FlowArchitecture:
        """RealNVP for K <= realnvp_max_K (depth from realnvp_depth), the neural spline flow above (Eq. 4)."""
        if K <= self.realnvp_max_K:
            return FlowArchitecture("realnvp", realnvp_depth_for(K, self.realnvp_depth), self.realnvp_hidden,
                                    None, None, self.standardize)
        return FlowArchitecture("nsf", self.nsf_layers, self.nsf_hidden, self.nsf_bins, self.nsf_tail_bound,
                                self.standardize)

    @property
    def training(self) -> FlowTraining:
        return FlowTraining(self.epochs, self.batch_size, self.lr, self.lr_decay_at, self.lr_decay_factor,
                            self.latent_noise)


@dataclass(frozen=True)
class VAE:
    latent_dim: int
    epochs: int
    models: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Samples:
    count: int
    temperature: float


@dataclass(frozen=True)
class FID:
    inception_weights: str | None
    inception_download: bool
    normalize: str
    batch_size: int
    classifier_epochs: int
    classifier_seed: int
    dataset: str
    table1_K: int
    fig3_K: list[int]


@dataclass(frozen=True)
class Fig4:
    dataset: str
    K: int
    n_samples: int
    n_pairs: int
    n_steps: int


@dataclass(frozen=True)
class OOD:
    in_dataset: str
    sets: list[dict[str, str]]
    fig5_set: str
    density_K: int
    recon_K: int
    eq12_K: int
    recon_sigma: str
    map_steps: int
    map_lr: float
    map_count: int | None
    laplace_count: int | None
    rows: list[str]
    iwae_samples: int
    iwae_count: int | None
    fn_rate: float
    fig5_K: list[int]
    batch_size: int
    table2_seeds: list[int]
    battery: list[dict[str, Any]]
    battery_count: int
    battery_costly_count: int | None
    battery_seed: int


@dataclass(frozen=True)
class Posterior:
    dataset: str
    K: int
    n_images: int
    seed: int
    corruptions: dict[str, dict[str, Any]]
    run: list[str]
    space: str
    random_starts: int
    encoder_start: bool
    lr_stages: list[float]
    steps_per_stage: int | list[int]
    anneal_max: float | None
    merge_distance: float
    n_samples: int
    batch_size: int
    threads: int
    sigma_floor: float | None
    fig6_examples: list[dict[str, Any]]

    @property
    def search(self) -> Any:
        """The MAP search and sampling settings (`pae.science.posterior.PosteriorSettings`) of
        `posterior_analysis` (Eq. 9-14). Imported here, not at the top: that module loads torch."""
        from pae.science.posterior import PosteriorSettings as PosteriorSearch

        steps = self.steps_per_stage
        return PosteriorSearch(
            random_starts=self.random_starts, encoder_start=self.encoder_start,
            lr_stages=tuple(float(v) for v in self.lr_stages),
            steps_per_stage=tuple(int(v) for v in steps) if isinstance(steps, list) else int(steps),
            anneal_max=self.anneal_max, merge_distance=self.merge_distance, n_samples=self.n_samples,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class Report:
    reverse_dir: str


@dataclass(frozen=True)
class FidJob:
    """What every FID number depends on (rules fid_reference, fid_scores): feature batches, the extractor
    input normalisation, the pixel scale, the image count (samples.count) and the memory format."""

    batch_size: int
    normalize: str
    scale: int
    count: int
    channels_last: bool


@dataclass(frozen=True)
class ScoreJob:
    """What one part of a run's OoD scores depends on (rule ood_scores: recon, density, map or vae; "table2":
    every key, for the table's notes). Keys the part does not use are None, so e.g. a new ood.map_steps
    reruns only the map part."""

    scale: int
    batch_size: int
    recon_sigma: str | None
    map_steps: int | None
    map_lr: float | None
    map_count: int | None
    laplace_count: int | None
    iwae_samples: int | None
    iwae_count: int | None
    vae_sigma: float | None


SCORE_PART_KEYS = {
    "recon": ("recon_sigma",), "density": (), "map": ("map_steps", "map_lr", "map_count", "laplace_count"),
    "vae": ("iwae_samples", "iwae_count", "vae_sigma"),
}


SECTIONS: dict[str, type] = {
    "threads": Threads, "data": Data, "ae": AE, "flow": Flow, "vae": VAE, "samples": Samples, "fid": FID,
    "fig4": Fig4, "ood": OOD, "posterior": Posterior, "report": Report,
}


@dataclass(frozen=True)
class Settings:
    """The whole configuration, typed. Top-level keys are fields; each section is its own object."""

    outdir: str
    seeds: list[int]
    device: str
    precision: str
    channels_last: bool
    datasets: list[str] | dict[str, Any]
    threads: Threads
    data: Data
    ae: AE
    flow: Flow
    vae: VAE
    samples: Samples
    fid: FID
    fig4: Fig4
    ood: OOD
    posterior: Posterior
    report: Report

    @classmethod
    def from_config(cls, config: Mapping[str, Any], validate: bool = True) -> Settings:
        """From a configuration mapping; missing keys take the schema's defaults. With `validate`, the
        completed mapping is checked against the schema first (errors name every bad key)."""
        full = fill_defaults(config)
        if validate:
            validate_config(full)
        kw: dict[str, Any] = {}
        for f in fields(cls):
            value = full[f.name]
            kw[f.name] = SECTIONS[f.name](**value) if f.name in SECTIONS else value
        return cls(**kw)

    @property
    def fid_job(self) -> FidJob:
        return FidJob(self.fid.batch_size, self.fid.normalize, self.data.scale, self.samples.count,
                      self.channels_last)

    def score_job(self, part: str, battery: bool = False) -> ScoreJob:
        """The settings of score part `part` (or "table2": all of them); vae_sigma is the plain VAE's decoder σ.
        `battery`: the battery's job, whose MAP, Laplace and VAE image counts are capped at
        ood.battery_costly_count."""
        ood = self.ood
        vae = self.vae.models["vae"]["sigma"] if "vae" in self.vae.models else None
        counts = {"map_count": ood.map_count, "laplace_count": ood.laplace_count, "iwae_count": ood.iwae_count}
        cap = ood.battery_costly_count if battery else None
        if cap is not None:
            counts = {key: cap if n is None else min(n, cap) for key, n in counts.items()}
        every = {"recon_sigma": ood.recon_sigma, "map_steps": ood.map_steps, "map_lr": ood.map_lr,
                 "iwae_samples": ood.iwae_samples, "vae_sigma": vae, **counts}
        if part != "table2" and part not in SCORE_PART_KEYS:
            raise ConfigError(f"unknown score part {part!r}; use one of {', '.join(SCORE_PART_KEYS)}")
        used = every if part == "table2" else {k: every[k] for k in SCORE_PART_KEYS[part]}
        return ScoreJob(scale=self.data.scale, batch_size=ood.batch_size,
                        **{k: used[k] if k in used else None for k in every})

    def training(self, network: str, seed: int) -> TrainSettings:
        """Settings of `pae.science.train.fit` for the AE (`network` "ae") or a VAE baseline ("vae": the same
        procedure with vae.epochs, as the paper trains them). Its `trajectory()` leaves out the run-time
        knobs that do not change the result (device, channels_last, checkpoint_every, validate_every)."""
        if network not in ("ae", "vae"):
            raise ConfigError(f"network {network!r}: use 'ae' or 'vae'")
        ae = self.ae
        return TrainSettings(
            epochs=self.vae.epochs if network == "vae" else ae.epochs, batch_size=ae.batch_size, lr=ae.lr,
            lr_schedule=ae.lr_schedule, lr_decay_at=ae.lr_decay_at, lr_decay_factor=ae.lr_decay_factor,
            scale=self.data.scale, dequantize=self.data.dequantize, augmentation=ae.augmentation,
            rot_degrees=ae.rot_degrees, seed=int(seed), precision=self.precision, device=self.device,
            channels_last=self.channels_last, checkpoint_every=ae.checkpoint_every,
            validate_every=ae.validate_every,
        )
