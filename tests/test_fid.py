"""pae.science.features, pae.science.metrics (Fréchet), pae.stages.fid and pae.science.classifier: Fréchet distance, preprocessing, Inception path (offline, random weights),
the "unavailable" path, the domain classifier, and the fid_reference / fid_scores rules on tiny data."""

from __future__ import annotations

import json
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch

from pae.files import artifacts
from pae.science import features, metrics
from pae.files.artifacts import load_classifier, save_model
from pae.science.classifier import DomainClassifier, accuracy, fit_classifier
from pae.stages import fid as fid_stage
from pae.stages.fid import run_train_classifier

# --------------------------------------------------------------------------------------------------------
# Fréchet distance


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert metrics.frechet_distance(mu2, np.diag(v2), mu1, np.diag(v1)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_sqrtm_for_full_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_zero_on_identical_sets_and_safe_when_rank_deficient():
    feats = np.random.default_rng(2).normal(size=(10, 32))  # 10 samples in 32-d: singular covariance
    mu, cov = metrics.feature_statistics(feats)
    assert cov.shape == (32, 32) and np.linalg.matrix_rank(cov) < 32
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    other = metrics.feature_statistics(feats[:, ::-1] + 1.0)
    d = metrics.frechet_distance(mu, cov, *other)
    assert np.isfinite(d) and d > 0


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.feature_statistics(np.zeros((1, 4)))


# --------------------------------------------------------------------------------------------------------
# Preprocessing


def test_minmax_normalisation_per_image_and_grayscale_to_rgb():
    x = np.zeros((3, 1, 4, 4), np.uint8)
    x[0] = np.arange(16).reshape(4, 4) + 10  # 10..25
    x[1] = 7  # constant image
    x[2, 0, 0, 0] = 255
    out = features.normalize_images(x, "minmax")
    assert out.shape == (3, 3, 4, 4) and out.dtype == torch.float32
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.allclose(out[0, 0], (torch.arange(16.0).reshape(4, 4)) / 15)
    assert torch.equal(out[0, 0], out[0, 2])  # channel copies
    assert torch.all(out[1] == 0)
    assert out[2].max() == 1 and out[2].min() == 0
    plain = features.normalize_images(x, "none")
    assert torch.allclose(plain[0, 0], torch.from_numpy(x[0, 0]).float() / 255)
    with pytest.raises(ValueError, match="fid.normalize"):
        features.normalize_images(x, "zscore")


def test_reconstruction_error_definitions():
    x = np.zeros((2, 1, 2, 2))
    x_hat = np.zeros_like(x)
    x_hat[0] = 0.2  # image 0 off by 0.2 everywhere, image 1 exact
    e = features.reconstruction_errors(x, x_hat)
    assert e["mse_per_pixel"] == pytest.approx(0.02)
    assert e["rms_per_pixel"] == pytest.approx(np.sqrt(0.02))
    assert e["mae_per_pixel"] == pytest.approx(0.1)
    assert e["mean_image_rms"] == pytest.approx(0.1)
    assert e["mean_pixel_sigma"] == pytest.approx(np.sqrt(0.02))
    with pytest.raises(ValueError, match="shape"):
        features.reconstruction_errors(x, x_hat[:1])


# --------------------------------------------------------------------------------------------------------
# Inception: offline with a randomly initialised, same-shaped network; and the "unavailable" path


@pytest.fixture(scope="module")
def random_inception_state():
    """State dict of pytorch-fid's FID Inception structure, randomly initialised (no download)."""
    import pytorch_fid.inception as pfi
    import torchvision

    original = torchvision.models.inception.Inception3.load_state_dict
    torchvision.models.inception.Inception3.load_state_dict = lambda self, *a, **k: None
    original_url = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: {}  # no download; load_state_dict is a no-op here
    try:
        torch.manual_seed(0)
        net = pfi.fid_inception_v3()
    finally:
        torchvision.models.inception.Inception3.load_state_dict = original
        pfi.load_state_dict_from_url = original_url
    return net.state_dict()


@pytest.fixture
def fake_weights(tmp_path, monkeypatch, random_inception_state):
    path = tmp_path / artifacts.INCEPTION_FILENAME
    path.write_bytes(b"stand-in; the loader is mocked")
    monkeypatch.setattr(artifacts, "_read_state_dict", lambda p: random_inception_state)
    return path


def test_inception_features_offline(fake_weights):
    net, info = artifacts.load_inception(str(fake_weights))
    assert info["weights"] == str(fake_weights) and info["matches_pytorch_fid"] is False
    ext = features.InceptionExtractor(net, "minmax")
    k = np.random.default_rng(0).integers(0, 128, size=(2, 1, 28, 28))
    x = (2 * k).astype(np.uint8)
    feats = features.extract_features(x, ext, batch_size=2)
    assert feats.shape == (2, 2048) and np.all(np.isfinite(feats)) and np.all(feats >= 0)
    # min–max normalisation: an affine change of intensities (here x/2 + 10) leaves the features unchanged
    np.testing.assert_allclose(features.extract_features((k + 10).astype(np.uint8), ext, 1), feats, rtol=1e-5)


def test_build_extractors_unavailable_and_missing_file(tmp_path):
    ext, status, info = fid_stage.build_extractors(None, "unavailable: no weights here")
    assert ext == {} and status == {"inception": "unavailable: no weights here"}
    with pytest.raises(FileNotFoundError, match="fid.inception_weights"):
        artifacts.load_inception(str(tmp_path / "nope.pth"))


def test_failed_download_is_unavailable_not_an_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    ext, status, _ = fid_stage.build_extractors(None, "download")
    assert "inception" not in ext
    assert status["inception"] == "unavailable: weights download failed (URLError)"


def test_inception_weights_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    src = artifacts.inception_weights_source(None, allow_download=False)
    assert src == "unavailable: no Inception weights (offline)"
    assert artifacts.inception_weights_source(None, allow_download=True) == "download"
    assert artifacts.inception_weights_source("/some/file.pth") == "/some/file.pth"
    cached = tmp_path / "hub" / "checkpoints" / artifacts.INCEPTION_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert artifacts.inception_weights_source(None) == str(cached)
    assert artifacts.torch_hub_dir() == tmp_path / "hub" == __import__("pathlib").Path(torch.hub.get_dir())


# --------------------------------------------------------------------------------------------------------
# Domain classifier


def _toy_set(n: int, seed: int, hw: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: bright left half; class 1: bright right half (trivially separable)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 40, size=(n, 1, hw, hw)).astype(np.uint8)
    for i, c in enumerate(y):
        half = slice(0, hw // 2) if c == 0 else slice(hw // 2, hw)
        x[i, 0, :, half] += 200
    return x, y


def test_classifier_learns_separable_toy_set_and_round_trips(tmp_path):
    x, y = _toy_set(256, 0)
    xt, yt = _toy_set(64, 1)
    model, history = fit_classifier(x, y, epochs=3, seed=0, batch_size=32, log=lambda s: None)
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert accuracy(model, xt, yt) >= 0.95
    save_model(tmp_path / "c.pt", model, {"test_accuracy": 1.0})
    again, meta = load_classifier(tmp_path / "c.pt")
    ext1, ext2 = features.DomainExtractor(model), features.DomainExtractor(again)
    assert ext1.dim == 128 and meta["test_accuracy"] == 1.0
    np.testing.assert_array_equal(ext1(xt[:5]), ext2(xt[:5]))
    # same seed → same classifier
    model2, _ = fit_classifier(x, y, epochs=3, seed=0, batch_size=32, log=lambda s: None)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_classifier_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        fit_classifier(np.zeros((4, 1, 8, 8), np.uint8), np.array([0.5, 1, 0, 1]), 1, 0)
    with pytest.raises(ValueError, match="classifier_epochs"):
        fit_classifier(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 0, 1]), 0, 0)
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        load_classifier(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_text("garbage")
    with pytest.raises(ValueError, match="bad.pt"):
        load_classifier(tmp_path / "bad.pt")
    assert DomainClassifier((1, 8, 8), 3).features(torch.zeros(2, 1, 8, 8)).shape == (2, 128)


# --------------------------------------------------------------------------------------------------------
# The rules' library functions on a tiny synthetic dataset (28×28, an untrained AE)


@pytest.fixture
def tiny_run(tmp_path):
    from pae.files.artifacts import save_model
    from pae.science.nets import AutoEncoder

    x, y = _toy_set(60, 3, hw=28)
    xt, yt = _toy_set(30, 4, hw=28)
    data = tmp_path / "fmnist.npz"
    np.savez(data, x_train=x, y_train=y, x_valid=xt[:10], y_valid=yt[:10], x_test=xt, y_test=yt)
    torch.manual_seed(0)
    save_model(tmp_path / "ae.pt", AutoEncoder(4, (1, 28, 28), "batch", True, 0.2))
    samples = np.random.default_rng(5).integers(0, 256, size=(20, 1, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "ae_samples.npz", x=samples)
    np.savez(tmp_path / "pae_samples.npz", x=xt[:20])
    run_train_classifier(data, tmp_path / "clf.pt", tmp_path / "clf.json", epochs=1, seed=0, device="cpu")
    return tmp_path


def test_fid_reference_and_scores(tiny_run):
    t = tiny_run
    settings = {"batch_size": 16, "normalize": "minmax", "scale": 255, "count": 25, "device": "cpu",
                "dataset": "fmnist", "K": "4", "seed": "0"}
    unavailable = "unavailable: test has no weights"
    summary = fid_stage.run_fid_reference(t / "fmnist.npz", t / "clf.pt", unavailable, t / "ref.npz", settings)
    assert summary["inception_status"] == unavailable and summary["domain_floor_fid"] >= 0
    ref = artifacts.load_reference(t / "ref.npz")
    assert ref["n_reference"] == 30 and ref["domain"]["mu"].shape == (128,)

    ae = fid_stage.run_fid_scores("ae", t / "ae_samples.npz", t / "fmnist.npz", t / "ref.npz", t / "clf.pt",
                            unavailable, t / "ae.json", settings, network=t / "ae.pt")
    assert ae["sample_fid"]["inception"] == unavailable
    assert ae["sample_fid"]["domain"] > 0 and ae["reconstruction_fid"]["domain"] > 0
    assert ae["n_reconstructions"] == 25 and ae["reconstruction_error"]["n_images"] == 30
    err = ae["reconstruction_error"]
    assert err["rms_per_pixel"] == pytest.approx(np.sqrt(err["mse_per_pixel"]))
    assert json.loads((t / "ae.json").read_text()) == json.loads(json.dumps(ae))

    pae = fid_stage.run_fid_scores("pae", t / "pae_samples.npz", t / "fmnist.npz", t / "ref.npz", t / "clf.pt",
                             unavailable, t / "pae.json", settings, ae_scores=t / "ae.json")
    assert pae["reconstructions_of"] == "ae" and pae["reconstruction_fid"] == ae["reconstruction_fid"]
    # test images as "samples" are far closer to the test statistics than uniform noise
    assert pae["sample_fid"]["domain"] < ae["sample_fid"]["domain"]


def test_fid_scores_rejects_wrong_samples(tiny_run, tmp_path):
    t = tiny_run
    settings = {"batch_size": 16, "normalize": "minmax", "scale": 255, "count": 25, "device": "cpu"}
    fid_stage.run_fid_reference(t / "fmnist.npz", t / "clf.pt", "unavailable: x", t / "ref.npz", settings)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="bad.npz"):
        fid_stage.run_fid_scores("ae", tmp_path / "bad.npz", t / "fmnist.npz", t / "ref.npz", t / "clf.pt",
                           "unavailable: x", tmp_path / "out.json", settings, network=t / "ae.pt")
    assert not (tmp_path / "out.json").exists()
