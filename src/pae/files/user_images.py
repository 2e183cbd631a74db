"""A user's own images for the library and the command line: read from an image folder, one image file, an
.npz or an .npy; written as a PNG grid, a folder of PNGs, an .npz or an .npy; FID statistics files.

Folders are read with the dataset registry's readers and checks (`pae.files.datasets`: sorted files, one level of
class subfolders allowed, every image the same size); grayscale is kept as 1 channel when every file is grayscale,
otherwise all are converted to RGB. Every problem is one `pae.files.datasets.DatasetError` (a ValueError) that
names the path and the fix; "no such file" is said only of paths that do not exist.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pae.files.datasets import IMAGE_SUFFIXES, DatasetError, _image_files, _read_images
from pae.files.io import atomic_path, save_npz
from pae.science.images import ImageError, check_images

ARRAY_SUFFIXES = (".npz", ".npy")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
STATS_FORMAT = "pae-fid-stats-v1"
FORMS = "an image folder (PNG/JPEG/...), one image file, an .npz (numpy.savez(path, x=images)) or an .npy"


def _missing(path: Path) -> DatasetError:
    return DatasetError(f"{path}: no such file or folder; check the path (give {FORMS})")


def folder_channels(files: list[Path]) -> int:
    """1 when every image file is grayscale, else 3 (they are then converted to RGB)."""
    from PIL import Image

    for p in files:
        try:
            with Image.open(p) as img:
                if img.mode not in GRAY_MODES:
                    return 3
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetError(f"{p}: cannot read this image file ({type(exc).__name__}: {exc}); replace or "
                               "delete it") from exc
    return 1


def read_image_folder(folder: str | Path, channels: int | None = None) -> np.ndarray:
    """Every image below `folder` (flat, or one level of class subfolders), sorted by path, as uint8
    (N, C, H, W); channels None = 1 when all files are grayscale, else 3."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise _missing(root)
    files, _ = _image_files(root)
    if not files:
        others = sorted(p.name for p in root.iterdir())[:3]
        seen = f" (it holds {', '.join(others)}{', ...' if len(others) == 3 else ''})" if others else " (it is empty)"
        raise DatasetError(f"{root}: an existing folder with no readable image files{seen}; put images "
                           f"({', '.join(IMAGE_SUFFIXES)}) in it, or pass an .npz / .npy array instead")
    c = folder_channels(files) if channels is None else int(channels)
    try:
        return _read_images(root, files, c, None, None, "bicubic")
    except DatasetError as err:
        raise DatasetError(str(err).replace("set size: [H, W] in the entry to resize them all",
                                            "resize them to one size")) from None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as err:  # noqa: BLE001 - truncated zip, pickled objects, not numpy at all
        raise DatasetError(f"{path}: not a readable {path.suffix} file ({type(err).__name__}: {err}); "
                           "write it with numpy.savez(path, x=images)") from err


def _pick(path: Path, arrays: Mapping[str, np.ndarray], key: str | None, wanted: tuple[str, ...],
          flag: str) -> str:
    if key is not None:
        if key not in arrays:
            raise DatasetError(f"{path}: has no array {key!r} (it holds {sorted(arrays)}); fix {flag}")
        return key
    for k in wanted:
        if k in arrays:
            return k
    if len(arrays) == 1:
        return next(iter(arrays))
    raise DatasetError(f"{path}: cannot tell which array holds the images (it holds {sorted(arrays)}); "
                       f"name it {' or '.join(wanted)}, or pass {flag} NAME")


def _checked(x: Any, where: str, net_shape: bool) -> np.ndarray:
    try:
        return check_images(np.array(x), where, net_shape=net_shape)  # a writable copy (PIL arrays are not)
    except ImageError as err:
        raise DatasetError(str(err)) from None


def is_fid_stats(path: str | Path) -> bool:
    """Whether `path` is an .npz of FID statistics (arrays mu and sigma, as pytorch-fid's and ours)."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {"mu", "sigma"} <= set(npz.files)
    except Exception:  # noqa: BLE001 - unreadable files are reported by the image reader
        return False


def read_user_images(path: str | Path, key: str | None = None, net_shape: bool = True,
                     wanted: tuple[str, ...] = ("x", "x_test"), flag: str = "--key") -> np.ndarray:
    """uint8 (N, C, H, W) images from an image folder, one image file, an .npz (array `key`, else the first
    of `wanted`, else its only array) or an .npy; floats in [0, 1] are quantised like `check_images`."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _checked(read_image_folder(path), str(path), net_shape)
    if not path.exists():
        raise _missing(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from pae.files.datasets import _read_image

        c = folder_channels([path])
        return _checked(_read_image(path, c, None, None, "bicubic")[None], str(path), net_shape)
    if suffix not in ARRAY_SUFFIXES:
        raise DatasetError(f"{path}: unsupported file type {path.suffix or '(none)'}; give {FORMS}")
    if is_fid_stats(path):
        raise DatasetError(f"{path}: holds FID statistics (mu, sigma), not images; give it to `pae fid --real` or "
                           "`--fake`, or pass the images themselves")
    arrays = _read_arrays(path)
    k = _pick(path, arrays, key, wanted, flag)
    return _checked(arrays[k], f"{path}[{k}]", net_shape)


def read_user_training(path: str | Path, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x_train, x_valid or None): a folder with train/ (and valid/) subfolders, any other image folder (all
    images train), an .npz with x_train [x_valid] (or x, or one array), an .npy or an image file."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / "train").is_dir():
        x_valid = read_user_images(path / "valid") if (path / "valid").is_dir() else None
        return read_user_images(path / "train"), x_valid
    if path.is_file() and path.suffix == ".npz" and key is None:
        arrays = _read_arrays(path)
        if "x_train" in arrays:
            x_valid = _checked(arrays["x_valid"], f"{path}[x_valid]", True) if "x_valid" in arrays else None
            return _checked(arrays["x_train"], f"{path}[x_train]", True), x_valid
    return read_user_images(path, key, wanted=("x",)), None


# ----------------------------------------------------------------------------------------------------------
# Writing


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [0, 1] images → uint8 round(255·x) (uint8 input unchanged)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _png(array: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0)))


@contextlib.contextmanager
def new_folder(folder: str | Path, fix: str) -> Iterator[Path]:
    """A temporary folder beside `folder` to write into; moved to `folder` when the block completes, removed if it
    fails, so no partial folder is left. An existing file or non-empty folder is refused (`fix` says what to do)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DatasetError(f"{folder}: exists and is not an empty folder; {fix}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            folder.rmdir()
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_image_folder(folder: str | Path, images: np.ndarray, prefix: str = "image") -> Path:
    """One PNG per image, <prefix>_0000.png ..., into the new folder `folder` (`new_folder`)."""
    u8 = to_uint8(images)
    with new_folder(folder, "choose a new folder for the PNGs") as tmp:
        digits = max(4, len(str(len(u8) - 1)))
        for i, img in enumerate(u8):
            _png(img).save(tmp / f"{prefix}_{i:0{digits}d}.png", format="PNG")
    return Path(folder)


def write_result_folder(folder: str | Path, grids: Mapping[str, tuple[np.ndarray, int | None]],
                        arrays: Mapping[str, np.ndarray]) -> Path:
    """A new folder (`new_folder`) with one PNG grid per entry of `grids` (name → (images [0, 1] (N, C, H, W),
    columns)) and `arrays` as result.npz."""
    with new_folder(folder, "choose a new output folder (--out)") as tmp:
        for name, (images, ncols) in grids.items():
            write_png_grid(tmp / f"{name}.png", images, ncols)
        save_npz(tmp / "result.npz", **arrays)
    return Path(folder)


def write_png_grid(path: str | Path, images: np.ndarray, ncols: int | None = None) -> Path:
    """All images in one PNG grid (1-pixel gaps; `ncols` default ⌈√N⌉), written atomically."""
    from pae.science.figures import tile_images

    u8 = to_uint8(images)
    grid = tile_images(u8, ncols=ncols or math.ceil(math.sqrt(len(u8))))
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def write_user_images(path: str | Path, images: np.ndarray) -> Path:
    """float [0, 1] (or uint8) images (N, C, H, W) → `path`: .png (one grid), .npz (uint8 array x), .npy, or a
    folder of PNGs (a path without suffix, or an existing empty folder)."""
    path = Path(path)
    u8 = to_uint8(images)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == "":
        return write_image_folder(path, u8)
    if suffix == ".npz":
        save_npz(path, x=u8)
    elif suffix == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, u8)
    elif suffix == ".png":
        write_png_grid(path, u8)
    else:
        raise DatasetError(f"{path}: unsupported output type {path.suffix}; use .png (one grid), .npz, .npy, or "
                           "a folder name without suffix (one PNG per image)")
    return path


# ----------------------------------------------------------------------------------------------------------
# FID statistics


def save_fid_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, **meta: Any) -> Path:
    """FID statistics (feature mean mu, covariance sigma: pytorch-fid's names) plus meta (features, normalize,
    n_images, source) as an .npz, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise DatasetError(f"{path}: FID statistics are written as .npz; name the file <something>.npz")
    save_npz(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
             format=np.asarray(STATS_FORMAT), **{k: np.asarray(v) for k, v in meta.items()})
    return path


def load_fid_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(mu, sigma, meta) of a statistics .npz written by `save_fid_stats` or by pytorch-fid (meta then {})."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    arrays = _read_arrays(path)
    if not {"mu", "sigma"} <= set(arrays):
        raise DatasetError(f"{path}: not a FID statistics file (needs arrays mu and sigma; it holds "
                           f"{sorted(arrays)}); write one with `pae fid --real IMAGES --save-stats {path.name}`")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise DatasetError(f"{path}: mu {mu.shape} and sigma {sigma.shape} are not a mean and its covariance; "
                           "write the file again with --save-stats")
    meta = {k: arrays[k].item() for k in arrays if k not in ("mu", "sigma") and arrays[k].ndim == 0}
    return mu, sigma, meta
