"""Any dataset through config alone: a user's npz and image folder train and score (Table 2 with OoD sets
chosen in config), the reverse direction (MNIST in-distribution, config/reverse.yaml) and CelebA with Fig. 4
(config/celeba.yaml) on synthetic files, end to end through snakemake with config/test.yaml's tiny settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pae.files.artifacts import load_split
from synthetic import class_images, run, snakemake_cmd, synthetic_env, write_celeba, write_checksums


def _overlay(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(repo_root: Path, work: Path, env: dict, target: str, *configs: Path, dry: bool = False):
    cmd = snakemake_cmd(repo_root, work, *(["-n"] if dry else []), target)
    cmd += [str(c) for c in configs]  # after config/test.yaml: later files win
    proc = run(cmd, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


@pytest.mark.slow
def test_user_npz_and_folder_train_and_score_through_config(repo_root, tmp_path):
    """`datasets` names an npz and an image folder; Table 2 trains on the npz and scores the folder and a
    flip of the npz; `all` plans an AE + flow for both datasets."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 160)
    np.savez(tmp_path / "mine.npz", x=class_images(labels)[:, None], y=labels)
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    for i in range(50):  # a flat folder of 28×28 grayscale PNGs: discs of varying radius
        yy, xx = np.mgrid[:28, :28]
        disc = ((yy - 14) ** 2 + (xx - 14) ** 2 < (4 + i % 9) ** 2) * 220
        Image.fromarray(disc.astype(np.uint8)).save(shapes / f"s{i:03d}.png")
    overlay = _overlay(tmp_path / "user.yaml", {
        "outdir": "results/user",
        "datasets": {
            "mine": {"kind": "npz", "path": str(tmp_path / "mine.npz"), "split": {"valid": 0.25, "test": 0.2}},
            "shapes": {"kind": "folder", "path": str(shapes), "channels": 1, "split": {"valid": 0.2, "test": 0.4}},
        },
        "ood": {"in_dataset": "mine", "fig5_set": "shapes", "rows": ["density", "recon", "eq12"],
                "sets": [{"name": "shapes", "dataset": "shapes", "label": "discs"},
                         {"name": "mine_vflip", "dataset": "mine", "transform": "vflip"}]},
    })
    env = dict(os.environ)
    work = tmp_path / "work"
    _snakemake(repo_root, work, env, "table2", overlay)
    out = work / "results" / "user"
    table = pd.read_csv(out / "table2.csv")
    assert list(dict.fromkeys(table["column"])) == ["discs", "mine_vflip"]
    assert list(dict.fromkeys(table["row"])) == ["PAE density", "AE reconstruction error", "Eq. 12"]
    assert pd.to_numeric(table["ours"]).between(0, 1).all() and table["paper"].isna().all()
    assert "models trained on mine" in (out / "table2.md").read_text()
    processed = work / "data" / "processed"
    assert load_split(processed / "mine.npz", "test").shape == (32, 1, 28, 28)  # 20 % of 160
    np.testing.assert_array_equal(load_split(processed / "ood" / "mine_vflip.npz", "x"),
                                  load_split(processed / "mine.npz", "test")[..., ::-1, :])
    assert load_split(processed / "ood" / "shapes.npz", "x").shape == (20, 1, 28, 28)  # 40 % of 50
    plan = _snakemake(repo_root, work, env, "all", overlay, dry=True).stdout
    for dataset in ("mine", "shapes"):
        assert f"results/user/{dataset}/K4/seed0/flow.pt" in plan and f"results/user/{dataset}/K8/seed0/flow.pt" in plan


@pytest.mark.slow
def test_reverse_table2_on_synthetic_files(repo_root, tmp_path):
    """config/reverse.yaml: MNIST in-distribution against F-MNIST, Omniglot and flipped MNIST; no paper values."""
    env = synthetic_env(tmp_path, n_train=232, n_test=64)
    overlay = _overlay(tmp_path / "rows.yaml", {"ood": {"rows": ["density", "recon"]}})
    work = tmp_path / "work"
    _snakemake(repo_root, work, env, "table2", repo_root / "config" / "reverse.yaml", overlay)
    out = work / "results" / "reverse"
    table = pd.read_csv(out / "table2.csv")
    assert list(dict.fromkeys(table["column"])) == ["F-MNIST", "OMNIGLOT", "MNIST-hflip", "MNIST-vflip"]
    assert pd.to_numeric(table["ours"]).between(0, 1).all() and table["paper"].isna().all()
    markdown = (out / "table2.md").read_text()
    assert "models trained on mnist" in markdown and "VIB (Choi et al. 2018)" not in markdown
    assert (work / "results" / "reverse" / "mnist" / "K8" / "seed0" / "flow.pt").is_file()


@pytest.mark.slow
def test_celeba_chain_and_fig4_on_synthetic_jpegs(repo_root, tmp_path):
    """A CelebA-like mirror (40 JPEGs of 178×218 and a partition file, checksummed) through preprocessing
    (crop + resize), a few training steps of the 3-channel AE and its flow, the FIDs and Fig. 4."""
    mirror = tmp_path / "mirror"
    write_celeba(mirror / "celeba", splits=(24, 8, 8))
    env = dict(os.environ, PAE_DATA_MIRROR=str(mirror),
               PAE_DATA_CHECKSUMS=str(write_checksums(mirror, tmp_path / "checksums.json")))
    overlay = _overlay(tmp_path / "small.yaml", {
        "data": {"celeba_size": 32},
        "ae": {"latent_dims": [4], "batch_size": 8},
        "flow": {"realnvp_depth": {4: 2}},
        "samples": {"count": 16},
        "fig4": {"K": 4, "n_samples": 8, "n_pairs": 2, "n_steps": 4},
    })
    work = tmp_path / "work"
    _snakemake(repo_root, work, env, "fig4", repo_root / "config" / "celeba.yaml", overlay)
    x = load_split(work / "data" / "processed" / "celeba.npz", "train")
    assert x.shape == (24, 3, 32, 32) and x.dtype == np.uint8
    out = work / "results" / "celeba"
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"fig4.{ext}").stat().st_size > 1000
    fid = json.loads((out / "celeba" / "K4" / "seed0" / "fid" / "pae.json").read_text())
    # offline: no Inception weights, and CelebA has no labels for a domain classifier
    assert set(fid["sample_fid"]) == {"inception"} and fid["sample_fid"]["inception"].startswith("unavailable")
