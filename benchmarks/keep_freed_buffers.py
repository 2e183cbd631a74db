"""What `pae.science.runtime.keep_freed_buffers` (glibc mallopt) saves: wall, user and kernel seconds of an
evaluation pass (encode + decode of random images in batches of 500, as the ood_scores jobs run) and of AE
training steps, each in a fresh process with and without the setting, on one thread.

    .venv/bin/python benchmarks/keep_freed_buffers.py                  # 10 000 images, 20 steps, K = 64
    .venv/bin/python benchmarks/keep_freed_buffers.py --images 4000 --steps 10

Compare the two lines of each pass taken together: other processes on the machine make the figures noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def child(what: str, keep: bool, K: int, n: int) -> dict[str, float]:
    """One measurement in this process: `what` is "eval" (n images) or "train" (n steps of batch 128)."""
    import torch

    from pae.science.nets import AutoEncoder
    from pae.science.runtime import keep_freed_buffers
    from pae.science.train import _make_optimizer, ae_loss

    torch.set_num_threads(1)
    took = keep_freed_buffers() if keep else False
    model = AutoEncoder(K, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.0)
    gen = torch.Generator().manual_seed(0)
    if what == "train":
        opt = _make_optimizer(model.train(), 1e-3, torch.device("cpu"))
        x = torch.rand(128, 1, 28, 28, generator=gen) - 0.5

        def run(i: int) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _ = ae_loss(model, x, i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        run(0)
        count = n
    else:
        model.eval()
        x = torch.rand(n, 1, 28, 28, generator=gen) - 0.5

        def run(i: int) -> None:
            with torch.no_grad():
                model.decode(model.encode(x[500 * i : 500 * (i + 1)]))

        count = (n + 499) // 500
    t0, c0 = time.perf_counter(), os.times()
    for i in range(count):
        run(i)
    c1 = os.times()
    return {"wall": time.perf_counter() - t0, "user": c1.user - c0.user, "kernel": c1.system - c0.system,
            "took": float(took)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--K", type=int, default=64)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--child", nargs=2, metavar=("WHAT", "KEEP"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        what, keep = args.child[0], args.child[1] == "1"
        print(json.dumps(child(what, keep, args.K, args.images if what == "eval" else args.steps)))
        return
    print(f"K = {args.K}, 1 thread; seconds per pass in a fresh process")
    for what, n in (("eval", f"{args.images} images"), ("train", f"{args.steps} bf16 steps of 128")):
        for keep in (False, True):
            out = subprocess.run([sys.executable, __file__, "--K", str(args.K), "--images", str(args.images),
                                  "--steps", str(args.steps), "--child", what, str(int(keep))],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            label = "keep_freed_buffers" if keep else "glibc defaults"
            note = "" if not keep or r["took"] else " (mallopt refused: not glibc?)"
            print(f"{what:5s} {n:22s} {label:18s} wall {r['wall']:6.2f}  user {r['user']:6.2f}  "
                  f"kernel {r['kernel']:5.2f}{note}")


if __name__ == "__main__":
    main()
