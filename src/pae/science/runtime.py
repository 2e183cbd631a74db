"""Where and how torch runs: the device, the CPU threads and the seeds (no files)."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' fails clearly when there is no GPU."""

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)

def set_threads(threads: int) -> None:
    """Pin torch's CPU threads to what the Snakemake rule declared (avoids oversubscription), and keep freed
    buffers in the process (`keep_freed_buffers`)."""

    torch.set_num_threads(max(1, int(threads)))
    keep_freed_buffers()


#: glibc mallopt parameters (malloc.h) and the values `keep_freed_buffers` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest; activations of a 500-image batch stay below it
_TRIM_THRESHOLD = 256 * 2**20


def keep_freed_buffers() -> bool:
    """Serve buffers up to 32 MB from the heap and keep up to 256 MB of freed heap, on glibc. By default glibc
    hands each large tensor back to the kernel when it is freed and faults its pages in again for the next
    batch, which costs evaluation passes a sizeable share of their time in the kernel
    (benchmarks/keep_freed_buffers.py measures it). Returns whether the settings took (False off glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a torch Generator for explicit sampling."""

    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)
