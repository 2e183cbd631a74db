"""Public API: fit, sample and score a Probabilistic Auto-Encoder (Böhm & Seljak 2020) on your own images.

    import numpy as np
    import pae

    model = pae.PAE(latent_dim=32).fit(x_train)        # uint8 (N, C, H, W) / (N, H, W), or floats in [0, 1]
    images = model.sample(64, temperature=1.0, seed=0)  # float32 (64, C, H, W) in [0, 1]
    scores = model.score(x_test, kind="density")        # higher = more in-distribution
    model.save("runs/mine"); model = pae.load("runs/mine")

The two stages are the library's own: the auto-encoder is trained by `pae.science.train.fit` on Eq. 2, the flow by
`pae.science.flows.train_flow` on the encoded training set (Eq. 4-5), sampling is `pae.science.sampling` (Eq. 6) and the
out-of-distribution scores are `pae.science.scores.image_scores` (Eq. 5, Eq. 12, Eq. 12 with MAP, reconstruction
error). Every setting defaults to the paper's value as written in the repository's config/config.yaml
(`pae.config.paper_defaults`, the same file the workflow reads); pass a mapping of config keys to change
some, e.g. ``PAE(ae={"epochs": 100}, flow={"epochs": 50})``. One ``device`` serves both stages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pae.config import ConfigError, deep_merge, paper_defaults, prepare_config
from pae.science.images import ImageError, check_images, to_unit_float
from pae.science.specs import TrainSettings
from pae.science.splits import random_split
from pae.settings import Settings

FORMAT = "pae-api-v1"
INFO_FILE = "model.json"
VALID_FRACTION = 1 / 6  # the paper's split: 10k of F-MNIST's 60k training images validate
SECTIONS = ("ae", "flow", "data", "ood", "vae")
API_FIX = "Fix the value passed to the model (ae=, flow=, data=, ood=, objective=: the keys of config/config.yaml)."


# --------------------------------------------------------------------------------------------------------
# Inputs and outputs


def as_images(x: Any, name: str = "x", net_shape: bool = True) -> np.ndarray:
    """Check and convert images to uint8 (N, C, H, W) (the pipeline's storage format).

    Accepted: a path (an image folder, one image file, an .npz with x / x_test or one array, an .npy:
    `pae.files.user_images.read_user_images`), or uint8 pixels 0..255 or floats in [0, 1] (quantised to 8 bits: round(255·x); the model
    dequantises its training inputs as in the paper), shaped (N, C, H, W) or (N, H, W), with C 1 or 3 and
    H and W divisible by 4 (the infoGAN nets halve them twice; not checked with ``net_shape=False``); numpy
    arrays and torch tensors. Anything else raises one ``pae.science.images.ImageError`` (a ValueError) that names
    the problem and the fix (`pae.science.images.check_images`).
    """
    if isinstance(x, (str, Path)):
        from pae.files.user_images import read_user_images

        return read_user_images(x, net_shape=net_shape)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        x = np.asarray(x)
    except Exception as err:  # noqa: BLE001 - ragged lists and the like
        raise ImageError(f"{name}: cannot be read as an array ({err}); pass a numpy array (N, C, H, W)") from err
    return check_images(x, name, net_shape=net_shape)


def _split(x: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
    if len(x) < 2:
        raise ValueError(f"x_train: need at least 2 images to hold out a validation part, got {len(x)}")
    n_valid = min(len(x) - 1, max(1, round(len(x) * valid_fraction)))
    train, valid, _ = random_split(len(x), n_valid, 0, seed)
    return x[train], x[valid]


_LOG = logging.getLogger("pae.api")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


# --------------------------------------------------------------------------------------------------------
# Shared behaviour


def resolve_settings(device: str = "auto", **sections: Mapping[str, Any] | None) -> dict[str, Any]:
    """The paper defaults (config/config.yaml) with per-section overrides, typed and validated by the schema.

    ``resolve_settings(ae={"epochs": 10})["ae"]["lr"] == 0.001``. Unknown keys and bad values raise
    ConfigError naming the key (e.g. ``config key 'ae.lr': -1 is less than or equal to 0``).
    """
    full = paper_defaults()
    for section, values in sections.items():
        if values is None:
            continue
        if section not in full:
            raise ConfigError(f"unknown settings section {section!r}; use one of {', '.join(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{section}= must be a mapping of config keys, e.g. {section}={{'epochs': 10}}; got {values!r}"
            )
        full[section] = deep_merge(full[section], values)
    full["device"] = device
    prepare_config(full, fix=API_FIX)
    return full


class _ImageModel:
    """Common part of PAE and the VAE baselines: settings, device, image checks, decode, save/load."""

    model_name: ClassVar[str] = ""

    def __init__(self, latent_dim: int, settings: dict[str, Any], seed: int, verbose: bool,
                 progress: bool | None = None) -> None:
        from pae.science.runtime import resolve_device

        if not isinstance(latent_dim, (int, np.integer)) or isinstance(latent_dim, bool) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer (the paper uses 4 to 128), got {latent_dim!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.latent_dim = int(latent_dim)
        self.settings = settings
        self.seed = int(seed)
        self.verbose = bool(verbose)
        self.progress = self.verbose if progress is None else bool(progress)  # tqdm bars of the training loop
        self.device = resolve_device(settings["device"])
        if self.device.type == "cuda":
            import torch

            index = self.device.index or 0
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise ValueError(
                    f"device {settings['device']!r}: no such CUDA device is visible "
                    f"({torch.cuda.device_count()} found); use 'auto' or 'cpu'"
                )
        self.net: Any = None  # the trained auto-encoder / VAE network
        self.image_shape: tuple[int, int, int] | None = None
        self.history: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return float(self.settings["data"]["scale"])

    def _log(self, message: str) -> None:
        """An INFO record of logger "pae.api"; with verbose also written to stderr (for applications that set up
        `logging` themselves: verbose=False, and the records reach their handlers)."""
        if self.verbose:
            from pae.files.io import library_log_handler

            with library_log_handler(sys.stderr):
                _LOG.info(message)
        else:
            _LOG.info(message)

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RuntimeError(f"this {type(self).__name__} is not trained yet; call fit(x_train) or load(path)")

    def _images(self, x: Any, name: str = "x") -> np.ndarray:
        x = as_images(x, name)
        if self.image_shape is not None and tuple(x.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"{name}: images of shape {tuple(x.shape[1:])} do not fit this model, trained on "
                f"{tuple(self.image_shape)} (C, H, W); resize them or train a model on this shape"
            )
        return x

    @property
    def typed(self) -> Settings:
        """The model's settings as the workflow types them (`pae.settings.Settings`)."""
        return Settings.from_config(self.settings, validate=False)

    def _training(self) -> TrainSettings:
        """The AE's training settings (`ae` section; a VAE's ae.epochs defaults to vae.epochs) on this device."""
        return dataclasses.replace(self.typed.training("ae", self.seed), device=str(self.device))

    def _prepare(self, x_train: Any, x_valid: Any, valid_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        xt = as_images(x_train, "x_train")
        if x_valid is None:
            xt, xv = _split(xt, valid_fraction, int(self.settings["data"]["split_seed"]))
            self._log(f"held out {len(xv)} of {len(xt) + len(xv)} images for validation")
        else:
            xv = as_images(x_valid, "x_valid")
            if xv.shape[1:] != xt.shape[1:]:
                raise ValueError(f"x_valid: images of shape {xv.shape[1:]} differ from x_train's {xt.shape[1:]}")
        batch = int(self.settings["ae"]["batch_size"])
        if len(xt) < batch:
            raise ValueError(
                f"x_train: {len(xt)} training images are fewer than one batch of {batch}; pass more images "
                f"or a smaller batch, e.g. ae={{'batch_size': {max(1, len(xt) // 4)}}}"
            )
        self.image_shape = tuple(int(s) for s in xt.shape[1:])  # type: ignore[assignment]
        return xt, xv

    def _train(self, build: Any, loss_fn: Any, xt: np.ndarray, xv: np.ndarray) -> tuple[Any, list[dict]]:
        from pae.science.train import train_model

        return train_model(build, loss_fn, xt, xv, self._training(), None, self._log, progress=self.progress)

    # -- common public methods ---------------------------------------------------------------------------
    def encode(self, x: Any, batch_size: int = 500) -> np.ndarray:
        """Encoder means z = f_φ(x) (Eq. 1), float32 (N, K); eval mode, no dequantisation."""
        from pae.science.train import encode

        self._check_fitted()
        return encode(self.net, self._images(x), self.scale, batch_size, self.device)

    def decode(self, z: Any, batch_size: int = 500) -> np.ndarray:
        """Images g_θ(z) (Eq. 1) of latents (N, K), as float32 (N, C, H, W) in [0, 1]."""
        import torch

        self._check_fitted()
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected latents of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        self.net.eval()
        with torch.no_grad():
            parts = [self.net.decode(z[i : i + batch_size].to(self.device)).float().cpu()
                     for i in range(0, len(z), batch_size)]
        return to_unit_float(torch.cat(parts).numpy(), self.scale)

    def reconstruct(self, x: Any, batch_size: int = 500) -> np.ndarray:
        """g_θ(f_φ(x)) with the encoder mean, float32 (N, C, H, W) in [0, 1]."""
        from pae.science.sampling import reconstructions

        self._check_fitted()
        return to_unit_float(reconstructions(self.net, self._images(x), self.scale, batch_size), self.scale)

    def _info(self) -> dict[str, Any]:
        from pae import __version__

        return {
            "format": FORMAT, "model": self.model_name, "pae_version": __version__,
            "latent_dim": self.latent_dim, "image_shape": list(self.image_shape or ()), "seed": self.seed,
            "settings": {k: self.settings[k] for k in (*SECTIONS, "precision", "channels_last")},
            "history": self.history,
        }

    def _write_info(self, folder: Path, extra: Mapping[str, Any] | None = None) -> None:
        from pae.files.io import save_json

        save_json(folder / INFO_FILE, _jsonable({**self._info(), **(extra or {})}))


def _read_info(folder: Path) -> dict[str, Any] | None:
    path = folder / INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is unreadable ({err}); save the model again") from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by pae's save(); save the model again")
    missing = sorted({"model", "seed", "settings", "history"} - set(info))
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; it is incomplete: save the model again")
    return info


def _saved(info: dict[str, Any] | None, net_meta: Mapping[str, Any], accepted: tuple[str, ...]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor keywords, training history) of a saved model: the settings sections of its model.json
    that the class takes (`accepted`) and its seed; for a workflow run folder (no model.json) the paper's
    defaults at the data scale its network file records (the training settings in its meta), seed 0 and no
    history."""
    if info is None:
        return {"data": {"scale": float(net_meta["settings"]["scale"])}, "seed": 0}, {}
    sections = {k: v for k, v in info["settings"].items() if k in accepted}
    return {**sections, "seed": int(info["seed"])}, info["history"]


def _model_folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; pass the folder given to save() / pae fit --out")
    return folder


# --------------------------------------------------------------------------------------------------------
# Posterior analysis results


@dataclass
class PosteriorImages:
    """What `PAE.posterior` returns. Images are float32 in [0, 1], (N, C, H, W) unless noted:

    ``map``      g(b⁻¹(u*)) at the best mode u* (the MAP reconstruction)
    ``samples``  (N, n, C, H, W) decoded posterior samples g(z), z = b⁻¹(u), u from the Laplace mixture
    ``mean``     their mean
    ``std``      uncertainty map: std of the posterior-predictive g(z) + σ·ε (σ of Eq. 8), pixel units of [0, 1]
    ``lo, hi``   the central `level` interval of that predictive, per pixel (clipped to [0, 1])
    ``hidden``   bool, the pixels that were filled in
    ``result``   the `pae.science.posterior.PosteriorResult` (starts, modes, weights, u- and z-samples, Newton
                 decrements) in model units
    """

    map: np.ndarray
    samples: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    hidden: np.ndarray
    level: float
    space: str
    result: Any


# --------------------------------------------------------------------------------------------------------
# PAE


class PAE(_ImageModel):
    """Probabilistic Auto-Encoder: a deterministic auto-encoder (Eq. 1-2) plus a normalizing flow on its
    latent space (Eq. 4-5); samples by Eq. 6, densities by Eq. 5, outlier scores by Eq. 12.

    Parameters: ``latent_dim`` K (default 32, the K of the paper's Table 1 and Fig. 2, config key
    fid.table1_K); ``ae``, ``flow``, ``data``, ``ood``: overrides of those config/config.yaml sections (defaults:
    the paper's settings, e.g. 500 AE epochs and 100 flow epochs); ``device``: "auto" (CUDA when present),
    "cpu", "cuda" or "cuda:N", used by both stages; ``seed``: weight initialisation, batch order,
    dequantisation noise; ``verbose``: messages on stderr (they are always INFO records of the ``logging``
    logger "pae.api" too: configure logging and pass verbose=False to route them yourself); ``progress``: the
    training loop's progress bars (default: as verbose).
    """

    model_name = "pae"

    def __init__(
        self,
        latent_dim: int | None = None,
        *,
        ae: Mapping[str, Any] | None = None,
        flow: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        ood: Mapping[str, Any] | None = None,
        device: str = "auto",
        seed: int = 0,
        verbose: bool = True,
        progress: bool | None = None,
    ) -> None:
        settings = resolve_settings(device, ae=ae, flow=flow, data=data, ood=ood)
        K = settings["fid"]["table1_K"] if latent_dim is None else latent_dim
        super().__init__(K, settings, seed, verbose, progress)
        self.flow: Any = None
        self.sigma: np.ndarray | None = None  # Eq. 8 σ_i (C, H, W) on the validation images

    @property
    def ae(self) -> Any:
        """The trained `pae.science.nets.AutoEncoder`."""
        return self.net

    def fit(self, x_train: Any, x_valid: Any = None, valid_fraction: float = VALID_FRACTION) -> PAE:
        """Train the auto-encoder on Eq. 2, then the flow on its encoded training set (Eq. 4-5).

        x_train, x_valid: uint8 0..255 or float [0, 1] images (N, C, H, W) or (N, H, W). Without x_valid a
        fraction `valid_fraction` (the paper's 1/6) of x_train, drawn with data.split_seed, validates: it
        gives the AE's validation MSE, the flow's best epoch and the pixel-wise σ of Eq. 8. Returns self.
        """
        from pae.science.flows import fit_flow
        from pae.science.nets import AutoEncoder
        from pae.science.train import ae_loss, encode_splits

        xt, xv = self._prepare(x_train, x_valid, valid_fraction)
        S, K = self.typed, self.latent_dim
        t0 = time.perf_counter()
        self._log(f"AutoEncoder K={K} on {len(xt)} images {self.image_shape}, {S.ae.epochs} epochs, device {self.device}")
        model, ae_history = self._train(lambda shape: AutoEncoder(K, shape, **S.ae.net(K)), ae_loss, xt, xv)
        self.net = model.eval()
        latents, self.sigma, _ = encode_splits(model, {"train": xt, "valid": xv}, self.scale, 500, self.device)
        flow, flow_history = fit_flow(latents["z_train"], latents["z_valid"], S.flow.architecture(K), S.flow.training,
                                      self.seed, self.device, log=self._log)
        self.flow = flow.eval()
        self.history = {"ae": ae_history, "flow": flow_history, "seconds": time.perf_counter() - t0}
        return self

    def _check_flow(self, what: str = "this") -> None:
        self._check_fitted()
        if self.flow is None:
            raise RuntimeError(f"{what} needs the flow, and this PAE has none (an auto-encoder-only run folder "
                               "without flow.pt): encode, decode, reconstruct and score(kind='recon') work; "
                               "for the rest call fit(x_train) or load a folder with flow.pt")

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 500) -> np.ndarray:
        """n images x = g_θ(b⁻¹(u)), u ~ N(0, T²I) (Eq. 6; the paper uses T = 1), float32 (n, C, H, W) in
        [0, 1]. The noise comes from a CPU generator seeded with `seed`: same seed, same images."""
        from pae.science.sampling import sample_pae

        self._check_flow("sample()")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        x = sample_pae(self.net, self.flow, int(n), int(seed), float(temperature), batch_size)
        return to_unit_float(x, self.scale)

    def log_density(self, x: Any) -> np.ndarray:
        """log p_γ(z) at z = f_φ(x), the encoder mean (Eq. 5; Table 2's "PAE density"), float64 (N,), nats."""
        return self.score(x, kind="density")

    def score(
        self,
        x: Any,
        kind: str = "density",
        map_steps: int | None = None,
        map_lr: float | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Out-of-distribution score per image, float64 (N,), higher = more in-distribution (paper Sec. 2.2):

        ``density``   log p_γ(f_φ(x)) (Eq. 5)
        ``recon``     −Σ_i (x_i − g_θ(f_φ(x))_i)² (AE reconstruction error; weighted by σ_i² of Eq. 8 when
                      ood.recon_sigma is "pixelwise")
        ``eq12``      Eq. 12 at z = f_φ(x), with the pixel-wise σ of Eq. 8
        ``eq12_map``  Eq. 12 at the MAP z' of Eq. 9 (``map_steps`` Adam steps of rate ``map_lr`` from
                      f_φ(x); defaults ood.map_steps, ood.map_lr)
        ``laplace``   the Laplace estimate of log p(x) (Eq. 11, Gauss-Newton Hessian of Eq. 10) at that MAP z'

        Every kind but ``recon`` needs the flow; an auto-encoder-only model scores ``recon`` only.
        """
        from pae.science.density import floor_sigma, quantization_sigma
        from pae.science.scores import SCORES, image_scores

        if kind not in SCORES:
            raise ValueError(f"unknown score kind {kind!r}; use one of {', '.join(SCORES)}")
        if kind == "recon":
            self._check_fitted()
        else:
            self._check_flow(f"score(kind={kind!r})")
        x = self._images(x)
        ood = self.settings["ood"]
        sigma = None
        if kind in ("eq12", "eq12_map", "laplace") or (kind == "recon" and ood["recon_sigma"] == "pixelwise"):
            if self.sigma is None:
                raise RuntimeError(f"score {kind!r} needs the pixel-wise σ of Eq. 8, which this model lacks "
                                   "(no ae_stats.npz beside ae.pt); refit it, or use kind='density'")
            sigma = floor_sigma(self.sigma, quantization_sigma(self.scale))
        result = image_scores(
            self.net, x, (kind,), self.scale, self.flow, sigma, ood["recon_sigma"],
            ood["map_steps"] if map_steps is None else int(map_steps),
            ood["map_lr"] if map_lr is None else float(map_lr),
            int(batch_size or ood["batch_size"]),
            log=self._log if kind in ("eq12_map", "laplace") and self.verbose else None,
        )
        return result[kind]

    def posterior(
        self,
        x: Any,
        mask: Any = None,
        noise_sigma: float = 0.0,
        space: str = "u",
        settings: Mapping[str, Any] | None = None,
        level: float = 0.9,
        seed: int = 0,
    ) -> PosteriorImages:
        """Inpaint and/or denoise images with uncertainty: the posterior of Sec. 2.3 (Eq. 13-14) given corrupted
        images x̃ = M x + n, by `pae.science.posterior.analyse_corrupted` (what the workflow's posterior rule runs).

        x: the corrupted images (uint8 0..255 or float [0, 1], (N, C, H, W) / (N, H, W), or a path); their
        hidden pixels are ignored. mask: pixels to fill in (True / nonzero = unknown), an array (H, W), (C, H, W)
        or (N, C, H, W), or "left:K" / "right:K" (the first / last K columns), "random:F" (a share F of the
        pixels, drawn with `seed`); None = every pixel observed (denoising). noise_sigma: std of the Gaussian
        noise n in pixel units of [0, 1] (0 for clean inputs). space: "u" (the paper's posterior in the flow's
        latent space) or "z" (N(0, I) prior on z, no flow; the authors' code). settings: overrides of the config
        section posterior (random_starts, encoder_start, lr_stages, steps_per_stage, anneal_max, merge_distance,
        n_samples, batch_size; the paper's defaults run 4 × 10 000 Adam steps). level: of the per-pixel
        intervals. Returns a `PosteriorImages` (MAP, samples, mean, uncertainty map, interval; images in [0, 1]).
        """
        import torch

        from pae.science.density import floor_sigma, quantization_sigma
        from pae.science.images import to_model_input
        from pae.science.posterior import (
            SPACES,
            PosteriorModel,
            PosteriorSettings,
            analyse_corrupted,
            hidden_pixels,
        )
        from pae.science.posterior_metrics import predictive_summary

        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES} (u: flow prior, the paper's; z: N(0, I) prior), got {space!r}")
        if space == "u":
            self._check_flow("posterior(space='u')")
        else:
            self._check_fitted()
        if self.sigma is None:
            raise RuntimeError("posterior() needs the pixel-wise σ of Eq. 8, which this model lacks (no ae_stats.npz "
                               "beside ae.pt); refit it")
        if not 0 < float(level) < 1:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        if not float(noise_sigma) >= 0:
            raise ValueError(f"noise_sigma must be >= 0 (pixel units of [0, 1]), got {noise_sigma!r}")
        cfg = dict(self.settings["posterior"])
        unknown = sorted(set(settings or {}) - set(PosteriorSettings.__dataclass_fields__))
        if unknown:
            raise ValueError(f"settings: unknown key(s) {unknown}; use {', '.join(PosteriorSettings.__dataclass_fields__)}")
        st = PosteriorSettings.from_config({**cfg, **dict(settings or {})})
        x8 = self._images(x)
        hidden = hidden_pixels(mask, x8.shape, seed)
        x_tilde = to_model_input(x8, scale=self.scale, dequantize=False).to(self.device)
        observed = torch.as_tensor(~hidden, device=self.device)
        x_tilde = torch.where(observed, x_tilde, torch.zeros_like(x_tilde))
        sigma = floor_sigma(self.sigma, quantization_sigma(self.scale)).to(self.device)
        noise = float(noise_sigma) * 255.0 / self.scale  # [0, 1] pixel units → model units x/scale − 0.5
        model = PosteriorModel(decoder=self.net.decoder, flow=self.flow if space == "u" else None,
                               encoder=self.net.encode, latent_dim=self.latent_dim)
        self._log(f"posterior ({space}-space) of {len(x8)} images, {int(hidden.sum())} hidden pixels, noise σ "
                  f"{noise_sigma}, {st.n_starts} starts, Adam steps {st.steps}")
        res = analyse_corrupted(x_tilde, observed, sigma, noise, model, st, torch.Generator().manual_seed(int(seed)),
                                log=self._log if self.verbose else None)
        with torch.no_grad():
            zs = res.samples_z.reshape(-1, self.latent_dim)
            decoded = torch.cat([self.net.decode(zs[i : i + 2048]).float().cpu() for i in range(0, len(zs), 2048)])
        decoded = decoded.numpy().reshape(len(x8), st.n_samples, *x8.shape[1:])
        summary = predictive_summary(decoded, sigma.cpu().numpy(), float(level))
        unit = self.scale / 255.0  # model units → [0, 1] pixel units
        return PosteriorImages(
            map=to_unit_float(res.map_x.float().cpu().numpy(), self.scale),
            samples=to_unit_float(decoded, self.scale),
            mean=to_unit_float(summary["mean"], self.scale),
            std=(summary["std"] * unit).astype(np.float32),
            lo=to_unit_float(summary["lo"], self.scale), hi=to_unit_float(summary["hi"], self.scale),
            hidden=hidden, level=float(level), space=space, result=res,
        )

    def save(self, path: str | Path) -> Path:
        """Write the model into folder `path` (the workflow's run layout: ae.pt, flow.pt, ae_stats.npz with
        the Eq. 8 σ) plus model.json (settings, seed, training history); returns the folder."""
        from pae.files.artifacts import save_flow, save_model
        from pae.files.io import save_npz

        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(folder / "ae.pt", self.net, {"latent_dim": self.latent_dim,
                                                "settings": dataclasses.asdict(self._training())})
        if self.flow is not None:
            save_flow(folder / "flow.pt", self.flow, {"seed": self.seed})
        if self.sigma is not None:
            save_npz(folder / "ae_stats.npz", sigma=self.sigma)
        self._write_info(folder)
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", verbose: bool = True) -> PAE:
        """A PAE saved by `save`, or a workflow run folder (results/<dataset>/K<K>/seed<s>: ae.pt, flow.pt,
        ae_stats.npz), on `device`. A folder with ae.pt but no flow.pt (an auto-encoder trained without a
        flow) loads as an auto-encoder-only model: encode, decode, reconstruct, score(kind="recon")."""
        from pae.files.artifacts import load_flow, load_model
        from pae.science.nets import VAE, AutoEncoder

        folder = _model_folder(path)
        if not (folder / "ae.pt").is_file():
            raise FileNotFoundError(f"{folder} has no ae.pt; it is not a PAE saved by save() or pae fit")
        info = _read_info(folder)
        if info is not None and info.get("model") != cls.model_name:
            raise ValueError(f"{folder} holds a {info.get('model')!r} model, not a PAE; use pae.load({str(folder)!r})")
        net, meta = load_model(folder / "ae.pt", "cpu")
        if not isinstance(net, AutoEncoder) or isinstance(net, VAE):
            raise ValueError(f"{folder / 'ae.pt'} holds a {type(net).__name__}, not the PAE's AutoEncoder")
        kwargs, history = _saved(info, meta, ("ae", "flow", "data", "ood"))
        model = cls(net.latent_dim, **kwargs, device=device, verbose=verbose)
        model.net = net.to(model.device).eval()
        if not (folder / "flow.pt").is_file():
            model._log(f"{folder} has no flow.pt: loaded the auto-encoder only (no sampling or density scores)")
        else:
            model.flow, _ = load_flow(folder / "flow.pt", model.device)
        if model.flow is not None and model.flow.K != net.latent_dim:
            raise ValueError(f"{folder}: flow.pt has K={model.flow.K}, ae.pt K={net.latent_dim}; they are not one PAE")
        model.image_shape = tuple(net.image_shape)
        model.history = history
        stats = folder / "ae_stats.npz"
        if stats.is_file():
            from pae.files.artifacts import load_sigma

            model.sigma = load_sigma(stats)
        return model


# --------------------------------------------------------------------------------------------------------
# VAE baselines


class VAE(_ImageModel):
    """VAE baseline (paper Sec. 4, Eq. 15 with β = 1, C = 0) on the PAE's infoGAN nets, trained with the
    AE's procedure (pae.science.train.fit). Same shape as `PAE`: fit, encode, decode, sample, score, save, load.

    ``objective``: overrides of vae.models.<name> (beta, capacity, capacity_steps, sigma); ``ae``: the
    training settings (default: the AE's, with vae.epochs epochs); latent_dim defaults to vae.latent_dim.
    """

    model_name = "vae"

    def __init__(
        self,
        latent_dim: int | None = None,
        *,
        objective: Mapping[str, Any] | None = None,
        ae: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        ood: Mapping[str, Any] | None = None,
        device: str = "auto",
        seed: int = 0,
        verbose: bool = True,
        progress: bool | None = None,
    ) -> None:
        base = paper_defaults()
        vae = {"models": {self.model_name: dict(objective or {})}}
        ae_cfg = {"epochs": base["vae"]["epochs"], **dict(ae or {})}
        settings = resolve_settings(device, ae=ae_cfg, data=data, ood=ood, vae=vae)
        K = settings["vae"]["latent_dim"] if latent_dim is None else latent_dim
        super().__init__(K, settings, seed, verbose, progress)

    @property
    def objective(self) -> dict[str, Any]:
        """beta, capacity, capacity_steps, sigma of Eq. 15 (with the capacity term)."""
        return dict(self.settings["vae"]["models"][self.model_name])

    def fit(self, x_train: Any, x_valid: Any = None, valid_fraction: float = VALID_FRACTION) -> VAE:
        """Train on (the negative of) Eq. 15 with one reparameterised sample per image; returns self."""
        from pae.science.nets import VAE as VAENet
        from pae.science.vae import beta_vae_loss

        xt, xv = self._prepare(x_train, x_valid, valid_fraction)
        o = self.objective
        loss_fn = beta_vae_loss(float(o["beta"]), float(o["capacity"]), int(o["capacity_steps"]), float(o["sigma"]))
        layers, K = self.typed.ae.layers, self.latent_dim
        self._log(f"{type(self).__name__} K={K} {o}, device {self.device}")
        t0 = time.perf_counter()
        model, history = self._train(lambda shape: VAENet(K, shape, **layers), loss_fn, xt, xv)
        self.history = {"vae": history, "seconds": time.perf_counter() - t0}
        self.net = model.eval()
        return self

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 500) -> np.ndarray:
        """n images g_θ(z), z ~ N(0, T²I) (the prior of Eq. 15 at T = 1), float32 (n, C, H, W) in [0, 1]."""
        from pae.science.sampling import sample_vae

        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if temperature == 1.0:
            return to_unit_float(sample_vae(self.net, int(n), int(seed), batch_size), self.scale)
        import torch

        z = torch.randn(int(n), self.latent_dim, generator=torch.Generator().manual_seed(int(seed)))
        return self.decode(z.numpy() * float(temperature), batch_size)

    def score(self, x: Any, kind: str = "elbo", samples: int | None = None, seed: int = 0,
              batch_size: int | None = None) -> np.ndarray:
        """Per-image score, float64 (N,), higher = more in-distribution: ``elbo`` (Eq. 15 with β = 1 and the
        objective's σ, averaged over `samples` draws of q(z|x)), ``iwae`` (importance-weighted bound with
        `samples` draws; Burda et al. 2016) or ``recon`` (−Σ_i (x_i − g(μ(x))_i)²). samples defaults to
        ood.iwae_samples (the paper's k = 100)."""
        import torch

        kinds = ("elbo", "iwae", "recon")
        if kind not in kinds:
            raise ValueError(f"unknown score kind {kind!r}; use one of {', '.join(kinds)}")
        self._check_fitted()
        x = self._images(x)
        ood = self.settings["ood"]
        bs = int(batch_size or ood["batch_size"])
        if kind == "recon":
            from pae.science.scores import image_scores

            return image_scores(self.net, x, ("recon",), self.scale, recon_sigma="unweighted", batch_size=bs,
                                log=None)["recon"]  # a VAE has no Eq. 8 σ
        from pae.science.images import to_model_input
        from pae.science.vae import vae_scores

        k = int(samples if samples is not None else self.typed.ood.iwae_samples)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        out = []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, len(x), bs):
                xb = to_model_input(x[i : i + bs], self.scale).to(self.device)
                out.append(vae_scores(self.net, xb, float(self.objective["sigma"]), k, gen)[kind].cpu())
        return torch.cat(out).double().numpy()

    def save(self, path: str | Path) -> Path:
        """Write <name>.pt (the workflow's file name) and model.json into folder `path`; returns it."""
        from pae.files.artifacts import save_model

        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(folder / f"{self.model_name}.pt", self.net,
                   {"latent_dim": self.latent_dim, "objective": self.objective,
                    "settings": dataclasses.asdict(self._training())})
        self._write_info(folder)
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", verbose: bool = True) -> VAE:
        """A model saved by `save`, or the <name>.pt of a workflow run folder, on `device`."""
        from pae.files.artifacts import load_model
        from pae.science.nets import VAE as VAENet

        folder = _model_folder(path)
        file = folder / f"{cls.model_name}.pt"
        if not file.is_file():
            raise FileNotFoundError(f"{folder} has no {file.name}; it is not a {cls.__name__} saved by save() or pae fit")
        info = _read_info(folder)
        net, meta = load_model(file, "cpu")
        if not isinstance(net, VAENet):
            raise ValueError(f"{file} holds a {type(net).__name__}, not a VAE")
        kwargs, history = _saved(info, meta, ("ae", "data", "ood"))
        objective = meta["objective"] if info is None else info["settings"]["vae"]["models"][cls.model_name]
        model = cls(net.latent_dim, objective=objective, **kwargs, device=device, verbose=verbose)
        model.net = net.to(model.device).eval()
        model.image_shape = tuple(net.image_shape)
        model.history = history
        return model


class BetaVAE(VAE):
    """β-VAE baseline (Eq. 15 with the capacity term of Burgess et al.; defaults vae.models.betavae:
    β = 100, C = 15 reached linearly over 100 000 steps, σ = 0.1)."""

    model_name = "betavae"


MODELS: dict[str, type[_ImageModel]] = {"pae": PAE, "vae": VAE, "betavae": BetaVAE}


def load(path: str | Path, device: str = "auto", verbose: bool = True) -> PAE | VAE:
    """Load whatever model folder `path` holds (PAE, VAE or BetaVAE, by its model.json; a workflow run
    folder without one loads as a PAE)."""
    folder = _model_folder(path)
    info = _read_info(folder)
    name = "pae" if info is None else info["model"]
    if name not in MODELS:
        raise ValueError(f"{folder / INFO_FILE}: unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name].load(folder, device=device, verbose=verbose)  # type: ignore[attr-defined]

