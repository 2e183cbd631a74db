"""Normalizing flow on the auto-encoder latents: the PAE's second stage (paper Sec. 2, Eq. 4-6).

The flow b: z -> u (Eq. 4) is trained by maximum likelihood of the encoded training set (Eq. 5),
p(z) = N(b(z); 0, I) |det db/dz|. Sampling draws u ~ N(0, I) and returns b^-1(u) (Eq. 6).

Architecture (paper Sec. 4), written in plain torch (docs/notes-flows.md says why not nflows or zuko):
* K <= flow.realnvp_max_K: RealNVP (Dinh et al. 2017) — flow.realnvp_depth[K] affine couplings, each
  preceded by a fixed random permutation; coupling networks with two hidden layers of flow.realnvp_hidden
  units. The log-scale is soft-clamped, s = c·tanh(ŝ/c) with c = LOG_SCALE_BOUND, so every coupling can
  both stretch and squeeze by up to e^c.
* larger K: neural spline flow (Durkan et al. 2019) — flow.nsf_layers rational-quadratic spline
  couplings (flow.nsf_bins bins on [-B, B], identity outside, B = flow.nsf_tail_bound), each preceded by
  a fixed random permutation and a trainable LU-parametrised linear layer (Glow 1x1 "trainable
  permutation"), plus a final LU layer.
* first bijection: a fixed affine map z -> (z - mean) / std with the training latents' statistics
  (identity when flow.standardize is false); its log-det, -sum(log std), is part of log p(z).
Every coupling and LU layer starts as the identity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from pae.science.runtime import seed_everything
from pae.science.specs import FlowArchitecture, FlowTraining, realnvp_depth_for  # noqa: F401 (re-exported)

_LOG = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 1: nflows layers (before 2026-11); 2: the plain-torch layers below
STD_FLOOR = 1e-6  # smallest latent std used for standardisation (a dead latent would otherwise divide by 0)
LOG_SCALE_BOUND = 3.0  # affine couplings: |log-scale| < 3, i.e. each coupling scales by e^-3 .. e^3
MIN_BIN = 1e-3  # splines: smallest bin width / height as a fraction of 2B
DERIV_BOUND = math.log(1e3)  # splines: knot derivatives lie in (1e-3, 1e3)
_LOG_2PI = math.log(2 * math.pi)


def _mlp(in_features: int, out_features: int, hidden: int) -> nn.Sequential:
    """Coupling conditioner Linear-ReLU-Linear-ReLU-Linear; the output layer starts at zero (identity coupling)."""
    net = nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def _perm_buffers(module: nn.Module, perm: torch.Tensor) -> None:
    module.register_buffer("perm", perm.clone().long())
    module.register_buffer("inv_perm", torch.argsort(perm).long())


class Standardize(nn.Module):
    """Fixed bijection z -> (z - shift) / scale; log|det| = -sum(log scale)."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift.clone().float())
        self.register_buffer("scale", scale.clone().float())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (z - self.shift) / self.scale, -torch.log(self.scale).sum().expand(z.shape[0])

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale + self.shift


class AffineCoupling(nn.Module):
    """Permute, then y_b = x_b·exp(s(x_a)) + t(x_a), y_a = x_a (RealNVP); s = c·tanh(ŝ/c), c = LOG_SCALE_BOUND.

    x_a is the first K//2 coordinates after the permutation, x_b the rest; log|det| = sum(s).
    """

    def __init__(self, K: int, hidden: int, perm: torch.Tensor) -> None:
        super().__init__()
        self.na, self.nb = K // 2, K - K // 2
        _perm_buffers(self, perm)
        self.net = _mlp(self.na, 2 * self.nb, hidden)

    def _shift_logscale(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.net(xa)
        return p[:, : self.nb], LOG_SCALE_BOUND * torch.tanh(p[:, self.nb :] / LOG_SCALE_BOUND)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.index_select(1, self.perm)
        xa, xb = x[:, : self.na], x[:, self.na :]
        shift, s = self._shift_logscale(xa)
        return torch.cat([xa, xb * torch.exp(s) + shift], 1), s.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        ya, yb = y[:, : self.na], y[:, self.na :]
        shift, s = self._shift_logscale(ya)
        return torch.cat([ya, (yb - shift) * torch.exp(-s)], 1).index_select(1, self.inv_perm)


class LULinear(nn.Module):
    """x -> W·P·x with W = L·U (L lower-triangular with diagonal exp(d), U unit upper-triangular) and a fixed
    permutation P (none when `perm` is None); log|det| = sum(d). Starts as P (W = I)."""

    def __init__(self, K: int, perm: torch.Tensor | None = None) -> None:
        super().__init__()
        self.K = K
        _perm_buffers(self, torch.arange(K) if perm is None else perm)
        self.register_buffer("tril_idx", torch.tril_indices(K, K, -1))
        n_off = K * (K - 1) // 2
        self.lower = nn.Parameter(torch.zeros(n_off))  # strictly lower entries of L, row by row
        self.upper = nn.Parameter(torch.zeros(n_off))  # strictly upper entries of U (transposed order)
        self.log_diag = nn.Parameter(torch.zeros(K))

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        r, c = self.tril_idx
        L = torch.diag(torch.exp(self.log_diag)).index_put((r, c), self.lower)
        eye = torch.eye(self.K, dtype=self.upper.dtype, device=self.upper.device)
        return L, eye.index_put((c, r), self.upper)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, U = self._factors()
        W = (L @ U).index_select(1, self.inv_perm)  # (x[:, perm]) @ (LU)^T == x @ W^T
        return x @ W.T, self.log_diag.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        L, U = self._factors()
        v = torch.linalg.solve_triangular(L, y.T, upper=False)
        v = torch.linalg.solve_triangular(U, v, upper=True, unitriangular=True)
        return v.T.index_select(1, self.inv_perm)


def rational_quadratic_spline(
    x: torch.Tensor, raw: torch.Tensor, bins: int, bound: float, inverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monotonic rational-quadratic spline on [-bound, bound], identity outside (Durkan et al. 2019, Sec. 3.1).

    x: (N, D); raw: (N, 3·bins - 1, D) unconstrained bin widths, heights and inner knot derivatives
    (bins along dim 1, so the softmax runs over a strided axis with a contiguous inner D: much faster on CPU).
    Returns (y, log|dy/dx|) elementwise, both (N, D); with inverse=True, (x, log|dx/dy|) of the inverse map.
    raw = 0 gives the identity.
    """
    widths = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(raw[:, :bins], 1)
    heights = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(raw[:, bins : 2 * bins], 1)
    rd = raw[:, 2 * bins :]
    derivs = torch.exp(rd / (1 + rd.abs() / DERIV_BOUND))  # soft clamp: derivatives in (1e-3, 1e3)
    zero = x.new_zeros(x.shape[0], 1, x.shape[1])
    one = zero + 1  # slope 1 at ±bound: continuous with the identity tails
    # knots: x-positions, y-positions, derivatives, stacked along dim 1 so one gather fetches all six values
    knots = torch.cat([
        zero, torch.cumsum(widths, 1), zero, torch.cumsum(heights, 1), one, derivs, one,
    ], 1)
    n = bins + 1
    scale = torch.cat([x.new_full((2 * n,), 2 * bound), x.new_ones(n)])[:, None]
    offset = torch.cat([x.new_full((2 * n,), -bound), x.new_zeros(n)])[:, None]
    knots = knots * scale + offset
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    search = knots[:, n + 1 : 2 * n - 1] if inverse else knots[:, 1 : n - 1]
    idx = (xc[:, None, :] >= search).sum(1, keepdim=True)  # bin index in [0, bins - 1]
    o = torch.arange(6, device=x.device)
    offsets = ((o // 2) * n + o % 2)[None, :, None]  # [0, 1, n, n + 1, 2n, 2n + 1]: knot k and k + 1 of each
    xk, xk1, yk, yk1, dk, dk1 = knots.gather(1, idx + offsets).unbind(1)
    wk, hk = xk1 - xk, yk1 - yk
    sk = hk / wk
    c2 = dk + dk1 - 2 * sk
    if inverse:
        yd = xc - yk
        a = hk * (sk - dk) + yd * c2
        b = hk * dk - yd * c2
        c = -sk * yd
        t = 2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0)))
        out = xk + t * wk
    else:
        t = (xc - xk) / wk
    t1 = t * (1 - t)
    den = sk + c2 * t1
    # dy/dx = sk² (dk1 t² + 2 sk t(1-t) + dk (1-t)²) / den²
    logdet = torch.log(sk * sk * (dk1 * t * t + 2 * sk * t1 + dk * (1 - t) ** 2) / (den * den))
    if not inverse:
        out = yk + hk * (sk * t * t + dk * t1) / den
    else:
        logdet = -logdet
    return torch.where(inside, out, x), torch.where(inside, logdet, torch.zeros_like(logdet))


class SplineCoupling(nn.Module):
    """y_a = x_a, y_b = RQS(x_b; θ(x_a)) with x_a the first K//2 coordinates (the LU layer before it mixes)."""

    def __init__(self, K: int, hidden: int, bins: int, bound: float) -> None:
        super().__init__()
        self.na, self.nb, self.bins, self.bound = K // 2, K - K // 2, int(bins), float(bound)
        self.net = _mlp(self.na, (3 * bins - 1) * self.nb, hidden)

    def _raw(self, xa: torch.Tensor) -> torch.Tensor:
        return self.net(xa).view(-1, 3 * self.bins - 1, self.nb)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.na], x[:, self.na :]
        yb, ld = rational_quadratic_spline(xb, self._raw(xa), self.bins, self.bound)
        return torch.cat([xa, yb], 1), ld.sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        ya, yb = y[:, : self.na], y[:, self.na :]
        xb, _ = rational_quadratic_spline(yb, self._raw(ya), self.bins, self.bound, inverse=True)
        return torch.cat([ya, xb], 1)


class LatentFlow(nn.Module):
    """Density p(z) on the K-dimensional AE latent space (Eq. 5) with sampler (Eq. 6).

    Built from plain constructor arguments (stored by `save_flow`), so a saved flow rebuilds exactly.
    `kind` is "realnvp" (affine couplings) or "nsf" (rational-quadratic spline couplings + LU layers).
    """

    def __init__(
        self,
        K: int,
        kind: str,
        n_layers: int,
        hidden: int,
        num_bins: int | None,
        tail_bound: float | None,
        standardize: bool,
        seed: int,
        shift: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if K < 2:
            raise ValueError(f"a coupling flow needs latent dimension K >= 2, got K={K}")
        if kind not in ("realnvp", "nsf"):
            raise ValueError(f"flow kind must be 'realnvp' or 'nsf', got {kind!r}")
        if n_layers < 1 or hidden < 1:
            raise ValueError(f"flow needs n_layers >= 1 and hidden >= 1, got {n_layers}, {hidden}")
        if kind == "nsf" and (num_bins is None or tail_bound is None or num_bins < 2 or tail_bound <= 0):
            raise ValueError(f"spline flow needs num_bins >= 2 and tail_bound > 0, got {num_bins}, {tail_bound}")
        self.init_kwargs: dict[str, Any] = dict(
            K=int(K), kind=kind, n_layers=int(n_layers), hidden=int(hidden),
            num_bins=None if num_bins is None else int(num_bins),
            tail_bound=None if tail_bound is None else float(tail_bound), standardize=bool(standardize), seed=int(seed),
        )
        self.K = int(K)
        self.kind = kind
        shift = torch.zeros(K) if shift is None else torch.as_tensor(shift, dtype=torch.float32)
        scale = torch.ones(K) if scale is None else torch.as_tensor(scale, dtype=torch.float32)
        if shift.shape != (K,) or scale.shape != (K,):
            raise ValueError(f"standardisation shift/scale must have shape ({K},)")
        # kept even when standardize=False (then shift 0, scale 1: the identity) so the layout never changes
        self.standardizer = Standardize(shift, scale)
        # permutations and initial weights depend on `seed` only, never on the global RNG state
        gen = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for _ in range(n_layers):
                perm = torch.randperm(K, generator=gen)
                if kind == "realnvp":
                    layers.append(AffineCoupling(K, hidden, perm))
                else:
                    layers.append(LULinear(K, perm))
                    layers.append(SplineCoupling(K, hidden, num_bins, tail_bound))
            if kind == "nsf":
                layers.append(LULinear(K))
        self.layers = nn.ModuleList(layers)

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.K:
            raise ValueError(f"expected latents of shape (N, {self.K}), got {tuple(z.shape)}")

    def forward_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, log|det du/dz|): the two parts of Eq. 5."""
        self._check(z)
        x, logdet = self.standardizer(z)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log N(b(z); 0, I) + log|det db/dz| (Eq. 5), in nats, shape (N,)."""
        u, logdet = self.forward_and_logdet(z)
        return logdet - 0.5 * (u * u).sum(1) - 0.5 * self.K * _LOG_2PI

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob(z)

    def transform_to_noise(self, z: torch.Tensor) -> torch.Tensor:
        """u = b(z) (Eq. 4)."""
        return self.forward_and_logdet(z)[0]

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """z = b^-1(u), the flow generator of Eq. 6."""
        self._check(u)
        for layer in reversed(self.layers):
            u = layer.inverse(u)
        return self.standardizer.inverse(u)

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """z = b^-1(T·u), u ~ N(0, I) drawn from `generator` (on its own device), returned on the flow's device."""
        device = self.standardizer.shift.device
        gen_device = generator.device if generator is not None else torch.device("cpu")
        u = torch.randn(n, self.K, generator=generator, device=gen_device).to(device) * temperature
        return self.inverse(u)


def latent_statistics(z_train: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (floored at STD_FLOOR) of the training latents."""
    z = torch.as_tensor(np.asarray(z_train), dtype=torch.float64)
    return z.mean(0).float(), z.std(0, unbiased=False).clamp_min(STD_FLOOR).float()


def build_flow(K: int, arch: FlowArchitecture, z_train: np.ndarray | None, seed: int) -> LatentFlow:
    """LatentFlow for latent size K (Eq. 4); with arch.standardize, `z_train` (N, K) supplies the fixed
    standardisation statistics."""
    shift = scale = None
    if arch.standardize:
        if z_train is None:
            raise ValueError("flow.standardize is true but no training latents were given to build_flow")
        shift, scale = latent_statistics(check_latents(z_train, K, "z_train"))
    return LatentFlow(
        K, arch.kind, arch.n_layers, arch.hidden, num_bins=arch.num_bins, tail_bound=arch.tail_bound,
        standardize=arch.standardize, seed=seed, shift=shift, scale=scale,
    )


def check_latents(z: Any, K: int | None, name: str, source: str = "") -> np.ndarray:
    where = f" in {source}" if source else ""
    z = np.asarray(z)
    if z.ndim != 2 or (K is not None and z.shape[1] != K) or z.shape[0] == 0:
        raise ValueError(f"{name}{where} must be a non-empty (N, {K or 'K'}) array, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name}{where} contains NaN or inf values; re-run the encode step (encode_ae)")
    return z.astype(np.float32, copy=False)


def _lr_at(epoch: int, training: FlowTraining) -> float:
    """Step schedule: lr, multiplied by lr_decay_factor from epoch round(lr_decay_at · epochs) on."""
    decay_epoch = round(float(training.lr_decay_at) * int(training.epochs))
    lr = float(training.lr)
    return lr * float(training.lr_decay_factor) if epoch >= decay_epoch else lr


@torch.no_grad()
def mean_nll(flow: LatentFlow, z: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean −log p(z) in nats (eval mode, no noise)."""
    was_training = flow.training
    flow.eval()
    total = 0.0
    for i in range(0, len(z), batch_size):
        total += -flow.log_prob(z[i : i + batch_size]).double().sum().item()
    flow.train(was_training)
    return total / len(z)


def train_flow(
    flow: LatentFlow,
    z_train: np.ndarray,
    z_valid: np.ndarray,
    training: FlowTraining,
    seed: int,
    device: str | torch.device,
    log: Callable[[str], None] = _LOG.info,
) -> dict[str, list[float]]:
    """Fit the flow by minimising the mean NLL of the encoded training latents (Eq. 5).

    Adam, flow.batch_size, flow.epochs (one epoch = one reshuffled pass, last partial batch dropped),
    step lr decay (flow.lr_decay_at, flow.lr_decay_factor), N(0, (flow.latent_noise · std_k)²) added to
    latent k of every training batch (std_k: the flow's standardisation scale, i.e. noise of σ =
    flow.latent_noise in standardised units; raw units when flow.standardize is false). Validation NLL after every epoch; the weights of the epoch with the best validation NLL are
    restored at the end (history["best_epoch"]). Raises FloatingPointError on a non-finite loss.
    Returns the per-epoch history (train_nll, valid_nll in nats per latent vector, lr, seconds).
    """
    device = torch.device(device)
    zt = torch.as_tensor(check_latents(z_train, flow.K, "z_train"), device=device)
    zv = torch.as_tensor(check_latents(z_valid, flow.K, "z_valid"), device=device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    flow.to(device).train()
    opt = torch.optim.Adam(flow.parameters(), lr=_lr_at(0, training))
    hist: dict[str, list[float]] = {"epoch": [], "train_nll": [], "valid_nll": [], "lr": [], "seconds": []}
    best, best_state, best_epoch = math.inf, None, -1
    for epoch in range(int(training.epochs)):
        t0 = time.perf_counter()
        lr = _lr_at(epoch, training)
        for g in opt.param_groups:
            g["lr"] = lr
        train_nll = _flow_epoch(flow, opt, zt, training, gen, epoch)
        valid_nll = mean_nll(flow, zv)
        if not math.isfinite(valid_nll):
            raise FloatingPointError(
                f"validation NLL is {valid_nll} after epoch {epoch + 1}: lower flow.lr or check z_valid"
            )
        secs = time.perf_counter() - t0
        for key, val in zip(hist, (epoch + 1, train_nll, valid_nll, lr, secs), strict=True):
            hist[key].append(val)
        log(f"epoch {epoch + 1}/{training.epochs}  train_nll {train_nll:.4f}  valid_nll {valid_nll:.4f}  "
            f"lr {lr:.2e}  {secs:.1f}s")
        if valid_nll < best:
            best, best_epoch = valid_nll, epoch + 1
            best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
    if best_state is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    hist["best_epoch"] = [best_epoch]
    log(f"kept epoch {best_epoch} (best validation NLL {best:.4f})")
    return hist


def _flow_epoch(flow: LatentFlow, opt: torch.optim.Optimizer, zt: torch.Tensor, training: FlowTraining,
                gen: torch.Generator, epoch: int) -> float:
    """One reshuffled pass of Adam steps on the mean NLL (Eq. 5), last partial batch dropped, with
    N(0, (latent_noise · std_k)²) added to each batch; returns the epoch's mean training NLL."""
    noise = float(training.latent_noise)
    noise_scale = noise * flow.standardizer.scale  # (K,): the identity scale when flow.standardize is false
    n = len(zt)
    bs = min(int(training.batch_size), n)
    steps = n // bs
    perm = torch.randperm(n, generator=gen, device=zt.device)
    flow.train()
    total = 0.0
    for s in range(steps):
        zb = zt[perm[s * bs : (s + 1) * bs]]
        if noise > 0:  # σ in units of each latent's std: N(0, σ²) added after standardisation
            zb = zb + noise_scale * torch.randn(zb.shape, generator=gen, device=zt.device)
        loss = -flow.log_prob(zb).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"flow training diverged (NLL={loss.item()}) at epoch {epoch + 1}, step {s + 1}: "
                "lower flow.lr, raise flow.latent_noise, or check the latents for outliers"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / steps


def fit_flow(
    z_train: np.ndarray, z_valid: np.ndarray, arch: FlowArchitecture, training: FlowTraining, seed: int,
    device: str | torch.device, log: Callable[[str], None] = print,
) -> tuple[LatentFlow, dict[str, list[float]]]:
    """Seed, build (Eq. 4) and train (Eq. 5) the latent flow: the one flow fit of the workflow and `pae.PAE`."""
    seed_everything(int(seed))
    K = check_latents(z_train, None, "z_train").shape[1]
    flow = build_flow(K, arch, z_train, seed=int(seed))
    n_params = sum(p.numel() for p in flow.parameters())
    log(f"flow: {flow.kind}, K={K}, {arch.n_layers} couplings, {n_params} parameters, {len(z_train)} train / "
        f"{len(z_valid)} valid latents, {training.epochs} epochs, device {device}")
    return flow, train_flow(flow, z_train, z_valid, training, seed=int(seed), device=device, log=log)
