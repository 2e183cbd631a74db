"""Integration test of the data stage: `snakemake data` on a synthetic mirror, and a corrupted mirror."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pae.files import artifacts
from synthetic import synthetic_env

CORRUPTED = "fashion-mnist/t10k-images-idx3-ubyte.gz"


def run_data(repo: Path, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "workflow" / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "config" / "test.yaml"), "--cores", "1", "data"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_data_stage_on_synthetic_mirror(repo_root, tmp_path):
    env = synthetic_env(tmp_path)
    work = tmp_path / "work"
    proc = run_data(repo_root, work, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    processed = work / "data" / "processed"
    with np.load(processed / "fmnist.npz") as npz:  # config/test.yaml: valid_size 40 of 64 training images
        shapes = {k: npz[k].shape for k in npz.files}
    assert shapes == {"x_train": (24, 1, 28, 28), "y_train": (24,), "x_valid": (40, 1, 28, 28),
                      "y_valid": (40,), "x_test": (32, 1, 28, 28), "y_test": (32,)}
    assert artifacts.load_split(processed / "ood" / "omniglot.npz", "x").shape == (60, 1, 28, 28)  # omniglot_count 60
    for name in ("mnist", "fmnist_hflip", "fmnist_vflip"):
        x = artifacts.load_split(processed / "ood" / f"{name}.npz", "x")
        assert x.shape == (32, 1, 28, 28) and x.dtype == np.uint8
    log = (work / "results" / "test" / "logs" / "fetch_raw" / CORRUPTED).with_suffix(".gz.log")
    assert f"copied from mirror {tmp_path / 'mirror' / CORRUPTED}" in log.read_text()
    assert list((work / "data").rglob("*.part")) == []


@pytest.mark.slow
def test_data_stage_fails_cleanly_on_corrupt_mirror(repo_root, tmp_path):
    env = synthetic_env(tmp_path)
    bad = tmp_path / "mirror" / CORRUPTED
    data = bytearray(gzip.decompress(bad.read_bytes()))
    data[100] ^= 0xFF
    bad.write_bytes(gzip.compress(bytes(data), mtime=0))  # still a valid gzip, one byte changed
    expected = json.loads(Path(env["PAE_DATA_CHECKSUMS"]).read_text())[CORRUPTED]
    work = tmp_path / "work"
    proc = run_data(repo_root, work, env)
    assert proc.returncode != 0
    log = (work / "results" / "test" / "logs" / "fetch_raw" / CORRUPTED).with_suffix(".gz.log").read_text()
    for text in (proc.stderr, log):
        assert CORRUPTED in text and expected in text
    assert "checksum mismatch" in log
    processed = work / "data" / "processed"
    for name in ("fmnist.npz", "ood/fmnist_hflip.npz", "ood/fmnist_vflip.npz"):
        assert not (processed / name).exists()
    assert not (work / "data" / "raw" / CORRUPTED).exists()
    assert list((work / "data").rglob("*.part")) == []
