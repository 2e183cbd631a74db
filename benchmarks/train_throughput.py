"""Training-step throughput of the PAE's two stages, and how close it gets to the machine's matmul speed.

Times full training steps (forward, loss, backward, Adam step) on random data at real size:
* the infoGAN auto-encoder on 28×28×1 images (pae.science.nets.AutoEncoder with the config defaults, Eq. 2 loss),
* the latent flows of config/config.yaml: K=64 neural spline flow and K=32 RealNVP (Eq. 5 loss).
Warm-up steps are excluded. Achieved GFLOP/s counts matmul-like work only: 3 × forward FLOPs for a training
step (forward + input gradients + weight gradients; an over-estimate of ~1 % for the AE because the first
layer needs no input gradient). Forward FLOPs come from pae.science.nets.forward_flops (Conv/ConvTranspose/Linear
hooks) for the AE and from Linear hooks plus the LU layers' two K×K products for the flows. The same run
then times torch.mm of the shape of the model's largest layer (same threads, dtype and device) so the ratio
says how much of the reachable matmul speed a training step achieves.

    .venv/bin/python benchmarks/train_throughput.py --threads 2            # AE + flows, fp32
    .venv/bin/python benchmarks/train_throughput.py --what ae --precision bf16 --channels-last
    .venv/bin/python benchmarks/train_throughput.py --json benchmarks/throughput.json

Other processes on the machine make the figures noisy: repeat, and compare runs taken together.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pae.science.flows import build_flow
from pae.science.nets import AutoEncoder, forward_flops
from pae.science.runtime import set_threads
from pae.science.train import ae_loss
from pae.settings import Settings

FLOW = Settings.from_config({}).flow  # the paper's flow section (config/config.yaml)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], steps: int, warmup: int, device: torch.device, blocks: int = 5) -> dict:
    """Seconds per call of `step` (warm-up calls excluded), timed in `blocks` blocks of steps // blocks calls.

    "best" (fastest block) filters out bursts of other processes sharing the CPU; "median" is the typical
    figure on the machine as it was.
    """
    for _ in range(warmup):
        step()
    per_block = max(1, steps // blocks)
    times = []
    for _ in range(blocks):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(per_block):
            step()
        _sync(device)
        times.append((time.perf_counter() - t0) / per_block)
    return {"best": min(times), "median": statistics.median(times)}


def mm_gflops(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, seconds: float = 2.0,
              blocks: int = 5) -> dict:
    """Dense torch.mm GFLOP/s for an (m×k)·(k×n) product over about `seconds`, best and median of `blocks`."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        torch.mm(a, b)
    rates = []
    for _ in range(blocks):
        _sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / blocks:
            torch.mm(a, b)
            reps += 1
            if device.type == "cuda" and reps % 50 == 0:
                _sync(device)
        _sync(device)
        rates.append(2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return {"best": max(rates), "median": statistics.median(rates)}


def _adam(params, lr: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, fused=fused) if fused else torch.optim.Adam(params, lr=lr)


def bench_ae(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """AE training steps at batch args.batch_size on 28×28×1 random images."""
    torch.manual_seed(0)
    model = AutoEncoder(args.K, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.2)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt).train()
    opt = _adam(model.parameters(), 1e-3, args.fused)
    x = (torch.rand(args.batch_size, 1, 28, 28, device=device) - 0.5).contiguous(memory_format=fmt)
    bf16 = args.precision == "bf16"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = ae_loss(model, x, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = time_steps(step, args.steps, args.warmup, device)
    fwd = forward_flops(model, args.batch_size, (1, 28, 28))
    largest = max((m for m in model.modules() if isinstance(m, nn.Linear)), key=lambda m: m.weight.numel())
    mm = mm_gflops(args.batch_size, largest.in_features, largest.out_features, _dtype(args), device)
    return _row(f"AE K={args.K} (28x28, batch {args.batch_size})", args.batch_size, sec, fwd, mm,
                (args.batch_size, largest.in_features, largest.out_features), "images/s")


def flow_forward_flops(flow: nn.Module, z: torch.Tensor) -> int:
    """2 × MACs of the coupling networks' Linear layers plus the LU layers (two K×K products each)."""
    from pae.science.flows import LULinear

    macs = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in flow.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            flow.log_prob(z)
    finally:
        for h in handles:
            h.remove()
    n_lu = sum(isinstance(m, LULinear) for m in flow.modules())
    macs += n_lu * 2 * z.shape[0] * z.shape[1] ** 2
    return 2 * macs


def bench_flow(K: int, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Flow training steps (−log p(z), Eq. 5) on standard-normal latents at batch args.flow_batch_size."""
    torch.manual_seed(0)
    z_train = torch.randn(4096, K)
    flow = build_flow(K, FLOW.architecture(K), z_train.numpy(), seed=0).to(device).train()
    opt = _adam(flow.parameters(), 1e-3, args.fused)
    bs = args.flow_batch_size
    z = torch.randn(bs, K, device=device)
    bf16 = args.precision == "bf16"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = -flow.log_prob(z).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = time_steps(step, args.steps, args.warmup, device)
    fwd = flow_forward_flops(flow, z)
    largest = max((m for m in flow.modules() if isinstance(m, nn.Linear)), key=lambda m: m.weight.numel())
    mm = mm_gflops(bs, largest.in_features, largest.out_features, _dtype(args), device)
    return _row(f"flow {flow.kind} K={K} ({flow.init_kwargs['n_layers']} couplings, batch {bs})", bs, sec, fwd,
                mm, (bs, largest.in_features, largest.out_features), "latents/s")


def _dtype(args: argparse.Namespace) -> torch.dtype:
    return torch.bfloat16 if args.precision == "bf16" else torch.float32


def _row(name: str, batch: int, sec: dict, fwd: int, mm: dict, mm_shape, unit: str) -> dict[str, Any]:
    """Throughput and FLOP rate from the fastest block (the least disturbed); medians kept alongside."""
    achieved = 3.0 * fwd / sec["best"] / 1e9
    return {
        "name": name, "seconds_per_step": sec["best"], "seconds_per_step_median": sec["median"],
        "items_per_second": batch / sec["best"], "unit": unit, "forward_gflop_per_step": fwd / 1e9,
        "achieved_gflops": achieved, "achieved_gflops_median": 3.0 * fwd / sec["median"] / 1e9,
        "mm_shape": list(mm_shape), "mm_gflops": mm["best"], "mm_gflops_median": mm["median"],
        "ratio": achieved / mm["best"],
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=128, help="AE batch size")
    p.add_argument("--flow-batch-size", type=int, default=128, help="flow batch size")
    p.add_argument("--steps", type=int, default=20, help="timed steps per model (in 5 blocks)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--K", type=int, default=64, help="AE latent size")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--what", choices=["ae", "flows", "all"], default="all")
    p.add_argument("--channels-last", action="store_true", help="AE in channels_last memory format")
    p.add_argument("--no-fused", dest="fused", action="store_false", help="plain (for-each) Adam")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    set_threads(args.threads)  # as every workflow job: threads, and freed buffers kept (keep_freed_buffers)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    rows = []
    if args.what in ("ae", "all"):
        rows.append(bench_ae(args, device))
    if args.what in ("flows", "all"):
        rows.append(bench_flow(64, args, device))
        rows.append(bench_flow(32, args, device))

    peak = mm_gflops(2048, 2048, 2048, _dtype(args), device)
    settings = (f"device {device}, threads {torch.get_num_threads()}, {args.precision}, "
                f"fused Adam {args.fused}, channels_last {args.channels_last}, torch {torch.__version__}")
    print(settings)
    print(f"square 2048^3 torch.mm: best {peak['best']:.1f} GFLOP/s, median {peak['median']:.1f}")
    print(f"{'what':<48} {'items/s':>9} {'ms/step':>8} {'GFLOP/s':>8} {'mm GFLOP/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['name']:<48} {r['items_per_second']:>9.0f} {1e3 * r['seconds_per_step']:>8.1f} "
              f"{r['achieved_gflops']:>8.1f} {r['mm_gflops']:>11.1f} {r['ratio']:>6.2f}")
    if args.json:
        meta = {"settings": settings, "mm_square_2048": peak, "args": vars(args), "machine": platform.processor() or platform.machine()}
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
