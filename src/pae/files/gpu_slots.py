"""One GPU per job on a workstation: each running GPU job claims a free GPU slot (a lock file) and sees only
that device through CUDA_VISIBLE_DEVICES.

Snakemake's `--resources gpu=N` bounds how many GPU jobs run at once but does not say which GPU each one
gets; without this, `device: auto` puts every job on cuda:0. A slot is held by an exclusive `flock` on
`<lock_dir>/gpu<ID>.lock` for the life of the job's process and is released by the kernel when it exits,
also when it is killed. Jobs under Slurm (SLURM_JOB_ID set) are left alone: Slurm already sets
CUDA_VISIBLE_DEVICES to the GPUs it allocated.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_held: list[IO[str]] = []  # open lock files of this process (closing one would release its slot)


def visible_gpus(env: Mapping[str, str], proc_gpus: str | Path = "/proc/driver/nvidia/gpus") -> list[str]:
    """The GPU ids a job may choose from: CUDA_VISIBLE_DEVICES when set (a user's own restriction), else one
    per NVIDIA device of the driver (read without initialising CUDA, which would freeze the visible set)."""
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    folder = Path(proc_gpus)
    return [str(i) for i in range(len(list(folder.iterdir())))] if folder.is_dir() else []


def claim_slot(gpus: Sequence[str], lock_dir: str | Path) -> str | None:
    """Lock the first free GPU of `gpus` for this process; its id, or None when every one is taken."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for gpu in gpus:
        handle = open(lock_dir / f"gpu{gpu}.lock", "a")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return gpu
    return None


def use_own_gpu(gpu_request: int, lock_dir: str | Path = ".snakemake/gpu_slots",
                env: os._Environ[str] | dict[str, str] = os.environ) -> str | None:
    """Give a job that asked for a GPU (`gpu_request` = its Snakemake resource `gpu`) a device of its own:
    claim a slot and set CUDA_VISIBLE_DEVICES to it. Call before torch touches CUDA. Returns the GPU id, or
    None where nothing was done (no GPU asked for, a Slurm job, no GPU, or more jobs than GPUs: then the
    job shares, with a warning)."""
    if gpu_request < 1 or env.get("SLURM_JOB_ID"):
        return None
    gpus = visible_gpus(env)
    if len(gpus) <= 1:
        return None  # nothing to choose between
    gpu = claim_slot(gpus, lock_dir)
    if gpu is None:
        print(f"warning: all {len(gpus)} GPUs hold a job already (is --resources gpu larger than the number "
              "of GPUs?); this job shares them")
        return None
    env["CUDA_VISIBLE_DEVICES"] = gpu
    print(f"GPU slot: CUDA_VISIBLE_DEVICES={gpu}")
    return gpu
