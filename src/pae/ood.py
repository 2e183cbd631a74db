"""Out-of-distribution detection with the PAE (paper Sec. 2.2, 4.2; Table 2, Fig. 5).

Metrics. OoD images are the *positive* class. Scores from `pae.density` are "higher = more
in-distribution", so the detection statistic is t = −score (large t ⇒ flagged as OoD).

Drivers called by the workflow scripts: `run_ood_scores` (one score file per run and part),
`run_table2`, `run_fig5`.

Score files RUN/ood_scores_{part}.npz hold, for every image set (`test` = the in-distribution test split,
then the OoD sets mnist, omniglot, fmnist_hflip, fmnist_vflip), float64 arrays `{score}__{set}`:
part `recon`: recon; part `density`: density, eq12; part `map`: eq12_map, eq12_start (Eq. 12 at the
encoder mean on the same images) and index (which images were refined); plus 0-d metadata arrays
(`meta__K`, `meta__seed`, ...). Parts are separate files so that Table 2 needs a flow only where a
density enters and runs the costly MAP refinement only at ood.eq12_K.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pae import io
from pae.density import SCORES, floor_sigma, image_scores, quantization_sigma

OOD_SETS = ("mnist", "omniglot", "fmnist_hflip", "fmnist_vflip")
IN_SET = "test"
SET_COLUMNS = {"mnist": "MNIST", "omniglot": "OMNIGLOT", "fmnist_hflip": "FMNIST-hflip", "fmnist_vflip": "FMNIST-vflip"}
PART_SCORES = {"recon": ("recon",), "density": ("density", "eq12"), "map": ("eq12_map",)}
TABLE2_LABELS = {  # Table 2 row: score key (in the score files) → label
    "density": "PAE density",
    "recon": "AE reconstruction error",
    "eq12": "Eq. 12",
    "eq12_map": "Eq. 12 with MAP",
}


# ------------------------------------------------------------------------------------------------
# Workflow helpers (used by workflow/rules/ood.smk; kept here so they are tested and the rule file stays flat)

MAP_SECONDS_PER_STEP_PER_500 = 1.0  # measured ≈ 0.5 s at K = 64 on 2 CPU cores; doubled for safety


def score_rule_inputs(run: str, processed: str, dataset: str, part: str, recon_sigma: str) -> dict[str, Any]:
    """Inputs of rule ood_scores: AE and data always; the flow only for density/map; ae_stats.npz (Eq. 8 σ)
    only where a σ enters (density/map, or recon with recon_sigma pixelwise)."""
    files: dict[str, Any] = {
        "ae": f"{run}/ae.pt",
        "data": f"{processed}/{dataset}.npz",
        "ood": [f"{processed}/ood/{o}.npz" for o in OOD_SETS],
    }
    if part != "recon":
        files["flow"] = f"{run}/flow.pt"
    if part != "recon" or recon_sigma == "pixelwise":
        files["stats"] = f"{run}/ae_stats.npz"
    return files


def score_rule_settings(part: str, ood_cfg: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """The settings one part depends on (rule params), so e.g. a new ood.map_steps reruns only `map`."""
    p: dict[str, Any] = {"scale": scale, "batch_size": ood_cfg["batch_size"]}
    if part == "recon":
        p["recon_sigma"] = ood_cfg["recon_sigma"]
    if part == "map":
        p |= {k: ood_cfg.get(k) for k in ("map_steps", "map_lr", "map_count")}
    return p


def score_rule_runtime(part: str, ood_cfg: Mapping[str, Any], n_per_set: int = 13180) -> int:
    """Runtime estimate (minutes) of one ood_scores job on 2 CPU cores; the MAP part dominates."""
    if part != "map":
        return 30
    n = (1 + len(OOD_SETS)) * min(ood_cfg.get("map_count") or n_per_set, n_per_set)
    return 15 + int(n / 500 * (ood_cfg["map_steps"] + 1) * MAP_SECONDS_PER_STEP_PER_500 / 60)


# ------------------------------------------------------------------------------------------------
# Metrics


def _check_scores(scores_in: Any, scores_ood: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(scores_in, dtype=np.float64).ravel()
    b = np.asarray(scores_ood, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"need scores for both classes, got {a.size} in-distribution and {b.size} OoD")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("scores contain NaN; the model producing them diverged")
    # ±inf (e.g. a log-density that underflowed) keeps its rank: map it just beyond the finite range.
    both = np.concatenate([a, b])
    finite = both[np.isfinite(both)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    span = hi - lo + 1.0
    a = np.clip(a, lo - span, hi + span)
    b = np.clip(b, lo - span, hi + span)
    return a, b


def auroc(scores_in: Any, scores_ood: Any) -> float:
    """Area under the ROC curve for separating OoD (positive) from in-distribution (negative) samples.

    Statistic t = −score, computed with sklearn's roc_auc_score: the probability that a random OoD image
    has a lower score than a random in-distribution one, ties counted ½ (Mann–Whitney). 1 = perfect,
    0.5 = chance.
    """
    a, b = _check_scores(scores_in, scores_ood)
    y = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(y, -np.concatenate([a, b])))


def tp_fp_ratio(scores_in: Any, scores_ood: Any, fn_rate: float = 0.05) -> float:
    """TPR / FPR at the threshold that misses a fraction `fn_rate` of the OoD samples (Fig. 5).

    With t = −score, sort the m OoD statistics ascending, t_(1) ≤ … ≤ t_(m), let k = ⌊fn_rate·m⌋ and take
    the threshold τ = t_(k+1): an image is flagged as OoD when t ≥ τ. Then at most k OoD images are
    missed (exactly k without ties), TPR = #{OoD: t ≥ τ}/m ≥ 1 − fn_rate, and FPR = #{in: t ≥ τ}/n is the
    fraction of in-distribution images wrongly flagged. Returns TPR/FPR; when FPR = 0 (no in-distribution
    image reaches τ) the ratio is unbounded and `math.inf` is returned.
    """
    if not 0.0 <= fn_rate < 1.0:
        raise ValueError(f"config key ood.fn_rate must be in [0, 1), got {fn_rate!r}")
    a, b = _check_scores(scores_in, scores_ood)
    t_in, t_ood = -a, -b
    k = int(math.floor(fn_rate * t_ood.size + 1e-9))
    tau = np.sort(t_ood)[k]
    tpr = float(np.mean(t_ood >= tau))
    fpr = float(np.mean(t_in >= tau))
    return math.inf if fpr == 0.0 else tpr / fpr


# ------------------------------------------------------------------------------------------------
# Score files


def load_images(path: str | Path, key: str) -> np.ndarray:
    """uint8 images (N, C, H, W) from a preprocessed npz (`test` → x_test, or `x`), checked."""
    from pae.data import load_split

    x = load_split(path, key)
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) == 0:
        raise ValueError(f"{path}[{key!r}] must be non-empty uint8 images (N, C, H, W), got {x.dtype} {x.shape}; "
                         "rebuild it with `snakemake data`")
    return x


def load_sigma(stats_path: str | Path) -> np.ndarray:
    """The Eq. 8 pixel-wise σ (C, H, W) from ae_stats.npz."""
    stats_path = Path(stats_path)
    if not stats_path.is_file():
        raise FileNotFoundError(f"{stats_path} does not exist; run the encode_ae rule first")
    try:
        with np.load(stats_path) as f:
            if "sigma" not in f.files:
                raise KeyError(f"{stats_path} has no array 'sigma' (found {f.files}); re-run encode_ae")
            return np.asarray(f["sigma"], dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{stats_path} is not a readable .npz ({exc}); delete it and re-run encode_ae") from exc


def subset_index(n: int, count: int | None) -> np.ndarray:
    """`count` evenly spaced indices of range(n) (all when count is None or ≥ n): a deterministic subset
    that spans the whole, possibly ordered (Omniglot: by alphabet), set."""
    if count is None or count >= n:
        return np.arange(n)
    if count < 1:
        raise ValueError(f"config key ood.map_count must be >= 1 or null, got {count!r}")
    return np.unique(np.linspace(0, n - 1, int(count)).round().astype(np.int64))


def run_ood_scores(
    part: str,
    ae_path: str | Path,
    in_path: str | Path,
    ood_paths: Mapping[str, str | Path],
    out_path: str | Path,
    flow_path: str | Path | None = None,
    stats_path: str | Path | None = None,
    scale: float = 255,
    recon_sigma: str = "unweighted",
    sigma_floor: float | None = None,
    map_steps: int = 100,
    map_lr: float = 0.01,
    map_count: int | None = None,
    batch_size: int = 500,
    device: str = "auto",
    threads: int | None = None,
    meta: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Compute one part (`recon`, `density` or `map`) of a run's OoD scores and write them to `out_path`.

    In-distribution set: x_test of `in_path`; OoD sets: key x of each of `ood_paths` (name → file).
    sigma_floor None → `quantization_sigma(scale)`. The file is written only when everything succeeded.
    """
    from pae.flows import load_flow
    from pae.nets import load_model

    if part not in PART_SCORES:
        raise ValueError(f"unknown score part {part!r}; choose from {sorted(PART_SCORES)}")
    unknown = set(ood_paths) - set(OOD_SETS)
    if unknown:
        raise ValueError(f"unknown OoD set(s) {sorted(unknown)}; choose from {OOD_SETS}")
    scores = PART_SCORES[part]
    if threads is not None:
        io.set_threads(threads)
    dev = io.resolve_device(device)
    model, _ = load_model(ae_path, dev)
    flow = load_flow(flow_path, dev)[0] if part in ("density", "map") else None
    if flow is not None and flow.K != model.latent_dim:
        raise ValueError(f"flow {flow_path} has K={flow.K} but the AE {ae_path} has K={model.latent_dim}")
    floor = quantization_sigma(scale) if sigma_floor is None else float(sigma_floor)
    needs_sigma = part in ("density", "map") or recon_sigma == "pixelwise"
    sigma = None
    if needs_sigma:
        if stats_path is None:
            raise ValueError(f"part {part!r} (recon_sigma {recon_sigma!r}) needs ae_stats.npz for the Eq. 8 sigma")
        sigma = floor_sigma(load_sigma(stats_path), floor)
        if tuple(sigma.shape) != tuple(model.image_shape):
            raise ValueError(f"sigma in {stats_path} has shape {tuple(sigma.shape)}, images {model.image_shape}")
        n_floored = int((sigma <= floor).sum())
        log(f"sigma floor {floor:.3g}: {n_floored}/{sigma.numel()} pixels floored")
    sets = {IN_SET: (Path(in_path), "test")} | {name: (Path(p), "x") for name, p in ood_paths.items()}
    out: dict[str, np.ndarray] = {}
    for name, (path, key) in sets.items():
        t0 = time.time()
        x = load_images(path, key)
        if tuple(x.shape[1:]) != tuple(model.image_shape):
            raise ValueError(f"{path}: images of shape {x.shape[1:]} do not fit the AE ({model.image_shape})")
        if part == "map":
            idx = subset_index(len(x), map_count)
            res = image_scores(model, x[idx], ("eq12", "eq12_map"), scale, flow, sigma, recon_sigma,
                               map_steps, map_lr, batch_size, log=None)
            out[f"eq12_map__{name}"] = res["eq12_map"]
            out[f"eq12_start__{name}"] = res["eq12"]
            out[f"index__{name}"] = idx
            gain = float(np.mean(res["eq12_map"] - res["eq12"]))
            log(f"{name}: MAP on {len(idx)}/{len(x)} images, mean Eq. 12 gain {gain:.3f}, {time.time() - t0:.1f} s")
        else:
            res = image_scores(model, x, scores, scale, flow, sigma, recon_sigma, batch_size=batch_size, log=None)
            for s in scores:
                out[f"{s}__{name}"] = res[s]
            means = ", ".join(f"{s} {np.mean(res[s]):.3f}" for s in scores)
            log(f"{name}: {len(x)} images, mean {means}, {time.time() - t0:.1f} s")
    info = dict(meta or {}) | {"part": part, "scale": scale, "recon_sigma": recon_sigma, "sigma_floor": floor,
                               "map_steps": map_steps, "map_lr": map_lr, "sets": ",".join(sets)}
    for k, v in info.items():
        out[f"meta__{k}"] = np.asarray("" if v is None else v)
    for s in ("eq12_start", "eq12_map") if part == "map" else scores:
        aucs = {o: auroc(out[f"{s}__{IN_SET}"], out[f"{s}__{o}"]) for o in ood_paths}
        log(f"AUROC {s}: " + ", ".join(f"{o} {v:.3f}" for o, v in aucs.items()))
    io.save_npz(out_path, **out)
    return out


def load_scores(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(scores {'{score}__{set}': array}, meta {key: value}) from a score file, checked for NaN."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file {path} does not exist; run the ood_scores rule")
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt file
        raise ValueError(f"{path} is not a readable .npz ({exc}); delete it and re-run ood_scores") from exc
    meta = {k[len("meta__"):]: v.item() for k, v in arrays.items() if k.startswith("meta__")}
    scores = {k: v for k, v in arrays.items() if not k.startswith("meta__")}
    for k, v in scores.items():
        if v.dtype.kind == "f" and np.isnan(v).any():
            raise ValueError(f"{path}: {k} contains NaN; delete the file and re-run ood_scores")
    return scores, meta


def _pair(scores: Mapping[str, np.ndarray], key: str, ood: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    k_in, k_ood = f"{key}__{IN_SET}", f"{key}__{ood}"
    if k_in not in scores or k_ood not in scores:
        raise KeyError(f"{path} lacks {k_in!r} or {k_ood!r}; delete it and re-run ood_scores")
    return scores[k_in], scores[k_ood]


# ------------------------------------------------------------------------------------------------
# Table 2


def table2_measurements(files: Mapping[str, Sequence[str | Path]], oods: Sequence[str] = OOD_SETS) -> pd.DataFrame:
    """Tidy AUROCs (row label, column, seed, K, value) from score files: `files` maps a score key of
    TABLE2_LABELS (density, recon, eq12, eq12_map) to its score files, one per seed (seed and K read from
    each file's metadata)."""
    records = []
    for key, paths in files.items():
        if key not in TABLE2_LABELS:
            raise ValueError(f"unknown Table 2 row {key!r}; choose from {sorted(TABLE2_LABELS)}")
        for p in paths:
            scores, meta = load_scores(p)
            for o in oods:
                records.append({"row": TABLE2_LABELS[key], "column": SET_COLUMNS[o], "seed": meta.get("seed"),
                                "K": meta.get("K"), "value": auroc(*_pair(scores, key, o, Path(p)))})
    return pd.DataFrame.from_records(records, columns=["row", "column", "seed", "K", "value"])


def run_table2(
    files: Mapping[str, Sequence[str | Path]],
    csv_path: str | Path,
    md_path: str | Path,
    ks: Mapping[str, int],
    settings: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Table 2 (AUROC, F-MNIST in-distribution) as CSV + Markdown, ours beside the paper's values.

    files: score key of TABLE2_LABELS → score files (one per seed); a key with an empty list is written as
    "not run" (the MAP row when ood.map_steps is 0). ks: score key → K. settings: recon_sigma, map_steps,
    map_lr, map_count (for the notes). The score files must hold the same seeds for every row.
    """
    from pae.tables import PAPER_TABLE2, REPORTED_TABLE2, comparison_table, write_table

    unknown = set(files) - set(TABLE2_LABELS)
    if unknown:
        raise ValueError(f"unknown Table 2 row(s) {sorted(unknown)}; choose from {sorted(TABLE2_LABELS)}")
    meas = table2_measurements({k: p for k, p in files.items() if p})
    cols = [SET_COLUMNS[o] for o in OOD_SETS]
    for key in (k for k, p in files.items() if not p):
        meas = pd.concat([meas, pd.DataFrame({"row": TABLE2_LABELS[key], "column": cols, "seed": -1,
                                              "K": ks.get(key), "value": "not run (ood.map_steps is 0)"})],
                         ignore_index=True)
    labels = [TABLE2_LABELS[k] for k in files]
    table = comparison_table(meas, PAPER_TABLE2, rows=labels, columns=cols)
    k_of = {TABLE2_LABELS[k]: ks.get(k) for k in files}
    table.insert(1, "K", [k_of[r] for r in table["row"]])
    for _, cell in table.iterrows():
        ours = cell["ours"] if isinstance(cell["ours"], str) else f"{cell['ours']:.4f} ± {cell['ours_std']:.4f}"
        log(f"{cell['row']} (K={cell['K']}) {cell['column']}: {ours} (paper {cell['paper']})")
    weighted = settings.get("recon_sigma", "unweighted") == "pixelwise"
    map_count = settings.get("map_count")
    sigma_floor = settings.get("sigma_floor") or quantization_sigma(settings.get("scale", 255))
    seeds = sorted({s for s in meas["seed"] if s is not None and s != -1})
    notes = [
        "AUROC with the OoD set as the positive class and −score as the statistic; in-distribution: the "
        "F-MNIST test split; OoD: MNIST test, Omniglot evaluation set, F-MNIST test flipped left-right "
        f"(hflip) / up-down (vflip). Seeds: {seeds}.",
        "K per row: " + "; ".join(f"{TABLE2_LABELS[k]} K = {ks.get(k)}" for k in files) + ".",
        "PAE density = log p(z) of the flow at z = encoder mean (Eq. 5).",
        "AE reconstruction error = −"
        + ("Σ (x − g(z))²/σ² with the Eq. 8 σ" if weighted else "Σ (x − g(z))², the plain summed squared error")
        + " at z = encoder mean (the original code ranked by the plain SSE, facts §10.6).",
        "Eq. 12 = −½ Σ (x − g(z))²/σ² + log p(z) at z = encoder mean; σ = the Eq. 8 pixel-wise reconstruction "
        f"RMS on the validation split, floored at {sigma_floor:.3g}.",
        f"Eq. 12 with MAP = Eq. 12 at z' minimising Eq. 9 ({settings.get('map_steps')} Adam steps, lr "
        f"{settings.get('map_lr')}, from the encoder mean"
        + (f"; on {map_count} evenly spaced images of each set)." if map_count else ")."),
        "The paper reports only the first two rows; the Eq. 12 rows follow its Sec. 2.2.",
    ]
    write_table(table, csv_path, md_path, "Table 2: OoD detection AUROC, models trained on F-MNIST",
                notes=notes, reported=REPORTED_TABLE2)
    return table


# ------------------------------------------------------------------------------------------------
# Figure 5


def fig5_ratios(
    recon_files: Mapping[int, Sequence[str | Path]],
    density_files: Mapping[int, Sequence[str | Path]],
    fn_rate: float,
    ood: str = "mnist",
) -> pd.DataFrame:
    """TP/FP ratio at FN = fn_rate (see `tp_fp_ratio`) per K, score and seed, F-MNIST test vs `ood`."""
    records = []
    for label, files, key in (("reconstruction error", recon_files, "recon"),
                              ("latent density", density_files, "density")):
        for K, paths in files.items():
            for p in paths:
                scores, meta = load_scores(p)
                a, b = _pair(scores, key, ood, Path(p))
                records.append({"score": label, "K": int(K), "seed": meta.get("seed"),
                                "ratio": tp_fp_ratio(a, b, fn_rate), "n_in": a.size})
    return pd.DataFrame.from_records(records, columns=["score", "K", "seed", "ratio", "n_in"])


def run_fig5(
    ae_paths: Mapping[int, str | Path],
    recon_files: Mapping[int, Sequence[str | Path]],
    density_files: Mapping[int, Sequence[str | Path]],
    mnist_path: str | Path,
    out_stem: str | Path,
    fn_rate: float = 0.05,
    scale: float = 255,
    n_images: int = 8,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Fig. 5: MNIST test images and their reconstructions by the F-MNIST AEs at each K (`ae_paths`, one
    seed), and TP/FP at FN = fn_rate against K for reconstruction error and latent density (all seeds).
    Writes out_stem.png/.pdf and out_stem.csv (the plotted ratios); returns the ratios."""
    import torch

    from pae.data import to_model_input, to_uint8
    from pae.figures import fig5
    from pae.nets import load_model

    if threads is not None:
        io.set_threads(threads)
    dev = io.resolve_device(device)
    x = load_images(mnist_path, "x")[: int(n_images)]
    recons = {}
    for K, path in sorted(ae_paths.items()):
        model, _ = load_model(path, dev)
        with torch.no_grad():
            recons[int(K)] = to_uint8(model(to_model_input(x, scale=scale).to(dev)), scale=scale)
    ratios = fig5_ratios(recon_files, density_files, fn_rate)
    for _, r in ratios.iterrows():
        log(f"K={r['K']} seed {r['seed']} {r['score']}: TP/FP = {r['ratio']:.4g}")
    fig5(x, recons, ratios, fn_rate, out_stem)
    with io.atomic_path(Path(out_stem).with_suffix(".csv")) as tmp:
        ratios.to_csv(tmp, index=False, float_format="%.6g")
    return ratios


__all__ = [
    "OOD_SETS", "SCORES", "TABLE2_LABELS", "auroc", "tp_fp_ratio", "run_ood_scores", "load_scores", "table2_measurements",
    "run_table2", "fig5_ratios", "run_fig5", "subset_index",
]
