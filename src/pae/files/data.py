"""Data stage: raw-file registry with checksums, fetching, preprocessing and OoD sets (paper Sec. 4).

Raw files are looked for, in order, in a local mirror (config ``data.mirror`` or the environment variable
``PAE_DATA_MIRROR``), in system folders (config ``data.system_dirs``; Debian installs Fashion-MNIST to
``/usr/share/datasets/fashion-mnist``) and at their canonical URLs (only when config ``data.download`` is true).
Every copy is checked against the registry before it is kept: the SHA-256 of the *decompressed* content for
``.gz`` files (so re-packed gzip headers, e.g. Debian's, still match), of the file itself otherwise; CelebA,
of which no SHA-256 is known here, is checked with torchvision's MD5 values.

Images are stored as ``uint8`` arrays ``(N, C, H, W)``; :func:`to_model_input` maps them to the model's
``[-0.5, 0.5]`` range (paper Sec. 4: "we dequantize and rescale pixel values to the interval [-0.5, 0.5]").
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import struct
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pae.files.io import atomic_path

_LOG = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch is imported lazily: the data jobs do not need it
    pass

MIRROR_ENV = "PAE_DATA_MIRROR"
CHECKSUMS_ENV = "PAE_DATA_CHECKSUMS"
MIRROR_HINT = (
    f"set config key data.mirror (or the environment variable {MIRROR_ENV}) to a folder laid out like "
    "<mirror>/<source>/<file> (fashion-mnist/, mnist/, omniglot/, celeba/), or set data.download: true "
    "on a machine with internet access"
)


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------
class DataError(RuntimeError):
    """Base class of the data stage's errors; messages name the file or config key and the fix."""


class ChecksumError(DataError):
    """A file's content does not match the registry (or is not a readable gzip stream)."""


class DataFetchError(DataError):
    """No verified copy of a raw file could be found; the message lists every place looked at and why."""


class IdxFormatError(DataError, ValueError):
    """A file is not a well-formed idx file (the MNIST / Fashion-MNIST format)."""


class MissingDataError(DataError, FileNotFoundError):
    """A raw or preprocessed file does not exist."""


class SplitKeyError(DataError, KeyError):
    """A requested array is not in a preprocessed ``.npz`` file."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawFile:
    """One raw file: its mirror folder (``source``), name, checksum and canonical URLs."""

    source: str
    filename: str
    sha256: str | None  # of the decompressed content for .gz files, of the file itself otherwise
    md5: str | None = None  # used only where no SHA-256 is known (CelebA: torchvision's values)
    urls: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.source}/{self.filename}"

    @property
    def gzipped(self) -> bool:
        return self.filename.endswith(".gz")

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, hex digest) that a copy must match."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        raise DataError(f"registry entry {self.key} has no checksum")  # pragma: no cover - registry bug


_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # official (Zalando README)
_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_OMNIGLOT_URL = (
    "https://raw.githubusercontent.com/bitsandscraps/omniglot/b0481240b7eb42393285a93ce7d2f266ff10c62b/"
)


def _gdrive(file_id: str) -> tuple[str, ...]:
    """Google Drive download URLs of the official CelebA files (the ids torchvision uses)."""
    return (
        f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t",
        f"https://drive.google.com/uc?export=download&id={file_id}",
    )


def _entries() -> list[RawFile]:
    fmnist = {  # sha256 of the decompressed idx files (md5s agree with Zalando's / SOURCES.md)
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    mnist = {  # sha256 of the decompressed official idx files
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    out = [RawFile("fashion-mnist", f, h, urls=(_FMNIST_URL + f,)) for f, h in fmnist.items()]
    out += [RawFile("mnist", f, h, urls=tuple(u + f for u in _MNIST_URLS)) for f, h in mnist.items()]
    out.append(
        RawFile(
            "omniglot",
            "images_evaluation.npz",
            "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
            urls=(_OMNIGLOT_URL + "images_evaluation.npz",),
        )
    )
    out.append(
        RawFile(
            "celeba",
            "img_align_celeba.zip",
            None,
            md5="00d2c5bc6d35e252742224ab0c1e8fcb",
            urls=_gdrive("0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
        )
    )
    out.append(
        RawFile(
            "celeba",
            "list_eval_partition.txt",
            None,
            md5="d32c9cbf5e040fd4025c592c306e6668",
            urls=_gdrive("0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
        )
    )
    return out


REGISTRY: dict[str, RawFile] = {e.key: e for e in _entries()}
SOURCES: tuple[str, ...] = tuple(dict.fromkeys(e.source for e in REGISTRY.values()))

# Folder names tried under each system dir (Debian: /usr/share/datasets/fashion-mnist; torchvision roots).
SYSTEM_DIR_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw"),
    "mnist": ("mnist", "MNIST/raw"),
    "omniglot": ("omniglot",),
    "celeba": ("celeba",),
}

DATASETS: dict[str, tuple[str, ...]] = {
    "fmnist": tuple(f"fashion-mnist/{f}" for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                                   "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    "mnist": tuple(f"mnist/{f}" for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
    "celeba": ("celeba/img_align_celeba.zip", "celeba/list_eval_partition.txt"),
}
OOD_SOURCES: dict[str, tuple[str, ...]] = {  # raw files of each OoD set of pae.science.catalog.OOD_SETS
    "mnist": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
    "omniglot": ("omniglot/images_evaluation.npz",),
    "fmnist_hflip": ("fashion-mnist/t10k-images-idx3-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz"),
    "fmnist_vflip": ("fashion-mnist/t10k-images-idx3-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz"),
}


def raw_file(source: str, filename: str) -> RawFile:
    """The registry entry of ``<source>/<filename>``; a clear error for unknown files."""
    key = f"{source}/{filename}"
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise DataError(f"unknown raw file {key!r}; the registry (pae.files.data.REGISTRY) knows: {known}")
    return REGISTRY[key]


def dataset_files(dataset: str) -> list[RawFile]:
    """Raw files that :func:`preprocess` reads for ``dataset`` (fmnist, mnist, celeba)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    return [REGISTRY[k] for k in DATASETS[dataset]]


def ood_files(name: str) -> list[RawFile]:
    """Raw files that `pae.stages.data.run_build_ood_set` reads for the OoD set ``name``."""
    if name not in OOD_SOURCES:
        raise DataError(f"unknown OoD set {name!r}; use one of {', '.join(OOD_SOURCES)}")
    return [REGISTRY[k] for k in OOD_SOURCES[name]]


def raw_paths(files: Iterable[RawFile], raw_dir: str | Path) -> list[str]:
    """Paths ``raw_dir/<source>/<file>`` of registry entries (the fetch rule's outputs)."""
    return [f"{raw_dir}/{f.source}/{f.filename}" for f in files]


def _checksum_overrides() -> dict[str, str]:
    """SHA-256 overrides from the JSON file named by ``PAE_DATA_CHECKSUMS`` (synthetic test mirrors only)."""
    path = os.environ.get(CHECKSUMS_ENV)
    if not path:
        return {}
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{CHECKSUMS_ENV}={path}: cannot read a JSON object from it ({exc}); unset it") from exc
    if not isinstance(table, dict):
        raise DataError(f"{CHECKSUMS_ENV}={path}: expected a JSON object {{'<source>/<file>': '<sha256>'}}")
    unknown = sorted(set(table) - set(REGISTRY))
    if unknown:
        raise DataError(f"{CHECKSUMS_ENV}={path}: unknown raw files {unknown}; keys must be in pae.files.data.REGISTRY")
    return {k: str(v).lower() for k, v in table.items()}


def expected_checksum(entry: RawFile) -> tuple[str, str]:
    """(algorithm, hex) a copy of ``entry`` must match; ``PAE_DATA_CHECKSUMS`` can replace it (tests only)."""
    override = _checksum_overrides().get(entry.key)
    return ("sha256", override) if override else entry.checksum


# ----------------------------------------------------------------------------------------------------------
# Checksums and fetching
# ----------------------------------------------------------------------------------------------------------
def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def file_digest(path: str | Path, algorithm: str = "sha256", decompress: bool = False) -> str:
    """Hex digest of a file, or of its gzip-decompressed content when ``decompress``."""
    path = Path(path)
    h = hashlib.new(algorithm)
    try:
        opener = gzip.open if decompress else open
        with opener(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ChecksumError(f"{path}: not a readable gzip file ({exc})") from exc
    return h.hexdigest()


def verify_file(path: str | Path, entry: RawFile) -> None:
    """Raise :class:`ChecksumError` (naming the file, got and expected) unless ``path`` matches ``entry``."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"raw file {path} does not exist; run `snakemake data` to fetch it")
    algorithm, expected = expected_checksum(entry)
    what = "decompressed content" if entry.gzipped else "file"
    got = file_digest(path, algorithm, decompress=entry.gzipped)
    if got != expected:
        hint = ""
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            hint = " (this is an HTML page, not the data file: the host may want a manual download)"
        raise ChecksumError(
            f"{path}: checksum mismatch for {entry.key} ({algorithm} of the {what}): "
            f"got {got}, expected {expected}{hint}"
        )


def resolve_mirror(mirror: str | Path | None) -> Path | None:
    """The mirror folder: config ``data.mirror`` when set, else ``$PAE_DATA_MIRROR``, else None."""
    value = mirror if mirror not in (None, "") else os.environ.get(MIRROR_ENV) or None
    return Path(value).expanduser() if value else None


def _copy_verified(src: Path, dest: Path, entry: RawFile) -> None:
    """Copy ``src`` to a temporary file beside ``dest``, verify the copy, then rename it into place."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        verify_file(tmp, entry)


def _download_verified(url: str, dest: Path, entry: RawFile, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "pae-reproduction/0.1"})
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as fh:
            shutil.copyfileobj(response, fh, 1 << 20)
        verify_file(tmp, entry)


def _reason(exc: BaseException) -> str:
    """The failure text without the (temporary) path prefix of a ChecksumError."""
    text = str(exc)
    return text.split(": ", 1)[1] if isinstance(exc, ChecksumError) and ": " in text else text


def fetch_raw(
    source: str,
    filename: str,
    dest_dir: str | Path,
    mirror: str | Path | None = None,
    system_dirs: Sequence[str | Path] = (),
    download: bool = True,
    *,
    timeout: float = 60.0,
) -> tuple[Path, str]:
    """Place a verified copy of ``<source>/<filename>`` at ``dest_dir/<source>/<filename>``.

    Looks in the mirror (``mirror``, else ``$PAE_DATA_MIRROR``), then in ``system_dirs``, then at the
    registry URLs (only when ``download``). Returns ``(path, origin)``; raises :class:`DataFetchError`
    listing every place looked at and why it failed. Nothing unverified is ever left at the destination.
    """
    entry = raw_file(source, filename)
    dest = Path(dest_dir) / source / filename
    attempts: list[str] = []
    if entry.key in _checksum_overrides():
        _LOG.warning(f"[data] expected checksum of {entry.key} taken from ${CHECKSUMS_ENV} (test data only)")
    for step in (lambda: _keep_existing(dest, entry, attempts),
                 lambda: _copy_local(_local_candidates(entry, mirror, system_dirs, attempts), dest, entry, attempts),
                 lambda: _download(entry, dest, download, timeout, attempts)):
        found = step()
        if found is not None:
            return dest, found
    raise _fetch_error(entry, attempts)


def _keep_existing(dest: Path, entry: RawFile, attempts: list[str]) -> str | None:
    """The origin "existing file" when `dest` is already there and verifies; a bad copy is removed."""
    if not dest.is_file():
        return None
    try:
        verify_file(dest, entry)
    except ChecksumError as exc:
        dest.unlink()  # known bad: never leave it where the next step would read it
        attempts.append(f"existing file {dest}: {_reason(exc)} (removed)")
        return None
    _LOG.info(f"[data] {entry.key}: already present and verified at {dest}")
    return f"existing file {dest}"


def _local_candidates(entry: RawFile, mirror: str | Path | None, system_dirs: Sequence[str | Path],
                      attempts: list[str]) -> list[tuple[str, Path]]:
    """(label, path) of the places on this machine that may hold the file: the mirror, then the system folders."""
    candidates: list[tuple[str, Path]] = []
    root = resolve_mirror(mirror)
    if root is None:
        attempts.append(f"mirror: not configured (config data.mirror is null and ${MIRROR_ENV} is unset)")
    elif not root.is_dir():
        attempts.append(f"mirror {root}: folder does not exist")
    else:
        candidates.append(("mirror", root / entry.key))
    for sdir in system_dirs:
        for name in SYSTEM_DIR_NAMES.get(entry.source, (entry.source,)):
            candidates.append(("system dir", Path(sdir) / name / entry.filename))
    return candidates


def _copy_local(candidates: Sequence[tuple[str, Path]], dest: Path, entry: RawFile, attempts: list[str]) -> str | None:
    """Copy the first candidate that verifies to `dest`; its origin, or None."""
    for label, path in candidates:
        if not path.is_file():
            attempts.append(f"{label} {path}: missing")
            continue
        try:
            _copy_verified(path, dest, entry)
        except (ChecksumError, OSError) as exc:
            attempts.append(f"{label} {path}: {_reason(exc)}")
            continue
        _LOG.info(f"[data] {entry.key}: copied from {label} {path} ({expected_checksum(entry)[0]} verified) to {dest}")
        return f"{label} {path}"
    return None


def _download(entry: RawFile, dest: Path, allowed: bool, timeout: float, attempts: list[str]) -> str | None:
    """Download from the first registry URL that answers with a file that verifies; its origin, or None."""
    if not allowed:
        attempts.append("download: disabled (config data.download is false)")
        return None
    for url in entry.urls:
        _LOG.info(f"[data] {entry.key}: downloading {url}")
        try:
            _download_verified(url, dest, entry, timeout)
        except (ChecksumError, urllib.error.URLError, OSError, ValueError) as exc:
            attempts.append(f"download {url}: {_reason(exc)}")
            continue
        _LOG.info(f"[data] {entry.key}: downloaded from {url} ({expected_checksum(entry)[0]} verified) to {dest}")
        return f"download {url}"
    return None


def _fetch_error(entry: RawFile, attempts: Sequence[str]) -> DataFetchError:
    algorithm, expected = expected_checksum(entry)
    what = "the decompressed content" if entry.gzipped else "the file"
    places = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    return DataFetchError(
        f"could not obtain a verified copy of {entry.key}\n"
        f"expected {algorithm} of {what}: {expected}\n"
        f"places looked at, in order:\n{places}\n"
        f"fix: put the official file at <mirror>/{entry.key} and {MIRROR_HINT}"
    )


# ----------------------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (plain or gzip-compressed), checking its header against its size."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"idx file {path} does not exist")
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IdxFormatError(f"{path}: corrupt gzip stream ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise IdxFormatError(
            f"{path}: malformed idx header {data[:4].hex()!r} (expected 00 00 <type code> <ndim>); "
            "is this really an MNIST-format file?"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise IdxFormatError(f"{path}: malformed idx header (ndim {ndim}, {len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    size = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != size:
        raise IdxFormatError(
            f"{path}: the header announces shape {dims} ({size} bytes of data) but the file holds "
            f"{len(data) - header} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx_images(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 ``(N, 1, H, W)`` and labels as int64 ``(N,)`` from a pair of idx files."""
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise IdxFormatError(f"{images}: expected uint8 images of shape (N, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise IdxFormatError(f"{labels}: expected {len(x)} labels to match {images}, got shape {y.shape}")
    return x[:, None], y.astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------
PIL_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")
CELEBA_CROP = (slice(45, 173), slice(25, 153))  # rows, cols: the central 128x128 of 218x178 (original code)


def celeba_image(img: Any, size: int = 64, resample: str = "bicubic") -> np.ndarray:
    """Crop rows 45:173, cols 25:153 of an aligned CelebA image and resize it: uint8 ``(3, size, size)``."""
    from PIL import Image

    if resample not in PIL_FILTERS:
        raise DataError(f"config key data.celeba_resample = {resample!r}; use one of {', '.join(PIL_FILTERS)}")
    arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] < 173 or arr.shape[1] < 153:
        raise DataError(f"CelebA image of shape {arr.shape} is too small for the 45:173, 25:153 crop (218x178)")
    crop = Image.fromarray(np.ascontiguousarray(arr[CELEBA_CROP]))
    filt = getattr(Image.Resampling, resample.upper())
    return np.asarray(crop.resize((size, size), resample=filt), dtype=np.uint8).transpose(2, 0, 1)


def read_partition(path: str | Path) -> dict[str, int]:
    """``list_eval_partition.txt``: file name → 0 (train), 1 (valid), 2 (test)."""
    out: dict[str, int] = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path}, line {i}: expected '<file>.jpg <0|1|2>', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def preprocess_celeba(
    zip_path: str | Path, partition_path: str | Path, size: int = 64, resample: str = "bicubic"
) -> dict[str, np.ndarray]:
    """CelebA (paper Sec. 4): images sorted by file name, split by the official partition file.

    The original code indexed ``os.listdir`` order (unsorted, D8); sorting makes the split
    equal to the official one on every file system.
    """
    from PIL import Image
    from tqdm import tqdm

    partition = read_partition(partition_path)
    with zipfile.ZipFile(zip_path) as zf:
        members = {Path(n).name: n for n in zf.namelist() if n.lower().endswith(".jpg")}
        names = sorted(members)
        missing, extra = sorted(set(partition) - set(members)), sorted(set(members) - set(partition))
        if missing or extra:
            raise DataError(
                f"{zip_path} and {partition_path} disagree: {len(missing)} listed images missing from the zip "
                f"(e.g. {missing[:3]}), {len(extra)} images not in the partition file (e.g. {extra[:3]})"
            )
        codes = np.array([partition[n] for n in names])
        keys = ("x_train", "x_valid", "x_test")
        arrays = {k: np.empty(((codes == c).sum(), 3, size, size), np.uint8) for c, k in enumerate(keys)}
        slot = np.zeros(3, dtype=np.int64)
        for name, code in tqdm(zip(names, codes, strict=True), total=len(names), desc="celeba", mininterval=10):
            with zf.open(members[name]) as fh, Image.open(fh) as img:
                arrays[keys[code]][slot[code]] = celeba_image(img, size, resample)
            slot[code] += 1
    return arrays


def omniglot_to_28(images: np.ndarray, size: int = 28) -> np.ndarray:
    """Omniglot bool images (True = white background) → uint8 ``(N, 1, size, size)``, strokes bright.

    ``skimage.transform.resize`` (bilinear, anti-aliasing on) of the 0/1 image, then inverted
    (255·(1 − s)) like the original's ``−(s − 0.5)`` so strokes are bright on dark, as in MNIST.
    """
    from skimage.transform import resize

    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"Omniglot images must have shape (N, H, W), got {images.shape}")
    out = np.empty((len(images), 1, size, size), np.uint8)
    for i, img in enumerate(images):
        s = resize(img.astype(np.float64), (size, size), order=1, mode="reflect", anti_aliasing=True)
        out[i, 0] = np.clip(np.rint(255.0 * (1.0 - s)), 0, 255).astype(np.uint8)
    return out


def read_omniglot(path: str | Path, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images of an Omniglot npz (``images`` bool (chars, drawers, H, W), ``labels``).

    Order: character-major (character index = file number − 965 for the evaluation set, then drawer);
    returns bool ``(n, H, W)`` and int64 character labels ``(n,)``.
    """
    with np.load(path) as npz:
        if "images" not in npz.files or "labels" not in npz.files:
            raise DataError(f"{path}: expected arrays 'images' and 'labels', found {npz.files}")
        images, labels = npz["images"], npz["labels"]
    if images.ndim != 4 or labels.shape != images.shape[:2]:
        raise DataError(f"{path}: expected images (chars, drawers, H, W) and labels (chars, drawers), "
                        f"got {images.shape} and {labels.shape}")
    images = images.reshape(-1, *images.shape[2:])
    labels = labels.reshape(-1).astype(np.int64)
    if count is not None:
        if not 0 < count <= len(images):
            raise DataError(f"config key data.omniglot_count = {count} must be between 1 and {len(images)} "
                            f"(images in {path})")
        images, labels = images[:count], labels[:count]
    return images, labels


# ----------------------------------------------------------------------------------------------------------
# Loading and scaling
# ----------------------------------------------------------------------------------------------------------


