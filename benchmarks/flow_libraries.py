"""Compare flow implementations on AE latents: nflows 0.14, zuko 1.6.0 and pae.science.flows (plain torch).

Both flow families of the PAE (paper Sec. 4; docs/notes-flows.md):
* realnvp: [random permutation -> affine coupling] x depth, MLP conditioners (2 hidden layers);
* nsf:     [random permutation -> LU linear -> rational-quadratic spline coupling] x layers, final LU.
The layer counts and widths come from config/quick.yaml's flow section (overridable below), every
conditioner's output layer starts at zero, and every candidate sees the same standardised latents
(per-dimension training mean/std; the reported NLLs add back -sum(log std), i.e. they are -log p(z) in
the AE latent space, nats per latent vector, comparable with flow_metrics.json).

Per (K, family, library) the script trains for the same wall time (--budget seconds of optimiser steps,
Adam lr --lr, x0.1 after 80 % of the budget, batch --batch-size, N(0, (σ·std)²) latent noise) and reports:
steps done, training latents/s, the best validation NLL (checked 4 times, not counted in the budget),
log p(z) latents/s (no grad, batches of 4096), sampling latents/s (u ~ N(0, I) -> z, batches of 4096) and the
round-trip error max|z - b^-1(b(z))| on the validation latents.

    .venv/bin/python benchmarks/flow_libraries.py --threads 1 --budget 40 \\
        --stats results/quick/fmnist/K32/seed0/ae_stats.npz results/quick/fmnist/K64/seed0/ae_stats.npz

Without --stats it uses the quick run's K=32 and K=64 ae_stats.npz when they exist, else synthetic
non-Gaussian latents (--synthetic). nflows and zuko are optional (pip install nflows==0.14 zuko==1.6.0);
a missing library's rows are skipped with a note. Prints a Markdown table (and --json writes the rows).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pae.science.flows import LatentFlow, load_latents  # noqa: E402

QUICK_STATS = [REPO / f"results/quick/fmnist/K{K}/seed0/ae_stats.npz" for K in (32, 64)]
LOG_2PI = math.log(2 * math.pi)


class Candidate:
    """A flow on standardised latents: log_prob(x) and sample-side inverse(u), plus its parameters."""

    def __init__(self, module: nn.Module, log_prob: Callable, inverse: Callable, forward: Callable) -> None:
        self.module, self.log_prob, self.inverse, self.forward = module, log_prob, inverse, forward


def _mlp(i: int, o: int, h: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, o))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


# ---------------------------------------------------------------------------------------------- pae
def build_pae(K: int, family: str, layers: int, hidden: int, bins: int, bound: float, seed: int) -> Candidate:
    f = LatentFlow(K, family, layers, hidden, num_bins=bins, tail_bound=bound, standardize=False, seed=seed)
    return Candidate(f, f.log_prob, f.inverse, f.transform_to_noise)


# ------------------------------------------------------------------------------------------- nflows
def build_nflows(K: int, family: str, layers: int, hidden: int, bins: int, bound: float, seed: int) -> Candidate:
    """The layers pae.science.flows used before (nflows 0.14): AffineCouplingTransform (scale sigmoid(ŝ+2)+1e-3),
    PiecewiseRationalQuadraticCouplingTransform (linear tails) and LULinear."""
    warnings.filterwarnings("ignore", message=".*triangular_solve.*")
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import (
        AffineCouplingTransform,
        PiecewiseRationalQuadraticCouplingTransform,
    )
    from nflows.transforms.lu import LULinear
    from nflows.transforms.permutations import Permutation

    class Net(nn.Module):
        def __init__(self, i: int, o: int) -> None:
            super().__init__()
            self.hidden_features = hidden  # nflows' spline coupling reads it
            self.net = _mlp(i, o, hidden)

        def forward(self, x: torch.Tensor, context: Any = None) -> torch.Tensor:
            return self.net(x)

    def mask(second: bool) -> torch.Tensor:  # +1 transformed, -1 conditioning; alternating halves
        m = -torch.ones(K)
        if second:
            m[K // 2 :] = 1
        else:
            m[: K - K // 2] = 1
        return m

    gen = torch.Generator().manual_seed(seed)
    ts: list[nn.Module] = []
    for i in range(layers):
        ts.append(Permutation(torch.randperm(K, generator=gen)))
        if family == "realnvp":
            ts.append(AffineCouplingTransform(mask(i % 2 == 1), Net))
        else:
            ts.append(LULinear(K, identity_init=True))
            ts.append(PiecewiseRationalQuadraticCouplingTransform(
                mask(i % 2 == 1), Net, num_bins=bins, tails="linear", tail_bound=bound))
    if family == "nsf":
        ts.append(LULinear(K, identity_init=True))
    flow = Flow(CompositeTransform(ts), StandardNormal([K]))
    return Candidate(flow, flow.log_prob, lambda u: flow._transform.inverse(u)[0], flow.transform_to_noise)


# --------------------------------------------------------------------------------------------- zuko
def build_zuko(K: int, family: str, layers: int, hidden: int, bins: int, bound: float, seed: int) -> Candidate:
    """zuko 1.6.0: GeneralCouplingTransform with MonotonicAffineTransform (log-scale soft-clamped to ±6.9)
    or MonotonicRQSTransform (identity outside ±bound), PermutationTransform and LULinearTransform."""
    from zuko.distributions import DiagNormal
    from zuko.flows.coupling import GeneralCouplingTransform
    from zuko.lazy import Flow, LazyTransform, UnconditionalDistribution, UnconditionalTransform
    from zuko.transforms import (
        LULinearTransform,
        MonotonicAffineTransform,
        MonotonicRQSTransform,
        PermutationTransform,
    )

    class LU(LazyTransform):
        """zuko has the LU transform but no trainable wrapper: L with positive diagonal exp(d), unit U."""

        def __init__(self) -> None:
            super().__init__()
            self.lower = nn.Parameter(torch.zeros(K, K))
            self.upper = nn.Parameter(torch.zeros(K, K))
            self.log_diag = nn.Parameter(torch.zeros(K))

        def forward(self, c: Any = None) -> Any:
            m = torch.tril(self.lower, -1) + torch.triu(self.upper, 1) + torch.diag(self.log_diag.exp())
            return LULinearTransform(m)

    def coupling(mask: torch.Tensor, univariate: Any, shapes: Any) -> nn.Module:
        t = GeneralCouplingTransform(K, mask=mask, univariate=univariate, shapes=shapes,
                                     hidden_features=[hidden, hidden])
        nn.init.zeros_(t.hyper[-1].weight)
        nn.init.zeros_(t.hyper[-1].bias)
        return t

    gen = torch.Generator().manual_seed(seed)
    ts: list[nn.Module] = []
    for _ in range(layers):
        perm = torch.randperm(K, generator=gen)
        if family == "realnvp":  # a random half as conditioning set == permutation + half split
            mask = torch.zeros(K, dtype=torch.bool)
            mask[perm[: K // 2]] = True
            ts.append(coupling(mask, MonotonicAffineTransform, ((), ())))
        else:
            ts.append(UnconditionalTransform(PermutationTransform, perm, buffer=True))
            ts.append(LU())
            ts.append(coupling(torch.arange(K) < K // 2, partial(MonotonicRQSTransform, bound=bound),
                               ((bins,), (bins,), (bins - 1,))))
    if family == "nsf":
        ts.append(LU())
    base = UnconditionalDistribution(DiagNormal, torch.zeros(K), torch.ones(K), buffer=True)
    flow = Flow(ts, base)
    return Candidate(flow, lambda x: flow().log_prob(x), lambda u: flow.transform().inv(u),
                     lambda x: flow.transform()(x))


BUILDERS = {"nflows": build_nflows, "zuko": build_zuko, "pae": build_pae}


# ------------------------------------------------------------------------------------------ helpers
def synthetic_latents(K: int, n_train: int = 50000, n_valid: int = 10000, seed: int = 0) -> dict[str, np.ndarray]:
    """Non-Gaussian stand-in for AE latents: a 3-component mixture pushed through a fixed random tanh map."""
    rng = np.random.default_rng(seed + K)
    n = n_train + n_valid
    centres = rng.normal(size=(3, K)) * 1.5
    x = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, K)) * rng.uniform(0.3, 1.0, K)
    A = rng.normal(size=(K, K)) / math.sqrt(K)
    z = np.tanh(x @ A.T) * 2 + 0.2 * x @ rng.normal(size=(K, K)) / math.sqrt(K)
    z = (z * rng.uniform(0.2, 3.0, K)).astype(np.float32)
    return {"z_train": z[:n_train], "z_valid": z[n_train:]}


@torch.no_grad()
def mean_nll(c: Candidate, x: torch.Tensor, bs: int = 4096) -> tuple[float, float]:
    """(mean −log p(x) on standardised x, seconds)."""
    c.module.eval()
    t0 = time.perf_counter()
    total = sum(-c.log_prob(x[i : i + bs]).double().sum().item() for i in range(0, len(x), bs))
    sec = time.perf_counter() - t0
    c.module.train()
    return total / len(x), sec


def train_for(c: Candidate, xt: torch.Tensor, xv: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """Adam steps for args.budget seconds (evaluations excluded); returns steps, rate, best valid NLL."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(c.module.parameters(), lr=args.lr)
    checks = [args.budget * q for q in (0.25, 0.5, 0.75, 1.0)]
    spent, steps, best, perm, pos, nll_sec, decayed = 0.0, 0, math.inf, torch.randperm(len(xt), generator=gen), 0, 0.0, False
    while checks:
        t0 = time.perf_counter()
        if pos + args.batch_size > len(xt):
            perm, pos = torch.randperm(len(xt), generator=gen), 0
        xb = xt[perm[pos : pos + args.batch_size]]
        pos += args.batch_size
        if args.noise > 0:
            xb = xb + args.noise * torch.randn(xb.shape, generator=gen)
        loss = -c.log_prob(xb).mean()
        if not torch.isfinite(loss):
            return {"steps": steps, "train_rate": math.nan, "best_nll": math.nan, "nll_sec": math.nan,
                    "note": f"non-finite loss at step {steps}"}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        spent += time.perf_counter() - t0
        if not decayed and spent >= 0.8 * args.budget:
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.1
            decayed = True
        if spent >= checks[0]:
            checks.pop(0)
            nll, nll_sec = mean_nll(c, xv)
            best = min(best, nll) if math.isfinite(nll) else best
    return {"steps": steps, "train_rate": steps * args.batch_size / spent, "best_nll": best,
            "nll_sec": nll_sec, "note": ""}


@torch.no_grad()
def sample_rate(c: Candidate, K: int, reps: int = 3, bs: int = 4096) -> float:
    c.module.eval()
    u = torch.randn(bs, K, generator=torch.Generator().manual_seed(1))
    c.inverse(u)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        c.inverse(u)
    return reps * bs / (time.perf_counter() - t0)


@torch.no_grad()
def round_trip_error(c: Candidate, x: torch.Tensor) -> float:
    c.module.eval()
    return (c.inverse(c.forward(x)) - x).abs().max().item()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stats", nargs="*", type=Path, help="ae_stats.npz files (z_train, z_valid); one row group per file")
    ap.add_argument("--synthetic", nargs="*", type=int, default=[32, 64], help="K of synthetic latents when no stats")
    ap.add_argument("--libraries", nargs="*", default=list(BUILDERS), choices=list(BUILDERS))
    ap.add_argument("--families", choices=["auto", "both"], default="auto",
                    help="auto: RealNVP for K <= --realnvp-max-K, NSF above (as pae.science.flows); both: each K with both")
    ap.add_argument("--budget", type=float, default=40.0, help="seconds of training per (K, family, library)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--noise", type=float, default=0.02, help="latent noise σ in standardised units")
    ap.add_argument("--realnvp-max-K", type=int, default=32)
    ap.add_argument("--realnvp-depth", type=int, default=18)
    ap.add_argument("--realnvp-hidden", type=int, default=32)
    ap.add_argument("--nsf-layers", type=int, default=8)
    ap.add_argument("--nsf-hidden", type=int, default=64)
    ap.add_argument("--nsf-bins", type=int, default=8)
    ap.add_argument("--nsf-tail-bound", type=float, default=3.0)
    ap.add_argument("--max-train", type=int, default=None, help="use only the first N training latents")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    datasets: list[tuple[str, dict[str, np.ndarray]]] = []
    stats = args.stats if args.stats else [p for p in QUICK_STATS if p.is_file()]
    if stats:
        datasets = [(str(p), load_latents(p)) for p in stats]
    else:
        datasets = [(f"synthetic K={K}", synthetic_latents(K)) for K in args.synthetic]

    versions = {"torch": torch.__version__}
    for lib in ("nflows", "zuko"):
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for source, lat in datasets:
        zt = lat["z_train"][: args.max_train] if args.max_train else lat["z_train"]
        mean, std = zt.mean(0, dtype=np.float64), zt.std(0, dtype=np.float64).clip(1e-6)
        log_std = float(np.log(std).sum())
        xt = torch.as_tensor(((zt - mean) / std).astype(np.float32))
        xv = torch.as_tensor(((lat["z_valid"] - mean) / std).astype(np.float32))
        K = xt.shape[1]
        # reference: the best full-covariance Gaussian (fit on train), valid NLL in latent units
        cov = np.cov(xt.numpy(), rowvar=False) + 1e-9 * np.eye(K)
        prec, logdet = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]
        xm = xv.numpy() - xt.numpy().mean(0)
        gauss = float(0.5 * np.mean(np.einsum("ni,ij,nj->n", xm, prec, xm)) + 0.5 * logdet + 0.5 * K * LOG_2PI) + log_std
        families = ["realnvp", "nsf"] if args.families == "both" else (
            ["realnvp"] if K <= args.realnvp_max_K else ["nsf"])
        for family in families:
            layers, hidden = ((args.realnvp_depth, args.realnvp_hidden) if family == "realnvp"
                              else (args.nsf_layers, args.nsf_hidden))
            for lib in args.libraries:
                row: dict[str, Any] = {"source": source, "K": K, "family": family, "library": lib,
                                       "layers": layers, "hidden": hidden, "gaussian_nll": gauss}
                try:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(0)
                        c = BUILDERS[lib](K, family, layers, hidden, args.nsf_bins, args.nsf_tail_bound, seed=0)
                except ImportError as exc:
                    print(f"skipping {lib}: {exc}", file=sys.stderr)
                    continue
                row["parameters"] = sum(p.numel() for p in c.module.parameters())
                res = train_for(c, xt, xv, args)
                row.update(res)
                row["best_nll"] = res["best_nll"] + log_std
                row["logp_rate"] = len(xv) / res["nll_sec"] if res["nll_sec"] else math.nan
                row["sample_rate"] = sample_rate(c, K)
                row["round_trip"] = round_trip_error(c, xv[:4096])
                rows.append(row)
                print(f"# {source} K={K} {family} {lib}: {res['steps']} steps, valid NLL {row['best_nll']:.3f} "
                      f"(Gaussian {gauss:.3f})", file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    print(f"\nFlow library comparison: torch {versions['torch']}, nflows {versions['nflows']}, zuko {versions['zuko']}; "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; {args.budget:g} s of training per row "
          f"(batch {args.batch_size}, lr {args.lr:g}, x0.1 after 80 %, noise {args.noise:g} std); "
          f"total {time.perf_counter() - t_start:.0f} s.\n")
    print("| latents | K | family | library | params | steps | train latents/s | valid NLL (best of 4) | "
          "Gaussian NLL | log p latents/s | sample latents/s | max round-trip err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {'/'.join(Path(r['source']).parts[-4:-1]) if r['source'].endswith('.npz') else r['source']} | {r['K']} | "
              f"{r['family']} ({r['layers']}×{r['hidden']}) | {r['library']} | {r['parameters']} | {r['steps']} | "
              f"{r['train_rate']:.0f} | {r['best_nll']:.3f} | {r['gaussian_nll']:.3f} | {r['logp_rate']:.0f} | "
              f"{r['sample_rate']:.0f} | {r['round_trip']:.1e} |" + (f" {r['note']}" if r["note"] else ""))
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "args": {k: str(v) for k, v in vars(args).items()},
                                         "load": [load0, load1], "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
