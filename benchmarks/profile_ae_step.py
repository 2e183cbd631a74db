"""Where the time of one auto-encoder training step goes: torch.profiler over real-size steps on random data.

    .venv/bin/python benchmarks/profile_ae_step.py                        # quick config: bf16, batch 128, 1 thread
    .venv/bin/python benchmarks/profile_ae_step.py --precision fp32 --threads 2 --top 30

Builds the AE exactly as the quick configuration trains it (config/config.yaml + config/quick.yaml: layers,
batch size, precision), runs warm-up steps, then profiles `--steps` steps (forward with the Eq. 2 loss,
backward, Adam step, as `pae.science.train` runs them) and prints the operators with the most self CPU time,
then the same time grouped by kind (convolutions, matmuls, normalisation, spectral norm, dtype casts,
optimizer, rest). Compare runs taken together: other processes on the machine make the figures noisy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from pae.config import deep_merge
from pae.science.nets import AutoEncoder
from pae.science.runtime import set_threads
from pae.science.train import _make_optimizer, ae_loss
from pae.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
#: operator-name fragments → kind (first match wins; names are torch's aten operators)
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("matmul", ("addmm", "mm", "matmul", "linear", "bmm")),
    ("normalisation", ("batch_norm", "native_batch_norm")),
    ("spectral norm", ("linalg_vector_norm", "norm", "mv", "dot", "div_")),
    ("dtype casts", ("to_copy", "_to_copy", "copy_", "to")),
    ("optimizer", ("adam", "foreach", "_fused")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, parts in KINDS:
        if any(part in low for part in parts):
            return kind
    return "rest"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--K", type=int, default=64)
    p.add_argument("--precision", choices=["fp32", "bf16"], help="default: the quick configuration's")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args()
    set_threads(args.threads)  # as every workflow job: threads, and freed buffers kept (keep_freed_buffers)
    quick = yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())  # over the schema's defaults = config.yaml
    S = Settings.from_config(deep_merge({}, quick))
    precision = args.precision or S.training("ae", 0).precision
    batch = S.ae.batch_size
    model = AutoEncoder(args.K, (1, 28, 28), **S.ae.net(args.K)).train()
    opt = _make_optimizer(model, S.ae.lr, torch.device("cpu"))
    x = torch.rand(batch, 1, 28, 28) - 0.5

    def step(i: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = ae_loss(model, x, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.steps):
            step(i)
    wall = time.perf_counter() - t0
    print(f"AE K={args.K}, batch {batch}, {precision}, {args.threads} thread(s): {args.steps} profiled steps, "
          f"{wall / args.steps * 1e3:.1f} ms per step ({batch * args.steps / wall:.0f} images/s, profiler on)")
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    print(f"{'operator':<44} {'self ms/step':>12} {'share':>7} {'calls/step':>10}")
    for e in events[: args.top]:
        print(f"{e.key[:44]:<44} {e.self_cpu_time_total / 1e3 / args.steps:>12.2f} "
              f"{e.self_cpu_time_total / total:>7.1%} {e.count / args.steps:>10.1f}")
    by_kind: dict[str, float] = {}
    for e in events:
        by_kind[kind_of(e.key)] = by_kind.get(kind_of(e.key), 0.0) + e.self_cpu_time_total
    print("by kind:")
    for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<16} {us / 1e3 / args.steps:>8.2f} ms/step {us / total:>7.1%}")


if __name__ == "__main__":
    main()
