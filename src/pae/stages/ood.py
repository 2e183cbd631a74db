"""Stage drivers of workflow/rules/ood.smk: OoD score files (paper Sec. 2.2, 4.2; Eq. 5, 9, 11, 12 and the VAE
ELBO / IWAE) and Table 2.

Score files RUN/ood_scores_{part}.npz hold, for every image set (`test` = the in-distribution test split,
then the OoD sets of config ood.sets), float64 arrays `{score}__{set}`: part `recon`: recon; part
`density`: density, eq12; part `map`: eq12_map, laplace (Eq. 11 at the same MAP z'), eq12_start (Eq. 12 at
the encoder mean on the same images) and index (which images were refined); part `vae` (the plain VAE at
K = vae.latent_dim): elbo, iwae and index; plus 0-d metadata arrays (`meta__K`, `meta__seed`, ...). Parts
are separate files so that Table 2 needs a flow only where a density enters, runs the costly MAP
refinement only at ood.eq12_K and the IWAE only when its rows are asked for. Metrics: `pae.science.metrics`
(OoD = positive class, statistic −score).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pae.files import io
from pae.files.artifacts import load_flow, load_images, load_model, load_scores
from pae.science import runtime
from pae.science.catalog import IN_SET
from pae.science.density import eval_mode, quantization_sigma
from pae.science.images import to_model_input
from pae.science.metrics import aupr, auroc, fpr_at_tpr
from pae.science.paper import PAPER_IN_DATASET, PAPER_TABLE2, REPORTED_TABLE2
from pae.science.scores import image_scores
from pae.science.tables import comparison_table, markdown_block
from pae.science.vae import vae_scores
from pae.settings import ScoreJob
from pae.stages.common import load_floored_sigma, write_table

PART_SCORES = {"recon": ("recon",), "density": ("density", "eq12"), "map": ("eq12_map", "laplace"), "vae": ("elbo", "iwae")}


@dataclass(frozen=True)
class Table2Row:
    """One row of Table 2: its label, the score-file part holding its score, the config key of its K, and
    its definition for the table notes ({placeholders} filled by `_row_note` from the settings)."""

    label: str
    part: str
    k_key: str
    note: str


# The Table 2 rows this pipeline can compute, keyed by their score key (config ood.rows lists a selection).
TABLE2_ROWS: dict[str, Table2Row] = {
    "density": Table2Row("PAE density", "density", "ood.density_K",
                         "PAE density = log p(z) of the flow at z = encoder mean (Eq. 5)."),
    "recon": Table2Row("AE reconstruction error", "recon", "ood.recon_K",
                       "AE reconstruction error = −{recon_def} at z = encoder mean; the original code ranked by "
                       "the plain summed squared error."),
    "eq12": Table2Row("Eq. 12", "density", "ood.eq12_K",
                      "Eq. 12 = −½ Σ (x − g(z))²/σ² + log p(z) at z = encoder mean; σ = the Eq. 8 pixel-wise "
                      "reconstruction RMS on the validation split, floored at {sigma_floor:.3g}."),
    "eq12_map": Table2Row("Eq. 12 with MAP", "map", "ood.eq12_K",
                          "Eq. 12 with MAP = Eq. 12 at z' minimising Eq. 9 ({map_steps} Adam steps, lr {map_lr}, "
                          "from the encoder mean{map_subset})."),
    "laplace": Table2Row("Laplace log p(x) (Eq. 11)", "map", "ood.eq12_K",
                         "Laplace log p(x) (Eq. 11) = log p(x|z') + log p(z') + (K/2) log 2π + ½ log det Σ_z' at the "
                         "same MAP z' as the row above{laplace_subset}, Σ_z' from the Gauss-Newton Hessian of Eq. 10. The paper "
                         "warns that this Hessian is noisy and the estimate not reliable enough to use."),
    "elbo": Table2Row("VAE ELBO", "vae", "vae.latent_dim",
                      "VAE ELBO = Eq. 15 with β = 1 of the plain VAE baseline (vae.models.vae, same nets, data "
                      "and training as the AE, decoder σ = {vae_sigma:g}): mean over k = {iwae_samples} samples "
                      "z_i ~ q(z|x) of log N(x; g(z_i), σ²I), minus the analytic KL{iwae_subset}."),
    "iwae": Table2Row("VAE IWAE", "vae", "vae.latent_dim",
                      "VAE IWAE = log (1/k) Σ_i p(x, z_i)/q(z_i|x) (Burda et al. 2016) with the same VAE, the "
                      "same k = {iwae_samples} samples and images as the ELBO row. The paper's IWAE row (quoted "
                      "below from Choi et al. 2018) is for their own VAE, not this one."),
}
TABLE2_LABELS = {key: row.label for key, row in TABLE2_ROWS.items()}  # score key → label
NOT_RUN = {"eq12_map": "not run (ood.map_steps is 0)", "laplace": "not run (ood.map_steps is 0)"}  # why a row can be requested but have no score file


# ------------------------------------------------------------------------------------------------
# Workflow helpers (used by workflow/rules/ood.smk; kept here so they are tested and the rule file stays flat)


# ------------------------------------------------------------------------------------------------
# Metrics


# ------------------------------------------------------------------------------------------------
# Score files


def subset_index(n: int, count: int | None, key: str = "ood.map_count") -> np.ndarray:
    """`count` evenly spaced indices of range(n) (all when count is None or ≥ n): a deterministic subset
    that spans the whole, possibly ordered (Omniglot: by alphabet), set. `key` names the config key."""
    if count is not None and count < 1:
        raise ValueError(f"config key {key} must be >= 1 or null, got {count!r}")
    if count is None or count >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, int(count)).round().astype(np.int64))


@dataclass(frozen=True)
class ScoreFiles:
    """The files of one ood_scores job: the in-distribution data (its x_test), each OoD set (name → file
    with key x), the networks of the run (AE, flow, ae_stats.npz with the Eq. 8 σ; or the VAE) and the output."""

    in_path: str | Path
    ood_paths: Mapping[str, str | Path]
    out_path: str | Path
    ae_path: str | Path | None = None
    flow_path: str | Path | None = None
    stats_path: str | Path | None = None
    vae_path: str | Path | None = None


def _score_sets(files: ScoreFiles) -> dict[str, tuple[Path, str]]:
    """Image set name → (file, array key): the in-distribution test split first, then the OoD sets in order."""
    return {IN_SET: (Path(files.in_path), "test")} | {name: (Path(p), "x") for name, p in files.ood_paths.items()}


def _write_scores(files: ScoreFiles, out: dict[str, np.ndarray], info: Mapping[str, Any], scores: Sequence[str],
                  log: Callable[[str], None]) -> None:
    for k, v in info.items():
        out[f"meta__{k}"] = np.asarray("" if v is None else v)
    for s in scores:
        aucs = {o: auroc(out[f"{s}__{IN_SET}"], out[f"{s}__{o}"]) for o in files.ood_paths}
        log(f"AUROC {s}: " + ", ".join(f"{o} {v:.3f}" for o, v in aucs.items()))
    io.save_npz(files.out_path, **out)


def _map_scores(model: Any, flow: Any, sigma: Any, x: np.ndarray, job: ScoreJob, name: str,
                log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Part map of one image set: Eq. 12 at the MAP z' of Eq. 9 on ood.map_count images and Eq. 11 at the same
    z' on ood.laplace_count of those (its Gauss-Newton Hessian costs K decoder passes per image); with the
    gradient norm of Eq. 9 at the start and at z' (how far from a mode the MAP stopped)."""
    t0 = time.time()
    idx = subset_index(len(x), job.map_count)
    res = image_scores(model, x[idx], ("eq12", "eq12_map"), job.scale, flow, sigma, job.recon_sigma,
                       job.map_steps, job.map_lr, job.batch_size, log=None)
    idx_laplace = idx[subset_index(len(idx), job.laplace_count, "ood.laplace_count")]
    lap = image_scores(model, x[idx_laplace], ("laplace",), job.scale, flow, sigma, job.recon_sigma,
                       job.map_steps, job.map_lr, job.batch_size, log=None)
    gain = float(np.mean(res["eq12_map"] - res["eq12"]))
    log(f"{name}: MAP on {len(idx)}/{len(x)} images, mean Eq. 12 gain {gain:.3f}, median |grad Eq. 9| "
        f"{np.median(res['map_grad_norm_start']):.3g} at the start, {np.median(res['map_grad_norm']):.3g} "
        f"at the MAP, {time.time() - t0:.1f} s")
    return {f"eq12_map__{name}": res["eq12_map"], f"map_grad_start__{name}": res["map_grad_norm_start"],
            f"map_grad__{name}": res["map_grad_norm"], f"laplace__{name}": lap["laplace"],
            f"laplace_map_grad__{name}": lap["map_grad_norm"], f"laplace_index__{name}": idx_laplace,
            f"eq12_start__{name}": res["eq12"], f"index__{name}": idx}


def run_ood_scores(
    part: str,
    files: ScoreFiles,
    job: ScoreJob,
    device: str,
    threads: int,
    meta: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Compute one part (`recon`, `density` or `map`) of a run's OoD scores and write them to files.out_path.

    The Eq. 8 σ is floored at the 8-bit quantisation σ. The file is written only when everything succeeded.
    """
    if part not in PART_SCORES or part == "vae":
        raise ValueError(f"unknown score part {part!r}; choose from recon, density, map (part vae: run_vae_scores)")
    scores, scale, recon_sigma = PART_SCORES[part], job.scale, job.recon_sigma
    ae_path, flow_path, stats_path = files.ae_path, files.flow_path, files.stats_path
    runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    model, _ = load_model(ae_path, dev)
    flow = load_flow(flow_path, dev)[0] if part in ("density", "map") else None
    if flow is not None and flow.K != model.latent_dim:
        raise ValueError(f"flow {flow_path} has K={flow.K} but the AE {ae_path} has K={model.latent_dim}")
    floor = quantization_sigma(scale)
    needs_sigma = part in ("density", "map") or recon_sigma == "pixelwise"
    sigma = None
    if needs_sigma:
        if stats_path is None:
            raise ValueError(f"part {part!r} (recon_sigma {recon_sigma!r}) needs ae_stats.npz for the Eq. 8 sigma")
        sigma, floor = load_floored_sigma(stats_path, scale, None, model.image_shape)
        n_floored = int((sigma <= floor).sum())
        log(f"sigma floor {floor:.3g}: {n_floored}/{sigma.numel()} pixels floored")
    sets = _score_sets(files)
    out: dict[str, np.ndarray] = {}
    for name, (path, key) in sets.items():
        t0 = time.time()
        x = load_images(path, key)
        if tuple(x.shape[1:]) != tuple(model.image_shape):
            raise ValueError(f"{path}: images of shape {x.shape[1:]} do not fit the AE ({model.image_shape})")
        if part == "map":
            out |= _map_scores(model, flow, sigma, x, job, name, log)
            continue
        res = image_scores(model, x, scores, scale, flow, sigma, recon_sigma, batch_size=job.batch_size, log=None)
        for s in scores:
            out[f"{s}__{name}"] = res[s]
        means = ", ".join(f"{s} {np.mean(res[s]):.3f}" for s in scores)
        log(f"{name}: {len(x)} images, mean {means}, {time.time() - t0:.1f} s")
    info = dict(meta) | {"part": part, "scale": scale, "recon_sigma": recon_sigma, "sigma_floor": floor,
                         "map_steps": job.map_steps, "map_lr": job.map_lr, "sets": ",".join(sets)}
    _write_scores(files, out, info, ("eq12_start", "eq12_map", "laplace") if part == "map" else scores, log)
    return out


def score_generator(seed: int, set_number: int, device: Any = "cpu") -> Any:
    """The torch.Generator of image set number `set_number` (0 = test, then the OoD sets in order) for run seed `seed`:
    seeded from numpy's SeedSequence([seed, set_number]), so every set has its own reproducible stream."""
    state = int(np.random.SeedSequence([int(seed), int(set_number)]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def run_vae_scores(
    files: ScoreFiles,
    job: ScoreJob,
    seed: int,
    device: str,
    threads: int,
    meta: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Part `vae`: ELBO (Eq. 15, β = 1) and IWAE bound (k = iwae_samples) of the plain VAE at `vae_path`
    (`pae.science.vae.vae_scores`) for the in-distribution test split and each OoD set; ood.iwae_count evenly spaced
    images per set (None = all); inputs x/scale − 0.5, no dequantisation; the VAE in eval mode. Each set
    draws its samples from its own generator, seeded by (seed, set number). job.vae_sigma must be the VAE's
    training σ. Writes files.out_path only when everything succeeded."""
    vae_path, sigma, iwae_count, scale, batch_size = files.vae_path, job.vae_sigma, job.iwae_count, job.scale, job.batch_size
    if job.iwae_samples is None or int(job.iwae_samples) < 1:
        raise ValueError(f"config key ood.iwae_samples must be >= 1, got {job.iwae_samples!r}")
    if sigma is None:
        raise ValueError("the VAE scores need vae.models.vae.sigma; add the plain VAE to vae.models")
    runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    model, model_meta = load_model(vae_path, dev)
    if not hasattr(model, "posterior"):
        raise ValueError(f"{vae_path} holds a {type(model).__name__}, not a VAE; it must come from rule train_vae")
    trained = model_meta["objective"]["sigma"] if model_meta.get("objective") else None
    if trained is not None and not math.isclose(float(trained), float(sigma), rel_tol=1e-9):
        raise ValueError(f"{vae_path} was trained with sigma {trained}, but the scores were asked with {sigma} "
                         "(config key vae.models.vae.sigma); retrain the VAE or fix the key")
    k = int(job.iwae_samples)
    sets = _score_sets(files)
    out: dict[str, np.ndarray] = {}
    for i, (name, (path, key)) in enumerate(sets.items()):
        t0 = time.time()
        x = load_images(path, key)
        if tuple(x.shape[1:]) != tuple(model.image_shape):
            raise ValueError(f"{path}: images of shape {x.shape[1:]} do not fit the VAE ({model.image_shape})")
        idx = subset_index(len(x), iwae_count, "ood.iwae_count")
        gen = score_generator(seed, i, dev)
        parts: dict[str, list[np.ndarray]] = {"elbo": [], "iwae": []}
        with eval_mode(model), torch.no_grad():
            for j in range(0, len(idx), batch_size):
                xb = to_model_input(x[idx[j : j + batch_size]], scale=scale, dequantize=False).to(dev)
                res = vae_scores(model, xb, float(sigma), k, gen)
                for s in parts:
                    parts[s].append(res[s].cpu().numpy())
        for s, chunks in parts.items():
            arr = np.concatenate(chunks).astype(np.float64)
            if np.isnan(arr).any():
                raise ValueError(f"{s} of {name} contains NaN: the VAE {vae_path} diverged; retrain it")
            out[f"{s}__{name}"] = arr
        out[f"index__{name}"] = idx
        dt = time.time() - t0
        log(f"{name}: {len(idx)}/{len(x)} images × k = {k}, mean ELBO {out[f'elbo__{name}'].mean():.2f}, "
            f"mean IWAE {out[f'iwae__{name}'].mean():.2f} nats, {dt:.1f} s ({len(idx) * k / max(dt, 1e-9):.0f} "
            "decodes/s)")
    info = dict(meta) | {"part": "vae", "scale": scale, "sigma": float(sigma), "iwae_samples": k,
                         "iwae_count": iwae_count, "seed": int(seed), "sets": ",".join(sets)}
    _write_scores(files, out, info, PART_SCORES["vae"], log)
    return out


def score_pair(scores: Mapping[str, np.ndarray], key: str, ood: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    k_in, k_ood = f"{key}__{IN_SET}", f"{key}__{ood}"
    if k_in not in scores or k_ood not in scores:
        raise KeyError(f"{path} lacks {k_in!r} or {k_ood!r}; delete it and re-run ood_scores")
    return scores[k_in], scores[k_ood]


# ------------------------------------------------------------------------------------------------
# Table 2


def table2_measurements(files: Mapping[str, Sequence[str | Path]], columns: Mapping[str, str]) -> pd.DataFrame:
    """Tidy metrics from score files: one line per (row label, column, seed) with K, value (AUROC), aupr and
    fpr95 (FPR at 95 % TPR), all with OoD positive. `files` maps a score key of TABLE2_ROWS to its score
    files, one per seed (seed and K read from each file's metadata); `columns` maps OoD set name → label."""
    records = []
    for key, paths in files.items():
        if key not in TABLE2_ROWS:
            raise ValueError(f"unknown Table 2 row {key!r}; choose from {list(TABLE2_ROWS)}")
        for p in paths:
            scores, meta = load_scores(p)
            for o, label in columns.items():
                a, b = score_pair(scores, key, o, Path(p))
                records.append({"row": TABLE2_LABELS[key], "column": label, "seed": meta.get("seed"),
                                "K": meta.get("K"), "value": auroc(a, b), "aupr": aupr(a, b),
                                "fpr95": fpr_at_tpr(a, b, 0.95)})
    return pd.DataFrame.from_records(records, columns=["row", "column", "seed", "K", "value", "aupr", "fpr95"])


def _row_note(key: str, K: Any, job: ScoreJob) -> str:
    """The definition of Table 2 row `key` (TABLE2_ROWS[key].note) with the run's settings filled in."""
    fill = {
        "K": K,
        "recon_def": "Σ (x − g(z))²/σ² with the Eq. 8 σ" if job.recon_sigma == "pixelwise" else "Σ (x − g(z))²",
        "sigma_floor": quantization_sigma(job.scale),
        "map_steps": job.map_steps,
        "map_lr": job.map_lr,
        "map_subset": f"; on {job.map_count} evenly spaced images of each set" if job.map_count else "",
        "laplace_subset": f" (on {job.laplace_count} evenly spaced images of those)" if job.laplace_count else "",
        "iwae_samples": job.iwae_samples,
        "iwae_subset": f"; on {job.iwae_count} evenly spaced images of each set" if job.iwae_count else "; on every image",
        "vae_sigma": float(job.vae_sigma if job.vae_sigma is not None else math.nan),
    }
    return TABLE2_ROWS[key].note.format(**fill)


MAP_GRADIENTS = {"eq12_map": ("map_grad", "Eq. 12 with MAP"), "laplace": ("laplace_map_grad", "Eq. 11")}


def map_convergence_note(files: Mapping[str, Sequence[str | Path]]) -> str | None:
    """One note on how far the MAP z' of the Eq. 12-with-MAP and Eq. 11 rows converged: median (90th percentile)
    of ‖∇_z Eq. 9‖ at the start f_φ(x) and at z', over every image of every set and seed (score files written
    before this was recorded are skipped)."""
    parts = []
    for key, (prefix, label) in MAP_GRADIENTS.items():
        start, end = [], []
        for p in files.get(key) or []:
            scores, _ = load_scores(p)
            end += [v for k, v in scores.items() if k.startswith(f"{prefix}__")]
            start += [v for k, v in scores.items() if k.startswith("map_grad_start__")]
        if not end:
            continue
        g = np.concatenate(end)
        text = f"{label}: median {np.median(g):.3g} (90th percentile {np.quantile(g, 0.9):.3g}) at z'"
        if start:
            g0 = np.concatenate(start)
            text += f", from {np.median(g0):.3g} ({np.quantile(g0, 0.9):.3g}) at the encoder mean"
        parts.append(f"{text}, over {len(g)} images")
    if not parts:
        return None
    return ("MAP convergence (‖∇_z Eq. 9‖, nats per latent unit; 0 at a mode, where the Laplace formula of Eq. 11 "
            "holds): " + "; ".join(parts) + ".")


def _metric_summary(meas: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of aupr and fpr95 per (row, column); NaN where a row did not run."""
    num = meas.assign(**{m: pd.to_numeric(meas[m], errors="coerce") for m in ("aupr", "fpr95")})
    g = num.groupby(["row", "column"], sort=False)[["aupr", "fpr95"]]
    out = g.mean().join(g.std(ddof=1).fillna(0.0), rsuffix="_std").reset_index()
    return out[["row", "column", "aupr", "aupr_std", "fpr95", "fpr95_std"]]


FLIPS = {"none": "", "hflip": " flipped left-right", "vflip": " flipped up-down"}


def _describe_sets(experiment: Mapping[str, Any]) -> str:
    def which(s: Mapping[str, Any]) -> str:
        return f"all {s['dataset']} images" if s.get("images") == "all" else f"the {s['dataset']} test split"

    return "; ".join(f"{experiment['columns'].get(s['name'], s['name'])} = {which(s)}{FLIPS[s.get('transform', 'none')]}"
                     for s in experiment["sets"])


def run_make_table2(
    files: Mapping[str, Sequence[str | Path]],
    csv_path: str | Path,
    md_path: str | Path,
    ks: Mapping[str, int],
    settings: ScoreJob,
    experiment: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Table 2 as CSV + Markdown, ours beside the paper's values (when the experiment is the paper's:
    F-MNIST in-distribution).

    experiment: in_dataset, columns (OoD set name → column label, in order) and sets (config ood.sets), as
    made by `pae.stages.rules.table2_experiment(settings)`.

    files: score key of TABLE2_ROWS → score files (one per seed), in the order of the rows (config ood.rows);
    a key with an empty list is written "not run" (the MAP row when ood.map_steps is 0). ks: score key → K.
    settings: every score setting (`pae.settings.Settings.score_job("table2")`), for the notes. The CSV has one line per (row, column): `ours` = AUROC (mean over seeds), `ours_std`,
    `n_seeds`, `paper`, `difference`, and `aupr`, `fpr95` (+ `_std`); the Markdown shows AUROC with the
    paper's value, then a compact AUPR / FPR95 table, then the paper's quoted baselines.
    """
    unknown = [k for k in files if k not in TABLE2_ROWS]
    if unknown:
        raise ValueError(f"unknown Table 2 row(s) {unknown}; choose from {list(TABLE2_ROWS)}")
    paper = experiment["in_dataset"] == PAPER_IN_DATASET
    meas = table2_measurements({k: p for k, p in files.items() if p}, experiment["columns"])
    cols = list(experiment["columns"].values())
    for key in (k for k, p in files.items() if not p):
        meas = pd.concat([meas, pd.DataFrame({"row": TABLE2_LABELS[key], "column": cols, "seed": -1, "K": ks[key],
                                              "value": NOT_RUN.get(key, "not run"), "aupr": math.nan,
                                              "fpr95": math.nan})], ignore_index=True)
    labels = [TABLE2_LABELS[k] for k in files]
    table = comparison_table(meas, PAPER_TABLE2 if paper else {}, rows=labels, columns=cols)
    k_of = {TABLE2_LABELS[k]: ks[k] for k in files}
    table.insert(1, "K", [k_of[r] for r in table["row"]])
    table = table.merge(_metric_summary(meas), on=["row", "column"], how="left")
    for _, cell in table.iterrows():
        ours = cell["ours"] if isinstance(cell["ours"], str) else f"{cell['ours']:.4f} ± {cell['ours_std']:.4f}"
        log(f"{cell['row']} (K={cell['K']}) {cell['column']}: AUROC {ours} (paper {cell['paper']}), "
            f"AUPR {cell['aupr']:.4f}, FPR95 {cell['fpr95']:.4f}")

    def aupr_fpr(cell: pd.Series) -> str:
        if pd.isna(cell["aupr"]):
            return cell["ours"] if isinstance(cell["ours"], str) else "–"
        return f"{cell['aupr']:.3f} / {cell['fpr95']:.3f}"

    extra = markdown_block(table, "AUPR / FPR at 95 % TPR (ours; OoD = positive; mean over seeds, std in the CSV)",
                           aupr_fpr)
    seeds = sorted({s for s in meas["seed"] if s is not None and s != -1})
    notes = [
        "AUROC (main table), AUPR and FPR at 95 % TPR with the OoD set as the positive class and −score as the "
        f"statistic; in-distribution: the {experiment['in_dataset']} test split; OoD: {_describe_sets(experiment)}. "
        f"Seeds: {seeds}. AUPR of a detector without skill = "
        "the OoD fraction of the images; FPR95 = fraction of in-distribution images flagged at the threshold "
        "that flags 95 % of the OoD images (lower is better).",
        "K per row: " + "; ".join(f"{TABLE2_LABELS[k]} K = {ks[k]}" for k in files) + ".",
        *(_row_note(k, ks[k], settings) for k in files),
        "The paper reports only the PAE density and AE reconstruction error rows; the Eq. 12 rows follow its "
        "Sec. 2.2 and the VAE rows are likelihood baselines computed here on the same data and nets."
        if paper else "The paper has no values for this experiment (its Table 2 is F-MNIST in-distribution).",
    ]
    convergence = map_convergence_note(files)
    if convergence:
        notes.insert(2 + len(files), convergence)
    write_table(table, csv_path, md_path, f"Table 2: OoD detection AUROC, models trained on {experiment['in_dataset']}",
                notes=notes, reported=REPORTED_TABLE2 if paper else None, extra=extra)
    return table


# ------------------------------------------------------------------------------------------------
# Figure 5
