"""Helpers for the rule files: the input files, params and runtime estimates of rules whose shape depends on
the config. Kept in Python so they are tested and the rule files stay flat."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pae.files.datasets import KINDS, expected_shape, is_ood_only, validate_registry
from pae.science.posterior import PosteriorSettings
from pae.stages.ood import TABLE2_ROWS

MAP_SECONDS_PER_STEP_PER_500 = 1.0  # measured ≈ 0.5 s at K = 64 on 2 CPU cores; doubled for safety
LAPLACE_SECONDS_PER_IMAGE = 0.5  # Eq. 11 at K = 64: ≈ 0.3-0.5 s per image on one busy CPU core (the decoder's Jacobian)
VAE_DECODES_PER_SECOND = 400  # measured ≈ 550-1200 decodes/s (K = 32, 2 CPU cores, busy to idle); margin


def table2_plan(config: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Table 2 rows of config ood.rows (in that order) → (score-file part, K), checked."""
    rows = config["ood"].get("rows", list(TABLE2_ROWS))
    if not rows:
        raise ValueError("config key ood.rows is empty; list at least one of " + ", ".join(TABLE2_ROWS))
    unknown = [r for r in rows if r not in TABLE2_ROWS]
    if unknown or len(set(rows)) != len(rows):
        raise ValueError(f"config key ood.rows = {list(rows)}: unknown or repeated row(s) {unknown or 'repeated'}; "
                         f"choose each at most once from {list(TABLE2_ROWS)}")
    if any(TABLE2_ROWS[r].part == "vae" for r in rows) and "vae" not in config["vae"]["models"]:
        raise ValueError("config key ood.rows asks for elbo/iwae rows, which score the plain VAE, but vae.models "
                         "has no entry 'vae'; add it (beta 1, capacity 0) or drop the rows")

    def k_of(key: str) -> int:
        section, name = key.split(".")
        return int(config[section][name])

    return {r: (TABLE2_ROWS[r].part, k_of(TABLE2_ROWS[r].k_key)) for r in rows}


def table2_inputs(config: Mapping[str, Any], pattern: str, dataset: str, seeds: Sequence[int]) -> dict[str, list[str]]:
    """Score files per Table 2 row (one per seed; `pattern` has {dataset}, {K}, {seed}, {part}); no MAP file
    at all when ood.map_steps is 0 (that row is then written "not run")."""
    return {
        row: [pattern.format(dataset=dataset, K=K, seed=s, part=part) for s in seeds]
        if not (part == "map" and config["ood"]["map_steps"] == 0) else []
        for row, (part, K) in table2_plan(config).items()
    }


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


def score_rule_settings(part: str, ood_cfg: Mapping[str, Any], scale: float,
                        vae_sigma: float | None = None) -> dict[str, Any]:
    """The settings one part depends on (rule params), so e.g. a new ood.map_steps reruns only `map`.
    vae_sigma: the plain VAE's decoder σ (vae.models.vae.sigma), for part vae."""
    p: dict[str, Any] = {"scale": scale, "batch_size": ood_cfg["batch_size"]}
    if part == "recon":
        p["recon_sigma"] = ood_cfg["recon_sigma"]
    if part == "map":
        p |= {k: ood_cfg.get(k) for k in ("map_steps", "map_lr", "map_count", "laplace_count")}
    if part == "vae":
        p |= {k: ood_cfg.get(k) for k in ("iwae_samples", "iwae_count")} | {"sigma": vae_sigma}
    return p


def score_rule_runtime(part: str, ood_cfg: Mapping[str, Any], n_per_set: int = 13180) -> int:
    n_sets = len(ood_cfg["sets"])
    """Runtime estimate (minutes) of one ood_scores job on 2 CPU cores; the MAP and VAE parts dominate."""
    if part == "map":
        n = (1 + n_sets) * min(ood_cfg.get("map_count") or n_per_set, n_per_set)
        n_laplace = (1 + n_sets) * min(ood_cfg.get("laplace_count") or n_per_set, n_per_set)
        return 15 + int(n / 500 * (ood_cfg["map_steps"] + 1) * MAP_SECONDS_PER_STEP_PER_500 / 60
                        + n_laplace * LAPLACE_SECONDS_PER_IMAGE / 60)
    if part == "vae":
        n = (1 + n_sets) * min(ood_cfg.get("iwae_count") or n_per_set, n_per_set)
        return 10 + int(n * ood_cfg.get("iwae_samples", 100) / VAE_DECODES_PER_SECOND / 60)
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


def dataset_registry(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every dataset a run can name, as normalised registry entries: the built-ins (fmnist, mnist, omniglot,
    celeba, with the data section's options) and the entries of config `datasets`, which may override them."""
    builtins = {name: None for name, kind in KINDS.items() if kind.builtin}
    registry = validate_registry(builtins, config["data"])
    registry.update(validate_registry(config["datasets"], config["data"]))
    return registry


def trained_datasets(config: Mapping[str, Any]) -> list[str]:
    """The names in config `datasets` (what `all` trains), in order; OoD-only entries (ood_only: true) are
    not trained (they enter through ood.sets)."""
    value = config["datasets"]
    names = list(value) if isinstance(value, Mapping) else [str(v) for v in value]
    registry = dataset_registry(config)
    return [n for n in names if not is_ood_only(registry[n])]


def has_labels(entry: Mapping[str, Any]) -> bool:
    """Whether the rules may rely on class labels (the domain FID's classifier, Fig. 6's class shares):
    only the built-in labelled datasets; user data is treated as unlabelled."""
    return entry["kind"] in ("fmnist", "mnist")


def training_dataset(config: Mapping[str, Any], name: str, key: str) -> dict[str, Any]:
    """The registry entry of `name` (config `key`), checked to be a dataset models can be trained on."""
    registry = dataset_registry(config)
    if name not in registry:
        raise ValueError(f"config key {key} = {name!r} is not a dataset; name one of {sorted(registry)} "
                         "(or add an entry to `datasets`)")
    if is_ood_only(registry[name]):
        raise ValueError(f"config key {key} = {name!r} is an OoD-only set (it has no training split); "
                         "name a training dataset")
    return registry[name]


def ood_sets(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """config ood.sets completed (transform none, label = name) and checked against the registry; the
    in-distribution dataset (ood.in_dataset) and ood.fig5_set are checked too."""
    registry = dataset_registry(config)
    training_dataset(config, config["ood"]["in_dataset"], "ood.in_dataset")
    sets = [{"transform": "none", "label": s["name"]} | dict(s) for s in config["ood"]["sets"]]
    for s in sets:  # which images: the test split, or all of an OoD-only set (Omniglot's evaluation alphabets)
        s["images"] = "all" if s["dataset"] in registry and is_ood_only(registry[s["dataset"]]) else "test"
    names = [s["name"] for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"config key ood.sets: names must be unique, got {names}")
    for s in sets:
        if s["dataset"] not in registry:
            raise ValueError(f"config key ood.sets: set {s['name']!r} names dataset {s['dataset']!r}, which is not "
                             f"in the registry {sorted(registry)}; add it to `datasets`")
    if config["ood"]["fig5_set"] not in names:
        raise ValueError(f"config key ood.fig5_set = {config['ood']['fig5_set']!r} is not a set of ood.sets {names}")
    return sets


def train_resources(entry: Mapping[str, Any], epochs: int) -> dict[str, int]:
    """mem_mb and runtime (minutes on a cluster GPU, generous) of one training job on this dataset: 28×28
    images 4 GB and 0.5 min per epoch; 64×64 RGB (CelebA) 24 GB and 5 min per epoch; others scaled by pixels."""
    c, h, w = expected_shape(entry)
    pixels = (c or 3) * (h or 64) * (w or 64)
    large = pixels > 3 * 32 * 32
    return {"mem_mb": 24000 if large else 4000, "runtime": 60 + (5 * epochs if large else (epochs + 1) // 2)}


def table2_experiment(config: Mapping[str, Any]) -> dict[str, Any]:
    """What Table 2 compares (rule make_table2's param): the in-distribution dataset, the OoD sets of
    config ood.sets and their column labels, in order."""
    sets = ood_sets(config)
    return {"in_dataset": config["ood"]["in_dataset"], "columns": {s["name"]: s["label"] for s in sets},
            "sets": sets}
