"""Speed of the posterior analysis (paper Sec. 2.3): images per second for MAP from all starts + exact Hessians +
Laplace mixture + samples, batched over images.

    .venv/bin/python benchmarks/posterior_speed.py                       # random-weight K=8 AE + RealNVP flow
    .venv/bin/python benchmarks/posterior_speed.py --run results/quick/mnist/K8/seed0 --images 100
    .venv/bin/python benchmarks/posterior_speed.py --run ... --steps 200,150,100,50 --lr 0.1,0.01,0.001,0.0001

The schedule (starts, lr stages, steps per stage, samples) comes from the `posterior` section of config/config.yaml
overlaid with --configfile (default: config/quick.yaml). With --run, ae.pt / ae_stats.npz / flow.pt of that
folder are used (data: the first test images of --data, default data/processed/mnist.npz, if present, else
random images).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from pae.science.density import floor_sigma, quantization_sigma
from pae.science.posterior import (
    Corruption,
    PosteriorModel,
    PosteriorSettings,
    corrupt,
    likelihood_variance,
    posterior_analysis,
)

REPO = Path(__file__).resolve().parents[1]


def merged_posterior_config(overlay: str | None) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["posterior"]
    if overlay:
        over = (yaml.safe_load(Path(overlay).read_text()) or {}).get("posterior", {})
        cfg |= over
    return cfg


def random_models(K: int, seed: int = 0):
    from pae.science.flows import LatentFlow
    from pae.science.nets import AutoEncoder

    torch.manual_seed(seed)
    ae = AutoEncoder(K, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.2).eval()
    flow = LatentFlow(K, "realnvp", 10, 32, num_bins=None, tail_bound=None, standardize=True, seed=0).eval()
    with torch.no_grad():  # move the zero-initialised coupling outputs off the identity
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sigma = torch.full((1, 28, 28), 0.1)
    return ae, flow, sigma


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="folder with ae.pt, ae_stats.npz and flow.pt (default: random weights)")
    ap.add_argument("--data", default=str(REPO / "data" / "processed" / "mnist.npz"),
                    help="preprocessed dataset whose first test images are used with --run")
    ap.add_argument("--configfile", default=str(REPO / "config" / "quick.yaml"))
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the workflow runs 1-thread jobs)")
    ap.add_argument("--corruption", default="mask", help="name in posterior.corruptions")
    ap.add_argument("--space", choices=["u", "z"], default="u")
    ap.add_argument("--steps", help="override posterior.steps_per_stage, e.g. 200,150,100,50")
    ap.add_argument("--lr", help="override posterior.lr_stages, e.g. 0.1,0.01,0.001,0.0001")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = merged_posterior_config(args.configfile)
    if args.steps:
        cfg["steps_per_stage"] = [int(v) for v in args.steps.split(",")]
    if args.lr:
        cfg["lr_stages"] = [float(v) for v in args.lr.split(",")]
    st = PosteriorSettings.from_config(cfg)
    c = Corruption.from_config(args.corruption, cfg["corruptions"][args.corruption])
    K = int(cfg["K"])
    x = torch.rand(args.images, 1, 28, 28) - 0.5
    if args.run:
        from pae.files.artifacts import load_flow, load_model, load_sigma

        run = Path(args.run)
        ae, _ = load_model(run / "ae.pt")
        flow = load_flow(run / "flow.pt")[0] if args.space == "u" else None
        sigma = floor_sigma(load_sigma(run / "ae_stats.npz"), quantization_sigma(255))
        data = Path(args.data)
        if data.is_file():
            with np.load(data) as f:
                x = torch.as_tensor(f["x_test"][: args.images]).float() / 255 - 0.5
    else:
        ae, flow, sigma = random_models(K)
        flow = flow if args.space == "u" else None
    x_tilde, obs = corrupt(x, c, torch.Generator().manual_seed(0))
    model = PosteriorModel(ae.decoder, flow, ae.encode, latent_dim=ae.latent_dim)
    var = likelihood_variance(sigma, c.noise)
    t0, c0 = time.perf_counter(), time.process_time()
    res = posterior_analysis(x_tilde, obs, var, model, st, torch.Generator().manual_seed(1))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{args.images} images, corruption {args.corruption}, space {args.space}, {st.n_starts} starts, "
          f"Adam steps {st.steps} at lr {list(st.lr_stages)}, {st.n_samples} samples, "
          f"{torch.get_num_threads()} threads, weights {'from ' + args.run if args.run else 'random'}")
    print(f"wall {dt:.2f} s: {dt / args.images:.3f} s per image, {args.images / dt:.2f} images per second; "
          f"CPU {cpu:.2f} s: {cpu / args.images:.3f} CPU-s per image (load average {os.getloadavg()[0]:.1f})")
    ar = torch.arange(args.images)
    decrement = res.newton_decrement[res.final_log_post.argmax(0), ar]
    print(f"mean MAP log posterior {res.map_log_post.mean():.2f}, median Newton decrement at the MAP "
          f"{decrement.nanmedian():.3g} nats; modes per image {res.mixture.n_modes.float().mean():.2f}, "
          f"positive-definite starts {res.positive_definite.float().mean():.2%}")


if __name__ == "__main__":
    main()
