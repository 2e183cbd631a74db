"""pae.science.train: settings, lr schedule, rotation, the fit loop (loss decreases, resume = uninterrupted run,
NaN guard), evaluation helpers (σ of Eq. 8 on a stub with a known residual) and the rule entry points."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from pae.files.artifacts import load_model
from pae.files.io import FileCheckpoint
from pae.science import train
from pae.science.nets import AutoEncoder
from pae.science.train import NonFiniteLossError, TrainSettings, ae_loss, fit, learning_rate, rotate_batch
from pae.science.vae import beta_vae_loss
from pae.settings import Settings
from pae.stages import train as stage_train

SHAPE = (1, 8, 8)


def structured_images(n: int, seed: int = 0) -> np.ndarray:
    """Blobs at random positions: compressible data a tiny AE can learn in a few steps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:8, 0:8]
    cy, cx = rng.uniform(1, 7, (2, n, 1, 1))
    amp = rng.uniform(120, 255, (n, 1, 1))
    img = amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    return img.round().astype(np.uint8)[:, None]


def small_model(seed: int = 0, dropout: float = 0.2, cls=AutoEncoder) -> nn.Module:
    torch.manual_seed(seed)
    return cls(3, SHAPE, norm="batch", spectral_norm=True, dropout=dropout)


PAPER = Settings.from_config({}).training("ae", 0)  # the paper's training settings (config/config.yaml)


def settings(**over) -> dict:
    base = dict(epochs=2, batch_size=16, lr=1e-3, augmentation="rotate", rot_degrees=5.0, seed=3,
                device="cpu", checkpoint_every=1, eval_batch_size=32)  # fmt: skip
    return asdict(PAPER) | base | over


# ---------------------------------------------------------------------------------------------- settings


def test_settings_validation_names_the_key() -> None:
    with pytest.raises(ValueError, match="unknown training setting.*'lr_sched'"):
        TrainSettings.coerce({"epochs": 1, "batch_size": 2, "lr": 1e-3, "lr_sched": "step"})
    with pytest.raises(ValueError, match="'lr' = -1"):
        TrainSettings.coerce(settings(lr=-1))
    with pytest.raises(ValueError, match="'lr_schedule'.*step, cosine"):
        TrainSettings.coerce(settings(lr_schedule="linear"))
    with pytest.raises(ValueError, match=r"\['epochs'\] are required"):
        TrainSettings.coerce({k: v for k, v in settings().items() if k != "epochs"})


def test_learning_rate_schedules() -> None:
    step = replace(PAPER, epochs=500, batch_size=64, lr=1e-3, lr_decay_at=0.8, lr_decay_factor=0.1)
    # paper: 1e-3, reduced to 1e-4 after 400 epochs (10 steps per epoch here)
    assert learning_rate(step, 0, 10) == 1e-3
    assert learning_rate(step, 3999, 10) == 1e-3
    assert learning_rate(step, 4000, 10) == pytest.approx(1e-4)
    cos = replace(PAPER, epochs=4, batch_size=64, lr=1e-3, lr_schedule="cosine", lr_decay_factor=0.1)
    assert learning_rate(cos, 0, 10) == pytest.approx(1e-3)
    assert learning_rate(cos, 20, 10) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(cos, 40, 10) == pytest.approx(1e-4)


# ---------------------------------------------------------------------------------------------- rotation


def test_rotate_batch() -> None:
    x = torch.rand(3, 1, 8, 8) - 0.5
    assert torch.allclose(rotate_batch(x, 0.0), x, atol=1e-6)
    r90 = rotate_batch(x, 90.0)
    assert any(torch.allclose(r90, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, -1))
    # one angle for the whole batch: rotating a batch = rotating each image alone
    parts = torch.cat([rotate_batch(x[i : i + 1], 17.0) for i in range(3)])
    assert torch.allclose(rotate_batch(x, 17.0), parts, atol=1e-6)
    # corners are filled with black (−0.5 after scaling), like the original's cval 0 on raw pixels
    black = torch.full((1, 1, 8, 8), -0.5)
    assert torch.allclose(rotate_batch(black, 30.0), black, atol=1e-6)
    white = torch.full((1, 1, 8, 8), 0.5)
    assert rotate_batch(white, 45.0)[0, 0, 0, 0] < 0.0


# ---------------------------------------------------------------------------------------------- fit


def test_training_lowers_the_loss() -> None:
    x = structured_images(256)
    model = small_model(dropout=0.0)
    before = train.reconstruction_mse(model, x, 255, 64, "cpu")
    history = fit(
        model, ae_loss, x, x[:64], settings(epochs=3, augmentation="none"), None, log=lambda s: None
    )
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert {"train_loss", "mse", "val_mse", "lr", "seconds"} <= set(history[0])
    assert history[-1]["val_mse"] < 0.5 * before
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert not model.training


def test_validate_every_skips_validation_passes_and_changes_no_weight() -> None:
    """validate_every = 2 over 3 epochs validates after epochs 2 and 3 only; dropout, rotation and dequantization
    draw the same random numbers, so the trained weights are those of per-epoch validation, bit for bit."""
    x = structured_images(128)
    runs = {}
    for every in (1, 2):
        model = small_model(dropout=0.2)
        history = fit(model, ae_loss, x, x[:32], settings(epochs=3, validate_every=every), None, log=lambda s: None)
        runs[every] = (model.state_dict(), [h["val_mse"] for h in history])
    (weights_1, val_1), (weights_2, val_2) = runs[1], runs[2]
    assert val_2[0] is None and val_2[1:] == val_1[1:] and None not in val_1
    assert all(torch.equal(weights_1[k], weights_2[k]) for k in weights_1)
    with pytest.raises(ValueError, match="'validate_every' = 0"):
        TrainSettings.coerce(settings(validate_every=0))


class Interrupt(Exception):
    pass


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_interrupted_training_resumes_to_the_same_state(tmp_path, kind) -> None:
    from pae.science.nets import VAE

    cls = AutoEncoder if kind == "ae" else VAE
    loss = ae_loss if kind == "ae" else beta_vae_loss(beta=2.0, capacity=3.0, capacity_steps=20, sigma=0.1)
    x = structured_images(96)
    cfg = settings(epochs=3, lr_schedule="cosine")

    reference = small_model(cls=cls)
    ref_hist = fit(reference, loss, x, x[:32], cfg, FileCheckpoint(tmp_path / "ref.ckpt"), log=lambda s: None)

    def kill_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise Interrupt

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Interrupt):
        fit(small_model(cls=cls), loss, x, x[:32], cfg, FileCheckpoint(ckpt), log=kill_after_first_epoch)
    assert ckpt.exists()

    lines: list[str] = []
    resumed = small_model(seed=99, cls=cls)  # different init: everything must come from the checkpoint
    hist = fit(resumed, loss, x, x[:32], cfg, FileCheckpoint(ckpt), log=lines.append)
    assert lines[0].startswith(f"resumed from {ckpt} after epoch 1/3")
    assert len(lines) == 3  # resume line + epochs 2 and 3
    _assert_same_state(resumed, reference)
    drop = {"seconds"}
    assert [{k: v for k, v in h.items() if k not in drop} for h in hist] == [
        {k: v for k, v in h.items() if k not in drop} for h in ref_hist
    ]


def test_checkpoint_with_other_settings_is_ignored(tmp_path) -> None:
    x = structured_images(64)
    ckpt = tmp_path / "run.ckpt"
    fit(small_model(), ae_loss, x, x[:16], settings(epochs=1, lr=3e-3), FileCheckpoint(ckpt), log=lambda s: None)
    lines: list[str] = []
    model = small_model()
    fit(model, ae_loss, x, x[:16], settings(epochs=1), FileCheckpoint(ckpt), log=lines.append)
    assert "differs in ['settings']" in lines[0] and "from scratch" in lines[0]
    reference = small_model()
    fit(reference, ae_loss, x, x[:16], settings(epochs=1), None, log=lambda s: None)
    _assert_same_state(model, reference)


def test_corrupt_checkpoint_is_reported(tmp_path) -> None:
    ckpt = tmp_path / "ae.ckpt"
    ckpt.write_bytes(b"garbage")
    x = structured_images(32)
    with pytest.raises(ValueError, match="ae.ckpt is unreadable.*delete it"):
        fit(small_model(), ae_loss, x, x, settings(epochs=1), FileCheckpoint(ckpt), log=lambda s: None)


def test_nan_guard_names_epoch_and_step(tmp_path) -> None:
    def exploding(model, xb, step):
        loss, metrics = ae_loss(model, xb, step)
        return (loss * float("nan") if step == 5 else loss), metrics

    x = structured_images(64)  # 4 steps per epoch → step 5 is batch 2 of epoch 2
    ckpt = tmp_path / "ae.ckpt"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 5 \(batch 2 of the epoch\).*ae\.lr"):
        fit(small_model(), exploding, x, x[:16], settings(epochs=3), FileCheckpoint(ckpt), log=lambda s: None)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # only the good epoch was checkpointed


def test_input_validation() -> None:
    x = structured_images(32)
    with pytest.raises(ValueError, match="x_train: expected uint8"):
        fit(small_model(), ae_loss, x.astype(np.float32), x, settings(), None)
    with pytest.raises(ValueError, match="batch_size' = 64 exceeds the 32 training images"):
        fit(small_model(), ae_loss, x, x, settings(batch_size=64), None)
    with pytest.raises(ValueError, match=r"x_valid: images have shape \(1, 4, 4\)"):
        fit(small_model(), ae_loss, x, x[:, :, :4, :4], settings(), None)


@pytest.mark.parametrize("over", [{"precision": "bf16"}, {"channels_last": True, "dequantize": False}])
def test_precision_and_memory_format_run(over) -> None:
    x = structured_images(32)
    history = fit(small_model(), ae_loss, x, x, settings(epochs=1, **over), None, log=lambda s: None)
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_mse"])


# ---------------------------------------------------------------------------------------------- evaluation


class ShiftModel(nn.Module):
    """A stub 'auto-encoder' z = x (flattened), x̂ = z + offset: residual known exactly."""

    def __init__(self, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("offset", offset)
        self.drop = nn.Dropout(0.5)  # must be inactive in evaluation

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, *SHAPE) + self.offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def test_encode_splits_sigma_and_mse_on_known_residual() -> None:
    offset = torch.linspace(-0.1, 0.2, 64).view(1, 8, 8)
    stub = ShiftModel(offset).train()
    splits = {"train": structured_images(20, seed=1), "valid": structured_images(37), "test": structured_images(9, 2)}
    for bs in (5, 500):
        latents, sigma, mse = train.encode_splits(stub, splits, 255, bs, "cpu")
        assert sigma.shape == SHAPE and sigma.dtype == np.float32
        np.testing.assert_allclose(sigma, offset.abs().numpy(), rtol=1e-5, atol=1e-6)
        assert set(mse) == {"valid", "test"}
        assert mse["test"] == pytest.approx(float((offset**2).mean()), rel=1e-5)
        assert mse["test"] == pytest.approx(train.reconstruction_mse(stub, splits["test"], 255, bs, "cpu"), rel=1e-12)
        for split, x in splits.items():  # eval mode (dropout off), no dequantization
            np.testing.assert_allclose(latents[f"z_{split}"], x.reshape(len(x), -1) / 255.0 - 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="'valid' split"):
        train.encode_splits(stub, {"train": splits["train"]}, 255, 5, "cpu")


# ---------------------------------------------------------------------------------------------- entry points


def write_dataset(path, n_train: int = 64, n_valid: int = 32, n_test: int = 24) -> None:
    np.savez(
        path,
        x_train=structured_images(n_train, 0), y_train=np.zeros(n_train, np.uint8),
        x_valid=structured_images(n_valid, 1), y_valid=np.zeros(n_valid, np.uint8),
        x_test=structured_images(n_test, 2), y_test=np.zeros(n_test, np.uint8),
    )  # fmt: skip


def test_train_ae_and_encode_ae(tmp_path) -> None:
    data = tmp_path / "toy.npz"
    write_dataset(data)
    run = tmp_path / "run"
    net = {"norm": "affine", "spectral_norm": True, "dropout": 0.2}
    history = stage_train.run_train_ae(
        data,
        run / "ae.pt",
        run / "ae_history.json",
        run / "ae.ckpt",
        3,
        net,
        TrainSettings(**settings(epochs=2)),
        log=lambda s: None,
    )
    assert not (run / "ae.ckpt").exists()
    assert json.loads((run / "ae_history.json").read_text()) == history
    model, meta = load_model(run / "ae.pt")
    assert meta["latent_dim"] == 3 and meta["epochs"] == 2 and meta["settings"]["epochs"] == 2
    assert model.init_kwargs["norm"] == "affine"

    metrics = stage_train.run_encode_ae(run / "ae.pt", data, run / "ae_stats.npz", run / "ae_metrics.json", 255, 16, "cpu",
                              log=lambda s: None)  # fmt: skip
    with np.load(run / "ae_stats.npz") as stats:
        assert stats["z_train"].shape == (64, 3) and stats["z_valid"].shape == (32, 3)
        assert stats["z_test"].shape == (24, 3) and stats["sigma"].shape == SHAPE
        assert metrics["mean_sigma2"] == pytest.approx(float(np.mean(stats["sigma"].astype(np.float64) ** 2)))
        np.testing.assert_allclose(
            stats["z_test"], train.encode(model, structured_images(24, 2), 255, 7, "cpu"), rtol=1e-5
        )
    assert metrics["val_mse"] == pytest.approx(history[-1]["val_mse"], rel=1e-5)
    assert json.loads((run / "ae_metrics.json").read_text()) == pytest.approx(metrics)
    assert metrics["test_mse"] > 0 and metrics["latent_dim"] == 3


def test_train_ae_missing_data(tmp_path) -> None:
    with pytest.raises(Exception, match="missing.npz does not exist"):
        stage_train.run_train_ae(tmp_path / "missing.npz", tmp_path / "ae.pt", tmp_path / "h.json", tmp_path / "ae.ckpt", 3,
                       {}, TrainSettings(**settings()), log=lambda s: None)  # fmt: skip
    assert not (tmp_path / "ae.pt").exists()
