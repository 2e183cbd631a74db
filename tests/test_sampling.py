"""pae.science.sampling: AE / VAE / PAE samples (Eq. 6), reconstructions, interpolations — shapes, ranges, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pae.files.artifacts import save_flow, save_model
from pae.science import sampling
from pae.science.catalog import SAMPLE_KINDS
from pae.science.flows import build_flow
from pae.science.images import ImageError
from pae.science.nets import VAE, AutoEncoder
from pae.stages import baselines as stage_baselines
from synthetic import flow_arch

K = 4
SHAPE = (1, 8, 8)
FLOW_CFG = {
    "realnvp_max_K": 8, "realnvp_depth": {4: 2}, "realnvp_hidden": 8, "nsf_layers": 1, "nsf_hidden": 8,
    "nsf_bins": 4, "nsf_tail_bound": 3.0, "standardize": True,
}


@pytest.fixture(scope="module")
def ae() -> AutoEncoder:
    torch.manual_seed(0)
    return AutoEncoder(K, SHAPE, norm="batch", spectral_norm=True, dropout=0.2)


@pytest.fixture(scope="module")
def flow():
    z = np.random.default_rng(0).normal(size=(128, K)).astype(np.float32) * 3 + 1
    f = build_flow(K, flow_arch(K, FLOW_CFG), z, seed=0)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    return f.eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(10, *SHAPE), dtype=np.uint8)


def check_images(x: np.ndarray, n: int) -> None:
    assert x.shape == (n, *SHAPE) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and x.min() >= -0.5 and x.max() <= 0.5


@pytest.mark.parametrize("kind", ["ae", "vae", "pae"])
def test_samples_shape_range_seeding(kind: str, ae, flow) -> None:
    def draw(seed: int, batch_size: int = 500) -> np.ndarray:
        if kind == "pae":
            return sampling.sample_pae(ae, flow, 7, seed, temperature=1.0, batch_size=batch_size)
        fn = sampling.sample_ae if kind == "ae" else sampling.sample_vae
        return fn(ae, 7, seed, batch_size=batch_size)

    a = draw(0)
    check_images(a, 7)
    assert np.array_equal(a, draw(0))
    assert np.allclose(a, draw(0, batch_size=3), atol=1e-6)  # batching does not change the noise
    assert not np.allclose(a, draw(1))


def test_pae_sample_is_decoded_flow_inverse(ae, flow) -> None:
    """Eq. 6: x = g(b⁻¹(u)) with u from the seeded generator, scaled by the temperature."""
    u = torch.randn(5, K, generator=torch.Generator().manual_seed(3)) * 0.7
    with torch.no_grad():
        ae.eval()
        expected = ae.decode(flow.inverse(u)).numpy()
    got = sampling.sample_pae(ae, flow, 5, 3, temperature=0.7)
    assert np.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        sampling.sample_pae(ae, flow, 5, 3, temperature=0.0)


def test_samplers_use_eval_mode_and_restore_it(ae) -> None:
    ae.train()
    a = sampling.sample_ae(ae, 4, 0)
    b = sampling.sample_ae(ae, 4, 0)
    assert np.array_equal(a, b)  # dropout off
    assert ae.training
    ae.eval()


def test_vae_samples_from_the_prior() -> None:
    torch.manual_seed(0)
    vae = VAE(K, SHAPE, norm="batch", spectral_norm=True, dropout=0.0).eval()
    x = sampling.sample_vae(vae, 6, 11)
    z = torch.randn(6, K, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        assert np.allclose(x, vae.decode(z).numpy(), atol=1e-6)


def test_reconstructions(ae, images) -> None:
    x = sampling.reconstructions(ae, images, 255, batch_size=4)
    check_images(x, len(images))
    xin = torch.from_numpy(images.astype(np.float32) / 255 - 0.5)
    with torch.no_grad():
        assert np.allclose(x, ae.decode(ae.encode(xin)).numpy(), atol=1e-5)
    with pytest.raises(ImageError, match="uint8"):
        sampling.reconstructions(ae, images.astype(np.float32), 255)


def test_interpolation_endpoints(ae, images) -> None:
    steps = 5
    path = sampling.interpolate(ae, images[0], images[1], steps, scale=255)
    check_images(path, steps)
    rec = sampling.reconstructions(ae, images[:2], 255)
    assert np.allclose(path[0], rec[0], atol=1e-5) and np.allclose(path[-1], rec[1], atol=1e-5)
    assert not np.allclose(path[2], path[0])
    # linear in z: the middle decodes the mean of the two encodings
    xin = torch.from_numpy(images[:2].astype(np.float32) / 255 - 0.5)
    with torch.no_grad():
        z = ae.encode(xin)
        mid = ae.decode(z.mean(0, keepdim=True)).numpy()[0]
    assert np.allclose(path[2], mid, atol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        sampling.interpolate(ae, images[0], images[1], 1)


@pytest.mark.parametrize("model", SAMPLE_KINDS)
def test_run_sample_model(model: str, ae, flow, images, tmp_path) -> None:
    save_model(tmp_path / "ae.pt", ae, {"seed": 0})
    save_flow(tmp_path / "flow.pt", flow, {})
    labels = np.zeros(len(images), np.int64)
    np.savez(tmp_path / "fmnist.npz", x_train=images, y_train=labels, x_valid=images, y_valid=labels,
             x_test=images, y_test=labels)
    inputs = {"model": str(tmp_path / "ae.pt"), "flow": str(tmp_path / "flow.pt"),
              "data": str(tmp_path / "fmnist.npz")}
    out = tmp_path / "samples" / f"{model}.npz"
    info = stage_baselines.run_sample_model(model, inputs, out, count=6, seed=0, scale=255, device="cpu")
    with np.load(out) as f:
        x = f["x"]
    assert x.shape == (6, *SHAPE) and x.dtype == np.uint8 and info["count"] == 6
    assert x.std() > 0
    if model == "recon":
        expected = sampling.reconstructions(ae, images[:6], 255)
        assert np.abs(x.astype(float) - (expected + 0.5) * 255).max() <= 1.0


def test_run_sample_model_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown sample model"):
        stage_baselines.run_sample_model("gan", {}, tmp_path / "x.npz", count=2, seed=0, scale=255, device="cpu")
    with pytest.raises(FileNotFoundError, match="ae.pt"):
        stage_baselines.run_sample_model("ae", {"model": str(tmp_path / "ae.pt")}, tmp_path / "x.npz", count=2,
                                  seed=0, scale=255, device="cpu")
    assert not (tmp_path / "x.npz").exists()
    assert sampling.sampling_seed(0) != 0 and sampling.sampling_seed(1) != sampling.sampling_seed(0)
