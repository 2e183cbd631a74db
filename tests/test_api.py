"""Public API (pae.PAE, pae.VAE, pae.BetaVAE): the documented example, defaults, devices, inputs, save/load."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import pae
from docblocks import doc_block
from pae.config import ConfigError

TINY = {"ae": {"epochs": 1, "batch_size": 16}, "flow": {"epochs": 1}}


def _images(n: int, seed: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=(n, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def fitted():
    """One tiny PAE for the tests that only read it; records the device each stage was given."""
    import pae.science.flows
    import pae.science.train

    seen: dict[str, str] = {}
    fit, train_flow = pae.science.train.fit, pae.science.flows.train_flow

    def spy_fit(model, loss_fn, xt, xv, settings, *args, **kwargs):
        seen["ae"] = str(settings.device)
        return fit(model, loss_fn, xt, xv, settings, *args, **kwargs)

    def spy_flow(flow, zt, zv, training, seed, device, log=print):
        seen["flow"] = str(device)
        return train_flow(flow, zt, zv, training, seed=seed, device=device, log=log)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pae.science.train, "fit", spy_fit)
        mp.setattr(pae.science.flows, "train_flow", spy_flow)
        model = pae.PAE(latent_dim=4, **TINY, device="cpu", verbose=False).fit(_images(64))
    return model, seen


def test_library_example_runs_as_documented(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(doc_block("library"), "docs/library.md[library]", "exec"), namespace)  # noqa: S102
    samples, scores, log_p, model = (namespace[k] for k in ("samples", "scores", "log_p", "model"))
    assert samples.shape == (16, 1, 28, 28) and samples.dtype == np.float32
    assert 0.0 <= samples.min() and samples.max() <= 1.0
    assert scores.shape == (16,) and np.isfinite(scores).all()
    assert log_p.shape == (16,) and np.isfinite(log_p).all()
    assert isinstance(model, pae.PAE)  # the reloaded model
    for name in ("ae.pt", "flow.pt", "ae_stats.npz", "model.json"):
        assert (tmp_path / "runs" / "example" / name).is_file()
    # the reloaded model gives the scores the trained one gave
    np.testing.assert_allclose(model.score(namespace["x_test"], kind="eq12"), scores, rtol=1e-6)
    np.testing.assert_allclose(model.log_density(namespace["x_test"]), log_p, rtol=1e-6)
    inpainted = namespace["inpainted"]  # PAE.posterior: the left 14 columns filled in, with uncertainty
    assert inpainted.map.shape == (4, 1, 28, 28) and inpainted.samples.shape == (4, 32, 1, 28, 28)
    assert inpainted.hidden[..., :14].all() and not inpainted.hidden[..., 14:].any()
    assert (inpainted.lo <= inpainted.hi).all() and (inpainted.std > 0).all()


def test_defaults_are_config_yaml(repo_root):
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    assert pae.paper_defaults() == config
    model = pae.PAE(device="cpu")
    for section in ("ae", "flow", "data", "ood"):
        assert model.settings[section] == config[section], section
    assert model.latent_dim == config["fid"]["table1_K"]
    assert pae.VAE(device="cpu").latent_dim == config["vae"]["latent_dim"]
    assert pae.VAE(device="cpu").settings["ae"]["epochs"] == config["vae"]["epochs"]
    assert pae.BetaVAE(device="cpu").objective == config["vae"]["models"]["betavae"]
    # an override changes only its key
    tuned = pae.PAE(ae={"lr": 1e-4}, flow={"realnvp_depth": {4: 2}}, device="cpu")
    assert tuned.settings["ae"]["lr"] == 1e-4 and tuned.settings["ae"]["epochs"] == config["ae"]["epochs"]
    assert tuned.settings["flow"]["realnvp_depth"][4] == 2 and tuned.settings["flow"]["realnvp_depth"][32] == 18


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ae": {"epoch": 5}}, "'epoch'"),
        ({"ae": {"lr": -1.0}}, "ae.lr"),
        ({"flow": {"epochs": 0}}, "flow.epochs"),
        ({"device": "gpu"}, "config key 'device'"),
        ({"ae": 5}, "must be a mapping"),
    ],
)
def test_bad_settings_name_the_key(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        pae.PAE(**kwargs)
    message = str(err.value)
    assert needle in message
    assert "ae=, flow=" in message or "must be a mapping" in message  # the fix, in the API's terms


def test_both_stages_run_on_the_one_device(fitted):
    model, seen = fitted
    assert seen == {"ae": str(model.device), "flow": str(model.device)}
    ae_device = {p.device for p in model.ae.parameters()}
    flow_device = {t.device for t in [*model.flow.parameters(), *model.flow.buffers()]}
    assert ae_device == flow_device == {model.device}


def test_missing_cuda_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(ValueError, match="no such CUDA device"):
        pae.PAE(device="cuda:1")


@pytest.mark.parametrize(
    ("x", "needle"),
    [
        (np.zeros((4, 28, 28, 3), np.uint8), "channels-last"),
        (np.full((4, 1, 28, 28), 200.0), "x / 255"),
        (np.full((4, 1, 28, 28), -0.5), "[0, 1]"),
        (np.zeros((4, 1, 28, 28), np.int64), "x.astype(np.uint8)"),
        (np.zeros((4, 1, 30, 30), np.uint8), "multiples of 4"),
        (np.zeros((28, 28), np.uint8), "(N, H, W)"),
        (np.zeros((0, 1, 28, 28), np.uint8), "no images"),
        (np.full((4, 1, 28, 28), np.nan), "NaN"),
    ],
)
def test_bad_images_raise_one_clear_error(x, needle):
    with pytest.raises(ValueError) as err:
        pae.as_images(x, "x_train")
    assert needle in str(err.value) and str(err.value).startswith("x_train:")


def test_images_are_converted_like_the_pipeline_stores_them():
    x = np.random.default_rng(0).random((3, 28, 28))
    u8 = pae.as_images(x)
    assert u8.shape == (3, 1, 28, 28) and u8.dtype == np.uint8
    np.testing.assert_array_equal(u8[:, 0], np.rint(x * 255).astype(np.uint8))
    t = torch.from_numpy(u8)
    np.testing.assert_array_equal(pae.as_images(t), u8)


def test_fit_on_too_few_images_says_how_to_fix():
    with pytest.raises(ValueError, match=r"ae=\{'batch_size'"):
        pae.PAE(latent_dim=4, device="cpu").fit(_images(20))


def test_sample_is_seeded_and_scores_have_their_documented_meaning(fitted):
    model, _ = fitted
    a, b = model.sample(6, seed=3), model.sample(6, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.sample(6, seed=4))
    x = _images(8, seed=1)
    z = model.encode(x)
    assert z.shape == (8, 4)
    np.testing.assert_allclose(model.log_density(x), model.flow.log_prob(torch.from_numpy(z)).detach().double().numpy(),
                               rtol=1e-5)
    recon = model.reconstruct(x)
    sse = (((recon - x[:, None] / 255.0).astype(np.float64)) ** 2).reshape(8, -1).sum(1)
    np.testing.assert_allclose(-model.score(x, kind="recon"), sse, rtol=1e-4)
    assert model.score(x, kind="eq12_map", map_steps=3).shape == (8,)
    with pytest.raises(ValueError, match="unknown score kind"):
        model.score(x, kind="elbo")
    with pytest.raises(ValueError, match="do not fit this model"):
        model.score(np.zeros((2, 1, 32, 32), np.uint8))


def test_a_workflow_run_folder_loads(fitted, tmp_path):
    model, _ = fitted
    folder = model.save(tmp_path / "run")
    (folder / "model.json").unlink()  # the workflow writes ae.pt, flow.pt, ae_stats.npz only
    loaded = pae.load(folder, device="cpu")
    x = _images(5, seed=2)
    assert isinstance(loaded, pae.PAE) and loaded.sigma is not None
    np.testing.assert_allclose(loaded.score(x, kind="eq12"), model.score(x, kind="eq12"), rtol=1e-6)


def test_verbose_false_prints_nothing(capfd):
    import pae.science.train

    bar = pae.science.train.tqdm
    pae.PAE(latent_dim=4, **TINY, device="cpu", verbose=False).fit(_images(64))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert pae.science.train.tqdm is bar  # nothing patched: the loop's own progress switch


def test_messages_are_logging_records_and_progress_is_a_switch(capfd, caplog, monkeypatch):
    """Messages are INFO records of logger "pae.api" (on stderr too when verbose); progress=False turns the
    training loop's tqdm bar off through its own switch."""
    import logging

    import pae.science.train

    seen = []
    bar = pae.science.train.tqdm

    def spy(*args, **kwargs):
        seen.append(kwargs.get("disable"))
        return bar(*args, **kwargs)

    monkeypatch.setattr(pae.science.train, "tqdm", spy)
    with caplog.at_level(logging.INFO, logger="pae"):
        pae.PAE(latent_dim=4, **TINY, device="cpu", verbose=True, progress=False).fit(_images(64))
    messages = [r.getMessage() for r in caplog.records if r.name == "pae.api"]
    assert any(m.startswith("AutoEncoder K=4") for m in messages) and any("epoch 1/1" in m for m in messages)
    assert "AutoEncoder K=4" in capfd.readouterr().err and seen == [True]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pae"):
        pae.PAE(latent_dim=4, **TINY, device="cpu", verbose=False, progress=True).fit(_images(64))
    assert any("epoch 1/1" in r.getMessage() for r in caplog.records)  # records even when not verbose
    assert capfd.readouterr().err.count("AutoEncoder K=4") == 0 and seen == [True, False]
    assert pae.PAE(device="cpu", verbose=True).progress and not pae.PAE(device="cpu", verbose=False).progress


def test_laplace_score_of_the_api(fitted):
    """kind="laplace" (Eq. 11 at the MAP z') loads the Eq. 8 σ like the Eq. 12 kinds."""
    model, _ = fitted
    x = _images(6, seed=3)
    s = model.score(x, kind="laplace", map_steps=2)
    assert s.shape == (6,) and np.isfinite(s).all()
    saved_sigma, model.sigma = model.sigma, None
    try:
        with pytest.raises(RuntimeError, match="pixel-wise σ of Eq. 8"):
            model.score(x, kind="laplace", map_steps=2)
    finally:
        model.sigma = saved_sigma


def test_an_auto_encoder_only_run_folder_loads_for_reconstruction(fitted, tmp_path):
    """A run folder with ae.pt (+ ae_stats.npz) but no flow.pt: encode, decode, reconstruct and recon scores
    work; sampling and the flow's scores say what is missing."""
    model, _ = fitted
    folder = model.save(tmp_path / "ae_only")
    (folder / "flow.pt").unlink()
    (folder / "model.json").unlink()
    loaded = pae.load(folder, device="cpu", verbose=False)
    assert isinstance(loaded, pae.PAE) and loaded.flow is None
    x = _images(5, seed=4)
    np.testing.assert_allclose(loaded.score(x, kind="recon"), model.score(x, kind="recon"), rtol=1e-6)
    np.testing.assert_allclose(loaded.encode(x), model.encode(x), rtol=1e-6)
    assert loaded.decode(loaded.encode(x)).shape == (5, 1, 28, 28)
    with pytest.raises(RuntimeError, match="sample\\(\\) needs the flow.*auto-encoder-only"):
        loaded.sample(4)
    with pytest.raises(RuntimeError, match="kind='density'.*needs the flow"):
        loaded.score(x, kind="density")
    resaved = loaded.save(tmp_path / "again")
    assert (resaved / "ae.pt").is_file() and not (resaved / "flow.pt").exists()
    (folder / "ae.pt").unlink()
    with pytest.raises(FileNotFoundError, match="has no ae.pt"):
        pae.load(folder, device="cpu")


@pytest.mark.parametrize("cls", [pae.VAE, pae.BetaVAE])
def test_vae_baselines_have_the_same_shape(cls, tmp_path):
    model = cls(latent_dim=4, ae={"epochs": 1, "batch_size": 16}, device="cpu", verbose=False).fit(_images(64))
    x = _images(6, seed=1)
    assert model.sample(5, seed=0).shape == (5, 1, 28, 28)
    assert model.sample(5, seed=0, temperature=0.5).shape == (5, 1, 28, 28)
    for kind in ("elbo", "iwae", "recon"):
        s = model.score(x, kind=kind, samples=4)
        assert s.shape == (6,) and np.isfinite(s).all()
    loaded = pae.load(model.save(tmp_path / cls.model_name), device="cpu")
    assert type(loaded) is cls
    assert json.loads((tmp_path / cls.model_name / "model.json").read_text())["model"] == cls.model_name
    np.testing.assert_allclose(loaded.score(x, kind="iwae", samples=4, seed=1),
                               model.score(x, kind="iwae", samples=4, seed=1), rtol=1e-6)


def test_import_pae_does_not_load_torch():
    code = "import sys, pae; pae.PAE; print('torch' in sys.modules); pae.PAE(device='cpu'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


# ------------------------------------------------------------------------------------------------ posterior


class _LinearAE(torch.nn.Module):
    """A linear-Gaussian auto-encoder: decoder g(z) = W z + c (probabilistic PCA), encoder its pseudo-inverse."""

    def __init__(self, decoder) -> None:
        super().__init__()
        self.decoder = decoder
        self.latent_dim = decoder.W.shape[1]
        self.image_shape = (1, 4, 4)

    def decode(self, z):
        return self.decoder(z)

    def encode(self, x):
        return (x.flatten(1) - self.decoder.c) @ torch.linalg.pinv(self.decoder.W).T


@pytest.mark.parametrize("space", ["u", "z"])
def test_posterior_of_a_linear_gaussian_model_is_the_closed_form(space):
    """PAE.posterior on probabilistic PCA (linear decoder, affine flow u = A(z − m), or the N(0, I) z prior):
    the posterior is Gaussian with precision I + BᵀDB (B = W A⁻¹, D = observed / (σ² + σ_noise²)); the MAP, the
    Laplace covariance, the samples and the per-pixel predictive must match it."""
    from scipy.stats import norm

    from test_posterior import AffineFlow, ppca

    dec, flow, sigma = ppca(3, dtype=torch.float32)
    if space == "z":
        flow = AffineFlow(torch.eye(3), torch.zeros(3))  # only to build B; the z-space posterior has no flow
    model = pae.PAE(latent_dim=3, device="cpu", verbose=False)
    model.net, model.flow, model.sigma, model.image_shape = _LinearAE(dec), flow, sigma.numpy(), (1, 4, 4)
    x8 = np.random.default_rng(0).integers(60, 200, size=(2, 1, 4, 4), dtype=np.uint8)
    st = {"random_starts": 2, "encoder_start": True, "lr_stages": [0.1, 0.01, 0.001], "steps_per_stage": 400,
          "anneal_max": None, "n_samples": 4000}
    out = model.posterior(x8, mask="left:2", noise_sigma=0.05, space=space, settings=st, level=0.9, seed=1)
    assert out.hidden[..., :2].all() and not out.hidden[..., 2:].any()
    res = out.result
    W, c = dec.W.double(), dec.c.double()
    A, m = flow.A.double(), flow.m.double()
    B = W @ torch.linalg.inv(A)
    var = sigma.double().reshape(-1) ** 2 + 0.05**2
    for i in range(2):
        x_tilde = torch.as_tensor(x8[i].reshape(-1) / 255.0 - 0.5)
        d = (~torch.as_tensor(out.hidden[i].reshape(-1))).double() / var
        prec = torch.eye(3, dtype=torch.float64) + B.T @ (d[:, None] * B)
        cov = torch.linalg.inv(prec)
        mean = cov @ (B.T @ (d * (x_tilde - c - W @ m)))
        np.testing.assert_allclose(res.map_u[i].double().numpy(), mean.numpy(), atol=2e-4)
        top = int(res.mixture.weights[i].argmax())
        assert res.mixture.weights[i, top] > 0.999  # one mode
        np.testing.assert_allclose(res.mixture.covariance()[i, top].double().numpy(), cov.numpy(), rtol=2e-3,
                                   atol=1e-6)
        su = res.samples_u[i].double().numpy()
        np.testing.assert_allclose(su.mean(0), mean.numpy(), atol=4 * np.sqrt(cov.diag().max().item() / 4000))
        np.testing.assert_allclose(np.cov(su.T), cov.numpy(), atol=0.1 * cov.diag().max().item())
        # per-pixel predictive g(z) + σ ε: Gaussian, mean B μ + c + W m, variance diag(B Σ Bᵀ) + σ²
        pm = (B @ mean + c + W @ m).numpy()
        psd = np.sqrt((B @ cov @ B.T).diag().numpy() + sigma.double().reshape(-1).numpy() ** 2)
        np.testing.assert_allclose(out.map[i].reshape(-1), pm + 0.5, atol=3e-4)
        np.testing.assert_allclose(out.std[i].reshape(-1), psd, rtol=0.05)
        np.testing.assert_allclose(out.hi[i].reshape(-1), np.clip(pm + 0.5 + norm.ppf(0.95) * psd, 0, 1),
                                   atol=0.06 * psd.max())  # the intervals are clipped to [0, 1]
        np.testing.assert_allclose(out.lo[i].reshape(-1), np.clip(pm + 0.5 - norm.ppf(0.95) * psd, 0, 1),
                                   atol=0.06 * psd.max())
    assert out.samples.shape == (2, 4000, 1, 4, 4) and out.level == 0.9


def test_posterior_bad_arguments_say_what_to_pass(fitted):
    model, _ = fitted
    x = _images(2, seed=5)
    with pytest.raises(ValueError, match="mask 'top:3'"):
        model.posterior(x, mask="top:3")
    with pytest.raises(ValueError, match="does not fit the images"):
        model.posterior(x, mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="settings: unknown key"):
        model.posterior(x, settings={"steps": 3})
    with pytest.raises(ValueError, match="space must be one of"):
        model.posterior(x, space="w")
