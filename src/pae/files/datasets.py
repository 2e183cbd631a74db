"""Dataset registry: any image dataset described by a config entry (paper Sec. 4 data, plus user data).

A registry maps dataset names to entries ``{kind: ..., <options>}``. Built-in kinds read the paper's raw
files through :mod:`pae.files.data` (fetched in the order mirror → system folders → download, checksum-verified):
``fmnist`` and ``mnist`` (idx files), ``celeba`` (official aligned images + partition file) and ``omniglot``
(an out-of-distribution set only). User kinds read local files: ``npz`` (arrays ``x_train/x_valid/x_test``,
or ``x_train/x_test``, or one ``x``, split with a seed) and ``folder`` (image files in ``train/valid/test``
subfolders, or one flat folder split with a seed; optional crop and resize).

Every kind returns what the preprocessing stage stores: uint8 ``x_train, x_valid, x_test`` of shape
``(N, C, H, W)`` with ``C`` in {1, 3} and, when known, int64 labels ``y_*`` (Omniglot: ``x``, ``y``).
Everything read is checked (dtype, value range, NaN, shape, channels, empty splits, mixed image sizes,
unreadable files); a problem is one :class:`DatasetError` naming the file or config key and the fix.
:func:`write_processed` writes nothing unless the whole dataset was read and checked.
"""

from __future__ import annotations

import copy
import logging
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pae.files import data as D
from pae.files.io import save_json, save_npz
from pae.science.images import ImageError, check_images, net_size_problem
from pae.science.splits import random_split

_LOG = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_HOWTO = (
    "CelebA is not redistributable and is licensed for non-commercial research and educational use only. "
    f"Obtain it by hand: open the official CelebA page ({CELEBA_PAGE}), read and agree to its agreement "
    "(non-commercial research purposes only), download 'Img/img_align_celeba.zip' (Align&Cropped Images) and "
    "'Eval/list_eval_partition.txt' from its data links, and put both files unchanged at <mirror>/celeba/ "
    f"(<mirror> = config key data.mirror, or the environment variable {D.MIRROR_ENV}); they are then checked "
    "against their known MD5 values"
)


class DatasetError(D.DataError, ValueError):
    """A dataset entry or the data it points at is invalid; the message names the key or file and the fix."""


# ----------------------------------------------------------------------------------------------------------
# Kinds and their options
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """A dataset kind: its options (name → default; ``REQUIRED`` marks required ones) and what it yields."""

    name: str
    options: dict[str, Any]
    description: str
    builtin: bool = False  # raw files come from the pae.files.data registry (checksummed)
    ood_only: bool = False  # yields ``x``, ``y`` (an OoD set) instead of train/valid/test
    data_defaults: dict[str, str] = field(default_factory=dict)  # option → config key data.<key> default


REQUIRED = object()
_USER_OPTIONS = {"path": REQUIRED, "split": None, "channels": None, "crop": None, "size": None,
                 "resample": "bicubic", "ood_only": False}
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("fmnist", {"valid_size": 10000, "split_seed": 0},
             "Fashion-MNIST idx files; valid_size images of the 60k training file become the validation split",
             builtin=True, data_defaults={"valid_size": "valid_size", "split_seed": "split_seed"}),
        Kind("mnist", {"valid_size": 10000, "split_seed": 0},
             "MNIST idx files; valid_size images of the 60k training file become the validation split",
             builtin=True, data_defaults={"valid_size": "valid_size", "split_seed": "split_seed"}),
        Kind("celeba", {"size": 64, "resample": "bicubic"},
             "CelebA aligned images, rows 45:173 and columns 25:153 (128×128) resized to size×size, "
             "official partition", builtin=True,
             data_defaults={"size": "celeba_size", "resample": "celeba_resample"}),
        Kind("omniglot", {"count": None},
             "Omniglot evaluation alphabets at 28×28 (out-of-distribution set only); count = first images "
             "kept (null: all)", builtin=True, ood_only=True, data_defaults={"count": "omniglot_count"}),
        Kind("npz", {**_USER_OPTIONS, "sha256": None},
             "a NumPy .npz file: x_train/x_valid/x_test, or x_train/x_test, or x (uint8, or floats in [0, 1]); "
             "optional y_* / y labels"),
        Kind("folder", {**_USER_OPTIONS, "channels": REQUIRED},
             "a folder of image files: train/valid/test subfolders, or a flat folder with split; "
             "one level of class subfolders gives labels"),
    )
}
def is_ood_only(entry: Mapping[str, Any]) -> bool:
    """Whether a normalised entry yields one OoD set ``x`` (Omniglot, or a user entry with ood_only: true)
    instead of train/valid/test splits."""
    kind = KINDS[entry["kind"]]
    return kind.ood_only or ("ood_only" in kind.options and bool(entry["ood_only"]))


BUILTIN_SOURCES = {"fmnist": "fmnist", "mnist": "mnist", "celeba": "celeba"}  # kind → pae.files.data.DATASETS key


def _key(name: str | None) -> str:
    return f"datasets.{name}" if name else "the dataset entry"


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _pair(value: Any, key: str, what: str) -> list[int]:
    if _is_int(value):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) and v >= 1 for v in value)):
        raise DatasetError(f"{key}: {what} must be a positive integer or [height, width], got {value!r}")
    return [int(value[0]), int(value[1])]


def _split_spec(value: Any, key: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DatasetError(f"{key}: expected null or {{valid: <fraction or count>, test: <fraction or count>, "
                           f"seed: <int>}}, got {value!r}")
    unknown = sorted(set(value) - {"valid", "test", "seed"})
    if unknown:
        raise DatasetError(f"{key}: unknown keys {unknown}; use valid, test and seed")
    out: dict[str, Any] = {"valid": None, "test": None, "seed": 0} | dict(value)  # seed 0: the schema's default
    for part in ("valid", "test"):
        v = out[part]
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DatasetError(f"{key}.{part}: expected a fraction in (0, 1) or an image count ≥ 1, got {v!r}")
        if _is_int(v):
            if v < 1:
                raise DatasetError(f"{key}.{part}: an image count must be at least 1, got {v}")
            out[part] = int(v)
        elif not 0.0 < float(v) < 1.0:
            raise DatasetError(f"{key}.{part}: a fraction must lie strictly between 0 and 1, got {v} "
                               "(write an integer for an image count)")
        else:
            out[part] = float(v)
    if out["valid"] is None:
        raise DatasetError(f"{key}: needs valid (a fraction in (0, 1) or an image count)")
    if not _is_int(out["seed"]) or out["seed"] < 0:
        raise DatasetError(f"{key}.seed: expected an integer ≥ 0, got {out['seed']!r}")
    out["seed"] = int(out["seed"])
    return out


def _check_option(kind: str, opt: str, value: Any, key: str) -> Any:
    """One option's value, checked and put in canonical form."""
    k = f"{key}.{opt}"
    if opt in ("valid_size", "count", "size") and kind in ("fmnist", "mnist", "omniglot", "celeba"):
        if value is None and opt == "count":
            return None
        if not _is_int(value) or value < 1:
            raise DatasetError(f"{k}: expected a positive integer, got {value!r}")
        return int(value)
    if opt in ("split_seed",):
        if not _is_int(value) or value < 0:
            raise DatasetError(f"{k}: expected an integer ≥ 0, got {value!r}")
        return int(value)
    if opt == "resample":
        if value not in D.PIL_FILTERS:
            raise DatasetError(f"{k}: {value!r} is not a resize filter; use one of {', '.join(D.PIL_FILTERS)}")
        return value
    if opt == "path":
        if not isinstance(value, (str, Path)) or not str(value):
            raise DatasetError(f"{k}: expected the path of the {kind} {'file' if kind == 'npz' else 'folder'}, "
                               f"got {value!r}")
        return str(value)
    if opt == "channels":
        if value is None and kind == "npz":
            return None
        if value not in (1, 3) or isinstance(value, bool):
            raise DatasetError(f"{k}: expected 1 (grayscale) or 3 (RGB), got {value!r}")
        return int(value)
    if opt == "crop":
        if value is None:
            return None
        ok = isinstance(value, (list, tuple)) and len(value) == 4 and all(_is_int(v) for v in value)
        if not ok or value[0] < 0 or value[1] < 0 or value[2] < 1 or value[3] < 1:
            raise DatasetError(f"{k}: expected null or [top, left, height, width] in pixels (top, left ≥ 0; "
                               f"height, width ≥ 1), e.g. [45, 25, 128, 128]; got {value!r}")
        return [int(v) for v in value]
    if opt == "size":  # npz / folder: [H, W] or one int
        return None if value is None else _pair(value, k, "size")
    if opt == "split":
        return _split_spec(value, k)
    if opt == "ood_only":
        if not isinstance(value, bool):
            raise DatasetError(f"{k}: expected true (all images form one out-of-distribution set, no split) or "
                               f"false, got {value!r}")
        return value
    if opt == "sha256":
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise DatasetError(f"{k}: expected null or 64 hex digits (sha256sum of the file), got {value!r}")
        return value.lower()
    raise AssertionError(f"unhandled option {opt}")  # pragma: no cover - KINDS and this function disagree


def expected_shape(entry: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(C, H, W) that a normalised entry will produce; None where only the data can tell."""
    kind = entry["kind"]
    if kind in ("fmnist", "mnist", "omniglot"):
        return (1, 28, 28)
    if kind == "celeba":
        return (3, entry["size"], entry["size"])
    hw = entry["size"] or (entry["crop"][2:] if entry["crop"] else None)
    return (entry["channels"], *(hw or (None, None)))


def _checked_images(x: Any, where: str, **options: Any) -> np.ndarray:
    """`pae.science.images.check_images`, its error raised as a DatasetError (the one error type of this module)."""
    try:
        return check_images(x, where, **options)
    except ImageError as err:
        raise DatasetError(str(err)) from None


def normalize_entry(name: str | None, entry: Mapping[str, Any] | None,
                    data_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete, checked copy of one registry entry (every option of its kind filled in).

    ``entry`` None (or a built-in name given with no options) means the built-in kind of that name.
    Defaults of built-in options come from ``data_defaults`` (the config's ``data`` section: valid_size,
    split_seed, celeba_size, celeba_resample, omniglot_count) when given, else from :data:`KINDS`.
    """
    key = _key(name)
    if name is not None and (not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name)):
        raise DatasetError(f"datasets: name {name!r} is not allowed; names start with a letter and use only "
                           "letters, digits, '_' and '-' (they become file names)")
    if entry is None:
        if name not in KINDS or KINDS[name].builtin is False:
            raise DatasetError(f"{key}: needs an entry {{kind: ..., ...}}; built-in names that need none are "
                               f"{', '.join(k for k, v in KINDS.items() if v.builtin)}")
        entry = {"kind": name}
    if not isinstance(entry, Mapping):
        raise DatasetError(f"{key}: expected a mapping {{kind: ..., <options>}}, got {entry!r}")
    kind_name = entry.get("kind")
    if kind_name is None:
        raise DatasetError(f"{key}: needs kind (one of {', '.join(KINDS)}); write null instead of an entry for a "
                           "built-in dataset with the data section's options")
    if kind_name not in KINDS:
        raise DatasetError(f"{key}.kind: {kind_name!r} is not a dataset kind; use one of {', '.join(KINDS)}")
    kind = KINDS[kind_name]
    if name in KINDS and KINDS[name].builtin and kind_name != name:
        raise DatasetError(f"{key}: the name {name!r} is reserved for the built-in {name} data; "
                           f"give your {kind_name} entry another name")
    unknown = sorted(set(entry) - set(kind.options) - {"kind"})
    if unknown:
        raise DatasetError(f"{key}: unknown options {unknown} for kind {kind_name}; its options are "
                           f"{', '.join(kind.options) or '(none)'}")
    data_defaults = data_defaults or {}
    out: dict[str, Any] = {"kind": kind_name}
    for opt, default in kind.options.items():
        if opt in entry:
            value = entry[opt]
        elif opt in kind.data_defaults and kind.data_defaults[opt] in data_defaults:
            value = data_defaults[kind.data_defaults[opt]]
        elif default is REQUIRED:
            raise DatasetError(f"{key}: kind {kind_name} needs option {opt!r}")
        else:
            value = copy.deepcopy(default)
        out[opt] = _check_option(kind_name, opt, value, key)
    c, h, w = expected_shape(out)
    if h is not None and w is not None and (problem := net_size_problem(h, w)):
        fix = "set size to a multiple of 4, e.g. 64" if kind_name == "celeba" else "set size: [64, 64] (or [28, 28])"
        raise DatasetError(f"{key}: {problem}; {fix}")
    if out.get("ood_only") and out.get("split") is not None:
        raise DatasetError(f"{key}: ood_only: true uses all images as one OoD set; remove split")
    return out


def validate_registry(value: Mapping[str, Any] | Sequence[str],
                      data_defaults: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Check a whole ``datasets`` registry at config time; return {name: normalised entry}.

    ``value`` is a mapping name → entry (None for a built-in with default options) or a list of built-in
    names (the current ``datasets: [fmnist]`` form). Every problem is listed in one :class:`DatasetError`.
    """
    if isinstance(value, str) or not isinstance(value, (Mapping, Sequence)):
        raise DatasetError(f"datasets: expected a mapping name → {{kind: ..., <options>}} or a list of built-in "
                           f"names, got {value!r}")
    if not isinstance(value, Mapping):
        dup = sorted({n for n in value if list(value).count(n) > 1})
        if dup:
            raise DatasetError(f"datasets: names listed twice: {dup}")
        listable = [k for k, v in KINDS.items() if v.builtin and not v.ood_only]
        other = [n for n in value if n not in listable]
        if other:
            raise DatasetError(f"datasets: {other} cannot be listed by name; a list names built-in training "
                               f"datasets ({', '.join(listable)}); describe others in a mapping name → entry")
        value = {n: None for n in value}
    if not value:
        raise DatasetError("datasets: the registry is empty; name at least one dataset (e.g. fmnist)")
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, entry in value.items():
        try:
            out[name] = normalize_entry(name, entry, data_defaults)
        except DatasetError as exc:
            problems.append(str(exc))
    if problems:
        if len(problems) == 1:
            raise DatasetError(problems[0])
        raise DatasetError(f"datasets: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return out


# ----------------------------------------------------------------------------------------------------------
# JSON-schema fragment (for workflow/schemas/config.schema.yaml; no defaults: normalize_entry fills them)
# ----------------------------------------------------------------------------------------------------------
def entry_schema() -> dict[str, Any]:
    """JSON schema (draft 2020-12) of one registry entry; :func:`normalize_entry` does the deeper checks."""
    count_or_fraction = {"type": "number", "exclusiveMinimum": 0,
                         "description": "a fraction in (0, 1) of the images, or an integer image count"}
    hw = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}
    props: dict[str, Any] = {
        "kind": {"enum": list(KINDS), "description": "; ".join(f"{k}: {v.description}" for k, v in KINDS.items())},
        "valid_size": {"type": "integer", "minimum": 1,
                       "description": "fmnist/mnist: validation images split off the 60k training file "
                                      "(default: data.valid_size)"},
        "split_seed": {"type": "integer", "minimum": 0,
                       "description": "fmnist/mnist: seed of that split (default: data.split_seed)"},
        "count": {"type": ["integer", "null"], "minimum": 1,
                  "description": "omniglot: first images kept, null = all (default: data.omniglot_count)"},
        "path": {"type": "string", "description": "npz: the .npz file; folder: the image folder"},
        "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-fA-F]{64}$",
                   "description": "npz: expected sha256sum of the file (null: not checked)"},
        "split": {
            "description": "null: the data has its splits (npz x_train/x_valid/x_test, folder train/valid/test); "
                           "otherwise how to draw the missing ones (valid, and test when there is no test split)",
            "oneOf": [
                {"type": "null"},
                {"type": "object", "additionalProperties": False, "required": ["valid"],
                 "properties": {"valid": count_or_fraction, "test": dict(count_or_fraction),
                                "seed": {"type": "integer", "minimum": 0,
                                         "description": "seed of the random split (default 0)"}}},
            ],
        },
        "channels": {"enum": [1, 3, None],
                     "description": "folder (required): 1 = grayscale, 3 = RGB (images are converted); "
                                    "npz: expected channel count, null = any of 1 or 3"},
        "crop": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer", "minimum": 0},
                                              "minItems": 4, "maxItems": 4}],
                 "description": "npz/folder: [top, left, height, width] crop in pixels before resizing, or null"},
        "size": {"oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}, hw],
                 "description": "celeba: output size (square, default data.celeba_size); npz/folder: [H, W] "
                                "resize after cropping, or null (all images must then share one size); "
                                "H and W must be multiples of 4"},
        "ood_only": {"type": "boolean",
                     "description": "npz/folder: true = every image of the file or folder is one "
                                    "out-of-distribution set x (for ood.sets; no split, not trainable)"},
        "resample": {"enum": list(D.PIL_FILTERS),
                     "description": "PIL resize filter (celeba default: data.celeba_resample; others: bicubic)"},
    }
    per_kind = [
        {"if": {"properties": {"kind": {"const": k}}, "required": ["kind"]},
         "then": {"propertyNames": {"enum": ["kind", *v.options]},
                  "required": [o for o, d in v.options.items() if d is REQUIRED]}}
        for k, v in KINDS.items()
    ]
    return {"type": "object", "required": ["kind"], "additionalProperties": False, "properties": props,
            "allOf": per_kind,
            "description": "one dataset: its kind and the options of that kind (docs/notes-data.md)"}


def registry_schema() -> dict[str, Any]:
    """JSON schema of the ``datasets`` key: a list of built-in names or a mapping name → entry (or null)."""
    return {
        "description": "datasets: a list of built-in names (fmnist, mnist, celeba) or a mapping name → "
                       "{kind, <options>} (null for a built-in with its defaults)",
        "oneOf": [
            {"type": "array", "minItems": 1, "uniqueItems": True,
             "items": {"enum": [k for k, v in KINDS.items() if v.builtin and not v.ood_only]}},
            {"type": "object", "minProperties": 1, "propertyNames": {"pattern": NAME_PATTERN},
             "additionalProperties": {"oneOf": [{"type": "null"}, entry_schema()]}},
        ],
    }


# ----------------------------------------------------------------------------------------------------------
# Checks on arrays (pure)
# ----------------------------------------------------------------------------------------------------------


def check_labels(y: Any, n: int, where: str) -> np.ndarray:
    """Labels → int64 ``(n,)``; integer dtype and one label per image required."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{where}: expected {n} labels (one per image, shape ({n},)), got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be integers, got dtype {y.dtype}; store y.astype(np.int64)")
    return y.astype(np.int64)


def check_splits(arrays: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The split dict as stored: x_train/x_valid/x_test uint8 (N, C, H, W), one (C, H, W), labels all or none."""
    missing = [f"x_{s}" for s in SPLITS if f"x_{s}" not in arrays]
    if missing:
        raise DatasetError(f"{where}: split arrays {missing} are missing")
    shapes = {s: arrays[f"x_{s}"].shape[1:] for s in SPLITS}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{where}: the splits have different image shapes {shapes}; resize them to one "
                           "size (option size: [H, W])")
    for s in SPLITS:
        x = arrays[f"x_{s}"]
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) == 0:
            raise DatasetError(f"{where}: x_{s} must be a non-empty uint8 (N, C, H, W) array, got {x.dtype} "
                               f"{x.shape}")
    labelled = [s for s in SPLITS if f"y_{s}" in arrays]
    if labelled and len(labelled) != 3:
        raise DatasetError(f"{where}: labels given for {labelled} only; give y_train, y_valid and y_test, or none")
    out: dict[str, np.ndarray] = {}
    for s in SPLITS:
        out[f"x_{s}"] = arrays[f"x_{s}"]
        if labelled:
            out[f"y_{s}"] = check_labels(arrays[f"y_{s}"], len(arrays[f"x_{s}"]), f"{where} (y_{s})")
    return out


def split_counts(n: int, valid: int | float, test: int | float | None, where: str) -> tuple[int, int]:
    """Image counts (valid, test) for fractions or counts of ``n`` images; train keeps at least one."""
    def count(v: int | float | None) -> int:
        if v is None:
            return 0
        return int(v) if _is_int(v) else max(1, int(round(float(v) * n)))

    nv, nt = count(valid), count(test)
    if nv + nt >= n:
        raise DatasetError(f"{where}: cannot split {n} images into {nv} validation + {nt} test images and keep "
                           "training images; lower split.valid / split.test or add images")
    return nv, nt


def _apply_split(x: np.ndarray, y: np.ndarray | None, spec: Mapping[str, Any], where: str,
                 with_test: bool) -> dict[str, np.ndarray]:
    nv, nt = split_counts(len(x), spec["valid"], spec["test"] if with_test else None, where)
    idx = random_split(len(x), nv, nt, spec["seed"])
    names = SPLITS if with_test else SPLITS[:2]
    out = {f"x_{s}": x[i] for s, i in zip(names, idx, strict=False)}
    if y is not None:
        out.update({f"y_{s}": y[i] for s, i in zip(names, idx, strict=False)})
    return out


# ----------------------------------------------------------------------------------------------------------
# Per-image crop / resize (shared by npz and folder)
# ----------------------------------------------------------------------------------------------------------
def transform_image(img: np.ndarray, crop: Sequence[int] | None, size: Sequence[int] | None,
                    resample: str = "bicubic") -> np.ndarray:
    """One uint8 image (C, H, W) → cropped ``[top, left, height, width]`` then resized to ``size`` [H, W].

    Raises ValueError (without a file name; callers add it) when the crop leaves the image.
    """
    from PIL import Image

    c, h, w = img.shape
    if crop is not None:
        top, left, ch, cw = crop
        if top + ch > h or left + cw > w:
            raise ValueError(f"the crop [top {top}, left {left}, height {ch}, width {cw}] does not fit in a "
                             f"{h}×{w} image")
        img = img[:, top:top + ch, left:left + cw]
    if size is not None and tuple(img.shape[1:]) != tuple(size):
        pil = Image.fromarray(np.ascontiguousarray(img[0] if c == 1 else img.transpose(1, 2, 0)))
        pil = pil.resize((int(size[1]), int(size[0])), resample=getattr(Image.Resampling, resample.upper()))
        arr = np.asarray(pil, dtype=np.uint8)
        img = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(img)


def _transform_all(x: np.ndarray, crop: Sequence[int] | None, size: Sequence[int] | None, resample: str,
                   where: str) -> np.ndarray:
    if crop is None and size is None:
        return x
    try:
        return np.stack([transform_image(img, crop, size, resample) for img in x])
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}; fix the crop option") from exc


# ----------------------------------------------------------------------------------------------------------
# Readers (path in, checked arrays out)
# ----------------------------------------------------------------------------------------------------------
@dataclass
class DatasetArrays:
    """Checked arrays of one dataset (what gets stored) and a JSON-able description of them."""

    arrays: dict[str, np.ndarray]
    info: dict[str, Any]


def describe(arrays: Mapping[str, np.ndarray], **extra: Any) -> dict[str, Any]:
    """Image shape, per-array counts and whether labels are present."""
    xs = {k: v for k, v in arrays.items() if k.startswith("x")}
    first = next(iter(xs.values()))
    return {"image_shape": list(first.shape[1:]), "counts": {k: int(len(v)) for k, v in xs.items()},
            "labels": any(k.startswith("y") for k in arrays), **extra}


def _finish(arrays: dict[str, np.ndarray], where: str, net_shape: bool, **extra: Any) -> DatasetArrays:
    arrays = check_splits(arrays, where)
    if net_shape:
        h, w = arrays["x_train"].shape[2:]
        if problem := net_size_problem(h, w):
            raise DatasetError(f"{where}: {problem}; set size: [64, 64] (or [28, 28]) in the entry")
    return DatasetArrays(arrays, describe(arrays, **extra))


def read_npz(path: str | Path, *, split: Mapping[str, Any] | None = None, channels: int | None = None,
             crop: Sequence[int] | None = None, size: Sequence[int] | None = None, resample: str = "bicubic",
             sha256: str | None = None, net_shape: bool = True, ood_only: bool = False) -> DatasetArrays:
    """A user ``.npz``: ``x_train, x_valid, x_test`` (split null), ``x_train, x_test`` (split.valid) or
    ``x`` (split.valid and split.test); labels ``y_*`` / ``y`` optional. Returns checked uint8 splits.
    With ``ood_only`` the file holds one array ``x`` (or only one array): all of it is one OoD set ``x``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: npz file not found; fix the entry's path")
    if sha256 is not None:
        got = D.file_digest(path, "sha256")
        if got != sha256:
            raise DatasetError(f"{path}: sha256 {got} does not match the entry's sha256 {sha256}; "
                               "replace the file or update the entry")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read it as a NumPy .npz archive ({exc}); save it with np.savez "
                           "(numeric arrays, no pickled objects)") from exc
    have = set(raw)
    if ood_only:
        images = [k for k in raw if not k.startswith("y")]
        key = "x" if "x" in raw else (images[0] if len(images) == 1 else None)
        if key is None:
            raise DatasetError(f"{path}: holds arrays {sorted(have)}; an ood_only entry reads one image array x "
                               "(save it with numpy.savez(path, x=images))")
        x = _transform_all(_checked_images(raw[key], f"{path} ({key})", channels=channels, net_shape=False),
                           crop, size, resample, f"{path} ({key})")
        return _ood_set(x, raw.get("y" + key[1:]), str(path), net_shape, kind="npz")
    three, two = {"x_train", "x_valid", "x_test"}, {"x_train", "x_test"}
    if three <= have:
        layout = "three"
    elif two <= have and "x_valid" not in have:
        layout = "two"
    elif "x" in have and not have & three:
        layout = "one"
    else:
        raise DatasetError(f"{path}: holds arrays {sorted(have)}; expected x_train, x_valid, x_test (split: "
                           "null), or x_train and x_test (split: {valid: ...}), or one x (split: {valid: ..., "
                           "test: ...}), each with optional labels y_* / y")
    keys = {"three": [f"x_{s}" for s in SPLITS], "two": ["x_train", "x_test"], "one": ["x"]}[layout]
    xs = {k: _checked_images(raw[k], f"{path} ({k})", channels=channels, net_shape=False) for k in keys}
    xs = {k: _transform_all(v, crop, size, resample, f"{path} ({k})") for k, v in xs.items()}
    ys = {k: check_labels(raw["y" + k[1:]], len(xs[k]), f"{path} (y{k[1:]})") for k in keys if "y" + k[1:] in raw}
    where = f"{path}"
    if layout == "three":
        if split is not None:
            raise DatasetError(f"{path}: already holds x_train, x_valid and x_test; set split: null")
        arrays = {**xs, **{"y" + k[1:]: v for k, v in ys.items()}}
    elif split is None:
        need = "split: {valid: ...}" if layout == "two" else "split: {valid: ..., test: ..., seed: ...}"
        raise DatasetError(f"{path}: holds {keys} only; add {need} to the entry to draw the missing splits")
    elif layout == "two":
        if split.get("test") is not None:
            raise DatasetError(f"{path}: already holds x_test; remove split.test")
        if ys and len(ys) != 2:
            raise DatasetError(f"{path}: labels for {sorted(ys)} only; give y_train and y_test, or none")
        arrays = _apply_split(xs["x_train"], ys.get("x_train"), split, where, with_test=False)
        arrays["x_test"] = xs["x_test"]
        if "x_test" in ys:
            arrays["y_test"] = ys["x_test"]
    else:
        if split.get("test") is None:
            raise DatasetError(f"{path}: holds one array x; split needs test as well as valid")
        arrays = _apply_split(xs["x"], ys.get("x"), split, where, with_test=True)
    return _finish(arrays, where, net_shape, source=str(path), kind="npz")


def _ood_set(x: np.ndarray, y: np.ndarray | None, where: str, net_shape: bool, **extra: Any) -> DatasetArrays:
    """All images as one OoD set ``x`` (+ ``y``), checked."""
    if net_shape and (problem := net_size_problem(*x.shape[2:])):
        raise DatasetError(f"{where}: {problem}; set size: [64, 64] (or [28, 28]) in the entry")
    arrays = {"x": x, **({"y": check_labels(y, len(x), f"{where} (y)")} if y is not None else {})}
    return DatasetArrays(arrays, describe(arrays, source=where, ood_only=True, **extra))


def _image_files(folder: Path) -> tuple[list[Path], list[str] | None]:
    """Image files below ``folder`` (sorted) and their class names (one level of subfolders) or None."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    depths = {len(p.relative_to(folder).parts) for p in files}
    if depths - {1, 2}:
        deep = next(p for p in files if len(p.relative_to(folder).parts) > 2)
        raise DatasetError(f"{deep}: images may sit in {folder} or in one level of class subfolders, not deeper; "
                           "move them up")
    if depths == {1, 2}:
        a = next(p for p in files if len(p.relative_to(folder).parts) == 1)
        b = next(p for p in files if len(p.relative_to(folder).parts) == 2)
        raise DatasetError(f"{folder}: mixes images at the top ({a.name}) and in class subfolders ({b.parent.name}/"
                           f"{b.name}); put all of them in class subfolders or none")
    classes = [p.relative_to(folder).parts[0] for p in files] if depths == {2} else None
    return files, classes


def _read_image(path: Path, channels: int, crop: Sequence[int] | None, size: Sequence[int] | None,
                resample: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: cannot read this image file ({type(exc).__name__}: {exc}); "
                           "replace or delete it") from exc
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    try:
        return transform_image(arr, crop, size, resample)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}; fix the entry's crop (or remove the image)") from exc


def _read_images(folder: Path, files: list[Path], channels: int, crop: Sequence[int] | None,
                 size: Sequence[int] | None, resample: str) -> np.ndarray:
    from tqdm import tqdm

    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found; every split needs "
                           "at least one image")
    out: list[np.ndarray] = []
    first: Path | None = None
    for p in tqdm(files, desc=folder.name, mininterval=10, disable=len(files) < 1000):
        img = _read_image(p, channels, crop, size, resample)
        if out and img.shape != out[0].shape:
            raise DatasetError(f"{folder}: images have different sizes: {first} is {out[0].shape[1]}×"
                               f"{out[0].shape[2]}, {p} is {img.shape[1]}×{img.shape[2]} (after any crop); "
                               "set size: [H, W] in the entry to resize them all")
        first = first or p
        out.append(img)
    return np.stack(out)


def read_folder(path: str | Path, *, channels: int, split: Mapping[str, Any] | None = None,
                crop: Sequence[int] | None = None, size: Sequence[int] | None = None, resample: str = "bicubic",
                net_shape: bool = True, ood_only: bool = False) -> DatasetArrays:
    """An image folder: ``train/``, ``valid/``, ``test/`` subfolders (split null; ``valid/`` may be absent
    with split.valid), or a flat folder (split.valid and split.test). Files are read in sorted order,
    converted to ``channels`` (1: PIL "L", 3: "RGB"), cropped and resized; one level of class subfolders
    gives labels (class index = position in the sorted class names). With ``ood_only`` every image of the
    (flat or class-subfoldered) folder is one OoD set ``x``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found; fix the entry's path")
    if ood_only:
        files, classes = _image_files(root)
        x = _read_images(root, files, channels, crop, size, resample)
        names = sorted(set(classes or []))
        y = np.array([names.index(c) for c in classes], dtype=np.int64) if classes else None
        return _ood_set(x, y, str(root), net_shape, kind="folder", **({"classes": names} if names else {}))
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present:
        if "train" not in present or "test" not in present:
            raise DatasetError(f"{root}: has subfolders {present}; a split layout needs train/ and test/ "
                               "(and valid/, or split.valid to draw it from train/)")
        parts = {s: root / s for s in present}
    else:
        parts = {"all": root}
    listed = {s: _image_files(f) for s, f in parts.items()}
    labelled = {s for s, (_, cls) in listed.items() if cls is not None}
    if labelled and labelled != set(listed):
        raise DatasetError(f"{root}: {sorted(labelled)} use class subfolders but {sorted(set(listed) - labelled)} "
                           "do not; use the same layout in every split")
    names = sorted({c for _, cls in listed.values() for c in (cls or [])})
    xs = {s: _read_images(parts[s], files, channels, crop, size, resample) for s, (files, _) in listed.items()}
    ys = {s: np.array([names.index(c) for c in cls], dtype=np.int64) for s, (_, cls) in listed.items() if cls}
    shapes = {s: x.shape[1:] for s, x in xs.items()}
    if len(set(shapes.values())) > 1:
        raise DatasetError(f"{root}: the splits have different image sizes {shapes}; set size: [H, W] in the entry")
    where = str(root)
    if "all" in xs:
        if split is None or split.get("test") is None:
            raise DatasetError(f"{root}: a flat folder (no train/valid/test subfolders) needs split: "
                               "{valid: ..., test: ..., seed: ...} in the entry")
        arrays = _apply_split(xs["all"], ys.get("all"), split, where, with_test=True)
    elif "valid" in xs:
        if split is not None:
            raise DatasetError(f"{root}: has train/, valid/ and test/ subfolders; set split: null")
        arrays = {f"{k}_{s}": v for s in SPLITS for k, v in (("x", xs[s]), ("y", ys.get(s))) if v is not None}
    else:
        if split is None:
            raise DatasetError(f"{root}: has train/ and test/ but no valid/; add split: {{valid: ...}} to draw "
                               "the validation images from train/")
        if split.get("test") is not None:
            raise DatasetError(f"{root}: has a test/ subfolder; remove split.test")
        arrays = _apply_split(xs["train"], ys.get("train"), split, where, with_test=False)
        arrays["x_test"] = xs["test"]
        if "test" in ys:
            arrays["y_test"] = ys["test"]
    return _finish(arrays, where, net_shape, source=where, kind="folder",
                   **({"classes": names} if names else {}))


def read_celeba(zip_path: str | Path, partition_path: str | Path, *, size: int = 64,
                resample: str = "bicubic") -> DatasetArrays:
    """Official CelebA files → checked splits (pae.files.data.preprocess_celeba: rows 45:173, cols 25:153, resize)."""
    try:
        arrays = D.preprocess_celeba(zip_path, partition_path, size, resample)
    except zipfile.BadZipFile as exc:
        msg = f"{zip_path}: not a readable zip file ({exc}); download img_align_celeba.zip again"
        raise DatasetError(msg) from exc
    except (OSError, D.DataError) as exc:
        raise DatasetError(f"{exc}\nfix: use the unmodified official files. {CELEBA_HOWTO}") from exc
    return _finish(arrays, str(zip_path), True, source=str(zip_path), kind="celeba")


def read_idx_pair(train_images: str | Path, train_labels: str | Path, test_images: str | Path,
                  test_labels: str | Path, *, valid_size: int = 10000, split_seed: int = 0) -> DatasetArrays:
    """F-MNIST / MNIST idx files → checked splits (``valid_size`` of the training file, seed ``split_seed``)."""
    try:
        x_tr, y_tr = D.read_idx_images(train_images, train_labels)
        x_te, y_te = D.read_idx_images(test_images, test_labels)
        if not 0 < valid_size < len(x_tr):
            raise D.DataError(f"config key data.valid_size = {valid_size} must be between 1 and {len(x_tr) - 1} "
                              f"(the training file has {len(x_tr)} images); lower data.valid_size")
        train, valid, _ = random_split(len(x_tr), valid_size, 0, split_seed)
    except D.DataError as exc:
        raise DatasetError(str(exc)) from exc
    arrays = {"x_train": x_tr[train], "y_train": y_tr[train], "x_valid": x_tr[valid], "y_valid": y_tr[valid],
              "x_test": x_te, "y_test": y_te}
    return _finish(arrays, str(train_images), True, source=str(Path(train_images).parent), kind="idx")


def read_omniglot_ood(path: str | Path, *, count: int | None = None) -> DatasetArrays:
    """Omniglot evaluation npz → the OoD set ``x`` uint8 (N, 1, 28, 28), ``y`` (pae.files.data.omniglot_to_28)."""
    try:
        images, y = D.read_omniglot(path, count)
    except (D.DataError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc
    x = _checked_images(D.omniglot_to_28(images), f"{path} (x)")
    arrays = {"x": x, "y": check_labels(y, len(x), f"{path} (y)")}
    return DatasetArrays(arrays, describe(arrays, source=str(path), kind="omniglot"))


# ----------------------------------------------------------------------------------------------------------
# Drivers: fetch raw files, build, write
# ----------------------------------------------------------------------------------------------------------
def raw_files(entry: Mapping[str, Any]) -> list[D.RawFile]:
    """Registry raw files a built-in entry reads (empty for npz / folder)."""
    kind = entry["kind"]
    if kind in BUILTIN_SOURCES:
        return D.dataset_files(BUILTIN_SOURCES[kind])
    if kind == "omniglot":
        return D.ood_files("omniglot")
    return []


def input_paths(entry: Mapping[str, Any], raw_dir: str | Path) -> list[str]:
    """Files a build of ``entry`` reads: ``raw_dir/<source>/<file>`` for built-ins, the entry's path otherwise."""
    files = raw_files(entry)
    return D.raw_paths(files, raw_dir) if files else [str(Path(entry["path"]).expanduser())]


def fetch_entry(entry: Mapping[str, Any], raw_dir: str | Path, *, name: str | None = None,
                mirror: str | Path | None = None, system_dirs: Sequence[str | Path] = (),
                download: bool = False) -> list[Path]:
    """Verified raw files of a built-in entry at ``raw_dir/<source>/<file>`` (mirror → system dirs →
    download, pae.files.data.fetch_raw); for CelebA a failure explains how to obtain the files by hand."""
    out = []
    for f in raw_files(entry):
        try:
            out.append(D.fetch_raw(f.source, f.filename, raw_dir, mirror, system_dirs, download)[0])
        except D.DataError as exc:
            extra = f"\n{CELEBA_HOWTO}" if entry["kind"] == "celeba" else ""
            raise DatasetError(f"{_key(name)} ({entry['kind']}): {exc}{extra}") from exc
    return out


def _verified_present(entry: Mapping[str, Any], raw_dir: str | Path, name: str | None) -> list[Path]:
    out = []
    for f, p in zip(raw_files(entry), input_paths(entry, raw_dir), strict=True):
        try:
            D.verify_file(p, f)
        except D.DataError as exc:
            extra = f"\n{CELEBA_HOWTO}" if entry["kind"] == "celeba" else ""
            raise DatasetError(f"{_key(name)} ({entry['kind']}): {exc}{extra}") from exc
        out.append(Path(p))
    return out


def build_dataset(entry: Mapping[str, Any] | None, raw_dir: str | Path = "data/raw", *, name: str | None = None,
                  fetch: bool = True, mirror: str | Path | None = None, system_dirs: Sequence[str | Path] = (),
                  download: bool = False, data_defaults: Mapping[str, Any] | None = None) -> DatasetArrays:
    """Read and check the dataset an entry describes (normalised here). Built-ins: ``fetch`` True gets
    verified raw files into ``raw_dir`` first; False requires them there and verifies them."""
    e = normalize_entry(name, entry, data_defaults)
    kind = e["kind"]
    if kind in ("npz", "folder"):
        opts = {k: v for k, v in e.items() if k not in ("kind", "path")}
        reader = read_npz if kind == "npz" else read_folder
        result = reader(e["path"], **opts)
    else:
        paths = (fetch_entry(e, raw_dir, name=name, mirror=mirror, system_dirs=system_dirs, download=download)
                 if fetch else _verified_present(e, raw_dir, name))
        if kind == "celeba":
            result = read_celeba(*paths, size=e["size"], resample=e["resample"])
        elif kind == "omniglot":
            result = read_omniglot_ood(paths[0], count=e["count"])
        else:
            result = read_idx_pair(*paths, valid_size=e["valid_size"], split_seed=e["split_seed"])
    result.info.update(name=name, entry=e, kind=kind)
    return result


def write_processed(entry: Mapping[str, Any] | None, out_path: str | Path, raw_dir: str | Path = "data/raw", *,
                    name: str | None = None, info_path: str | Path | None = None, **build_kwargs: Any
                    ) -> DatasetArrays:
    """Build the dataset and write its arrays to ``out_path`` (and ``info`` as JSON to ``info_path``).

    Everything is read and checked before anything is written; both files are written atomically, so a
    failure leaves no output (pae.files.io.save_npz)."""
    result = build_dataset(entry, raw_dir, name=name, **build_kwargs)
    save_npz(out_path, **result.arrays)
    if info_path is not None:
        save_json(info_path, result.info)
    _LOG.info(f"[data] {name or result.info['kind']}: wrote {out_path}: "
          + ", ".join(f"{k} {v.dtype}{v.shape}" for k, v in result.arrays.items()))
    return result
