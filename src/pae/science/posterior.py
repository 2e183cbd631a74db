"""Posterior analysis of corrupted images with the PAE (paper Sec. 2.3, Eq. 13-14; Sec. 4.2, Fig. 6) and the
Laplace estimate of ln p(x) (Sec. 2.2, Eq. 10-11).

A corrupted image x̃ = M x + n (pixel mask M, Gaussian noise n of std σ_noise) is explained in the flow's latent
space u (Eq. 13-14):

    x̂(u) = g_θ(b_γ⁻¹(u)),    ln p(u) = ln N(u; 0, I),
    ln p(x̃ | u) = −½ Σ_{i observed} [ (x̃_i − x̂_i(u))² / v_i + ln(2π v_i) ],    v_i = σ_i² + σ_noise²,

with σ_i the pixel-wise reconstruction error of Eq. 8. Hidden pixels are *dropped* from the sum, never set to
zero. The "z-space" variant (what the authors' code actually ran for Fig. 6) is the same with b = identity: an
N(0, I) prior on the AE latent z and no flow (`PosteriorModel(flow=None)`).

`posterior_analysis` (everything batched over starts × images):
1. MAP from several starts: u ~ N(0, I) and the encoder of the corrupted image mapped through the flow,
   u = b(f(x̃)) (hidden pixels shown to the encoder as 0 = mid-grey). Adam with learning-rate stages
   (default 1e-1 → 1e-4, a fresh Adam each stage); during the first stage the likelihood is tempered by
   β(t) = β_max·exp(−(1 − t)), t ∈ [0, 1) the fraction of the stage done (β_max = 0.5 in the original code).
   Per row the best β = 1 iterate is kept.
2. The exact Hessian H of −ln p(u | x̃) at every final iterate (autograd, batched over rows); a start is a mode
   only where H is positive definite (as in the original code). `gauss_newton_hessian` is the Eq. 10 form.
3. A full-rank Gaussian mixture after Seljak & Yu (2019), built by Laplace: one component N(u*, H⁻¹) per
   distinct mode (a start within `merge_distance` Mahalanobis units of a better mode is merged into it),
   weighted by its Laplace evidence ln p(x̃ | u*) + ln p(u*) + ½ ln det(2π H⁻¹). The logsumexp of these is the
   Laplace-mixture estimate of ln p(x̃). Images where no start is positive definite get one component at
   the best start with the (always positive definite) Gauss-Newton Hessian (`fallback`).
4. Samples from the mixture, mapped to z = b⁻¹(u); decode with g_θ.

All functions take and return tensors (or numpy arrays for the image metrics); no file paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pae.science.density import eval_mode, map_refine

LOG_2PI = math.log(2.0 * math.pi)
MASKS = ("none", "left", "right", "random")
SPACES = ("u", "z")
SPACE_LABELS = {"u": "PAE posterior in u (flow prior, Eq. 13)", "z": "z-space, N(0, I) prior (original code)"}


# --------------------------------------------------------------------------------------------------------
# Corruptions x̃ = M x + n


@dataclass(frozen=True)
class Corruption:
    """x̃ = M x + n. `mask`: none | left / right (the first / last `hidden_cols` image columns hidden) |
    random (each pixel hidden independently with probability `hidden_fraction`); `noise`: std of the
    additive Gaussian noise in model units (pixels in [−0.5, 0.5])."""

    mask: str = "none"
    hidden_cols: int = 0
    hidden_fraction: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.mask in ("left", "right") and int(self.hidden_cols) < 1:
            raise ValueError(f"mask {self.mask!r} needs hidden_cols >= 1, got {self.hidden_cols!r}")
        if self.mask == "random" and not 0.0 < float(self.hidden_fraction) < 1.0:
            raise ValueError(f"mask 'random' needs 0 < hidden_fraction < 1, got {self.hidden_fraction!r}")
        if not float(self.noise) >= 0.0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")

    @property
    def has_mask(self) -> bool:
        return self.mask != "none"

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any]) -> Corruption:
        """From one entry of config posterior.corruptions; errors name the key."""
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"config key posterior.corruptions.{name}: unknown field(s) {sorted(unknown)}")
        types = {"mask": str, "hidden_cols": int, "hidden_fraction": float, "noise": float}
        try:  # a field the entry leaves out is the dataclass's "no such part" default
            return cls(**{key: types[key](value) for key, value in spec.items()})
        except ValueError as err:
            raise ValueError(f"config key posterior.corruptions.{name}: {err}") from err


def observed_mask(c: Corruption, n: int, image_shape: Sequence[int],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean (n, C, H, W) mask, True = observed pixel (the diagonal of M), on the CPU."""
    shape = (n, *(int(s) for s in image_shape))
    obs = torch.ones(shape, dtype=torch.bool)
    if c.mask == "left":
        obs[..., : c.hidden_cols] = False
    elif c.mask == "right":
        obs[..., shape[-1] - c.hidden_cols :] = False
    elif c.mask == "random":
        obs = torch.rand(shape, generator=generator) >= c.hidden_fraction
    return obs


def hidden_pixels(mask: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Boolean (N, C, H, W) mask of the pixels to fill in (True = unknown) from a mask argument (`pae.PAE.posterior`):
    None, "left:K", "right:K", "random:F", or an array (H, W), (C, H, W), (N, C, H, W) (nonzero = unknown)."""
    N, C, H, W = shape
    if mask is None:
        return np.zeros(shape, bool)
    if isinstance(mask, str):
        kind, _, value = mask.partition(":")
        try:
            if kind in ("left", "right"):
                k = int(value)
                if not 1 <= k < W:
                    raise ValueError
                hidden = np.zeros(shape, bool)
                if kind == "left":
                    hidden[..., :k] = True
                else:
                    hidden[..., W - k :] = True
                return hidden
            if kind == "random":
                f = float(value)
                if not 0 < f < 1:
                    raise ValueError
                return np.random.default_rng(int(seed)).random(shape) < f
        except ValueError:
            pass
        raise ValueError(f"mask {mask!r}: use 'left:K' or 'right:K' (K columns, 1 <= K < {W}), 'random:F' "
                         "(0 < F < 1), or a boolean array of the image's shape (True = pixel to fill in)")
    m = np.asarray(mask)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[None]
    try:
        return np.broadcast_to(m != 0, shape).copy()
    except ValueError:
        raise ValueError(f"mask of shape {np.asarray(mask).shape} does not fit the images {shape}; give (H, W), "
                         "(C, H, W) or (N, C, H, W) with nonzero = pixel to fill in") from None


def corrupt(x: torch.Tensor, c: Corruption, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̃, observed) for clean images x (N, C, H, W) in model units. Noise and random masks come from
    `generator` (CPU; mask first, then noise). Hidden pixels of x̃ are set to 0 (mid-grey) for display and for
    the encoder; the likelihood never reads them."""
    obs = observed_mask(c, len(x), x.shape[1:], generator)
    noise = torch.randn(x.shape, generator=generator) * float(c.noise) if c.noise > 0 else torch.zeros(x.shape)
    obs, noise = obs.to(x.device), noise.to(x.device, x.dtype)
    return torch.where(obs, x + noise, torch.zeros_like(x)), obs


def likelihood_variance(sigma: torch.Tensor, noise: float) -> torch.Tensor:
    """v_i = σ_i² + σ_noise² (Eq. 14), σ the (floored) Eq. 8 pixel-wise reconstruction error."""
    return sigma.square() + float(noise) ** 2


# --------------------------------------------------------------------------------------------------------
# Log posterior (Eq. 13-14)


def log_likelihood(x_hat: torch.Tensor, x_tilde: torch.Tensor, observed: torch.Tensor,
                   var: torch.Tensor) -> torch.Tensor:
    """ln p(x̃ | x̂) of Eq. 14 per row (B,): a diagonal Gaussian over the observed pixels only (hidden pixels,
    whatever their value, contribute nothing), with its normalisation."""
    r = (x_tilde - x_hat).square() / var + torch.log(2.0 * math.pi * var)
    return -0.5 * torch.where(observed, r, torch.zeros_like(r)).flatten(1).sum(1)


def log_prior(u: torch.Tensor) -> torch.Tensor:
    """ln N(u; 0, I) per row (B,)."""
    return -0.5 * (u.square() + LOG_2PI).sum(1)


@dataclass
class PosteriorModel:
    """The generative map of Eq. 13-14. `decoder`: z (B, K) → x̂ (B, C, H, W); `flow`: an object with
    inverse(u) → z and transform_to_noise(z) → u (a `pae.science.flows.LatentFlow`), or None for the z-space
    variant (prior N(0, I) on z, no flow); `encoder`: x (B, C, H, W) → z (B, K), for the encoder start;
    `latent_dim`: K (read from the flow or the encoder when None)."""

    decoder: Callable[[torch.Tensor], torch.Tensor]
    flow: Any = None
    encoder: Callable[[torch.Tensor], torch.Tensor] | None = None
    latent_dim: int | None = None

    @property
    def space(self) -> str:
        return "z" if self.flow is None else "u"

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.decoder, self.flow, self.encoder) if isinstance(m, nn.Module)]

    def to_z(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.flow is None else self.flow.inverse(u)

    def to_u(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.flow is None else self.flow.transform_to_noise(z)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """x̂ = g_θ(b_γ⁻¹(u)) (Eq. 6, 14)."""
        return self.decoder(self.to_z(u))


def log_posterior(u: torch.Tensor, x_tilde: torch.Tensor, observed: torch.Tensor, var: torch.Tensor,
                  model: PosteriorModel, beta: float = 1.0) -> torch.Tensor:
    """Unnormalised ln p(u | x̃) = β·ln p(x̃ | u) + ln p(u) (Eq. 13) per row (B,); β < 1 tempers the likelihood."""
    ll = log_likelihood(model.decode(u), x_tilde, observed, var)
    return (ll if beta == 1.0 else beta * ll) + log_prior(u)


def anneal_beta(step: int, steps: int, beta_max: float) -> float:
    """Likelihood temperature of the first stage, β = β_max·exp(−(1 − step/steps)) (original code)."""
    return float(beta_max) * math.exp(-(1.0 - step / max(int(steps), 1)))


def stage_steps(steps_per_stage: int | Sequence[int], n_stages: int) -> list[int]:
    """Steps of each learning-rate stage: one number for all, or one per stage."""
    if isinstance(steps_per_stage, (int, np.integer)):
        return [int(steps_per_stage)] * n_stages
    steps = [int(s) for s in steps_per_stage]
    if len(steps) != n_stages:
        raise ValueError(f"config key posterior.steps_per_stage lists {len(steps)} stages but posterior.lr_stages "
                         f"has {n_stages}; give one number or one per stage")
    return steps


def find_map(u0: torch.Tensor, x_tilde: torch.Tensor, observed: torch.Tensor, var: torch.Tensor,
             model: PosteriorModel, lr_stages: Sequence[float], steps_per_stage: int | Sequence[int],
             anneal_max: float | None = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise Eq. 13 from the starts u0 (B, K) (row b explains x̃[b]) with Adam, one fresh optimiser per
    learning-rate stage (steps_per_stage: one number or one per stage), the first stage tempered by
    `anneal_beta` when anneal_max is set.

    Rows are independent (the loss is a sum over rows, Adam acts element-wise). Returns the best β = 1 iterate
    per row (the final iterate included) and its ln p(u | x̃); rows that never had a finite value get −inf.
    """
    u = u0.detach().clone().requires_grad_(True)
    best_u = u.detach().clone()
    best = torch.full((len(u),), -math.inf, device=u.device, dtype=u.dtype)

    def keep(lp: torch.Tensor) -> None:
        nonlocal best
        better = torch.isfinite(lp) & (lp > best)
        best = torch.where(better, lp, best)
        best_u[better] = u.detach()[better]

    for stage, (lr, steps) in enumerate(zip(lr_stages, stage_steps(steps_per_stage, len(lr_stages)), strict=True)):
        opt = torch.optim.Adam([u], lr=float(lr))
        for step in range(steps):
            beta = anneal_beta(step, steps, anneal_max) if (stage == 0 and anneal_max) else 1.0
            lp = log_posterior(u, x_tilde, observed, var, model, beta)
            if beta == 1.0:
                keep(lp.detach())
            (grad,) = torch.autograd.grad(-lp.sum(), u)
            u.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            opt.step()
    with torch.no_grad():
        keep(log_posterior(u, x_tilde, observed, var, model))
    return best_u, best


# --------------------------------------------------------------------------------------------------------
# Hessians (exact, and Gauss-Newton as in Eq. 10)


def batched_hessian(fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor,
                    return_grad: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact Hessian (B, K, K) of a function fn: (B, K) → (B,) whose row b depends only on u[b]: one gradient
    with create_graph, then K backward passes, each giving one Hessian row for every b at once. With
    `return_grad` also the gradient (B, K)."""
    u = u.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(fn(u).sum(), u, create_graph=True)
        rows = [torch.autograd.grad(g[:, k].sum(), u, retain_graph=k < u.shape[1] - 1, allow_unused=True,
                                    materialize_grads=True)[0] for k in range(u.shape[1])]
    h = torch.stack(rows, 1).detach()
    h = 0.5 * (h + h.transpose(1, 2))
    return (h, g.detach()) if return_grad else h


def posterior_hessian(u: torch.Tensor, x_tilde: torch.Tensor, observed: torch.Tensor, var: torch.Tensor,
                      model: PosteriorModel, return_grad: bool = False
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact Hessian of −ln p(u | x̃) (Eq. 13) per row, (B, K, K) (and its gradient (B, K) with return_grad)."""
    return batched_hessian(lambda v: -log_posterior(v, x_tilde, observed, var, model), u, return_grad)


def newton_decrement(hessian: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """½ ∇ᵀH⁻¹∇ per row (B,): the gain in ln p a Newton step would still predict — ≈ 0 at a converged mode;
    NaN where H is not positive definite."""
    chol, info = torch.linalg.cholesky_ex(hessian.double())
    step = torch.cholesky_solve(grad.double()[..., None], chol)[..., 0]
    dec = 0.5 * (grad.double() * step).sum(-1)
    return torch.where(info == 0, dec, torch.full_like(dec, math.nan)).to(grad.dtype)


def batched_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor,
                     max_rows: int = 8192) -> torch.Tensor:
    """Jacobian (B, *out, K) of a row-wise map fn: (B, K) → (B, *out) by forward mode, the K unit tangents
    batched (`torch.func.vmap` over `torch.func.jvp`, at most `max_rows` = tangents × B rows per pass): the
    same columns as K separate forward-mode passes, in fewer and larger passes (faster on CPU)."""
    u = u.detach()
    B, K = u.shape
    tangents = torch.eye(K, dtype=u.dtype, device=u.device).unsqueeze(1).expand(K, B, K)
    with torch.no_grad():
        cols = torch.func.vmap(lambda t: torch.func.jvp(fn, (u,), (t,))[1],
                               chunk_size=max(1, max_rows // max(B, 1)))(tangents)  # (K, B, *out)
    return cols.movedim(0, -1)


def gauss_newton_hessian(u: torch.Tensor, observed: torch.Tensor, var: torch.Tensor,
                         model: PosteriorModel) -> torch.Tensor:
    """Gauss-Newton Hessian of −ln p(u | x̃): I + Gᵀ W G with G = ∂x̂/∂u and W = diag(observed / v) — the
    u-space form of Eq. 10 (the prior N(0, I) on u has Hessian I). Positive definite by construction."""
    jac = batched_jacobian(model.decode, u).flatten(1, -2)  # (B, P, K)
    w = (observed.to(jac.dtype) / var).flatten(1).unsqueeze(-1)  # (B, P, 1)
    eye = torch.eye(u.shape[1], device=u.device, dtype=jac.dtype)
    return eye + jac.transpose(1, 2) @ (w * jac)


def positive_definite(h: torch.Tensor, rtol: float = 1e-7) -> torch.Tensor:
    """Rows whose symmetric Hessian has every eigenvalue > rtol·max|eigenvalue| (and is finite)."""
    ok = torch.isfinite(h).flatten(1).all(1)
    ev = torch.linalg.eigvalsh(torch.where(ok[:, None, None], h, torch.eye(h.shape[-1], dtype=h.dtype,
                                                                                device=h.device)).double())
    return ok & (ev[:, 0] > rtol * ev.abs().amax(1).clamp_min(1e-30))


# --------------------------------------------------------------------------------------------------------
# Laplace mixture (Seljak & Yu 2019 full-rank Gaussian mixture, Laplace-fitted)


@dataclass
class LaplaceMixture:
    """Per image n a Gaussian mixture in u with up to M components (padding: log_weight −inf).

    means (N, M, K); prec_chol (N, M, K, K): lower Cholesky factor L of the precision H = L Lᵀ (covariance
    H⁻¹); log_weights (N, M), normalised; log_post (N, M): ln p(x̃|u*) + ln p(u*) at each mode; log_evidence
    (N,): Laplace-mixture ln p(x̃); n_modes (N,); fallback (N,): no positive-definite start (one Gauss-Newton
    component at the best start)."""

    means: torch.Tensor
    prec_chol: torch.Tensor
    log_weights: torch.Tensor
    log_post: torch.Tensor
    log_evidence: torch.Tensor
    n_modes: torch.Tensor
    fallback: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weights.exp()

    def covariance(self) -> torch.Tensor:
        """H⁻¹ per component (N, M, K, K)."""
        return torch.cholesky_inverse(self.prec_chol)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws per image (N, n, K): component ~ weights, u = μ + L⁻ᵀ ε with ε ~ N(0, I). Random numbers
        come from `generator` on the CPU, so draws do not depend on the device."""
        N, M, K = self.means.shape
        w = self.weights.detach().double().cpu()
        comp = torch.multinomial(w, int(n), replacement=True, generator=generator)  # (N, n)
        eps = torch.randn(N, K, int(n), generator=generator, dtype=torch.float64)
        comp, eps = comp.to(self.means.device), eps.to(self.means.device)
        out = torch.zeros(N, int(n), K, dtype=torch.float64, device=self.means.device)
        for m in range(M):
            sel = comp == m
            if not sel.any():
                continue
            lt = self.prec_chol[:, m].double().transpose(1, 2)  # upper: Lᵀ
            dev = torch.linalg.solve_triangular(lt, eps, upper=True).transpose(1, 2)  # (N, n, K)
            out = torch.where(sel[..., None], self.means[:, m, None, :].double() + dev, out)
        return out.to(self.means.dtype)

    def log_density(self, u: torch.Tensor) -> torch.Tensor:
        """ln q(u) of the mixture for points u (N, P, K) of each image, (N, P)."""
        K = self.means.shape[-1]
        d = u[:, None].double() - self.means[:, :, None].double()  # (N, M, P, K)
        y = (self.prec_chol.double().transpose(-1, -2)[:, :, None] @ d[..., None])[..., 0]  # Lᵀ d
        logdet_prec = 2.0 * torch.log(torch.diagonal(self.prec_chol.double(), dim1=-2, dim2=-1)).sum(-1)
        comp = -0.5 * y.square().sum(-1) - 0.5 * K * LOG_2PI + 0.5 * logdet_prec[..., None]
        return torch.logsumexp(self.log_weights.double()[..., None] + comp, 1).to(u.dtype)


def laplace_mixture(u: torch.Tensor, log_post: torch.Tensor, hessian: torch.Tensor, valid: torch.Tensor,
                    merge_distance: float = 3.0) -> LaplaceMixture:
    """Mixture from S optimised starts per image: u (S, N, K), log_post (S, N), hessian (S, N, K, K) of
    −ln p(u|x̃), valid (S, N) (positive definite and finite). Starts are visited best first; a valid start
    becomes a new component unless its Mahalanobis distance ‖Lₖᵀ(u − μₖ)‖ to a kept mode k is below
    `merge_distance`. Weights ∝ exp(ln p(u*|x̃) + ½ ln det(2π H⁻¹)) (Laplace evidence). Images without a
    valid start get a single component at their best start with the given Hessian there (the caller puts a
    Gauss-Newton Hessian there and marks it valid; see `posterior_analysis`)."""
    S, N, K = u.shape
    h64 = hessian.double()
    chol, info = torch.linalg.cholesky_ex(torch.where(valid[..., None, None], h64, torch.eye(K, dtype=h64.dtype,
                                                                                              device=h64.device)))
    valid = valid & (info == 0) & torch.isfinite(log_post)
    logdet_cov = -2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (S, N)
    log_ev = log_post.double() + 0.5 * logdet_cov + 0.5 * K * LOG_2PI
    u_np, lp_np, valid_np = u.detach().double().cpu().numpy(), log_post.detach().double().cpu().numpy(), \
        valid.cpu().numpy()
    chol_np = chol.cpu().numpy()
    kept: list[list[int]] = []
    for n in range(N):
        order = np.argsort(-np.where(np.isfinite(lp_np[:, n]), lp_np[:, n], -np.inf), kind="stable")
        keep_n: list[int] = []
        for s in order:
            if not valid_np[s, n]:
                continue
            if any(np.sum((chol_np[k, n].T @ (u_np[s, n] - u_np[k, n])) ** 2) < merge_distance**2 for k in keep_n):
                continue
            keep_n.append(int(s))
        if not keep_n:  # nothing valid at all: best finite start with an identity precision (prior)
            keep_n = [int(order[0])]
        kept.append(keep_n)
    M = max(len(k) for k in kept)
    dev = u.device
    idx = torch.tensor([k + [k[0]] * (M - len(k)) for k in kept], device=dev)  # (N, M) start index
    pad = torch.tensor([[j >= len(k) for j in range(M)] for k in kept], device=dev)
    ar = torch.arange(N, device=dev)[:, None]
    means = u[idx, ar]  # (N, M, K)
    prec_chol = chol[idx, ar].to(u.dtype)
    lp = torch.where(pad, torch.full_like(log_post[idx, ar], -math.inf), log_post[idx, ar])
    lev = torch.where(pad, torch.full_like(log_ev[idx, ar], -math.inf), log_ev[idx, ar])
    dead = ~torch.isfinite(lev).any(1)  # no finite evidence at all: keep the one component, weight 1
    lev[dead, 0] = 0.0
    log_z = torch.logsumexp(lev, 1)
    return LaplaceMixture(means=means, prec_chol=prec_chol, log_weights=(lev - log_z[:, None]).to(u.dtype),
                          log_post=lp, log_evidence=log_z.to(u.dtype),
                          n_modes=torch.tensor([len(k) for k in kept], device=dev),
                          fallback=torch.zeros(N, dtype=torch.bool, device=dev))


# --------------------------------------------------------------------------------------------------------
# The whole analysis


@dataclass(frozen=True)
class PosteriorSettings:
    """Config section `posterior` (see config/config.yaml): starts, Adam schedule, annealing, merging, samples."""

    random_starts: int = 10
    encoder_start: bool = True
    lr_stages: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
    steps_per_stage: int | tuple[int, ...] = 10000
    anneal_max: float | None = 0.5
    merge_distance: float = 3.0
    n_samples: int = 500
    batch_size: int = 2048

    def __post_init__(self) -> None:
        checks = {
            "random_starts": int(self.random_starts) >= 0,
            "steps_per_stage": min(stage_steps(self.steps_per_stage, len(self.lr_stages))) >= 1,
            "lr_stages": len(self.lr_stages) >= 1 and all(float(v) > 0 for v in self.lr_stages),
            "anneal_max": self.anneal_max is None or 0 < float(self.anneal_max) <= 1,
            "merge_distance": float(self.merge_distance) >= 0,
            "n_samples": int(self.n_samples) >= 1,
            "batch_size": int(self.batch_size) >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"config key posterior.{key} has an invalid value {getattr(self, key)!r}")
        if int(self.random_starts) + int(bool(self.encoder_start)) < 1:
            raise ValueError("config keys posterior.random_starts / encoder_start leave no start; use >= 1 start")

    @property
    def n_starts(self) -> int:
        return int(self.random_starts) + int(bool(self.encoder_start))

    @property
    def steps(self) -> list[int]:
        """Adam steps of each learning-rate stage."""
        return stage_steps(self.steps_per_stage, len(self.lr_stages))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PosteriorSettings:
        names = cls.__dataclass_fields__
        kw = {k: cfg[k] for k in names if k in cfg}
        if "lr_stages" in kw:
            kw["lr_stages"] = tuple(float(v) for v in kw["lr_stages"])
        if isinstance(kw.get("steps_per_stage"), (list, tuple)):
            kw["steps_per_stage"] = tuple(int(v) for v in kw["steps_per_stage"])
        return cls(**kw)


@dataclass
class PosteriorResult:
    """Output of `posterior_analysis` for N images with S starts (tensors on the model's device)."""

    starts_u: torch.Tensor      # (S, N, K) initial u (encoder start first when used)
    final_u: torch.Tensor       # (S, N, K) best iterate per start
    final_log_post: torch.Tensor  # (S, N) ln p(u|x̃) (unnormalised, Eq. 13) there
    positive_definite: torch.Tensor  # (S, N) exact Hessian positive definite
    newton_decrement: torch.Tensor  # (S, N) ½∇ᵀH⁻¹∇: gain a Newton step still predicts (≈ 0 when converged)
    mixture: LaplaceMixture
    map_u: torch.Tensor         # (N, K) the best start (MAP)
    map_z: torch.Tensor         # (N, K) b⁻¹(map_u)
    map_x: torch.Tensor         # (N, C, H, W) g(map_z)
    map_log_post: torch.Tensor  # (N,)
    samples_u: torch.Tensor     # (N, n, K)
    samples_z: torch.Tensor     # (N, n, K) b⁻¹(samples_u)

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as numpy arrays (for an npz file)."""
        mix = self.mixture
        out = {
            "starts_u": self.starts_u, "final_u": self.final_u, "final_log_post": self.final_log_post,
            "positive_definite": self.positive_definite, "newton_decrement": self.newton_decrement,
            "modes_u": mix.means, "prec_chol": mix.prec_chol,
            "log_weights": mix.log_weights, "weights": mix.weights, "modes_log_post": mix.log_post,
            "log_evidence": mix.log_evidence, "n_modes": mix.n_modes, "fallback": mix.fallback,
            "map_u": self.map_u, "map_z": self.map_z, "map_x": self.map_x, "map_log_post": self.map_log_post,
            "samples_u": self.samples_u, "samples_z": self.samples_z,
        }
        return {k: v.detach().cpu().numpy() for k, v in out.items()}


def _rows(t: torch.Tensor, S: int) -> torch.Tensor:
    """(n, ...) → (S·n, ...): the n images repeated for each of S starts (row s·n + i ↔ start s, image i)."""
    return t.unsqueeze(0).expand(S, *t.shape).reshape(S * t.shape[0], *t.shape[1:])


def _map_rows(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(t[i : i + batch]) for i in range(0, len(t), batch)]) if len(t) else t


def posterior_analysis(x_tilde: torch.Tensor, observed: torch.Tensor, var: torch.Tensor, model: PosteriorModel,
                       settings: PosteriorSettings, generator: torch.Generator | None = None,
                       log: Callable[[str], None] | None = None) -> PosteriorResult:
    """MAP from all starts, exact Hessians, Laplace mixture and samples for corrupted images x̃ (N, C, H, W)
    with `observed` (N, C, H, W) bool and likelihood variance `var` (C, H, W) (Eq. 13-14; module docstring).

    Starts: random u ~ N(0, I) drawn from `generator` (CPU) and, with settings.encoder_start, u = b(f(x̃))
    (first). Images are processed in chunks of ⌊batch_size / S⌋ images (S·chunk rows per Adam batch).
    """
    dev = x_tilde.device
    N = len(x_tilde)
    st = settings
    S = st.n_starts
    with eval_mode(*model.modules()):
        K = _latent_size(model, x_tilde[:1])
        rand = torch.randn(int(st.random_starts), N, K, generator=generator).to(dev, x_tilde.dtype)
        starts = [rand]
        if st.encoder_start:
            if model.encoder is None:
                raise ValueError("posterior.encoder_start is true but the model has no encoder")
            with torch.no_grad():
                filled = torch.where(observed, x_tilde, torch.zeros_like(x_tilde))
                u_enc = _map_rows(lambda t: model.to_u(model.encoder(t)), filled, 512)
            starts.insert(0, u_enc.unsqueeze(0))
        u0 = torch.cat([t.to(x_tilde.dtype) for t in starts])  # (S, N, K)
        chunk = max(1, int(st.batch_size) // S)
        fin_u, fin_lp, hess, decr = [], [], [], []
        for i in range(0, N, chunk):
            j = min(N, i + chunk)
            xr, obr = _rows(x_tilde[i:j], S), _rows(observed[i:j], S)
            ur = u0[:, i:j].reshape(-1, K)
            u_best, lp = find_map(ur, xr, obr, var, model, st.lr_stages, st.steps_per_stage, st.anneal_max)
            h, g = posterior_hessian(u_best, xr, obr, var, model, return_grad=True)
            fin_u.append(u_best.reshape(S, j - i, K))
            fin_lp.append(lp.reshape(S, j - i))
            hess.append(h.reshape(S, j - i, K, K))
            decr.append(newton_decrement(h, g).reshape(S, j - i))
            if log is not None:
                log(f"  posterior: {j}/{N} images")
        final_u, final_lp, H, decrement = (torch.cat(fin_u, 1), torch.cat(fin_lp, 1), torch.cat(hess, 1),
                                           torch.cat(decr, 1))
        pd = positive_definite(H.reshape(-1, K, K)).reshape(S, N)
        best = torch.where(torch.isfinite(final_lp), final_lp, torch.full_like(final_lp, -math.inf)).argmax(0)
        ar = torch.arange(N, device=dev)
        fallback = ~pd.any(0)
        valid = pd.clone()
        if fallback.any():
            nf = fallback.nonzero()[:, 0]
            h_gn = gauss_newton_hessian(final_u[best[nf], nf], observed[nf], var, model)
            H = H.clone()
            H[best[nf], nf] = h_gn.to(H.dtype)
            valid[best[nf], nf] = True
        mix = laplace_mixture(final_u, final_lp, H, valid, st.merge_distance)
        mix.fallback = fallback
        samples_u = mix.sample(int(st.n_samples), generator)
        with torch.no_grad():
            map_u = final_u[best, ar]
            map_z = model.to_z(map_u)
            map_x = _map_rows(model.decoder, map_z, 512)
            samples_z = _map_rows(model.to_z, samples_u.reshape(-1, K), 4096).reshape(samples_u.shape)
    return PosteriorResult(starts_u=u0, final_u=final_u, final_log_post=final_lp, positive_definite=pd,
                           newton_decrement=decrement, mixture=mix, map_u=map_u, map_z=map_z, map_x=map_x, map_log_post=final_lp[best, ar],
                           samples_u=samples_u, samples_z=samples_z)


def analyse_corrupted(x_tilde: torch.Tensor, observed: torch.Tensor, sigma: torch.Tensor, noise: float,
                      model: PosteriorModel, settings: PosteriorSettings, generator: torch.Generator | None = None,
                      log: Callable[[str], None] | None = None) -> PosteriorResult:
    """The posterior analysis of Sec. 2.3 for corrupted images x̃ = M x + n (N, C, H, W) in model units, with
    `observed` the diagonal of M (bool, N, C, H, W), `sigma` the floored Eq. 8 σ (C, H, W) and `noise` the
    std σ_noise of n: the likelihood variance v = σ² + σ_noise² of Eq. 14, then `posterior_analysis` (MAP from
    several starts, Laplace mixture, samples). What the workflow's posterior rule and `pae.PAE.posterior` run."""
    if x_tilde.shape != observed.shape:
        raise ValueError(f"the observed-pixel mask {tuple(observed.shape)} does not match the images "
                         f"{tuple(x_tilde.shape)}")
    if not float(noise) >= 0:
        raise ValueError(f"noise sigma must be >= 0, got {noise!r}")
    var = likelihood_variance(sigma.to(x_tilde.device, x_tilde.dtype), float(noise))
    return posterior_analysis(x_tilde, observed, var, model, settings, generator, log=log)


def _latent_size(model: PosteriorModel, x: torch.Tensor) -> int:
    if model.latent_dim:
        return int(model.latent_dim)
    for obj in (model.flow, model.decoder):
        K = getattr(obj, "K", None) or getattr(obj, "latent_dim", None)
        if K:
            return int(K)
    if model.encoder is not None:
        with torch.no_grad():
            return int(model.encoder(x).shape[1])
    raise ValueError("cannot tell the latent size K: give the decoder a `latent_dim` or pass an encoder")


# --------------------------------------------------------------------------------------------------------
# Eq. 10-11: Laplace estimate of ln p(x) at the MAP z' (Table 2 score)


def eq10_precision(z: torch.Tensor, decoder: Callable[[torch.Tensor], torch.Tensor], flow: Any,
                   sigma: torch.Tensor) -> torch.Tensor:
    """Σ_z'⁻¹ = J_γᵀ J_γ + Gᵀ σ⁻² G (Eq. 10, Gauss-Newton), J_γ = ∂b/∂z, G = ∂g/∂z at z (N, K) → (N, K, K).
    flow None = the identity map (prior N(0, I) on z, J_γ = I)."""
    G = batched_jacobian(decoder, z).flatten(1, -2)  # (N, P, K)
    w = sigma.to(G.dtype).square().reciprocal().flatten().unsqueeze(-1)  # (P, 1)
    prec = G.transpose(1, 2) @ (w * G)
    if flow is None:
        return prec + torch.eye(z.shape[1], dtype=prec.dtype, device=prec.device)
    J = batched_jacobian(flow.transform_to_noise, z)  # (N, K, K)
    return prec + J.transpose(1, 2) @ J


def laplace_log_px(x: torch.Tensor, z: torch.Tensor, decoder: Callable[[torch.Tensor], torch.Tensor], flow: Any,
                   sigma: torch.Tensor) -> torch.Tensor:
    """Eq. 11 per image (N,): ln p(x) ≈ ln p(x|z') + ln p_γ(z') + (K/2) ln 2π + ½ ln det Σ_z', which equals
    −½(x − g)ᵀσ⁻²(x − g) − ½ bᵀb + ln det J_γ − [ln det σ² − ln det Σ_z' + N ln 2π]/2 with Σ_z' from Eq. 10.

    x (N, C, H, W) model units; z (N, K) the MAP z' of Eq. 9 (e.g. `pae.science.density.map_refine`); sigma (C, H, W)
    the floored Eq. 8 σ; flow with log_prob(z) and transform_to_noise(z), or None for an N(0, I) prior.
    No gradients leave this function; modules should be in eval mode (the caller's business)."""
    K = z.shape[1]
    with torch.no_grad():
        var = sigma.square()
        ll = -0.5 * ((x - decoder(z)).square() / var + torch.log(2.0 * math.pi * var)).flatten(1).sum(1)
        lpz = log_prior(z) if flow is None else flow.log_prob(z)
    prec = eq10_precision(z, decoder, flow, sigma).double()
    logdet_cov = -torch.linalg.slogdet(prec)[1]
    return (ll.double() + lpz.double() + 0.5 * K * LOG_2PI + 0.5 * logdet_cov).to(x.dtype)


def eq11_score(x: torch.Tensor, z0: torch.Tensor, decoder: nn.Module, flow: Any, sigma: torch.Tensor,
               map_steps: int = 100, map_lr: float = 0.01, batch_size: int = 500) -> torch.Tensor:
    """Table 2 score "Laplace log p(x) (Eq. 11)" for images x (N, C, H, W) in model units: the MAP z' of Eq. 9
    by `map_steps` Adam steps from z0 (the encoder means; `pae.science.density.map_refine`), then Eq. 11 with the
    Gauss-Newton Hessian of Eq. 10. Higher = more in-distribution; shape (N,). Decoder and flow run in eval
    mode; sigma is the floored Eq. 8 σ (`pae.science.density.floor_sigma`)."""
    dev = sigma.device
    x = torch.as_tensor(x, dtype=torch.float32, device=dev)
    z0 = torch.as_tensor(z0, dtype=torch.float32, device=dev)
    mods = [m for m in (decoder, flow) if isinstance(m, nn.Module)]
    out = []
    with eval_mode(*mods):
        z_map = map_refine(x, z0, decoder, flow, sigma, map_steps, map_lr, batch_size=batch_size) \
            if map_steps > 0 else z0
        for i in range(0, len(x), batch_size):
            out.append(laplace_log_px(x[i : i + batch_size], z_map[i : i + batch_size], decoder, flow, sigma))
    return torch.cat(out) if out else torch.zeros(0, device=dev)
