"""Reading and writing the pipeline's artefact files: preprocessed splits, latents and σ, score files,
FID statistics, trained networks and the Inception weights.

One reader per container (`read_npz`, `read_json`, `read_torch`) names the file and what (re)makes it when
the file is missing, unreadable or lacks an array; the readers below it add the checks of one kind of
file. Writers are atomic (`pae.files.io`). Science modules never see these paths: the stage layer
(`pae.stages`), the API and the command line call these functions and hand arrays and modules on.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pae.files import io
from pae.files.data import MissingDataError, SplitKeyError, file_digest

_LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pae.science.classifier import DomainClassifier
    from pae.science.flows import LatentFlow

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name carries the sha256 prefix
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILENAME}"
MODEL_FORMAT = "pae-model-v1"
FLOW_FORMAT = "pae.LatentFlow"


class ArtifactError(ValueError):
    """An artefact file is unreadable, corrupt or incomplete; the message names it and what remakes it."""


# ----------------------------------------------------------------------------------------------------------
# The readers of the three containers
# ----------------------------------------------------------------------------------------------------------
def _must_exist(path: Path, remake: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {remake}")


@contextlib.contextmanager
def _open_npz(path: Path, remake: str) -> Iterator[Any]:
    _must_exist(path, remake)
    try:
        npz = np.load(path)
    except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt file
        raise ArtifactError(f"{path} is not a readable .npz ({exc}); delete it and {remake}") from exc
    with npz:
        yield npz


def read_npz(path: str | Path, remake: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` (default: all) of an .npz artefact. `remake` says what writes the file, e.g.
    "run the rule encode_ae"; it ends every error message."""
    path = Path(path)
    with _open_npz(path, remake) as npz:
        wanted = list(npz.files if keys is None else keys)
        missing = [k for k in wanted if k not in npz.files]
        if missing:
            raise ArtifactError(f"{path} has no array(s) {missing} (it holds {npz.files}); delete it and {remake}")
        try:
            return {k: npz[k] for k in wanted}
        except Exception as exc:  # noqa: BLE001 - a truncated member
            raise ArtifactError(f"{path} is corrupt ({exc}); delete it and {remake}") from exc


def read_json(path: str | Path, remake: str) -> Any:
    """A JSON artefact (metrics, FID scores), parsed."""
    path = Path(path)
    _must_exist(path, remake)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}); delete it and {remake}") from exc


def read_torch(path: str | Path, remake: str) -> dict[str, Any]:
    """A torch blob (a dict of tensors and plain values) written by `pae.files.io.save_torch`, on the CPU."""
    import torch

    path = Path(path)
    _must_exist(path, remake)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ArtifactError(f"{path} is unreadable or corrupt ({type(exc).__name__}: {exc}); delete it and "
                            f"{remake}") from exc
    if not isinstance(blob, dict):
        raise ArtifactError(f"{path} does not hold a pae model file; delete it and {remake}")
    return blob


def meta_of(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The 0-d `meta__<key>` arrays of a score or posterior file as {key: value}."""
    return {k[len("meta__"):]: v.item() for k, v in arrays.items() if k.startswith("meta__")}


# ----------------------------------------------------------------------------------------------------------
# Images, latents, σ and scores
# ----------------------------------------------------------------------------------------------------------
def load_split(npz_path: str | Path, split: str) -> np.ndarray:
    """One array of a preprocessed file: `split` train/valid/test → `x_<split>`, or a key such as `x`,
    `y_test`."""
    path = Path(npz_path)
    if not path.is_file():
        raise MissingDataError(f"preprocessed file {path} does not exist; build it with `snakemake data`")
    with _open_npz(path, "rebuild it with `snakemake data`") as npz:
        key = split if split in npz.files else f"x_{split}"
        if key not in npz.files:
            raise SplitKeyError(f"{path} has no array {split!r} (looked for {split!r} and {key!r}); it holds "
                                f"{npz.files}")
        return npz[key]


def _checked_images(x: np.ndarray, where: str, remake: str) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) == 0:
        raise ArtifactError(f"{where} must be non-empty uint8 images (N, C, H, W), got {x.dtype} {x.shape}; "
                            f"{remake}")
    return x


def load_images(path: str | Path, key: str) -> np.ndarray:
    """uint8 images (N, C, H, W) of a preprocessed file (`test` → x_test, or `x` of an OoD set), checked."""
    return _checked_images(load_split(path, key), f"{path}[{key!r}]", "rebuild it with `snakemake data`")


def load_samples(path: str | Path, n: int | None = None) -> np.ndarray:
    """The first `n` (default all) uint8 images of a sample file (rule sample_model, array `x`)."""
    remake = "run the rule sample_model"
    x = read_npz(path, remake, ["x"])["x"]
    return _checked_images(x, f"{path}['x']", remake)[:n]


def load_train_valid(data_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 train and validation splits of a preprocessed dataset file."""
    return load_images(data_path, "train"), load_images(data_path, "valid")


def load_labelled_test(data_path: str | Path, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n_images` test images (uint8 (N, C, H, W)) and their labels (config posterior.n_images)."""
    x = load_images(data_path, "test")
    try:
        y = load_split(data_path, "y_test")
    except SplitKeyError as exc:
        raise SplitKeyError(f"{data_path} has no y_test labels; the posterior metrics need a labelled "
                            "dataset") from exc
    if int(n_images) < 1:
        raise ValueError(f"config key posterior.n_images must be >= 1, got {n_images!r}")
    if len(x) < int(n_images):
        raise ValueError(f"config key posterior.n_images = {n_images} but {data_path} has only {len(x)} test "
                         "images; lower posterior.n_images")
    return x[: int(n_images)], np.asarray(y[: int(n_images)]).astype(np.int64)


def load_sigma(stats_path: str | Path) -> np.ndarray:
    """The Eq. 8 pixel-wise σ (C, H, W) from ae_stats.npz."""
    return np.asarray(read_npz(stats_path, "run the rule encode_ae", ["sigma"])["sigma"], dtype=np.float32)


def load_latents(stats_path: str | Path) -> dict[str, np.ndarray]:
    """z_train, z_valid (and z_test when present) from ae_stats.npz, checked for shape and finiteness."""
    from pae.science.flows import check_latents

    remake = "run the rule encode_ae"
    arrays = read_npz(stats_path, remake)
    if "z_train" not in arrays or "z_valid" not in arrays:
        raise ArtifactError(f"{stats_path} lacks z_train or z_valid (it holds {sorted(arrays)}); {remake}")
    out = {k: check_latents(arrays[k], None, k, str(stats_path)) for k in ("z_train", "z_valid", "z_test")
           if k in arrays}
    if out["z_train"].shape[1] != out["z_valid"].shape[1]:
        raise ArtifactError(f"z_train and z_valid in {stats_path} have different latent sizes; {remake}")
    return out


def load_scores(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(scores {'{score}__{set}': array}, meta {key: value}) from a score file, checked for NaN."""
    remake = "run the rule ood_scores"
    arrays = read_npz(path, remake)
    scores = {k: v for k, v in arrays.items() if not k.startswith("meta__")}
    for k, v in scores.items():
        if v.dtype.kind == "f" and np.isnan(v).any():
            raise ArtifactError(f"{path}: {k} contains NaN; delete the file and {remake}")
    return scores, meta_of(arrays)


def load_reference(path: str | Path) -> dict[str, Any]:
    """Statistics written by rule fid_reference: {extractor: {"status", "mu", "cov", "floor_fid"}} and
    n_reference."""
    from pae.science.features import EXTRACTORS

    arrays = read_npz(path, "run the rule fid_reference")
    ref: dict[str, Any] = {}
    for name in EXTRACTORS:
        if f"{name}_status" not in arrays:
            continue
        entry: dict[str, Any] = {"status": str(arrays[f"{name}_status"])}
        if entry["status"] == "ok":
            entry.update(mu=arrays[f"{name}_mu"], cov=arrays[f"{name}_cov"],
                         floor_fid=float(arrays[f"{name}_floor_fid"]))
        ref[name] = entry
    ref["n_reference"] = int(arrays["n_reference"])
    return ref


# ----------------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------------
def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
    """Atomically store class path, constructor kwargs (``model.init_kwargs``), state_dict and ``meta``
    (AutoEncoder, VAE, DomainClassifier)."""
    kwargs = getattr(model, "init_kwargs", None)
    if not isinstance(kwargs, dict):
        raise TypeError(f"{type(model).__name__} has no 'init_kwargs' dict; save_model cannot rebuild it later")
    cls = type(model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    io.save_torch(path, {"format": MODEL_FORMAT, "class": f"{cls.__module__}.{cls.__qualname__}",
                         "kwargs": dict(kwargs), "state_dict": state, "meta": dict(meta or {})})


def save_flow(path: str | Path, flow: LatentFlow, meta: dict[str, Any] | None = None) -> None:
    """Store a latent flow's constructor arguments, state dict, meta and `pae.science.flows.FORMAT_VERSION`."""
    from pae.science.flows import FORMAT_VERSION

    state = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
    io.save_torch(path, {"format": FLOW_FORMAT, "version": FORMAT_VERSION, "kwargs": dict(flow.init_kwargs),
                         "state_dict": state, "meta": dict(meta or {})})


def _model_class(qualified: str, path: Path) -> type:
    from torch import nn

    module_name, _, name = qualified.rpartition(".")
    if not module_name.startswith("pae."):
        raise ArtifactError(f"{path}: stored model class {qualified!r} is not part of the pae package")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ArtifactError(f"{path}: stored model class {qualified!r} cannot be found ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ArtifactError(f"{path}: stored model class {qualified!r} is not an nn.Module")
    return cls


def load_model(path: str | Path, device: str | torch.device = "cpu",
               remake: str = "rerun the rule that trains it") -> tuple[nn.Module, dict[str, Any]]:
    """Any network this package saved (AE, VAE, latent flow, domain classifier): (module in eval mode on
    `device`, meta)."""
    from pae.science.flows import FORMAT_VERSION, LatentFlow

    path = Path(path)
    blob = read_torch(path, remake)
    fmt = blob.get("format")
    if fmt == MODEL_FORMAT:
        cls = _model_class(blob["class"], path)
    elif fmt == FLOW_FORMAT:
        if blob.get("version") != FORMAT_VERSION:
            raise ArtifactError(f"flow file {path} has format version {blob.get('version')}, this pae.science.flows reads "
                                f"version {FORMAT_VERSION} (the layers changed); delete it and {remake}")
        cls = LatentFlow
    elif fmt is None and {"kwargs", "state_dict"} <= set(blob):  # domain classifiers of earlier versions
        from pae.science.classifier import DomainClassifier

        cls = DomainClassifier
    else:
        raise ArtifactError(f"{path} is not a model written by pae.files.artifacts; delete it and {remake}")
    model = cls(**blob["kwargs"])
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise ArtifactError(f"{path}: weights do not match {cls.__name__}({blob['kwargs']}): {err}; delete it "
                            f"and {remake}") from err
    return model.to(device).eval(), dict(blob["meta"] if "meta" in blob else {})


def load_flow(path: str | Path, device: str | torch.device = "cpu") -> tuple[LatentFlow, dict[str, Any]]:
    """A latent flow written by `save_flow` (rule train_flow)."""
    from pae.science.flows import LatentFlow

    flow, meta = load_model(path, device, "rerun the rule train_flow")
    if not isinstance(flow, LatentFlow):
        raise ArtifactError(f"{path} holds a {type(flow).__name__}, not a latent flow; rerun the rule train_flow")
    return flow, meta


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[DomainClassifier, dict]:
    """The domain classifier of the domain FID (rule train_classifier)."""
    from pae.science.classifier import DomainClassifier

    model, meta = load_model(path, device, "rerun the rule train_classifier")
    if not isinstance(model, DomainClassifier):
        raise ArtifactError(f"{path} holds a {type(model).__name__}, not a domain classifier; rerun the rule "
                            "train_classifier")
    return model, meta


# ----------------------------------------------------------------------------------------------------------
# Inception weights (pytorch-fid's port of the TF graph the original FIDs used)
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
    from pae.science.features import UNAVAILABLE

    if weights:
        return str(Path(weights).expanduser())
    cached = torch_hub_dir() / "checkpoints" / INCEPTION_FILENAME
    if cached.is_file():
        return str(cached)
    if allow_download:
        return "download"
    _LOG.warning(f"Inception weights: {cached} is missing, fid.inception_weights is null and fid.inception_download "
                 "is false: Inception FIDs will read 'unavailable'")
    return f"{UNAVAILABLE}: no Inception weights (offline)"


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _download_weights() -> Path:
    """Fetch the weights into torch's hub cache (only with fid.inception_download: true); 30 s socket timeout."""
    import torch

    from pae.science.features import InceptionUnavailable

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any network failure means "unavailable", with the reason
        _LOG.info(f"download of {INCEPTION_URL} failed: {type(err).__name__}: {err}")
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

    from pae.science.features import UNAVAILABLE, InceptionUnavailable

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
        _LOG.warning(f"{path} is not pytorch-fid's file (sha256 {sha[:8]}… ≠ {INCEPTION_SHA256_PREFIX}…): "
                     "Inception FIDs are not comparable with the paper's")
    return net.to(device).eval(), info
