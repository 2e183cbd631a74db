"""Image-space metrics of the posterior analysis (paper Sec. 2.3, 4.2, Fig. 6): PSNR / SSIM of the MAP and the
posterior mean, calibration of per-pixel intervals, class consistency of the samples, and the Markdown table.

Calibration (what the intervals mean). For every pixel i of the evaluated region the posterior-predictive
distribution of the clean pixel is p(x_i | x̃) = ∫ N(x_i; g_i(z), σ_i²) p(z | x̃) dz (Eq. 14's likelihood with the
Eq. 8 σ, the corruption noise removed), estimated by the n posterior samples z_s: a mixture
(1/n) Σ_s N(g_i(z_s), σ_i²), i.e. the distribution of the samples g(z) + σ·ε. Its central interval at level l
contains the truth exactly when the mixture's CDF at the truth, F_i(x_i), lies in [(1 − l)/2, (1 + l)/2]; we
evaluate F_i exactly (no Monte Carlo over ε). For the plain AE the predictive is N(g(f(x̃)), σ²). These are the
headline "predictive" coverages, reported on foreground pixels (truth above the background level 0 of the
8-bit image), background pixels (truth exactly 0) and all region pixels, pooled over pixels and images.

The intervals of the decoded samples g(z) alone (no σ) are reported too ("decoded-sample" coverage): they have
zero width wherever the decoder saturates, and a zero-width interval is counted as a miss (a point has no
coverage of a continuous quantity); the share of zero-width intervals is its own column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtr

CALIBRATION_LEVELS = (0.5, 0.68, 0.8, 0.9, 0.95, 0.99)
PIXEL_CLASSES = ("fg", "bg", "all")
PIXEL_CLASS_LABELS = {"fg": "foreground (truth > 0)", "bg": "background (truth = 0)", "all": "all region pixels"}
ZERO_WIDTH = 1e-7  # an interval narrower than this (model units) is zero-width


# --------------------------------------------------------------------------------------------------------
# Regions and point metrics


def eval_region(observed: np.ndarray, has_mask: bool) -> np.ndarray:
    """Pixels a reconstruction is judged on: the hidden ones for masks, all of them otherwise."""
    observed = np.asarray(observed, dtype=bool)
    return ~observed if has_mask else np.ones_like(observed)


def pixel_classes(x_uint8: np.ndarray, region: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the region's foreground (truth above the background level 0), background (truth 0)
    and all pixels, each (N, C, H, W)."""
    region = np.asarray(region, bool)
    fg = np.asarray(x_uint8) > 0
    return {"fg": region & fg, "bg": region & ~fg, "all": region}


def psnr(x_hat: np.ndarray, x: np.ndarray, region: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """10 log10(range² / MSE) per image over `region` (N, C, H, W); NaN where the region is empty."""
    r = np.asarray(region, dtype=bool).reshape(len(x), -1)
    se = ((np.asarray(x_hat, np.float64) - np.asarray(x, np.float64)) ** 2).reshape(len(x), -1)
    cnt = r.sum(1)
    mse = np.where(cnt > 0, (se * r).sum(1) / np.maximum(cnt, 1), np.nan)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-12))


def ssim(x_hat: np.ndarray, x: np.ndarray, region: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Mean of scikit-image's local SSIM map (7×7 windows, per channel) over `region`, per image (N,)."""
    from skimage.metrics import structural_similarity

    x_hat, x, region = np.asarray(x_hat, np.float64), np.asarray(x, np.float64), np.asarray(region, bool)
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        maps = [structural_similarity(x_hat[i, c], x[i, c], data_range=data_range, full=True)[1]
                for c in range(x.shape[1])]
        smap = np.stack(maps)
        if region[i].any():
            out[i] = float(smap[region[i]].mean())
    return out


def label_statistics(labels: np.ndarray, truth: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """For classifier labels of n samples per image (N, n): share equal to the true class (N,) and the entropy
    (nats) of the label histogram (N,)."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    share = (labels == truth[:, None]).mean(1)
    counts = np.stack([(labels == c).sum(1) for c in range(int(n_classes))], 1) / labels.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(counts > 0, counts * np.log(counts), 0.0).sum(1)
    return share, ent


# --------------------------------------------------------------------------------------------------------
# Intervals


def sample_interval_hits(samples: np.ndarray, x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central pixel-wise interval of the samples (N, n, C, H, W) at `level`: (truth inside and width > 0,
    zero-width), both bool (N, C, H, W). A zero-width interval never covers."""
    samples, x = np.asarray(samples, np.float64), np.asarray(x, np.float64)
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1)
    zero = (hi - lo) <= ZERO_WIDTH
    return (x >= lo) & (x <= hi) & ~zero, zero


def interval_coverage(samples: np.ndarray, x: np.ndarray, region: np.ndarray,
                      levels: Sequence[float] = (0.68, 0.95)) -> dict[float, np.ndarray]:
    """Share of region pixels of the truth x (N, C, H, W) inside the central pixel-wise interval of the samples
    (N, n, C, H, W) (zero-width intervals count as misses), per level and image: {level: (N,)}."""
    r = np.asarray(region, bool).reshape(len(x), -1)
    cnt = r.sum(1)
    out = {}
    for lev in levels:
        inside = sample_interval_hits(samples, x, lev)[0].reshape(len(x), -1)
        out[float(lev)] = np.where(cnt > 0, (inside & r).sum(1) / np.maximum(cnt, 1), np.nan)
    return out


def predictive_cdf(decoded: np.ndarray, sigma: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F(x) of the posterior-predictive mixture (1/n) Σ_s N(decoded_s, σ²) per pixel: decoded (N, n, C, H, W)
    samples g(z_s), sigma > 0 broadcastable to (N, C, H, W), truth x (N, C, H, W) → (N, C, H, W) in [0, 1]."""
    decoded, x = np.asarray(decoded, np.float64), np.asarray(x, np.float64)
    s = np.broadcast_to(np.asarray(sigma, np.float64), x.shape)[:, None]
    return ndtr((x[:, None] - decoded) / s).mean(1)


def predictive_interval(decoded: np.ndarray, sigma: np.ndarray, level: float, iterations: int = 40
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Central interval (lo, hi) at `level` of the predictive mixture (1/n) Σ_s N(decoded_s, σ²), per pixel
    (N, C, H, W), by bisection on its CDF (`predictive_cdf`)."""
    decoded = np.asarray(decoded, np.float64)
    s = np.broadcast_to(np.asarray(sigma, np.float64), decoded.shape[:1] + decoded.shape[2:])
    bounds = []
    for p in ((1 - level) / 2, (1 + level) / 2):
        lo, hi = decoded.min(1) - 10 * s, decoded.max(1) + 10 * s
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = predictive_cdf(decoded, s, mid) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        bounds.append(0.5 * (lo + hi))
    return bounds[0], bounds[1]


def predictive_summary(decoded: np.ndarray, sigma: np.ndarray, level: float = 0.9) -> dict[str, np.ndarray]:
    """Per-pixel posterior-predictive summary of decoded samples g(z_s) (N, n, C, H, W) with the Eq. 8 σ (C, H, W):
    mean, std = √(Var_s g(z_s) + σ²) (the uncertainty map), and the central interval lo / hi at `level` of the
    mixture (1/n) Σ_s N(g(z_s), σ²) (`predictive_interval`)."""
    decoded = np.asarray(decoded, np.float64)
    s = np.broadcast_to(np.asarray(sigma, np.float64), decoded.shape[:1] + decoded.shape[2:])
    lo, hi = predictive_interval(decoded, s, level)
    return {"mean": decoded.mean(1), "std": np.sqrt(decoded.var(1) + s**2), "lo": lo, "hi": hi}


def central_hits(cdf: np.ndarray, level: float) -> np.ndarray:
    """Truth inside the central interval at `level` ⇔ its predictive CDF lies in [(1 − l)/2, (1 + l)/2]."""
    return np.abs(2.0 * np.asarray(cdf) - 1.0) <= float(level)


def gaussian_cdf(center: np.ndarray, sigma: np.ndarray, x: np.ndarray) -> np.ndarray:
    """F(x) of N(center, σ²) per pixel (the AE baseline's predictive)."""
    return ndtr((np.asarray(x, np.float64) - np.asarray(center, np.float64)) / np.asarray(sigma, np.float64))


class CoverageCounter:
    """Pooled pixel counts of interval hits per pixel class and level."""

    def __init__(self, levels: Sequence[float] = CALIBRATION_LEVELS) -> None:
        self.levels = tuple(float(v) for v in levels)
        self.hits = {(c, lev): 0 for c in PIXEL_CLASSES for lev in self.levels}
        self.count = dict.fromkeys(PIXEL_CLASSES, 0)

    def add(self, hits_at: Callable[[float], np.ndarray], classes: Mapping[str, np.ndarray]) -> None:
        for c in PIXEL_CLASSES:
            self.count[c] += int(classes[c].sum())
        for lev in self.levels:
            h = hits_at(lev)
            for c in PIXEL_CLASSES:
                self.hits[c, lev] += int((h & classes[c]).sum())

    def coverage(self, cls: str, level: float) -> float:
        n = self.count[cls]
        return self.hits[cls, float(level)] / n if n else float("nan")

    def columns(self, prefix: str) -> dict[str, float]:
        """{prefix_<class>_<level %>: coverage} for every class and level."""
        return {f"{prefix}_{c}_{round(100 * lev)}": self.coverage(c, lev) for c in PIXEL_CLASSES for lev in self.levels}


# --------------------------------------------------------------------------------------------------------
# One posterior file / the AE baseline


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, dev: Any, batch: int = 4096) -> np.ndarray:
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        return torch.cat([fn(xt[i : i + batch].to(dev)).cpu() for i in range(0, len(xt), batch)]).numpy()


def method_metrics(post: Mapping[str, np.ndarray], decoder: Any, classifier: Any, sigma: np.ndarray,
                   has_mask: bool, n_classes: int, scale: float, dev: Any, chunk: int = 32,
                   levels: Sequence[float] = CALIBRATION_LEVELS) -> dict[str, float]:
    """Metrics of one posterior result (arrays x uint8, observed, samples_z, map_x, y, weights, n_modes,
    fallback, newton_decrement, final_log_post, seconds): PSNR / SSIM of the MAP and of the posterior mean on
    the evaluation region, predictive coverage per pixel class and level (module docstring), decoded-sample
    coverage and zero-width share, class consistency of the samples, modes. `sigma` (C, H, W): floored Eq. 8 σ."""
    x = post["x"].astype(np.float64) / scale - 0.5
    region = eval_region(post["observed"], has_mask)
    classes_all = pixel_classes(post["x"], region)
    N = len(x)
    pred = CoverageCounter(levels)
    decoded = CoverageCounter(levels)
    zero = dict.fromkeys(PIXEL_CLASSES, 0)
    acc: dict[str, list[np.ndarray]] = {k: [] for k in ("psnr_mean", "ssim_mean", "class_share", "class_entropy")}
    for i in range(0, N, chunk):
        j = min(N, i + chunk)
        zs = post["samples_z"][i:j]
        n = zs.shape[1]
        xs = _batched(decoder, zs.reshape(-1, zs.shape[-1]), dev).reshape(j - i, n, *x.shape[1:]).astype(np.float64)
        cls = {c: m[i:j] for c, m in classes_all.items()}
        mean = xs.mean(1)
        acc["psnr_mean"].append(psnr(mean, x[i:j], region[i:j]))
        acc["ssim_mean"].append(ssim(mean, x[i:j], region[i:j]))
        cdf = predictive_cdf(xs, sigma, x[i:j])
        pred.add(lambda lev, cdf=cdf: central_hits(cdf, lev), cls)
        decoded.add(lambda lev, xs=xs, j=j, i=i: sample_interval_hits(xs, x[i:j], lev)[0], cls)
        width0 = sample_interval_hits(xs, x[i:j], 0.95)[1]
        for c in PIXEL_CLASSES:
            zero[c] += int((width0 & cls[c]).sum())
        labels = _batched(lambda t: classifier(t).argmax(1), xs.reshape(-1, *x.shape[1:]), dev).reshape(j - i, n)
        share, ent = label_statistics(labels, post["y"][i:j], n_classes)
        acc["class_share"].append(share)
        acc["class_entropy"].append(ent)
    out = {k: float(np.nanmean(np.concatenate(v))) for k, v in acc.items()}
    out |= pred.columns("pred_cover") | decoded.columns("sample_cover")
    out |= {f"zero_width_{c}_95": zero[c] / pred.count[c] if pred.count[c] else float("nan") for c in PIXEL_CLASSES}
    map_label = _batched(lambda t: classifier(t).argmax(1), post["map_x"], dev)
    weights = post["weights"]
    out |= {
        "psnr_map": float(np.nanmean(psnr(post["map_x"], x, region))),
        "ssim_map": float(np.nanmean(ssim(post["map_x"], x, region))),
        "map_class_correct": float(np.mean(map_label == post["y"])),
        "n_modes": float(np.mean(post["n_modes"])),
        "n_modes_1pct": float(np.mean((weights >= 0.01).sum(1))),
        "top_weight": float(np.mean(weights.max(1))),
        "multimodal_share": float(np.mean((weights >= 0.01).sum(1) > 1)),
        "fallback_share": float(np.mean(post["fallback"])),
        "map_newton_decrement": float(np.nanmedian(
            post["newton_decrement"][post["final_log_post"].argmax(0), np.arange(N)])),
        "seconds_per_image": float(post["seconds"]) / N,
    }
    return out


def ae_baseline_metrics(post: Mapping[str, np.ndarray], ae: Any, classifier: Any, sigma: np.ndarray,
                        has_mask: bool, scale: float, dev: Any,
                        levels: Sequence[float] = CALIBRATION_LEVELS) -> dict[str, float]:
    """The plain AE applied to the corrupted input (hidden pixels filled with 0 = mid-grey): g(f(x̃)), with the
    predictive N(g(f(x̃)), σ²) for the coverage columns."""
    x = post["x"].astype(np.float64) / scale - 0.5
    region = eval_region(post["observed"], has_mask)
    rec = _batched(ae, np.where(post["observed"], post["x_tilde"], 0.0), dev, 1024).astype(np.float64)
    label = _batched(lambda t: classifier(t).argmax(1), rec, dev)
    pred = CoverageCounter(levels)
    cdf = gaussian_cdf(rec, sigma[None], x)
    pred.add(lambda lev: central_hits(cdf, lev), pixel_classes(post["x"], region))
    return {"psnr_map": float(np.nanmean(psnr(rec, x, region))), "ssim_map": float(np.nanmean(ssim(rec, x, region))),
            "map_class_correct": float(np.mean(label == post["y"]))} | pred.columns("pred_cover")


# --------------------------------------------------------------------------------------------------------
# The table


METRIC_COLUMNS = [
    ("psnr_map", "PSNR MAP (dB)"), ("psnr_mean", "PSNR mean (dB)"), ("ssim_map", "SSIM MAP"),
    ("ssim_mean", "SSIM mean"),
    ("pred_cover_fg_68", "pred. 68 % cover, digit px"), ("pred_cover_fg_95", "pred. 95 % cover, digit px"),
    ("pred_cover_bg_95", "pred. 95 % cover, background px"), ("pred_cover_all_95", "pred. 95 % cover, all px"),
    ("sample_cover_fg_95", "g(z)-sample 95 % cover, digit px"), ("sample_cover_bg_95", "g(z)-sample 95 % cover, bg px"),
    ("zero_width_all_95", "zero-width g(z) 95 % intervals"),
    ("class_share", "samples = true digit"), ("class_entropy", "label entropy (nats)"),
    ("map_class_correct", "MAP = true digit"), ("n_modes", "modes"), ("n_modes_1pct", "modes ≥ 1 %"),
    ("top_weight", "top weight"), ("map_newton_decrement", "MAP Newton decr. (nats)"),
    ("seconds_per_image", "s / image"),
]


def calibration_columns(levels: Sequence[float] = CALIBRATION_LEVELS) -> list[str]:
    """CSV columns of the predictive calibration curve: pred_cover_<class>_<level %>."""
    return [f"pred_cover_{c}_{round(100 * lev)}" for c in PIXEL_CLASSES for lev in levels]


def _cell(column: str, value: float) -> str:
    if column.startswith("psnr") or column.startswith("n_modes"):
        return f"{value:.2f}"
    return f"{value:.3g}" if column == "map_newton_decrement" else f"{value:.3f}"


def metrics_markdown(table: pd.DataFrame, levels: Sequence[float] = CALIBRATION_LEVELS) -> str:
    """Markdown rendering of posterior_metrics.csv: per corruption the metrics and the calibration curve."""
    lines = [
        "# Posterior analysis of corrupted MNIST test images (paper Sec. 2.3, 4.2, Fig. 6)",
        "",
        "The paper shows Fig. 6 only qualitatively and reports no numbers; these are ours. PSNR/SSIM: on the "
        "hidden pixels for masks, on all pixels for noise (pixels in [−0.5, 0.5], data range 1); "
        "MAP = best mode, mean = mean of the decoded posterior samples. **pred. cover** (the headline): share of "
        "true pixels inside the central interval of the posterior-predictive distribution of the clean pixel, "
        "the samples g(z) + σ·ε with the Eq. 8 σ (its CDF evaluated exactly over ε; AE row: N(g(f(x̃)), σ²)), "
        "pooled over pixels, on digit (foreground, truth > 0) and background (truth = 0) pixels of the region "
        "separately. **g(z)-sample cover**: the interval of the decoded samples alone; a zero-width interval "
        "(saturated decoder) counts as a miss, and their share is its own column. A calibrated interval covers "
        "its nominal share on every pixel class. Class columns: a CNN trained on the MNIST training split labels "
        "the samples / the MAP. Modes: distinct Laplace components per image (all / with weight ≥ 1 %); top "
        "weight: the largest. MAP Newton decrement: median ½∇ᵀH⁻¹∇ at the MAP, the log-posterior gain a Newton "
        "step would still predict (≈ 0 when the Adam schedule has converged).",
        "",
    ]
    cols = [c for c, _ in METRIC_COLUMNS]
    heads = [h for _, h in METRIC_COLUMNS]
    pct = [round(100 * lev) for lev in levels]
    for name, grp in table.groupby("corruption", sort=False):
        first = grp.iloc[0]
        lines += [f"## {name} (mask {first['mask']}, σ_noise {first['noise']}, {first['n_images']} images, "
                  f"{first['region']})", "", "| method | " + " | ".join(heads) + " |",
                  "|---|" + "---:|" * len(heads)]
        for _, r in grp.iterrows():
            cells = ["—" if pd.isna(r.get(c)) else _cell(c, r[c]) for c in cols]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines += ["", f"Calibration curve of the predictive intervals ({name}): empirical coverage at each "
                  "nominal level", "", "| method | pixels | " + " | ".join(f"{p} %" for p in pct) + " |",
                  "|---|---|" + "---:|" * len(pct)]
        for _, r in grp.iterrows():
            for c in PIXEL_CLASSES:
                cells = [r.get(f"pred_cover_{c}_{p}") for p in pct]
                lines.append(f"| {r['method']} | {PIXEL_CLASS_LABELS[c]} | "
                             + " | ".join("—" if v is None or pd.isna(v) else f"{v:.3f}" for v in cells) + " |")
        lines.append("")
    return "\n".join(lines)

