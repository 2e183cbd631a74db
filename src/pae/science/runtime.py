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
    """Pin torch's CPU threads to what the Snakemake rule declared (avoids oversubscription)."""

    torch.set_num_threads(max(1, int(threads)))

def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a torch Generator for explicit sampling."""

    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)
