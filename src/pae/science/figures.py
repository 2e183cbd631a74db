"""Paper figures with matplotlib (Agg): shared helpers, then one function per figure; each returns the
matplotlib Figure (the stages save it: `pae.stages.common.save_figure`)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pae.science.paper import PAPER_FIG3_FID, PAPER_FIG4_FID  # noqa: E402


def tile_images(images: np.ndarray, ncols: int) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one (rows·H, ncols·W[, C]) array with 1-pixel gaps."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {images.shape}")
    n, c, h, w = images.shape
    nrows = int(np.ceil(n / ncols))
    grid = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1, c), 255 if c == 3 else 0, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = images[i].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def show_grid(ax, images: np.ndarray, ncols: int, title: str | None = None) -> None:
    """Draw a tiled image grid on `ax` without axes."""
    grid = tile_images(images, ncols)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


# ------------------------------------------------------------------------------------------------
# Fig. 5 (out-of-distribution detection against K)


def fig5(
    inputs: np.ndarray,
    recons: dict[int, np.ndarray],
    ratios,
    fn_rate: float,
    labels: tuple[str, str] = ("F-MNIST", "MNIST"),
) -> Figure:
    """Fig. 5. Left: OoD inputs (uint8 (n, C, H, W); paper: MNIST) and their reconstructions by the AEs trained
    on the in-distribution data (paper: F-MNIST), labels = (in-distribution, OoD),
    one column per K (`recons`: K → uint8 images). Right: TP/FP ratio at FN = fn_rate against K (log y)
    for "reconstruction error" (yellow) and "latent density" (blue), from `ratios` (a DataFrame with
    columns score, K, seed, ratio, n_in: geometric mean over seeds, bars = min to max). The ratio takes OoD
    as the positive class (the axis label says so). An infinite ratio (no in-distribution image flagged)
    is drawn at its lower bound (1 − fn_rate)·n_in with an upward triangle.
    """
    import pandas as pd

    ks = sorted(recons)
    fig = plt.figure(figsize=(0.9 * (len(ks) + 1) + 5.0, 4.2))
    outer = fig.add_gridspec(1, 2, width_ratios=[0.9 * (len(ks) + 1), 4.0], wspace=0.4)
    left = outer[0].subgridspec(1, len(ks) + 1, wspace=0.05)
    show_grid(fig.add_subplot(left[0]), inputs, ncols=1, title=labels[1])
    for j, K in enumerate(ks):
        show_grid(fig.add_subplot(left[j + 1]), recons[K], ncols=1, title=f"K={K}")
    ax = fig.add_subplot(outer[1])
    colors = {"reconstruction error": "#e6b000", "latent density": "#1f5fbf"}
    df = pd.DataFrame(ratios)
    for label, color in colors.items():
        sub = df[df["score"] == label]
        if sub.empty:
            continue
        xs, means, spread, bound = [], [], [], []
        for K, grp in sorted(sub.groupby("K"), key=lambda t: t[0]):
            r = grp["ratio"].to_numpy(dtype=float)
            inf = ~np.isfinite(r)
            r = np.where(inf, (1.0 - fn_rate) * grp["n_in"].to_numpy(dtype=float), r)
            gmean = float(np.exp(np.mean(np.log(np.maximum(r, 1e-12)))))
            xs.append(K)
            means.append(gmean)
            spread.append((max(gmean - r.min(), 0.0), max(r.max() - gmean, 0.0)))  # exp∘log round-off
            bound.append(bool(inf.any()))
        xs, means, bound = map(np.asarray, (xs, means, bound))
        yerr = np.asarray(spread).T
        ax.errorbar(xs, means, yerr=yerr, color=color, marker="o", capsize=3, label=label)
        if bound.any():
            ax.scatter(xs[bound], means[bound], marker="^", s=80, color=color, zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, 0.5), max(hi, 10.0))  # at least a decade, so only major (power-of-10) labels show
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("latent dimension K")
    ax.set_ylabel(f"TP rate / FP rate at FN rate {fn_rate:g}\n(positive class = OoD)")
    ax.set_title(f"{labels[0]} (in) vs {labels[1]} (OoD, the positive class)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# Fig. 2 and Fig. 3 (paper Sec. 4.1) ------------------------------------------------------------------------


def _fid_text(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "unavailable"


def fig2(panels: dict[str, np.ndarray], ncols: int = 8) -> Figure:
    """Fig. 2: side-by-side grids (title → uint8 images (n, C, H, W)), e.g. AE, VAE, β-VAE, PAE samples and
    test reconstructions at K = 32."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels.items(), strict=True):
        show_grid(ax, images, ncols, title)
    fig.tight_layout()
    return fig


def fig3(samples: dict[int, np.ndarray], fids: dict[int, dict], ncols: int = 8) -> Figure:
    """Fig. 3: PAE samples per K (K → uint8 images), titled with their sample FIDs (K → {"domain": …,
    "inception": … or "unavailable: …"}) and the paper's Inception FID where it gives one."""
    ks = sorted(samples)
    fig, axes = plt.subplots(1, len(ks), figsize=(3.2 * len(ks), 3.6), squeeze=False)
    for ax, K in zip(axes[0], ks, strict=True):
        f = fids.get(K, {})
        title = f"PAE, K={K}\nFID domain CNN {_fid_text(f.get('domain'))}, Inception {_fid_text(f.get('inception'))}"
        if K in PAPER_FIG3_FID:
            title += f"\n(paper, Inception: {PAPER_FIG3_FID[K]})"
        show_grid(ax, samples[K], ncols, title)
    fig.tight_layout()
    return fig


# Fig. 4 (paper Sec. 4.1: CelebA samples and interpolations) ------------------------------------------------
FIG4_ROW_LABELS = ("PAE: through the flow's u", "linear in z")


def _is_fid(value: Any) -> bool:
    """A computed FID: a finite real number (strings mean "unavailable: …")."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fid_choice(fid: dict[str, Any]) -> str:
    """"49.2 (Inception)" where the Inception FID is a number, else "… (domain CNN)", else "unavailable"."""
    for key, label in (("inception", "Inception"), ("domain", "domain CNN")):
        if _is_fid(fid.get(key)):
            return f"{_fid_text(float(fid[key]))} ({label})"
    return "unavailable"


def fig4(
    samples: np.ndarray,
    interp_u: np.ndarray,
    interp_z: np.ndarray,
    fids: dict[str, dict[str, Any]],
    ncols: int = 8,
) -> Figure:
    """Fig. 4. Left: PAE samples (uint8 (N, C, H, W), Eq. 6) titled with the sample and reconstruction FIDs
    (`fids` = {"sample": {"inception": …, "domain": …}, "reconstruction": {…}}; Inception where it is a number,
    else the domain FID, each labelled). Right: per pair of validation images one row interpolated through
    the flow's u and below it one row linear in z (uint8 (n_pairs, n_steps, C, H, W) each, t = 0 → 1)."""
    samples, interp_u, interp_z = np.asarray(samples), np.asarray(interp_u), np.asarray(interp_z)
    if samples.ndim != 4:
        raise ValueError(f"samples must be images (N, C, H, W), got shape {samples.shape}")
    if interp_u.ndim != 5 or interp_u.shape != interp_z.shape:
        raise ValueError(f"interp_u and interp_z must both be (n_pairs, n_steps, C, H, W), got {interp_u.shape} "
                         f"and {interp_z.shape}")
    if interp_u.shape[2:] != samples.shape[1:]:
        raise ValueError(f"interpolations have images {interp_u.shape[2:]}, samples {samples.shape[1:]}")
    n_pairs, n_steps = interp_u.shape[:2]
    ncols = max(1, min(int(ncols), len(samples)))
    nrows = int(np.ceil(len(samples) / ncols))
    tile = 0.42  # inches per image
    label_w = 1.7  # inches for the row labels left of the interpolations
    width = tile * (ncols + n_steps) + label_w + 0.6
    height = max(tile * nrows, tile * 2 * n_pairs * 1.12) + 1.1
    fig = plt.figure(figsize=(width, height))
    outer = fig.add_gridspec(1, 2, width_ratios=[tile * ncols, tile * n_steps + label_w], wspace=0.05)
    title = (f"PAE samples: FID {_fid_choice(fids.get('sample', {}))}\n"
             f"reconstructions: FID {_fid_choice(fids.get('reconstruction', {}))}\n"
             f"(paper, CelebA K=64, Inception: {PAPER_FIG4_FID['sample']} / {PAPER_FIG4_FID['reconstruction']})")
    left = fig.add_subplot(outer[0])
    show_grid(left, samples, ncols, title)
    left.set_anchor("N")
    right = outer[1].subgridspec(n_pairs, 1, hspace=0.2)
    for p in range(n_pairs):
        rows = right[p].subgridspec(2, 2, width_ratios=[label_w, tile * n_steps], wspace=0.02, hspace=0.06)
        for r, (images, label) in enumerate(zip((interp_u[p], interp_z[p]), FIG4_ROW_LABELS, strict=True)):
            ax = fig.add_subplot(rows[r, 1])
            head = f"interpolations between validation images (t = 0 → 1, {n_steps} steps)" if p == r == 0 else None
            show_grid(ax, images, n_steps, head)
            lab = fig.add_subplot(rows[r, 0])
            lab.set_axis_off()
            lab.text(1.0, 0.5, (f"pair {p + 1}\n" if r == 0 else "") + label, ha="right", va="center", fontsize=8,
                     transform=lab.transAxes)
    return fig


# Fig. 6 (paper Sec. 2.3, 4.2: posterior analysis of corrupted MNIST digits) ---------------------------------
MASK_GREY = (0.6, 0.62, 0.68)  # hidden pixels: a light blue-grey, distinct from the digits' mid-grey edges


def masked_rgb(images: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Float images (N, C, H, W) in [−0.5, 0.5] → uint8 RGB (N, 3, H, W), hidden pixels in MASK_GREY."""
    x = np.clip(np.asarray(images, dtype=np.float64) + 0.5, 0.0, 1.0)
    rgb = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x.copy()
    if observed is not None:
        hidden = ~np.asarray(observed, dtype=bool).all(1)  # (N, H, W)
        for ch, val in enumerate(MASK_GREY):
            rgb[:, ch][hidden] = val
    return np.rint(rgb * 255).astype(np.uint8)


def fig6(
    inputs: np.ndarray,
    observed: np.ndarray,
    maps: np.ndarray,
    truths: np.ndarray,
    labels: list[str],
    marginal: dict,
    samples: np.ndarray,
    sample_observed: np.ndarray,
    ncols: int = 8,
) -> Figure:
    """Fig. 6. Left: corrupted inputs (E, C, H, W) with hidden pixels (observed False) in grey, their MAP
    reconstructions and the truths (all floats in [−0.5, 0.5]). Middle: 2-D marginal of two latent
    coordinates of a posterior: `marginal` = {samples (n, 2), modes (M, 2), weights (M,), dims (i, j), title,
    symbol ("u" or "z", the latent space)}.
    Right: decoded posterior samples (n, C, H, W) of that example, then the same with its mask
    (`sample_observed` (C, H, W)) applied."""
    E = len(inputs)
    n = len(samples)
    fig = plt.figure(figsize=(12.5, max(4.2, 1.25 * E + 0.6)))
    outer = fig.add_gridspec(1, 3, width_ratios=[3.2, 3.6, 5.2], wspace=0.3)
    left = outer[0].subgridspec(E, 3, wspace=0.06, hspace=0.12)
    for r in range(E):
        row = [masked_rgb(inputs[r : r + 1], observed[r : r + 1]), masked_rgb(maps[r : r + 1]),
               masked_rgb(truths[r : r + 1])]
        for c, (img, title) in enumerate(zip(row, ("corrupted", "MAP", "truth"), strict=True)):
            ax = fig.add_subplot(left[r, c])
            ax.imshow(img[0].transpose(1, 2, 0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=8)
    ax = fig.add_subplot(outer[1])
    s = np.asarray(marginal["samples"], dtype=np.float64)
    lo, hi = np.percentile(s, [0.5, 99.5], axis=0)
    pad = 0.15 * (hi - lo) + 1e-6
    rng = [[lo[0] - pad[0], hi[0] + pad[0]], [lo[1] - pad[1], hi[1] + pad[1]]]
    h, xe, ye = np.histogram2d(s[:, 0], s[:, 1], bins=60, range=rng, density=True)
    ax.imshow(h.T, origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]), aspect="auto", cmap="Blues")
    modes, w = np.asarray(marginal["modes"]), np.asarray(marginal["weights"])
    ax.scatter(modes[:, 0], modes[:, 1], s=20 + 180 * w / max(w.max(), 1e-12), marker="x", color="#c0392b",
               label="modes (size ∝ weight)")
    i, j = marginal["dims"]
    sym = marginal["symbol"]  # u: the flow's latent space (paper); z: the AE latent (original code)
    ax.set_xlabel(f"${sym}_{{{i + 1}}}$")
    ax.set_ylabel(f"${sym}_{{{j + 1}}}$")
    ax.set_title(f"posterior, {marginal['title']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    right = outer[2].subgridspec(2, 1, hspace=0.12)
    show_grid(fig.add_subplot(right[0]), masked_rgb(samples), ncols, title=f"{n} posterior samples")
    masks = np.repeat(np.asarray(sample_observed, dtype=bool)[None], n, axis=0)
    show_grid(fig.add_subplot(right[1]), masked_rgb(samples, masks), ncols, title="the same samples with the mask")
    return fig
