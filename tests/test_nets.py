"""pae.science.nets: infoGAN encoder/decoder shapes, output range, norms, init, VAE posterior, save/load, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pae.files.artifacts import load_model, save_model
from pae.science.nets import VAE, AutoEncoder, FixedAffineNorm, SNConv2d, SNLinear, forward_flops


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 64, 64)])
@pytest.mark.parametrize("norm", ["batch", "affine"])
def test_shapes_and_output_range(image_shape: tuple[int, int, int], norm: str) -> None:
    torch.manual_seed(0)
    model = AutoEncoder(6, image_shape, norm=norm, spectral_norm=True, dropout=0.2)
    x = torch.rand(3, *image_shape) - 0.5
    z = model.encode(x)
    assert z.shape == (3, 6)
    x_hat = model(x)
    assert x_hat.shape == (3, *image_shape)
    # decoder output is sigmoid − 0.5: inside (−0.5, 0.5) even for latents far from the data
    model.eval()
    with torch.no_grad():
        far = model.decode(torch.randn(4, 6) * 3)
    assert far.shape == (4, *image_shape)
    assert torch.all(far > -0.5) and torch.all(far < 0.5)
    # the intermediate feature maps follow the original's 28→14→7 / 64→32→16 sizes
    h = image_shape[1] // 4
    assert model.encoder.net[6](model.encoder.net[:6](x)).shape == (3, 128 * h * h)


def test_layer_layout_norm_dropout_spectral() -> None:
    model = AutoEncoder(4, (1, 28, 28), norm="affine", spectral_norm=True, dropout=0.3)
    enc, dec = list(model.encoder.net), list(model.decoder.net)
    assert [type(m).__name__ for m in enc] == [
        "SNConv2d", "LeakyReLU", "SNConv2d", "FixedAffineNorm", "Dropout", "LeakyReLU",
        "Flatten", "SNLinear", "FixedAffineNorm", "Dropout", "LeakyReLU", "SNLinear",
    ]  # fmt: skip
    assert [type(m).__name__ for m in dec] == [
        "Linear", "FixedAffineNorm", "ReLU", "Linear", "FixedAffineNorm", "ReLU", "Dropout", "Unflatten",
        "ConvTranspose2d", "FixedAffineNorm", "ReLU", "Dropout", "ConvTranspose2d",
    ]  # fmt: skip
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    assert enc[3].num_features == 128 and dec[4].num_features == 128 * 7 * 7
    plain = AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=False, dropout=0.0)
    assert not any(isinstance(m, (SNConv2d, SNLinear)) for m in plain.modules())
    assert isinstance(plain.encoder.net[3], nn.BatchNorm2d) and isinstance(
        plain.encoder.net[8], nn.BatchNorm1d
    )


def test_spectral_norm_bounds_encoder_weights() -> None:
    torch.manual_seed(0)
    model = AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.0)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(50.0)
        for _ in range(60):  # power iterations converge during training-mode forwards
            model.encode(torch.rand(2, 1, 28, 28))
    lin = model.encoder.net[11].eval()
    sigma_max = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    assert (sigma_max / lin.sigma()).item() == pytest.approx(1.0, rel=1e-3)  # the layer acts as W / σ_max(W)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_output_scaled_spectral_norm_equals_torchs_parametrization(kind: str) -> None:
    """y = (x ∗ W)/σ + b is torch's spectral_norm (W/σ) to float rounding: outputs, weight gradients, u and v."""
    torch.manual_seed(0)
    ours, plain, x = ((SNLinear(300, 50), nn.Linear(300, 50), torch.randn(8, 300)) if kind == "linear"
                      else (SNConv2d(3, 16, 4, 2, 1), nn.Conv2d(3, 16, 4, 2, 1), torch.randn(8, 3, 28, 28)))
    with torch.no_grad():
        plain.weight.copy_(ours.weight)
        ours.bias.normal_()
        plain.bias.copy_(ours.bias)
    ref = spectral_norm(plain)
    state = ref.parametrizations.weight[0]
    with torch.no_grad():
        state._u.copy_(ours._u)
        state._v.copy_(ours._v)
    for _ in range(3):  # training forwards: one power iteration each
        ours.zero_grad()
        ref.zero_grad()
        y, y_ref = ours(x), ref(x)
        y.square().sum().backward()
        y_ref.square().sum().backward()
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        grad, grad_ref = ours.weight.grad, ref.parametrizations.weight.original.grad
        assert ((grad - grad_ref).abs().max() / grad_ref.abs().max()).item() < 1e-5
        torch.testing.assert_close(ours._u, state._u)
        torch.testing.assert_close(ours._v, state._v)


def test_init_matches_original() -> None:
    torch.manual_seed(0)
    model = AutoEncoder(8, (1, 28, 28), norm="batch", spectral_norm=False, dropout=0.0)
    conv, lin, convt = model.encoder.net[2], model.encoder.net[7], model.decoder.net[8]
    # N(0, 0.02²) truncated at ±2σ (TF truncated_normal) has a standard deviation of 0.02·0.8796
    for layer, std in ((conv, 0.02 * 0.8796), (lin, 0.02), (convt, 0.02)):
        assert layer.weight.std().item() == pytest.approx(std, rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0
    assert conv.weight.abs().max() <= 0.04


def test_fixed_affine_norm_is_tf_inference_batchnorm() -> None:
    torch.manual_seed(0)
    norm, bn = FixedAffineNorm(5), nn.BatchNorm2d(5, eps=1e-5).eval()
    with torch.no_grad():
        for layer in (norm, bn):
            layer.weight.copy_(torch.linspace(0.5, 2.0, 5))
            layer.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    x = torch.randn(4, 5, 3, 3)
    assert torch.allclose(norm(x), bn(x), atol=1e-6)  # BN with its initial statistics (mean 0, var 1)
    expected = x * (norm.weight / math.sqrt(1 + 1e-5)).view(1, 5, 1, 1) + norm.bias.view(1, 5, 1, 1)
    assert torch.allclose(norm(x), expected)
    assert norm(torch.randn(4, 5)).shape == (4, 5)


def test_vae_posterior_positive_std() -> None:
    torch.manual_seed(0)
    vae = VAE(5, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.2)
    x = torch.rand(4, 1, 28, 28) - 0.5
    mu, std = vae.posterior(x)
    assert mu.shape == std.shape == (4, 5)
    assert torch.all(std > 0)
    assert vae.encoder.net[11].out_features == 10
    vae.eval()
    assert torch.equal(vae.encode(x), vae.posterior(x)[0])
    with torch.no_grad():  # very negative pre-activations still give std ≥ 1e-6
        vae.encoder.net[11].bias.fill_(-1e4)
    assert torch.all(vae.posterior(x)[1] >= 1e-6)


@pytest.mark.parametrize("cls", [AutoEncoder, VAE])
def test_save_load_round_trip(tmp_path, cls) -> None:
    torch.manual_seed(0)
    model = cls(3, (1, 8, 8), norm="batch", spectral_norm=True, dropout=0.2)
    model.train()
    for _ in range(3):  # move BN running stats and spectral-norm vectors away from their initial values
        model(torch.rand(6, 1, 8, 8) - 0.5)
    model.eval()
    path = tmp_path / "m.pt"
    save_model(path, model, {"latent_dim": 3, "note": "x"})
    loaded, meta = load_model(path, "cpu")
    assert type(loaded) is cls and meta == {"latent_dim": 3, "note": "x"}
    assert not loaded.training
    x = torch.rand(5, 1, 8, 8) - 0.5
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.encode(x), model.encode(x))
    assert list(tmp_path.iterdir()) == [path]  # atomic write leaves no temporary file


def test_load_model_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pt.*unreadable"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a model written by pae.files.artifacts"):
        load_model(other)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        AutoEncoder(4, (1, 30, 30), norm="batch", spectral_norm=True, dropout=0.2)
    with pytest.raises(ValueError, match="ae.norm"):
        AutoEncoder(4, (1, 28, 28), norm="layer", spectral_norm=True, dropout=0.2)
    with pytest.raises(ValueError, match="ae.dropout"):
        AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=True, dropout=1.0)


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 64, 64)])
def test_forward_flops(image_shape: tuple[int, int, int]) -> None:
    c, h, _ = image_shape
    k = 8
    model = AutoEncoder(k, image_shape, norm="batch", spectral_norm=True, dropout=0.2)
    q = h // 4
    macs = (
        (h // 2) ** 2 * 64 * 16 * c  # conv 1: output pixels × (4·4·C_in)
        + q * q * 128 * 16 * 64  # conv 2
        + 128 * q * q * 1024  # linear to 1024
        + 1024 * k  # linear to K
        + k * 1024  # decoder linear 1
        + 1024 * 128 * q * q  # decoder linear 2
        + q * q * 128 * 64 * 16  # convT 1: input pixels × C_in × (4·4·C_out)
        + (h // 2) ** 2 * 64 * c * 16  # convT 2
    )
    assert forward_flops(model, 1) == 2 * macs
    assert forward_flops(model, 5) == 10 * macs
    assert model.training  # the mode is restored


def test_encoder_outputs_2k_keeps_first_k_and_rebuilds_from_kwargs(tmp_path) -> None:
    """ae.encoder_outputs = 2K (the original's head): encode returns the first K of 2K outputs."""
    torch.manual_seed(0)
    model = AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.0, encoder_outputs=8).eval()
    x = torch.rand(3, 1, 28, 28) - 0.5
    with torch.no_grad():
        full = model.encoder(x)
        z = model.encode(x)
    assert full.shape == (3, 8) and z.shape == (3, 4)
    assert torch.equal(z, full[:, :4])
    save_model(tmp_path / "ae.pt", model)
    again, _ = load_model(tmp_path / "ae.pt")
    with torch.no_grad():
        assert torch.equal(again.eval().encode(x), z)
    with pytest.raises(ValueError, match="encoder_outputs"):
        AutoEncoder(4, (1, 28, 28), norm="batch", spectral_norm=True, dropout=0.2, encoder_outputs=3)
