"""Fréchet distances (FID) of samples and reconstructions, and reconstruction errors (paper Sec. 4.1, Table 1).

FID (Heusel et al. 2017) between two image sets = Fréchet distance of Gaussians fitted to their features:

    d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}).

Two feature extractors:

* ``inception``: pytorch-fid's port of the TF Inception graph the original used (pool3, 2048-d). Protocol of the
  original code (D9): grayscale copied to 3 channels, each image min–max normalised to [0, 1]
  (config ``fid.normalize``), bilinear resize to 299×299 inside pytorch-fid. The weights are never replaced by
  anything else: when they cannot be had, the result is the text "unavailable: <reason>".
* ``domain``: the penultimate layer of a small CNN classifier trained here (pae.classifier); works offline. Its
  inputs are the models' evaluation inputs x/scale − 0.5 (no min–max normalisation).

torch is imported lazily so that the Snakefile can resolve the weights without loading it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pae import io
from pae.data import file_digest

if TYPE_CHECKING:
    import torch

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name carries the sha256 prefix
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILENAME}"
UNAVAILABLE = "unavailable"
EXTRACTORS = ("domain", "inception")  # order of the columns
ERROR_KEYS = ("mse_per_pixel", "rms_per_pixel", "mae_per_pixel", "mean_image_rms", "mean_pixel_sigma")


class InceptionUnavailable(RuntimeError):
    """The Inception weights cannot be had (no file and no download); the message is the reason."""


# ----------------------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------------------
def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix via eigh."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (the FID formula above).

    tr((Σ₁Σ₂)^{1/2}) is computed as Σᵢ √λᵢ of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}, which has the same
    eigenvalues as Σ₁Σ₂: two `eigh` calls instead of scipy's `sqrtm` (same value to ~1e-11, 5–20× faster, and
    no complex parts or singular-matrix failures for rank-deficient covariances from few samples).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf: the features are not finite")
    r1 = _sqrt_psd(s1)
    lam = np.linalg.eigvalsh(r1 @ ((s2 + s2.T) / 2) @ r1)
    tr_covmean = float(np.sum(np.sqrt(np.clip(lam, 0, None))))
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean, 0.0))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.cov(f, rowvar=False)


# ----------------------------------------------------------------------------------------------------------
# Feature extractors
# ----------------------------------------------------------------------------------------------------------
def check_images(x: np.ndarray, source: str) -> np.ndarray:
    """uint8 (N, C, H, W) with C in {1, 3}, else a clear error naming the source."""
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) < 2:
        raise ValueError(f"{source}: expected >= 2 uint8 images (N, C, H, W) with C 1 or 3, got {x.dtype} {x.shape}")
    return x


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
    """Penultimate-layer features of the domain classifier (pae.classifier) on x/scale − 0.5."""

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
    print(f"  {extractor.name}: features of {len(images)} images in {time.time() - t0:.1f} s")
    return stats


# ----------------------------------------------------------------------------------------------------------
# Inception weights
# ----------------------------------------------------------------------------------------------------------
def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def inception_weights_source(weights: str | None, allow_download: bool = False) -> str:
    """Where the Inception weights come from, decided once when the workflow is parsed (a rule param).

    Returns the configured path (fid.inception_weights; checked when used), pytorch-fid's cache file when it
    exists, "download" when fid.inception_download allows fetching it, else "unavailable: <reason>".
    """
    if weights:
        return str(Path(weights).expanduser())
    cached = torch_hub_dir() / "checkpoints" / INCEPTION_FILENAME
    if cached.is_file():
        return str(cached)
    if allow_download:
        return "download"
    print(f"Inception weights: {cached} is missing, fid.inception_weights is null and fid.inception_download is "
          "false: Inception FIDs will read 'unavailable'", file=sys.stderr)
    return f"{UNAVAILABLE}: no Inception weights (offline)"


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _download_weights() -> Path:
    """Fetch the weights into torch's hub cache (only with fid.inception_download: true); 30 s socket timeout."""
    import torch

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any network failure means "unavailable", with the reason
        print(f"download of {INCEPTION_URL} failed: {type(err).__name__}: {err}")
        raise InceptionUnavailable(f"weights download failed ({type(err).__name__})") from err
    finally:
        socket.setdefaulttimeout(old)
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME




def load_inception(source: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """pytorch-fid's InceptionV3 (pool3 block, resize to 299, input [0,1]) with weights from `source`.

    `source` as returned by inception_weights_source. Raises InceptionUnavailable for "unavailable: …" and
    failed downloads; FileNotFoundError / ValueError (naming the file and the fix) for a missing or wrong file.
    Returns the network in eval mode and provenance (weights path, sha256, whether it is pytorch-fid's file).
    """
    import pytorch_fid.inception as pfi

    if source.startswith(UNAVAILABLE):
        raise InceptionUnavailable(source.split(":", 1)[1].strip())
    path = _download_weights() if source == "download" else Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights {path} do not exist: fix config key 'fid.inception_weights' "
                                f"(a path to {INCEPTION_FILENAME}) or set it to null")
    try:
        state = _read_state_dict(path)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read Inception weights {path} ({err}); replace the file") from err
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state  # pytorch-fid has no path option
    try:
        net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold pytorch-fid's FID Inception weights ({err})") from err
    finally:
        pfi.load_state_dict_from_url = original
    sha = file_digest(path)
    info = {"weights": str(path), "sha256": sha, "matches_pytorch_fid": sha.startswith(INCEPTION_SHA256_PREFIX)}
    if not info["matches_pytorch_fid"]:
        print(f"warning: {path} is not pytorch-fid's file (sha256 {sha[:8]}… ≠ {INCEPTION_SHA256_PREFIX}…): "
              "Inception FIDs are not comparable with the paper's")
    return net.to(device).eval(), info


def build_extractors(
    classifier_path: str | Path | None,
    inception_source: str | None,
    normalize: str = "minmax",
    scale: float = 255,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> tuple[dict[str, FeatureExtractor], dict[str, str], dict[str, dict[str, Any]]]:
    """Extractors that can run, a status per extractor name ("ok" or "unavailable: …") and provenance."""
    extractors: dict[str, FeatureExtractor] = {}
    status: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    if classifier_path is not None:
        from pae.classifier import load_classifier

        clf, meta = load_classifier(classifier_path, device)
        extractors["domain"], status["domain"] = DomainExtractor(clf, scale), "ok"
        info["domain"] = {"classifier": str(classifier_path), "feature_dim": extractors["domain"].dim,
                          "classifier_test_accuracy": meta.get("test_accuracy")}
    if inception_source is not None:
        try:
            net, info["inception"] = load_inception(inception_source, device)
            extractors["inception"] = InceptionExtractor(net, normalize, channels_last)
            status["inception"] = "ok"
        except InceptionUnavailable as err:
            status["inception"] = f"{UNAVAILABLE}: {err}"
            info["inception"] = {"weights": None}
            print(f"Inception FID {status['inception']}")
    return extractors, status, info


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
def _load_x(path: str | Path, key: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with np.load(path) as npz:
        if key not in npz.files:
            raise KeyError(f"{path} has no array {key!r} (it holds {npz.files})")
        return check_images(npz[key], f"{path}[{key}]")


def run_fid_reference(
    data_npz: str | Path,
    classifier_path: str | Path,
    inception_source: str,
    out: str | Path,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Rule fid_reference: feature statistics of the whole test split per extractor (the real set of every FID),
    and the "floor" FID of `count` training images against it (the original code reported 2.54 for F-MNIST with Inception).

    settings: batch_size, normalize, scale, device, channels_last, threads, count.
    """
    io.set_threads(settings.get("threads", 1))
    dev = io.resolve_device(settings.get("device", "auto"))
    x_test = _load_x(data_npz, "x_test")
    x_train = _load_x(data_npz, "x_train")[: int(settings["count"])]
    extractors, status, info = build_extractors(
        classifier_path, inception_source, settings["normalize"], settings["scale"], dev,
        settings.get("channels_last", False))
    arrays: dict[str, np.ndarray] = {"n_reference": np.array(len(x_test)), "n_floor": np.array(len(x_train))}
    summary: dict[str, Any] = {"n_reference": len(x_test)}
    for name in EXTRACTORS:
        if name not in status:
            continue
        arrays[f"{name}_status"] = np.array(status[name])
        if name in extractors:
            mu, cov = image_statistics(x_test, extractors[name], settings["batch_size"])
            floor = frechet_distance(*image_statistics(x_train, extractors[name], settings["batch_size"]), mu, cov)
            arrays.update({f"{name}_mu": mu, f"{name}_cov": cov, f"{name}_floor_fid": np.array(floor)})
            summary[f"{name}_floor_fid"] = floor
            print(f"{name}: FID of {len(x_train)} training vs {len(x_test)} test images = {floor:.3f}")
        summary[f"{name}_status"] = status[name]
    arrays["info"] = np.array(repr(info))
    io.save_npz(out, **arrays)
    return summary


def load_reference(path: str | Path) -> dict[str, Any]:
    """Statistics written by run_fid_reference: {name: {"status", "mu", "cov", "floor_fid"}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the rule fid_reference")
    ref: dict[str, Any] = {}
    with np.load(path) as npz:
        for name in EXTRACTORS:
            if f"{name}_status" not in npz.files:
                continue
            entry = {"status": str(npz[f"{name}_status"])}
            if entry["status"] == "ok":
                entry.update(mu=npz[f"{name}_mu"], cov=npz[f"{name}_cov"],
                             floor_fid=float(npz[f"{name}_floor_fid"]))
            ref[name] = entry
        ref["n_reference"] = int(npz["n_reference"])
    return ref


def run_fid_scores(
    model: str,
    samples_npz: str | Path,
    data_npz: str | Path,
    reference_npz: str | Path,
    classifier_path: str | Path,
    inception_source: str,
    out: str | Path,
    settings: Mapping[str, Any],
    network: str | Path | None = None,
    ae_scores: str | Path | None = None,
) -> dict[str, Any]:
    """Rule fid_scores: sample FID and reconstruction FID per extractor and reconstruction errors of one model.

    Samples: `samples_npz` (x). Reconstructions: the model's network (`network`: ae.pt for ae, {vae,betavae}.pt)
    decodes the encoder means of the whole test split, x/scale − 0.5 (pae.sampling.reconstructions); errors are
    computed on the floats, the FID on the first `count` reconstructions stored as uint8 like every sample set.
    The PAE reconstructs with its AE, so for model "pae" the reconstruction part is copied from `ae_scores`.
    settings: batch_size, normalize, scale, device, channels_last, threads, count (+ dataset, K, seed for the record).
    """
    import json

    from pae.data import to_uint8

    io.set_threads(settings.get("threads", 1))
    dev = io.resolve_device(settings.get("device", "auto"))
    ref = load_reference(reference_npz)
    samples = _load_x(samples_npz, "x")
    x_test = _load_x(data_npz, "x_test")
    if samples.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{samples_npz} images {samples.shape[1:]} do not match the test split {x_test.shape[1:]}")
    wanted = [n for n in EXTRACTORS if n in ref]
    extractors, status, info = build_extractors(
        classifier_path if "domain" in wanted else None,
        inception_source if ref.get("inception", {}).get("status") == "ok" else None,
        settings["normalize"], settings["scale"], dev, settings.get("channels_last", False))
    for name in wanted:
        if ref[name]["status"] != "ok":
            status[name] = ref[name]["status"]
    result: dict[str, Any] = {
        "model": model, **{k: int(settings[k]) for k in ("K", "seed") if k in settings},
        "dataset": settings.get("dataset"),
        "n_samples": len(samples), "n_reference": ref["n_reference"], "normalize": settings["normalize"],
        "extractors": info, "floor_fid": {n: ref[n].get("floor_fid", ref[n]["status"]) for n in wanted},
    }

    def fids(images: np.ndarray) -> dict[str, Any]:
        return {n: (frechet_distance(*image_statistics(images, extractors[n], settings["batch_size"]),
                                     ref[n]["mu"], ref[n]["cov"]) if n in extractors else status[n])
                for n in wanted}

    print(f"{model}: sample FID of {len(samples)} samples")
    result["sample_fid"] = fids(samples)
    if model == "pae":
        if ae_scores is None:
            raise ValueError("model 'pae' needs the AE's scores (ae_scores) for its reconstructions")
        ae = json.loads(Path(ae_scores).read_text())
        if set(ae["reconstruction_fid"]) != set(wanted):
            raise ValueError(f"{ae_scores} has FIDs for {sorted(ae['reconstruction_fid'])}, expected {wanted}; "
                             "delete it and rerun")
        for key in ("reconstruction_fid", "reconstruction_error", "n_reconstructions"):
            result[key] = ae[key]
        result["reconstructions_of"] = "ae"
    else:
        from pae.nets import load_model
        from pae.sampling import reconstructions

        if network is None:
            raise ValueError(f"model {model!r} needs its network file for the reconstructions")
        net, _ = load_model(network, dev)
        x_hat = reconstructions(net, x_test, settings["scale"], batch_size=500)
        x_in = x_test.astype(np.float64) / float(settings["scale"]) - 0.5
        result["reconstruction_error"] = reconstruction_errors(x_in, x_hat)
        recon_u8 = to_uint8(x_hat[: int(settings["count"])], settings["scale"])
        print(f"{model}: reconstruction FID of {len(recon_u8)} test reconstructions")
        result["reconstruction_fid"] = fids(recon_u8)
        result["n_reconstructions"] = len(recon_u8)
        result["reconstructions_of"] = model
    io.save_json(out, result)
    print(json.dumps({k: result[k] for k in ("sample_fid", "reconstruction_fid", "reconstruction_error")}, indent=1))
    return result


# ----------------------------------------------------------------------------------------------------------
# Table 1
# ----------------------------------------------------------------------------------------------------------
ROW_LABELS = {"ae": "AE", "vae": "VAE", "betavae": "β-VAE", "pae": "PAE"}
EXTRACTOR_LABELS = {"inception": "Inception", "domain": "domain CNN"}
RMS_COLUMN = "mean reconstruction error (RMS per pixel)"
SIGMA_COLUMN = "mean reconstruction error (mean pixel σ)"
MSE_COLUMN = "reconstruction MSE per pixel"


def table1_columns() -> list[str]:
    """Column names: FIDs per extractor (Inception first, as in the paper), then the reconstruction errors."""
    cols = [f"{kind} FID ({EXTRACTOR_LABELS[n]})" for n in ("inception", "domain")
            for kind in ("sample", "reconstruction")]
    return cols + [RMS_COLUMN, SIGMA_COLUMN, MSE_COLUMN]


def table1_paper_values() -> dict[str, dict[str, float]]:
    """The paper's Table 1 as {row: {column: value}}: its FIDs are Inception FIDs; its undefined "mean
    reconstruction error" stands beside both candidate definitions (RMS and mean pixel σ, docs/notes-fid.md)."""
    from pae.tables import PAPER_TABLE1

    mapping = {"sample FID (Inception)": "sample FID", "reconstruction FID (Inception)": "reconstruction FID",
               RMS_COLUMN: "mean reconstruction error", SIGMA_COLUMN: "mean reconstruction error"}
    out: dict[str, dict[str, float]] = {}
    for col, paper_col in mapping.items():
        for row, value in PAPER_TABLE1[paper_col].items():
            out.setdefault(row, {})[col] = value
    return out


def table1_measurements(scores: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tidy (row, column, seed, value) records from fid_scores results; text values mark unavailable FIDs."""
    records = []
    for s in scores:
        row = ROW_LABELS[s["model"]]
        for n in ("inception", "domain"):
            for kind, key in (("sample", "sample_fid"), ("reconstruction", "reconstruction_fid")):
                value = s[key].get(n, f"{UNAVAILABLE}: not computed")
                records.append({"row": row, "column": f"{kind} FID ({EXTRACTOR_LABELS[n]})",
                                "seed": s.get("seed"), "value": value})
        err = s["reconstruction_error"]
        records.append({"row": row, "column": RMS_COLUMN, "seed": s.get("seed"), "value": err["rms_per_pixel"]})
        records.append({"row": row, "column": SIGMA_COLUMN, "seed": s.get("seed"), "value": err["mean_pixel_sigma"]})
        records.append({"row": row, "column": MSE_COLUMN, "seed": s.get("seed"), "value": err["mse_per_pixel"]})
    return records


def run_table1(
    score_files: list[str | Path],
    reference_npz: str | Path,
    classifier_metrics: str | Path,
    csv_path: str | Path,
    md_path: str | Path,
    K: int,
    vae_K: int,
) -> Any:
    """Rule write_table1: Table 1 (ours mean ± std over seeds beside the paper's values) as CSV + Markdown."""
    import json

    import pandas as pd

    from pae.tables import comparison_table, write_table

    scores = []
    for f in score_files:
        try:
            scores.append(json.loads(Path(f).read_text()))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read FID scores {f} ({err}); delete it and rerun fid_scores") from err
    table = comparison_table(pd.DataFrame(table1_measurements(scores)), table1_paper_values(),
                             rows=list(ROW_LABELS.values()), columns=table1_columns())
    ref = load_reference(reference_npz)
    clf = json.loads(Path(classifier_metrics).read_text())
    seeds = sorted({s.get("seed") for s in scores}, key=str)
    n_samples = "/".join(str(n) for n in sorted({s["n_samples"] for s in scores}))
    notes = [
        f"F-MNIST, K = {K} (VAE and β-VAE: K = {vae_K}); seeds {seeds}; {n_samples} samples or test "
        f"reconstructions per model against the {ref['n_reference']}-image test split.",
        "Inception FID: pytorch-fid's port of the TF Inception graph, pool3 features; every image min–max "
        f"normalised to [0, 1] (fid.normalize = {scores[0]['normalize']}), grayscale copied to 3 channels "
        f"(original protocol). Status: {ref.get('inception', {}).get('status', 'not run')}. Weights: "
        f"config fid.inception_weights, else pytorch-fid's cache $TORCH_HOME/hub/checkpoints/{INCEPTION_FILENAME}, "
        "else a download when fid.inception_download is true; never a substitute network.",
        f"Domain-CNN FID: same Fréchet distance on the {clf['feature_dim']}-d penultimate layer of a CNN "
        f"classifier trained here (epochs: {clf['epochs']}, test accuracy {clf['test_accuracy']:.4f}); "
        "no paper value exists for it.",
        "FID floor (first samples.count training images vs the test split): "
        + ", ".join(f"{EXTRACTOR_LABELS[n]} {ref[n]['floor_fid']:.2f}" if ref[n]["status"] == "ok"
                    else f"{EXTRACTOR_LABELS[n]} {ref[n]['status']}" for n in EXTRACTORS if n in ref)
        + " (original code, Inception: 2.54).",
        "Reconstruction errors on the whole test split, x/scale − 0.5 vs the decoded encoder mean, no "
        f"dequantization. The paper does not define its 'mean reconstruction error'; we show its value beside "
        f"two candidates: '{RMS_COLUMN}' = √(mean over images and pixels of (x − x̂)²) and '{SIGMA_COLUMN}' = "
        "mean over pixels of σ_i = √(mean over images of (x_i − x̂_i)²) (Eq. 8). From the original code's "
        "MSEs (0.0064 / 0.0066 / 0.0129) the RMS is 0.080 / 0.081 / 0.113 vs the paper's 0.077 / 0.084 / 0.114; "
        "the mean σ is a few % lower than the RMS. Neither fits all three rows; see docs/notes-fid.md. The MSE "
        "column (the original's printed 'mean variance') has no paper value.",
        "PAE reconstructions are the AE's (same auto-encoder), as in the paper.",
        "CSV: 'difference' = ours − paper. Markdown cells: ours (± std over seeds) (paper; Δ ours − paper).",
    ]
    digits = {c: 1 for c in table1_columns()[:4]} | {RMS_COLUMN: 3, SIGMA_COLUMN: 3, MSE_COLUMN: 5}
    write_table(table, csv_path, md_path, "Table 1: FID and reconstruction error (F-MNIST)", digits=digits,
                notes=notes, difference=True)
    return table
