"""Shared fixtures: small thread count, paths to the repository and the optional real data mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_mirror() -> Path:
    """The offline mirror of the official files (PAE_DATA_MIRROR, or ../shared/data); skip when absent."""
    candidates = [os.environ.get("PAE_DATA_MIRROR"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "fashion-mnist").is_dir():
            return Path(c)
    pytest.skip("no real data mirror (set PAE_DATA_MIRROR)")
