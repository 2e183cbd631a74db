"""Stage drivers of the posterior analysis (paper Sec. 2.3, 4.2; Fig. 6): rules posterior, posterior_metrics,
make_fig6. They read files, call `pae.science.posterior` (pure science) and write outputs atomically.

Files. RUN/posterior/{corruption}_{space}.npz per corruption and space (u: the paper's posterior in the flow's
latent space; z: the original code's N(0, I) prior on z, no flow) holds, for the first `n_images` test images:
index, y (labels), x (uint8 truth), x_tilde (float32 corrupted input, hidden pixels 0), observed (bool), var
(likelihood variance σ² + σ_noise²), starts_u, final_u, final_log_post, positive_definite (per start), the
Laplace mixture (modes_u, prec_chol, log_weights, weights, modes_log_post, log_evidence, n_modes, fallback),
the MAP (map_u, map_z, map_x, map_log_post), samples_u, samples_z, seconds, and meta__* (0-d) entries.
Both spaces of a corruption see the same corrupted images and the same random starts.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pae.files import io
from pae.files.artifacts import (
    load_classifier,
    load_flow,
    load_labelled_test,
    load_model,
    meta_of,
    read_npz,
)
from pae.science import runtime
from pae.science.density import eval_mode
from pae.science.figures import fig6
from pae.science.images import to_model_input
from pae.science.posterior import (
    SPACES,
    Corruption,
    LaplaceMixture,
    PosteriorModel,
    PosteriorSettings,
    analyse_corrupted,
    corrupt,
    likelihood_variance,
)
from pae.science.posterior_metrics import (
    METRIC_COLUMNS,
    ae_baseline_metrics,
    calibration_columns,
    method_metrics,
    metrics_markdown,
)
from pae.stages.common import load_floored_sigma, save_figure

METHODS = {  # metrics row label per method
    "u": "PAE posterior (u-space, flow prior)",
    "z": "z-space posterior, N(0, I) prior (original code)",
    "ae": "AE on the corrupted input",
}
SEED_OFFSET_STARTS = 1


def corruption_seed(seed: int, name: str) -> int:
    """Seed of a corruption's noise and random mask: the same for both spaces, different per corruption."""
    return int(seed) * 1_000_003 + zlib.crc32(name.encode()) % 1_000_003


def run_posterior(
    ae_path: str | Path,
    stats_path: str | Path,
    data_path: str | Path,
    out_path: str | Path,
    corruption_name: str,
    corruption: Mapping[str, Any],
    space: str,
    settings: Mapping[str, Any],
    flow_path: str | Path | None,
    n_images: int,
    seed: int,
    scale: float,
    sigma_floor: float | None,
    device: str,
    threads: int | None,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Rule posterior: corrupt the first n_images test images, run `posterior_analysis` in `space` (u with the
    flow at flow_path, or z), write the npz described in the module docstring."""
    if space not in SPACES:
        raise ValueError(f"unknown posterior space {space!r}; choose from {SPACES}")
    c = Corruption.from_config(corruption_name, corruption)
    st = PosteriorSettings.from_config(settings)
    if threads is not None:
        runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    ae, _ = load_model(ae_path, dev)
    flow = None
    if space == "u":
        if flow_path is None:
            raise ValueError("the u-space posterior needs the flow (flow.pt from rule train_flow)")
        flow, _ = load_flow(flow_path, dev)
        if flow.K != ae.latent_dim:
            raise ValueError(f"flow {flow_path} has K={flow.K} but the AE {ae_path} has K={ae.latent_dim}")
    sigma, floor = load_floored_sigma(stats_path, scale, sigma_floor, ae.image_shape)
    x_u8, y = load_labelled_test(data_path, n_images)
    if tuple(x_u8.shape[1:]) != tuple(ae.image_shape):
        raise ValueError(f"{data_path}: images of shape {x_u8.shape[1:]} do not fit the AE ({ae.image_shape})")
    x = to_model_input(x_u8, scale=scale, dequantize=False)
    x_tilde, observed = corrupt(x, c, torch.Generator().manual_seed(corruption_seed(seed, corruption_name)))
    var = likelihood_variance(sigma.to(dev), c.noise)
    model = PosteriorModel(decoder=ae.decoder, flow=flow, encoder=ae.encode, latent_dim=ae.latent_dim)
    log(f"{corruption_name} ({c}), space {space}: {len(x)} images, {st.n_starts} starts, "
        f"Adam steps {st.steps} at lr {list(st.lr_stages)}, device {dev}")
    t0 = time.perf_counter()
    res = analyse_corrupted(x_tilde.to(dev), observed.to(dev), sigma.to(dev), c.noise, model, st,
                            torch.Generator().manual_seed(int(seed) + SEED_OFFSET_STARTS), log=log)
    seconds = time.perf_counter() - t0
    out = res.arrays()
    nonfinite = [k for k in ("map_x", "samples_z", "map_log_post") if not np.all(np.isfinite(out[k]))]
    if nonfinite:
        raise FloatingPointError(f"posterior produced non-finite {nonfinite} for {corruption_name}/{space}; "
                                 "check the AE and flow, or lower posterior.lr_stages")
    out |= {"index": np.arange(len(x)), "y": y, "x": x_u8, "x_tilde": x_tilde.numpy().astype(np.float32),
            "observed": observed.numpy(), "var": var.cpu().numpy(), "seconds": np.asarray(seconds)}
    meta = {"corruption": corruption_name, "space": space, "mask": c.mask, "hidden_cols": c.hidden_cols,
            "hidden_fraction": c.hidden_fraction, "noise": c.noise, "scale": scale, "sigma_floor": floor,
            "seed": int(seed), "n_starts": st.n_starts, "steps_per_stage": ",".join(map(str, st.steps)),
            "lr_stages": ",".join(f"{v:g}" for v in st.lr_stages), "anneal_max": st.anneal_max or 0.0,
            "merge_distance": st.merge_distance, "device": str(dev)}
    for k, v in meta.items():
        out[f"meta__{k}"] = np.asarray(v)
    pd_share = float(out["positive_definite"].mean())
    best = out["final_log_post"].argmax(0)
    map_decrement = out["newton_decrement"][best, np.arange(len(best))]
    log(f"done in {seconds:.1f} s ({seconds / len(x):.3f} s/image): modes per image {out['n_modes'].mean():.2f}, "
        f"top weight {out['weights'].max(1).mean():.3f}, positive-definite starts {pd_share:.2%}, "
        f"fallback images {int(out['fallback'].sum())}, median Newton decrement at the MAP "
        f"{np.nanmedian(map_decrement):.3g} nats (≈ 0 when converged)")
    io.save_npz(out_path, **out)
    return out


# --------------------------------------------------------------------------------------------------------
# Metrics (pae.science.posterior_metrics)


def scale_of(post: Mapping[str, np.ndarray]) -> float:
    """The pixel scale a posterior file was made with (its meta__scale)."""
    return float(meta_of(post)["scale"])


def run_posterior_metrics(
    posterior_files: Mapping[str, Mapping[str, str | Path]],
    ae_path: str | Path,
    stats_path: str | Path,
    classifier_path: str | Path,
    out_csv: str | Path,
    out_md: str | Path,
    scale: float = 255,
    sigma_floor: float | None = None,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Rule posterior_metrics: posterior_files {corruption: {"u": npz, "z": npz}} → posterior_metrics.csv (one
    row per corruption × method: PAE u-space, z-space N(0, I), plain AE) and its Markdown rendering."""
    if threads is not None:
        runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    ae, _ = load_model(ae_path, dev)
    clf, _ = load_classifier(classifier_path, dev)
    n_classes = int(clf.init_kwargs["n_classes"])
    sigma, _ = load_floored_sigma(stats_path, scale, sigma_floor, ae.image_shape)
    sigma_np = sigma.numpy().astype(np.float64)
    rows = []
    with eval_mode(ae, clf), torch.no_grad():
        for name, files in posterior_files.items():
            posts = {s: read_npz(p, "run the rule posterior") for s, p in files.items()}
            first = next(iter(posts.values()))
            for post in posts.values():
                if not (np.array_equal(post["x_tilde"], first["x_tilde"]) and np.array_equal(post["y"], first["y"])):
                    raise ValueError(f"posterior files of corruption {name!r} saw different corrupted images; "
                                     "delete them and rerun the posterior rule")
            meta = meta_of(first)
            has_mask = meta["mask"] != "none"
            base = {"corruption": name, "mask": meta["mask"], "noise": meta["noise"],
                    "n_images": len(first["x"]), "region": "hidden pixels" if has_mask else "all pixels"}
            for s, post in posts.items():
                t0 = time.time()
                m = method_metrics(post, ae.decoder, clf, sigma_np, has_mask, n_classes, scale_of(post), dev)
                rows.append(base | {"method": METHODS[s], "n_samples": post["samples_z"].shape[1]} | m)
                log(f"{name} / {s}: PSNR MAP {m['psnr_map']:.2f} dB, mean {m['psnr_mean']:.2f} dB, "
                    f"predictive 95 % cover digit / background px {m['pred_cover_fg_95']:.3f} / "
                    f"{m['pred_cover_bg_95']:.3f}, class share {m['class_share']:.3f} ({time.time() - t0:.1f} s)")
            m = ae_baseline_metrics(first, ae, clf, sigma_np, has_mask, scale_of(first), dev)
            rows.append(base | {"method": METHODS["ae"], "n_samples": 0} | m)
    table = pd.DataFrame(rows)
    for key in [c for c, _ in METRIC_COLUMNS] + calibration_columns():
        if key not in table:
            table[key] = np.nan
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with io.atomic_path(out_md) as tmp:
        tmp.write_text(metrics_markdown(table))
    return table


# --------------------------------------------------------------------------------------------------------
# Fig. 6


def marginal_dims(means: np.ndarray, weights: np.ndarray, cov: np.ndarray) -> tuple[int, int]:
    """Two latent coordinates to show: where the two heaviest modes lie farthest apart (in units of the
    posterior std), else the two of largest posterior variance."""
    order = np.argsort(-weights)
    std = np.sqrt(np.clip(np.einsum("m,mkk->k", weights, cov), 1e-12, None))
    if len(order) > 1 and weights[order[1]] > 1e-3:
        sep = np.abs(means[order[0]] - means[order[1]]) / std
        dims = np.argsort(-sep)[:2]
    else:
        dims = np.argsort(-std)[:2]
    return int(min(dims)), int(max(dims))


def run_make_fig6(
    examples: Sequence[Mapping[str, Any]],
    posterior_files: Mapping[str, str | Path],
    ae_path: str | Path,
    stem: str | Path,
    n_samples: int = 32,
    n_marginal: int = 20000,
    device: str = "auto",
    threads: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Rule make_fig6: examples [{corruption, index}] (u-space files per corruption) → fig6.png / .pdf.
    Left: corrupted input (mask grey), MAP, truth per example. Middle: 2-D marginal of the mixture posterior
    of the first masked example (first example if none is masked). Right: its posterior samples decoded,
    without and with the mask."""
    if not examples:
        raise ValueError("config key posterior.fig6_examples is empty; list at least one {corruption, index}")
    if threads is not None:
        runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    ae, _ = load_model(ae_path, dev)
    rows = []
    for ex in examples:
        name, i = str(ex["corruption"]), int(ex["index"])
        if name not in posterior_files:
            raise ValueError(f"config key posterior.fig6_examples names corruption {name!r}, which has no "
                             f"posterior file here (given: {sorted(posterior_files)})")
        post = read_npz(posterior_files[name], "run the rule posterior")
        if not 0 <= i < len(post["x"]):
            raise ValueError(f"config key posterior.fig6_examples: index {i} of {name!r} is outside the "
                             f"{len(post['x'])} analysed images (posterior.n_images)")
        scale = scale_of(post)
        rows.append({"name": name, "i": i, "post": post, "scale": scale,
                     "has_mask": meta_of(post)["mask"] != "none"})
    main = next((r for r in rows if r["has_mask"]), rows[0])
    p, i = main["post"], main["i"]
    mix = LaplaceMixture(
        means=torch.as_tensor(p["modes_u"][i : i + 1]), prec_chol=torch.as_tensor(p["prec_chol"][i : i + 1]),
        log_weights=torch.as_tensor(p["log_weights"][i : i + 1]), log_post=torch.as_tensor(p["modes_log_post"][i : i + 1]),
        log_evidence=torch.as_tensor(p["log_evidence"][i : i + 1]), n_modes=torch.as_tensor(p["n_modes"][i : i + 1]))
    u = mix.sample(n_marginal, torch.Generator().manual_seed(seed))[0].double().numpy()
    w = p["weights"][i].astype(np.float64)
    keep = w > 0
    dims = marginal_dims(p["modes_u"][i][keep], w[keep], mix.covariance()[0].double().numpy()[keep])
    zs = p["samples_z"][i][:n_samples]
    with torch.no_grad():
        xs = ae.decoder.eval()(torch.as_tensor(zs, dtype=torch.float32).to(dev)).cpu().numpy()
    figure = fig6(
        inputs=np.stack([r["post"]["x_tilde"][r["i"]] for r in rows]),
        observed=np.stack([r["post"]["observed"][r["i"]] for r in rows]),
        maps=np.stack([r["post"]["map_x"][r["i"]] for r in rows]),
        truths=np.stack([r["post"]["x"][r["i"]].astype(np.float64) / r["scale"] - 0.5 for r in rows]),
        labels=[f"{r['name']} #{r['i']}" for r in rows],
        marginal={"samples": u[:, dims], "modes": p["modes_u"][i][keep][:, dims], "weights": w[keep], "dims": dims,
                  "title": f"{main['name']} #{i}", "symbol": str(meta_of(p)["space"])},
        samples=xs,
        sample_observed=p["observed"][i],
    )
    return save_figure(figure, stem)
