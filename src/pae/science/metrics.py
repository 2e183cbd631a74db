"""Detection and distribution metrics: AUROC, AUPR, FPR at a TPR, TP/FP ratio (Table 2, Fig. 5) and the
Fréchet distance behind FID (Table 1).

Pure functions of arrays. OoD metrics take per-image scores where higher means more in-distribution
(log-densities, negative errors); the OoD images are the positive class and the detection statistic is
t = −score, except where a function says otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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
    from sklearn.metrics import roc_auc_score  # here, not at the top: 1.6 s that the score jobs never need

    a, b = _check_scores(scores_in, scores_ood)
    y = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(roc_auc_score(y, -np.concatenate([a, b])))


def aupr(scores_in: Any, scores_ood: Any) -> float:
    """Area under the precision–recall curve with OoD as the positive class and t = −score: sklearn's
    average_precision_score, AP = Σ_n (R_n − R_{n−1}) P_n over the thresholds. 1 = perfect; a detector
    without skill scores the fraction of OoD images, m/(n + m)."""
    from sklearn.metrics import average_precision_score

    a, b = _check_scores(scores_in, scores_ood)
    y = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    return float(average_precision_score(y, -np.concatenate([a, b])))


def tp_fp_rates(scores_in: Any, scores_ood: Any, fn_rate: float = 0.05, positive: str = "ood") -> tuple[float, float]:
    """(TPR, FPR) at the threshold that misses a fraction `fn_rate` of the positive class.

    positive = "ood" (Fig. 5 here): statistic t = −score, positives the m OoD images, negatives the n
    in-distribution ones. positive = "in" (the original AUROC code's convention): t = score, positives the
    in-distribution images, negatives the OoD ones. Sort the positives' statistics ascending,
    t_(1) ≤ … ≤ t_(m), let k = ⌊fn_rate·m⌋ and take τ = t_(k+1): an image is called positive when t ≥ τ.
    Then at most k positives are missed (exactly k without ties), TPR = #{positives: t ≥ τ}/m ≥ 1 − fn_rate
    and FPR = #{negatives: t ≥ τ}/n.
    """
    if not 0.0 <= fn_rate < 1.0:
        raise ValueError(f"config key ood.fn_rate must be in [0, 1), got {fn_rate!r}")
    if positive not in ("ood", "in"):
        raise ValueError(f"positive must be 'ood' or 'in', got {positive!r}")
    a, b = _check_scores(scores_in, scores_ood)
    pos, neg = (-b, -a) if positive == "ood" else (a, b)
    k = int(math.floor(fn_rate * pos.size + 1e-9))
    tau = np.sort(pos)[k]
    return float(np.mean(pos >= tau)), float(np.mean(neg >= tau))


def tp_fp_ratio(scores_in: Any, scores_ood: Any, fn_rate: float = 0.05, positive: str = "ood") -> float:
    """TPR / FPR at the threshold that misses a fraction `fn_rate` of the positive class (Fig. 5; see
    `tp_fp_rates`). When FPR = 0 (no negative reaches τ) the ratio is unbounded and `math.inf` is returned."""
    tpr, fpr = tp_fp_rates(scores_in, scores_ood, fn_rate, positive)
    return math.inf if fpr == 0.0 else tpr / fpr


def fpr_at_tpr(scores_in: Any, scores_ood: Any, tpr: float = 0.95) -> float:
    """FPR at TPR ≥ `tpr` with OoD positive ("FPR95" for tpr 0.95): the fraction of in-distribution images
    flagged as OoD at the highest threshold that still flags a fraction `tpr` of the OoD images
    (`tp_fp_rates` with fn_rate = 1 − tpr). 0 = perfect; a detector without skill gives ≈ tpr."""
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    return tp_fp_rates(scores_in, scores_ood, 1.0 - tpr, "ood")[1]


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix via eigh."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (the FID formula above).

    tr((Σ₁Σ₂)^{1/2}) is computed as Σᵢ √λᵢ of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}, which has the same
    eigenvalues as Σ₁Σ₂: two `eigh` calls instead of scipy's `sqrtm` (same value to ~1e-11, 5–20× faster, and
    no complex parts or singular-matrix failures for rank-deficient covariances from few samples).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf: the features are not finite")
    r1 = _sqrt_psd(s1)
    lam = np.linalg.eigvalsh(r1 @ ((s2 + s2.T) / 2) @ r1)
    tr_covmean = float(np.sum(np.sqrt(np.clip(lam, 0, None))))
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean, 0.0))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def rates_at_fn_rate(scores_in: np.ndarray, scores_ood: np.ndarray, fn_rate: float) -> dict[str, float]:
    """Fig. 5's numbers for one score: TP/FP ratio, TPR and FPR at a false-negative rate `fn_rate`, with the
    OoD set as the positive class (as plotted) and with the in-distribution set positive (the original
    AUROC code's convention: `*_in_positive`). Scores are "higher = more in-distribution"."""
    tpr, fpr = tp_fp_rates(scores_in, scores_ood, fn_rate, "ood")
    tpr_in, fpr_in = tp_fp_rates(scores_in, scores_ood, fn_rate, "in")
    return {"ratio": tp_fp_ratio(scores_in, scores_ood, fn_rate, "ood"), "tpr": tpr, "fpr": fpr,
            "ratio_in_positive": tp_fp_ratio(scores_in, scores_ood, fn_rate, "in"),
            "tpr_in_positive": tpr_in, "fpr_in_positive": fpr_in}
