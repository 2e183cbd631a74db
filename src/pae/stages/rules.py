"""Helpers for the rule files: the input files, params and runtime estimates of rules whose shape depends on
the config. Kept in Python so they are tested and the rule files stay flat."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pae.files.datasets import KINDS, expected_shape, is_ood_only, validate_registry
from pae.files.io import npz_shapes
from pae.science.posterior import PosteriorSettings
from pae.settings import OOD, Settings
from pae.stages.ood import TABLE2_ROWS

MAP_SECONDS_PER_STEP_PER_500 = 1.0  # measured ≈ 0.5 s at K = 64 on 2 CPU cores; doubled for safety
LAPLACE_SECONDS_PER_IMAGE = 0.5  # Eq. 11 at K = 64: ≈ 0.3-0.5 s per image on one busy CPU core (the decoder's Jacobian)
VAE_DECODES_PER_SECOND = 400  # measured ≈ 550-1200 decodes/s (K = 32, 2 CPU cores, busy to idle); margin


def table2_plan(settings: Settings) -> dict[str, tuple[str, int]]:
    """Table 2 rows of config ood.rows (in that order) → (score-file part, K), checked."""
    rows = settings.ood.rows
    if not rows:
        raise ValueError("config key ood.rows is empty; list at least one of " + ", ".join(TABLE2_ROWS))
    unknown = [r for r in rows if r not in TABLE2_ROWS]
    if unknown or len(set(rows)) != len(rows):
        raise ValueError(f"config key ood.rows = {list(rows)}: unknown or repeated row(s) {unknown or 'repeated'}; "
                         f"choose each at most once from {list(TABLE2_ROWS)}")
    if any(TABLE2_ROWS[r].part == "vae" for r in rows) and "vae" not in settings.vae.models:
        raise ValueError("config key ood.rows asks for elbo/iwae rows, which score the plain VAE, but vae.models "
                         "has no entry 'vae'; add it (beta 1, capacity 0) or drop the rows")

    k_of = {"ood.density_K": settings.ood.density_K, "ood.recon_K": settings.ood.recon_K,
            "ood.eq12_K": settings.ood.eq12_K, "vae.latent_dim": settings.vae.latent_dim}
    return {r: (TABLE2_ROWS[r].part, int(k_of[TABLE2_ROWS[r].k_key])) for r in rows}


def table2_inputs(settings: Settings, pattern: str, dataset: str, seeds: Sequence[int]) -> dict[str, list[str]]:
    """Score files per Table 2 row (one per seed; `pattern` has {dataset}, {K}, {seed}, {part}); no MAP file
    at all when ood.map_steps is 0 (that row is then written "not run")."""
    return {
        row: [pattern.format(dataset=dataset, K=K, seed=s, part=part) for s in seeds]
        if not (part == "map" and settings.ood.map_steps == 0) else []
        for row, (part, K) in table2_plan(settings).items()
    }


def score_sets(settings: Settings, dataset: str, part: str, K: int, all_sets: Sequence[str]) -> list[str]:
    """OoD sets one ood_scores job scores after its test split: every set of ood.sets where a Table 2 row reads
    the file ((part, K) in `table2_plan`) or the dataset is not ood.in_dataset; else only ood.fig5_set, the one
    set Fig. 5 and the recon-vs-K table (which reads the test split only) use."""
    if dataset != settings.ood.in_dataset or (part, int(K)) in set(table2_plan(settings).values()):
        return list(all_sets)
    return [settings.ood.fig5_set]


def score_rule_inputs(run: str, processed: str, dataset: str, part: str, recon_sigma: str,
                      sets: Sequence[str]) -> dict[str, Any]:
    """Inputs of rule ood_scores: the data always; the VAE (RUN/vae.pt) for part vae, else the AE; the flow
    only for density/map; ae_stats.npz (Eq. 8 σ) only where a σ enters (density/map, or recon with
    recon_sigma pixelwise)."""
    files: dict[str, Any] = {
        "data": f"{processed}/{dataset}.npz",
        "ood": [f"{processed}/ood/{o}.npz" for o in sets],
    }
    if part == "vae":
        return {"vae": f"{run}/vae.pt"} | files
    files["ae"] = f"{run}/ae.pt"
    if part != "recon":
        files["flow"] = f"{run}/flow.pt"
    if part != "recon" or recon_sigma == "pixelwise":
        files["stats"] = f"{run}/ae_stats.npz"
    return files


def score_rule_runtime(part: str, ood: OOD, n_per_set: int = 13180) -> int:
    """Runtime estimate (minutes) of one ood_scores job on 2 CPU cores; the MAP and VAE parts dominate."""
    n_sets = len(ood.sets)
    if part == "map":
        n = (1 + n_sets) * min(ood.map_count or n_per_set, n_per_set)
        n_laplace = (1 + n_sets) * min(ood.laplace_count or n_per_set, n_per_set)
        return 15 + int(n / 500 * (ood.map_steps + 1) * MAP_SECONDS_PER_STEP_PER_500 / 60
                        + n_laplace * LAPLACE_SECONDS_PER_IMAGE / 60)
    if part == "vae":
        n = (1 + n_sets) * min(ood.iwae_count or n_per_set, n_per_set)
        return 10 + int(n * ood.iwae_samples / VAE_DECODES_PER_SECOND / 60)
    return 30


def posterior_rule_inputs(run: str, processed: str, dataset: str, space: str) -> dict[str, str]:
    """Inputs of rule posterior: AE, ae_stats.npz (Eq. 8 σ) and the dataset; the flow only for space u."""
    files = {"ae": f"{run}/ae.pt", "stats": f"{run}/ae_stats.npz", "data": f"{processed}/{dataset}.npz"}
    if space == "u":
        files["flow"] = f"{run}/flow.pt"
    return files


def posterior_runtime(n_images: int, settings: Mapping[str, Any], row_steps_per_s: float = 2e4) -> int:
    """Generous cluster runtime of one posterior job (minutes) from its Adam row-steps."""
    st = PosteriorSettings.from_config(settings)
    row_steps = n_images * st.n_starts * sum(st.steps)
    return 30 + math.ceil(row_steps / row_steps_per_s / 60)


# ------------------------------------------------------------------------------------------------
# Datasets and OoD experiments of the config


def dataset_registry(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every dataset a run can name, as normalised registry entries: the built-ins (fmnist, mnist, omniglot,
    celeba, with the data section's options) and the entries of config `datasets`, which may override them."""
    builtins = {name: None for name, kind in KINDS.items() if kind.builtin}
    data = settings.data.registry_defaults()
    registry = validate_registry(builtins, data)
    registry.update(validate_registry(settings.datasets, data))
    return registry


def trained_datasets(settings: Settings) -> list[str]:
    """The names in config `datasets` (what `all` trains), in order; OoD-only entries (ood_only: true) are
    not trained (they enter through ood.sets)."""
    value = settings.datasets
    names = list(value) if isinstance(value, Mapping) else [str(v) for v in value]
    registry = dataset_registry(settings)
    return [n for n in names if not is_ood_only(registry[n])]


def has_labels(entry: Mapping[str, Any]) -> bool:
    """Whether the rules may rely on class labels (the domain FID's classifier, Fig. 6's class shares):
    only the built-in labelled datasets; user data is treated as unlabelled."""
    return entry["kind"] in ("fmnist", "mnist")


def training_dataset(settings: Settings, name: str, key: str) -> dict[str, Any]:
    """The registry entry of `name` (config `key`), checked to be a dataset models can be trained on."""
    registry = dataset_registry(settings)
    if name not in registry:
        raise ValueError(f"config key {key} = {name!r} is not a dataset; name one of {sorted(registry)} "
                         "(or add an entry to `datasets`)")
    if is_ood_only(registry[name]):
        raise ValueError(f"config key {key} = {name!r} is an OoD-only set (it has no training split); "
                         "name a training dataset")
    return registry[name]


def ood_sets(settings: Settings) -> list[dict[str, str]]:
    """config ood.sets completed (transform none, label = name) and checked against the registry; the
    in-distribution dataset (ood.in_dataset) and ood.fig5_set are checked too."""
    registry = dataset_registry(settings)
    training_dataset(settings, settings.ood.in_dataset, "ood.in_dataset")
    sets = [{"transform": "none", "label": s["name"]} | dict(s) for s in settings.ood.sets]
    for s in sets:  # which images: the test split, or all of an OoD-only set (Omniglot's evaluation alphabets)
        s["images"] = "all" if s["dataset"] in registry and is_ood_only(registry[s["dataset"]]) else "test"
    names = [s["name"] for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"config key ood.sets: names must be unique, got {names}")
    for s in sets:
        if s["dataset"] not in registry:
            raise ValueError(f"config key ood.sets: set {s['name']!r} names dataset {s['dataset']!r}, which is not "
                             f"in the registry {sorted(registry)}; add it to `datasets`")
    if settings.ood.fig5_set not in names:
        raise ValueError(f"config key ood.fig5_set = {settings.ood.fig5_set!r} is not a set of ood.sets {names}")
    return sets


def image_shape(entry: Mapping[str, Any], processed: str | Path | None = None) -> tuple[int, int, int]:
    """(C, H, W) of the images a job on this dataset will read: the preprocessed file's once it exists (the
    scheduler recomputes resources when a job's inputs are present); before that the shape the entry fixes;
    else the user's own file (npz arrays, or the first image of a folder) as preprocessing will keep it.
    Raises ValueError naming the dataset path when none of these can tell."""
    if processed is not None:
        x = npz_shapes(processed).get("x_train")
        if x is not None:
            return (x[1], x[2], x[3]) if len(x) == 4 else (1, x[1], x[2])
    c, h, w = expected_shape(entry)
    if None not in (c, h, w):
        return int(c), int(h), int(w)
    if entry["kind"] == "npz":
        shapes = npz_shapes(Path(entry["path"]).expanduser())
        x = shapes["x_train"] if "x_train" in shapes else shapes.get("x")
        if x is not None:
            channels_last = len(x) == 4 and x[-1] in (1, 3, 4) and x[1] not in (1, 3, 4)
            hw = (x[1], x[2]) if len(x) == 3 or channels_last else (x[2], x[3])
            native = 1 if len(x) == 3 else (x[-1] if channels_last else x[1])
            return int(c or native), int(h or hw[0]), int(w or hw[1])
    if entry["kind"] == "folder":
        first = next((f for f in sorted(Path(entry["path"]).expanduser().rglob("*")) if f.is_file()
                      and f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")), None)
        if first is not None:
            from PIL import Image

            with Image.open(first) as img:
                return int(c), int(h or img.height), int(w or img.width)
    raise ValueError(f"cannot tell the image size of dataset path {entry.get('path')!r} (kind {entry['kind']}): "
                     "the file is missing or unreadable; fix `path` or give `size` in its `datasets` entry")


def train_resources(shape: Sequence[int], epochs: int) -> dict[str, int]:
    """mem_mb and runtime (minutes on a cluster GPU, generous) of one training job on images of `shape`
    (C, H, W; `image_shape`): up to 3×32×32 pixels 4 GB and 0.5 min per epoch; larger (64×64 RGB CelebA)
    24 GB and 5 min per epoch."""
    c, h, w = shape
    large = c * h * w > 3 * 32 * 32
    return {"mem_mb": 24000 if large else 4000, "runtime": 60 + (5 * epochs if large else (epochs + 1) // 2)}


def table2_experiment(settings: Settings) -> dict[str, Any]:
    """What Table 2 compares (rule make_table2's param): the in-distribution dataset, the OoD sets of
    config ood.sets and their column labels, in order."""
    sets = ood_sets(settings)
    return {"in_dataset": settings.ood.in_dataset, "columns": {s["name"]: s["label"] for s in sets},
            "sets": sets}
