"""Cost curves on this machine's CPU: how the pipeline's main costs grow with data size, batch, K and dimension.

    .venv/bin/python benchmarks/cost_curves.py --threads 1 --budget 420     # writes benchmarks/cost_curves.{csv,png}
    .venv/bin/python benchmarks/cost_curves.py --quick --csv /tmp/c.csv --png /tmp/c.png   # smoke run, seconds

Curves (random inputs, untrained networks: the cost does not depend on the weights):
- ae_step_vs_batch: one AE training step (uint8 → dequantize → rotate → Eq. 2 → Adam, as pae.science.train.fit) at K = 64;
- ae_epoch_vs_images: seconds per epoch for N training images, EXTRAPOLATED as (N // batch) × the measured step
  at batch ae.batch_size (no validation pass);
- vae_step_vs_batch: one plain-VAE training step (pae.science.vae.beta_vae_loss) at K = vae.latent_dim;
- flow_train_vs_K / flow_logdensity_vs_K: flow training steps (−log p(z) + latent noise, Adam) and log p(z) of a
  batch, config/quick.yaml `flow:` over config/config.yaml (pae.settings.Flow.architecture);
- flow_train_paper_vs_K: the same with the paper's flow settings (config/config.yaml), for the paper estimate;
- ood_scoring_vs_images: pae.science.scores.image_scores ("density", "recon") with a K = 64 AE and quick-config flow;
- frechet_vs_dim: pae.science.metrics.frechet_distance of two random SPD covariances;
- map_refine_vs_images, laplace_vs_images, iwae_vs_images, posterior_u/z_vs_steps: the Table 2 MAP / Eq. 11 /
  VAE IWAE parts and the Fig. 6 posterior, measured small for the paper-scale estimate.

Times are medians of --repeats runs after one warm-up; --budget caps the whole run (later and larger points are
skipped, or run once, when the budget runs short; every skip is printed). Other processes on the machine slow
these figures down; the load average is recorded in each row's note. The end of the run prints the
paper-scale CPU-hours estimate of benchmarks/paper_scale_estimate.py.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pae.config import deep_merge
from pae.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("curve", "x_name", "x", "seconds", "per_unit", "unit", "threads", "note")


@dataclass(frozen=True)
class Spec:
    """One curve: its x name, unit of per_unit, sizes (full / --quick), a prior guess of the first point's
    seconds per repeat (budget planning only) and the exponent of cost in x (1 linear, 3 cubic)."""

    name: str
    x_name: str
    unit: str
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    guess_s: float
    exponent: float = 1.0
    max_repeats: int = 99


SPECS: tuple[Spec, ...] = (
    Spec("ae_step_vs_batch", "batch", "s/image", (32, 64, 128, 256), (8, 16), 1.0),
    Spec("vae_step_vs_batch", "batch", "s/image", (64,), (8,), 1.0),
    Spec("flow_train_vs_K", "K", "s/latent", (4, 8, 16, 32, 64, 128), (4, 64), 0.5),
    Spec("flow_logdensity_vs_K", "K", "s/latent", (4, 8, 16, 32, 64, 128), (4, 64), 0.2),
    Spec("flow_train_paper_vs_K", "K", "s/latent", (4, 8, 16, 32, 64, 128), (4, 64), 0.5),
    Spec("ood_scoring_vs_images", "images", "s/image", (500, 2000, 5000), (50, 100), 1.5),
    Spec("frechet_vs_dim", "dim", "s/call", (64, 128, 512, 2048), (16, 32), 0.1, 3.0),
    Spec("map_refine_vs_images", "images", "s/image-step", (100, 500), (10,), 3.0),
    Spec("laplace_vs_images", "images", "s/image", (4, 16), (1,), 6.0, max_repeats=1),
    Spec("iwae_vs_images", "images", "s/image", (8, 32), (2,), 3.0),
    Spec("posterior_u_vs_steps", "adam_steps", "s/row-step", (40, 160), (8,), 5.0),
    Spec("posterior_z_vs_steps", "adam_steps", "s/row-step", (40, 160), (8,), 5.0),
)
DERIVED = {"ae_epoch_vs_images": ("train_images", "s/image", (1000, 5000, 10000, 50000), (256, 512))}
CURVES: tuple[str, ...] = tuple(s.name for s in SPECS) + tuple(DERIVED)


def load_configs() -> tuple[dict[str, Any], dict[str, Any]]:
    """(paper, quick): config/config.yaml, and config/quick.yaml merged over it (as Snakemake overlays it)."""
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    quick = deep_merge(paper, yaml.safe_load((REPO / "config" / "quick.yaml").read_text()) or {})
    return paper, quick


#: process CPU seconds / wall seconds of the last `timed` call (below 1 when other processes took the cores)
LAST_CPU_SHARE: list[float] = [math.nan]
#: untimed warm-up calls before each point (0 for --quick)
WARMUP: list[int] = [1]


def timed(fn: Callable[[], Any], repeats: int, warmup: int | None = None) -> tuple[float, float]:
    """(median, best) wall seconds of `repeats` calls of fn after `warmup` (default WARMUP) untimed calls."""
    for _ in range(WARMUP[0] if warmup is None else warmup):
        fn()
    times = []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    LAST_CPU_SHARE[0] = (time.process_time() - c0) / max(time.perf_counter() - w0, 1e-9)
    return statistics.median(times), min(times)


# ------------------------------------------------------------------------------------------------ models


class Models:
    """Untrained networks shared by the measurements, built on first use."""

    def __init__(self, paper: dict[str, Any], quick: dict[str, Any]) -> None:
        self.paper, self.quick = paper, quick
        self._cache: dict[str, Any] = {}

    def _get(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            torch.manual_seed(0)
            self._cache[key] = build()
        return self._cache[key]

    def ae(self, K: int) -> torch.nn.Module:
        from pae.science.nets import AutoEncoder

        net = Settings.from_config(self.paper).ae.net(K)  # the 2K encoder width comes from pae.settings
        return self._get(f"ae{K}", lambda: AutoEncoder(K, (1, 28, 28), **net))

    def vae(self, K: int) -> torch.nn.Module:
        from pae.science.nets import VAE

        layers = Settings.from_config(self.paper).ae.layers
        return self._get(f"vae{K}", lambda: VAE(K, (1, 28, 28), **layers))

    def flow(self, K: int, which: str) -> Any:
        from pae.science.flows import build_flow

        flow = Settings.from_config(self.paper if which == "paper" else self.quick).flow
        z = torch.randn(4096, K, generator=torch.Generator().manual_seed(K)).numpy()
        return self._get(f"flow{K}{which}", lambda: build_flow(K, flow.architecture(K), z, seed=0)), flow.training


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _adam(params: Any, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam as pae.science.train uses it (fused kernels where available)."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


# ------------------------------------------------------------------------------------------ measurements
# Each returns (seconds, per_unit, note): seconds of the operation the note names, per_unit in the curve's unit.


def m_train_step(models: Models, batch: int, repeats: int, vae: bool = False) -> tuple[float, float, str]:
    """One training step at `batch` as pae.science.train.fit takes it: uint8 batch → dequantize → rotate → loss → Adam."""
    from pae.science.images import to_model_input
    from pae.science.train import ae_loss, rotate_batch

    a = models.paper["ae"]
    if vae:
        from pae.science.vae import beta_vae_loss

        K = int(models.paper["vae"]["latent_dim"])
        m = models.vae(K)
        spec = models.paper["vae"]["models"]["vae"]
        loss_fn = beta_vae_loss(spec["beta"], spec["capacity"], spec["capacity_steps"], spec["sigma"])
    else:
        K, m, loss_fn = 64, models.ae(64), ae_loss
    m.train()
    opt = _adam([p for p in m.parameters() if p.requires_grad])
    pool = _images(max(4 * batch, 1024))
    gen = torch.Generator().manual_seed(1)
    scale = float(models.paper["data"]["scale"])

    def step() -> None:
        idx = torch.randint(0, len(pool), (batch,), generator=gen)
        x = to_model_input(pool[idx], scale, True, gen)
        if a["augmentation"] == "rotate":
            x = rotate_batch(x, (torch.rand((), generator=gen) * 2 - 1) * float(a["rot_degrees"]))
        loss, _ = loss_fn(m, x, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    med, best = timed(step, repeats)
    what = f"VAE K={K}" if vae else f"AE K={K}"
    return med, med / batch, f"{what}: s per step, median of {repeats} (best {best:.4g})"


def m_flow_train(models: Models, K: int, repeats: int, which: str, steps: int = 5) -> tuple[float, float, str]:
    """`steps` flow training steps as pae.science.flows.train_flow takes them (noise, −log p(z), Adam), per step."""
    flow, cfg = models.flow(K, which)
    flow.train()
    bs = int(cfg.batch_size)
    z = torch.randn(4 * bs, K, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(3)
    noise = float(cfg.latent_noise) * flow.standardizer.scale
    opt = torch.optim.Adam(flow.parameters(), lr=float(cfg.lr))

    def run() -> None:
        for s in range(steps):
            zb = z[(s % 4) * bs : (s % 4 + 1) * bs]
            zb = zb + noise * torch.randn(zb.shape, generator=gen)
            loss = -flow.log_prob(zb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    med, best = timed(run, repeats)
    per_step = med / steps
    arch = f"{flow.kind} {flow.init_kwargs['n_layers']} layers"
    return per_step, per_step / bs, (f"{which} flow ({arch}), batch {bs}: s per step, median of {repeats}x{steps} "
                                     f"steps (best {best / steps:.4g}); {bs / per_step:.0f} latents/s")


def m_flow_logdensity(models: Models, K: int, repeats: int, n: int = 4096) -> tuple[float, float, str]:
    """log p(z) of n latents in eval mode, no gradients (pae.science.density.latent_log_density's batch size)."""
    flow, _ = models.flow(K, "quick")
    flow.eval()
    z = torch.randn(n, K, generator=torch.Generator().manual_seed(4))

    def run() -> None:
        with torch.no_grad():
            flow.log_prob(z)

    med, best = timed(run, repeats)
    arch = f"{flow.kind} {flow.init_kwargs['n_layers']} layers"
    return med, med / n, f"quick flow ({arch}): s per {n} latents, median of {repeats} (best {best:.4g}); " \
                         f"{n / med:.0f} latents/s"


def m_ood(models: Models, n: int, repeats: int) -> tuple[float, float, str]:
    """pae.science.scores.image_scores(("density", "recon")) of n uint8 images, K = 64 AE + quick-config flow."""
    from pae.science.scores import image_scores

    ae, (flow, _) = models.ae(64), models.flow(64, "quick")
    x = _images(n, 5).numpy()
    scale, bs = float(models.paper["data"]["scale"]), int(models.paper["ood"]["batch_size"])
    med, best = timed(lambda: image_scores(ae, x, ("density", "recon"), scale, flow=flow, recon_sigma="unweighted", batch_size=bs, log=None),
                      repeats)
    return med, med / n, f"K=64 AE + quick flow, batch {bs}: s for all images, median of {repeats} (best {best:.4g})"


def m_frechet(models: Models, d: int, repeats: int) -> tuple[float, float, str]:
    """pae.science.metrics.frechet_distance of two random SPD d×d covariances (built outside the timing)."""
    from pae.science.metrics import frechet_distance

    rng = np.random.default_rng(d)
    a, b = rng.standard_normal((d, d + 16)), rng.standard_normal((d, d + 16))
    s1, s2 = a @ a.T / d, b @ b.T / d
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    med, best = timed(lambda: frechet_distance(mu1, s1, mu2, s2), repeats)
    return med, med, f"s per call, median of {repeats} (best {best:.4g})"


def _map_inputs(models: Models, n: int, K: int) -> tuple[Any, ...]:
    from pae.science.density import floor_sigma, quantization_sigma

    ae, (flow, _) = models.ae(K), models.flow(K, "paper")
    ae.eval()
    flow.eval()
    x = _images(n, 6).float() / 255.0 - 0.5
    with torch.no_grad():
        z0 = ae.encode(x)
    sigma = floor_sigma(torch.full((1, 28, 28), 0.05), quantization_sigma(255))
    return ae, flow, x, z0, sigma


def m_map(models: Models, n: int, repeats: int, steps: int = 5, K: int = 64) -> tuple[float, float, str]:
    """pae.science.density.map_refine (Eq. 9) of n images for `steps` Adam steps at K with the paper flow."""
    from pae.science.density import map_refine

    ae, flow, x, z0, sigma = _map_inputs(models, n, K)
    lr, bs = float(models.paper["ood"]["map_lr"]), int(models.paper["ood"]["batch_size"])
    med, best = timed(lambda: map_refine(x, z0, ae.decoder, flow, sigma, steps, lr, batch_size=bs), repeats)
    # map_refine evaluates the objective steps + 1 times (the start included)
    return med, med / (n * (steps + 1)), (f"K={K} AE + paper flow: s for {steps} steps (+1 evaluation) of all "
                                          f"images, median of {repeats} (best {best:.4g})")


def m_laplace(models: Models, n: int, repeats: int, K: int = 64) -> tuple[float, float, str]:
    """pae.science.posterior.laplace_log_px (Eq. 11, Gauss-Newton Hessian) of n images (one batch) at K with the paper
    flow. Its K forward-mode passes through the flow cost about the same for any batch, so per image falls with n."""
    from pae.science.posterior import laplace_log_px

    ae, flow, x, z0, sigma = _map_inputs(models, n, K)
    med, best = timed(lambda: laplace_log_px(x, z0, ae.decoder, flow, sigma), repeats)
    return med, med / n, f"K={K} AE + paper flow: s for all images (one batch), median of {repeats} (best {best:.4g})"


def m_iwae(models: Models, n: int, repeats: int, k: int | None = None) -> tuple[float, float, str]:
    """pae.science.vae.vae_scores (ELBO + IWAE, k importance samples) of n images with the plain VAE."""
    from pae.science.vae import vae_scores

    k = int(k or models.paper["ood"]["iwae_samples"])
    K = int(models.paper["vae"]["latent_dim"])
    m = models.vae(K).eval()
    x = _images(n, 7).float() / 255.0 - 0.5
    sigma = float(models.paper["vae"]["models"]["vae"]["sigma"])
    gen = torch.Generator().manual_seed(8)

    def run() -> None:
        with torch.no_grad():
            vae_scores(m, x, sigma, k, gen)

    med, best = timed(run, repeats)
    return med, med / n, f"VAE K={K}, k={k}: s for all images, median of {repeats} (best {best:.4g})"


def m_posterior(models: Models, steps: int, repeats: int, space: str, n: int) -> tuple[float, float, str]:
    """pae.science.posterior.posterior_analysis of n masked images at posterior.K with the paper's starts, stages and
    batch size, `steps` Adam steps in all (split over the lr stages); per row-step includes the Hessians and
    samples (n_samples 16), so it slightly overstates the cost of one Adam row-step."""
    from pae.science.posterior import (
        Corruption,
        PosteriorModel,
        PosteriorSettings,
        corrupt,
        likelihood_variance,
        posterior_analysis,
    )

    p = models.paper["posterior"]
    K = int(p["K"])
    ae = models.ae(K).eval()
    flow = models.flow(K, "paper")[0].eval() if space == "u" else None
    n_stages = len(p["lr_stages"])
    st = PosteriorSettings(random_starts=int(p["random_starts"]), encoder_start=bool(p["encoder_start"]),
                           lr_stages=tuple(float(v) for v in p["lr_stages"]),
                           steps_per_stage=max(1, steps // n_stages), anneal_max=p["anneal_max"],
                           merge_distance=float(p["merge_distance"]), n_samples=16,
                           batch_size=int(p["batch_size"]))
    c = Corruption.from_config("mask", p["corruptions"]["mask"])
    x = _images(n, 9).float() / 255.0 - 0.5
    x_tilde, obs = corrupt(x, c, torch.Generator().manual_seed(0))
    model = PosteriorModel(ae.decoder, flow, ae.encode, latent_dim=K)
    var = likelihood_variance(torch.full((1, 28, 28), 0.1), c.noise)
    med, best = timed(lambda: posterior_analysis(x_tilde, obs, var, model, st, torch.Generator().manual_seed(1)),
                      repeats)
    row_steps = n * st.n_starts * sum(st.steps)
    rows = min(n, max(1, st.batch_size // st.n_starts)) * st.n_starts
    return med, med / row_steps, (f"K={K}, space {space}, {n} images x {st.n_starts} starts x {sum(st.steps)} steps "
                                  f"({rows} rows per Adam batch; paper up to {st.batch_size}): s in all (incl. "
                                  f"Hessians, 16 samples), median of {repeats} (best {best:.4g})")


# ------------------------------------------------------------------------------------------------ runner


class Runner:
    """Runs the points in budget order and collects the rows."""

    def __init__(self, budget: float, threads: int, repeats: int, extra_note: str) -> None:
        self.t0 = time.perf_counter()
        self.budget, self.threads, self.repeats, self.extra_note = budget, threads, repeats, extra_note
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[str] = []
        self.cost: dict[str, tuple[float, float, int]] = {}  # curve → (x, seconds spent, repeats) of its last point

    def remaining(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def predict(self, spec: Spec, x: int, repeats: int) -> float:
        if spec.name in self.cost:
            x0, spent, r0 = self.cost[spec.name]
            return spent * (x / x0) ** spec.exponent * (repeats + 1) / (r0 + 1)
        return spec.guess_s * (repeats + 1)

    def point(self, spec: Spec, x: int, fn: Callable[[int, int], tuple[float, float, str]]) -> None:
        repeats = min(self.repeats, spec.max_repeats)
        left = self.remaining()
        if self.predict(spec, x, repeats) > left:
            repeats = 1
            if self.predict(spec, x, 1) > left:
                msg = (f"skipped {spec.name} {spec.x_name}={x}: predicted {self.predict(spec, x, 1):.0f} s "
                       f"> {max(left, 0):.0f} s left of the budget")
                self.skipped.append(msg)
                print(msg, flush=True)
                return
        t = time.perf_counter()
        seconds, per_unit, note = fn(x, repeats)
        self.cost[spec.name] = (x, time.perf_counter() - t, repeats)
        note += f"; process cpu/wall {LAST_CPU_SHARE[0]:.2f}"
        self.add(spec.name, spec.x_name, x, seconds, per_unit, spec.unit, note)

    def add(self, curve: str, x_name: str, x: int, seconds: float, per_unit: float, unit: str, note: str) -> None:
        load = os.getloadavg()[0]
        row = {"curve": curve, "x_name": x_name, "x": x, "seconds": f"{seconds:.6g}", "per_unit": f"{per_unit:.6g}",
               "unit": unit, "threads": self.threads, "note": f"{note}; load avg {load:.1f}{self.extra_note}"}
        self.rows.append(row)
        print_row(row)


def print_row(row: dict[str, Any]) -> None:
    per = float(row["per_unit"])
    rate = f"{1 / per:>10.4g} {row['unit'].split('/')[1]}/s" if per > 0 and row["unit"] != "s/call" else ""
    print(f"{row['curve']:<24} {row['x_name']:>12}={row['x']:<6} {float(row['seconds']):>10.4g} s "
          f"{per:>10.4g} {row['unit']:<12} {rate:<22} {row['note']}", flush=True)


def run_all(args: argparse.Namespace) -> Runner:
    """Every curve's first point, then the remaining points of each curve, within the budget."""
    paper, quick = load_configs()
    models = Models(paper, quick)
    load = os.getloadavg()
    extra = (f"; shared busy machine ({os.cpu_count()} cores, load avg at start {load[0]:.1f})"
             if not args.quick else "; --quick smoke sizes")
    runner = Runner(args.budget, args.threads, 1 if args.quick else args.repeats, extra)
    q = args.quick
    WARMUP[0] = 0 if q else 1
    fns: dict[str, Callable[[int, int], tuple[float, float, str]]] = {
        "ae_step_vs_batch": lambda x, r: m_train_step(models, x, r),
        "vae_step_vs_batch": lambda x, r: m_train_step(models, x, r, vae=True),
        "flow_train_vs_K": lambda x, r: m_flow_train(models, x, r, "quick", 2 if q else 5),
        "flow_logdensity_vs_K": lambda x, r: m_flow_logdensity(models, x, r, 512 if q else 4096),
        "flow_train_paper_vs_K": lambda x, r: m_flow_train(models, x, r, "paper", 2 if q else 5),
        "ood_scoring_vs_images": lambda x, r: m_ood(models, x, r),
        "frechet_vs_dim": lambda x, r: m_frechet(models, x, r),
        "map_refine_vs_images": lambda x, r: m_map(models, x, r, 2 if q else 5, 8 if q else 64),
        "laplace_vs_images": lambda x, r: m_laplace(models, x, r, 8 if q else 64),
        "iwae_vs_images": lambda x, r: m_iwae(models, x, r, 10 if q else None),
        "posterior_u_vs_steps": lambda x, r: m_posterior(models, x, r, "u", 2 if q else 32),
        "posterior_z_vs_steps": lambda x, r: m_posterior(models, x, r, "z", 2 if q else 32),
    }
    sizes = {s.name: (s.quick_sizes if q else s.sizes) for s in SPECS}
    print(f"{'curve':<24} {'x':>19} {'seconds':>12} {'per_unit':>10} {'unit':<12} {'rate':<22} note")
    for spec in SPECS:
        runner.point(spec, sizes[spec.name][0], fns[spec.name])
    for spec in SPECS:
        for x in sizes[spec.name][1:]:
            runner.point(spec, x, fns[spec.name])
    add_epoch_curve(runner, int(paper["ae"]["batch_size"]), q)
    return runner


def add_epoch_curve(runner: Runner, batch: int, quick: bool) -> None:
    """ae_epoch_vs_images, extrapolated from the measured step at `batch` (or the nearest measured batch)."""
    steps = {int(r["x"]): r for r in runner.rows if r["curve"] == "ae_step_vs_batch"}
    x_name, unit, sizes, quick_sizes = DERIVED["ae_epoch_vs_images"]
    if not steps:
        msg = "skipped ae_epoch_vs_images: no AE step was measured"
        runner.skipped.append(msg)
        print(msg)
        return
    b = min(steps, key=lambda v: (abs(math.log(v / batch)), v))
    step_s = float(steps[b]["seconds"])
    for n in quick_sizes if quick else sizes:
        n_steps = n // b
        seconds = n_steps * step_s
        note = (f"EXTRAPOLATED: {n_steps} steps (N // {b}) x {step_s:.4g} s per measured step at batch {b}; "
                "excludes the per-epoch validation pass")
        runner.add("ae_epoch_vs_images", x_name, n, seconds, seconds / n, unit, note)


# ------------------------------------------------------------------------------------------------ outputs


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """One subplot per curve: seconds (rate for the flow curves) against x, log axes where x spans > 4×."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [c for c in CURVES if any(r["curve"] == c for r in rows)]
    cols = 4
    nrows = max(1, math.ceil(len(curves) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, curve in zip(axes.flat, curves, strict=False):
        pts = sorted((float(r["x"]), float(r["seconds"]), float(r["per_unit"]), r) for r in rows if r["curve"] == curve)
        xs = [p[0] for p in pts]
        if curve.startswith("flow_"):
            ys, ylabel = [1.0 / p[2] for p in pts], "latents / s"
        else:
            ys, ylabel = [p[1] for p in pts], "seconds" + (" per step" if "step_vs" in curve else "")
        ax.plot(xs, ys, "o-", color="C3" if curve in DERIVED else "C0")
        if len(xs) > 1 and max(xs) / min(xs) > 4:
            ax.set_xscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if len(ys) > 1 and min(ys) > 0 and max(ys) / min(ys) > 10:
            ax.set_yscale("log")
        title = curve + (" (extrapolated)" if curve in DERIVED else "")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(pts[0][3]["x_name"], fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    threads = rows[0]["threads"] if rows else "?"
    fig.suptitle(f"pae cost curves, CPU, {threads} thread(s), shared busy machine "
                 f"(benchmarks/cost_curves.py)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _estimate_module() -> Any:
    path = Path(__file__).with_name("paper_scale_estimate.py")
    spec = importlib.util.spec_from_file_location("paper_scale_estimate", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("paper_scale_estimate", mod)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    p.add_argument("--budget", type=float, default=420.0, help="rough cap on the whole run, seconds")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per point (median; 1 when short)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run of a few seconds")
    p.add_argument("--csv", default=str(REPO / "benchmarks" / "cost_curves.csv"))
    p.add_argument("--png", default=str(REPO / "benchmarks" / "cost_curves.png"))
    p.add_argument("--from-csv", help="measure nothing: redraw --png and reprint the estimate from this CSV")
    args = p.parse_args(argv)
    if args.from_csv:
        with open(args.from_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        plot(rows, Path(args.png))
        print(f"redrew {args.png} from {args.from_csv} ({len(rows)} rows)")
        est = _estimate_module()
        est.print_estimate(est.estimate(rows, load_configs()[0]))
        return rows
    if args.threads < 1 or args.repeats < 1 or args.budget <= 0:
        p.error("--threads and --repeats must be >= 1 and --budget > 0")
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        with threadpool_limits(limits=args.threads):
            runner = run_all(args)
    finally:
        torch.set_num_threads(torch_threads)
    elapsed = time.perf_counter() - t0
    write_csv(runner.rows, Path(args.csv))
    plot(runner.rows, Path(args.png))
    print(f"{len(runner.rows)} rows in {elapsed:.1f} s (budget {args.budget:.0f} s), torch {torch.__version__}, "
          f"{args.threads} thread(s); {len(runner.skipped)} point(s) skipped; wrote {args.csv} and {args.png}")
    for line in runner.skipped:
        print(f"  {line}")
    if args.quick:
        print("paper-scale estimate: not printed for --quick (smoke sizes say nothing about the paper's)")
    else:
        est = _estimate_module()
        paper, _ = load_configs()
        est.print_estimate(est.estimate(runner.rows, paper))
    return runner.rows


if __name__ == "__main__":
    main()
