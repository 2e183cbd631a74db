"""The speed measurements behind config/quick.yaml's schedule: AE training steps and flow epochs on this CPU.

    .venv/bin/python benchmarks/quick_schedule.py              # ≈ 2 minutes on 2 cores
    .venv/bin/python benchmarks/quick_schedule.py --steps 1 --flow-epochs 1 --latents 1024   # a smoke run

Prints, on random data at real size:
* AE (K = 64, 28×28, Eq. 2 loss, fused Adam), one thread: images per second and seconds per 50k-image epoch for
  fp32 / bf16 autocast × dropout 0.2 (paper) / 0 (quick) × batch 128 / 256;
* the quick K = 64 flow (config/quick.yaml merged over config/config.yaml): seconds per epoch over 50k latents,
  validation pass included, at 1 and 2 threads × batch 256 / 512.
Run it on an otherwise idle machine; other processes make the figures noisy, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from pae.science.flows import build_flow, train_flow
from pae.science.nets import AutoEncoder
from pae.science.train import _make_optimizer, ae_loss
from pae.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TRAIN_IMAGES = 50_000


def quick_flow_config() -> dict:
    """The flow section of config/quick.yaml (schema defaults for the keys it leaves out)."""
    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text()) or {}
    return dict(quick.get("flow", {}))


def ae_images_per_second(batch: int, precision: str, dropout: float, steps: int, warmup: int = 3) -> float:
    """Training images per second of full AE steps (forward, loss, backward, Adam) at the current threads."""
    torch.manual_seed(0)
    model = AutoEncoder(64, (1, 28, 28), norm="batch", spectral_norm=True, dropout=dropout).train()
    optimizer = _make_optimizer(model, 1e-3, torch.device("cpu"))
    x = torch.rand(batch, 1, 28, 28) - 0.5
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = ae_loss(model, x, i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - t0)


def flow_seconds_per_epoch(batch: int, epochs: int, latents: int = TRAIN_IMAGES) -> float:
    """Seconds per epoch of pae.science.flows.train_flow on standard-normal K = 64 latents (a fifth more for validation)."""
    flow_settings = Settings.from_config({"flow": {**quick_flow_config(), "epochs": epochs, "batch_size": batch}}).flow
    rng = np.random.default_rng(0)
    z_train = rng.standard_normal((latents, 64)).astype(np.float32)
    z_valid = rng.standard_normal((latents // 5, 64)).astype(np.float32)
    flow = build_flow(64, flow_settings.architecture(64), z_train, seed=0)
    t0 = time.perf_counter()
    train_flow(flow, z_train, z_valid, flow_settings.training, seed=0, device="cpu", log=lambda _: None)
    return (time.perf_counter() - t0) / epochs


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12, help="timed AE steps per setting")
    p.add_argument("--flow-epochs", type=int, default=2, help="flow epochs per setting")
    p.add_argument("--latents", type=int, default=TRAIN_IMAGES, help="flow training latents (a smoke run: 1024)")
    args = p.parse_args(argv)
    if min(args.steps, args.flow_epochs, args.latents) < 1:
        p.error("--steps, --flow-epochs and --latents must be positive")
    rows = []
    torch.set_num_threads(1)
    print("AE, K = 64, 1 thread             images/s   s per 50k-image epoch")
    for precision in ("fp32", "bf16"):
        for dropout in (0.2, 0.0):
            for batch in (128, 256):
                ips = ae_images_per_second(batch, precision, dropout, args.steps)
                rows.append({"what": "ae", "precision": precision, "dropout": dropout, "batch": batch,
                             "images_per_s": ips})
                print(f"  {precision} dropout {dropout:.1f} batch {batch:<4d}      {ips:8.0f}   {TRAIN_IMAGES / ips:8.0f}",
                      flush=True)
    print(f"flow, K = 64, quick config        s per epoch ({args.latents} latents + validation)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (256, 512):
            sec = flow_seconds_per_epoch(batch, args.flow_epochs, args.latents)
            rows.append({"what": "flow", "threads": threads, "batch": batch, "seconds_per_epoch": sec})
            print(f"  {threads} thread(s) batch {batch:<4d}            {sec:8.1f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
