"""infoGAN encoder/decoder of the PAE auto-encoder and the VAE baselines (paper Sec. 4; the original code).

The same architecture serves 28×28×1 (F-MNIST, MNIST) and 64×64×3 (CelebA) images; only C, H, W differ.
TF "SAME" padding with kernel 4 / stride 2 on even sizes equals PyTorch padding 1, so
``Conv2d(k=4, s=2, p=1)`` maps 28→14→7 and ``ConvTranspose2d(k=4, s=2, p=1)`` maps 7→14→28.

Models are saved as class path + constructor kwargs + state_dict (:func:`save_model`) and rebuilt from
exactly that by :func:`load_model`, so any ``nn.Module`` of this package that stores its constructor
arguments in ``init_kwargs`` can be saved and loaded the same way.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

NORMS = ("batch", "affine")
BN_EPS = 1e-5
STD_FLOOR = 1e-6  # std = softplus(s) + 1e-6 (original code)


class FixedAffineNorm(nn.Module):
    """Per-channel affine map γ·x/√(1+ε) + β.

    This is what the original TF code effectively ran: ``tf.layers.batch_normalization`` called without
    ``training=`` normalises with its initial moving statistics (mean 0, variance 1) forever (D3). Works on (N, C) and (N, C, H, W) inputs.
    """

    def __init__(self, num_features: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self.weight / math.sqrt(1.0 + self.eps)
        return x * scale.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def make_norm(kind: str, num_features: int, spatial: bool) -> nn.Module:
    """`batch` → BatchNorm{1,2}d (PyTorch default momentum), `affine` → :class:`FixedAffineNorm`.

    The original's BN momentum (0.999 in TF, 0.001 in PyTorch terms) never mattered there because its
    statistics were never updated; we keep PyTorch's 0.1 so short runs get usable running statistics.
    """
    if kind == "batch":
        return (
            nn.BatchNorm2d(num_features, eps=BN_EPS) if spatial else nn.BatchNorm1d(num_features, eps=BN_EPS)
        )
    if kind == "affine":
        return FixedAffineNorm(num_features)
    raise ValueError(f"config key 'ae.norm': {kind!r} is not allowed; use one of {', '.join(NORMS)}")


class _SpectralScaled:
    """Spectral normalisation (Miyato et al. 2018) computed as torch's parametrization computes it — σ from
    one power iteration per training forward (15 at construction), the gradient flowing through
    σ = uᵀ W v — but applied to the layer's output, y = (x ∗ W) / σ + b, instead of to its weight: the same
    function without a weight-sized division and its weight-sized backward (for the 6.4 M-weight encoder
    layer the largest item of a bf16 AE step after convolutions and matmuls: benchmarks/profile_ae_step.py)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    _u: torch.Tensor
    _v: torch.Tensor
    EPS = 1e-12

    def _init_spectral(self) -> None:
        w = self.weight.detach().flatten(1)
        self.register_buffer("_u", F.normalize(w.new_empty(w.shape[0]).normal_(0, 1), dim=0, eps=self.EPS))  # type: ignore[attr-defined]
        self.register_buffer("_v", F.normalize(w.new_empty(w.shape[1]).normal_(0, 1), dim=0, eps=self.EPS))  # type: ignore[attr-defined]
        self._power_iteration(w, 15)

    @torch.no_grad()
    def _power_iteration(self, w: torch.Tensor, steps: int) -> None:
        for _ in range(steps):
            self._u = F.normalize(torch.mv(w, self._v), dim=0, eps=self.EPS, out=self._u)
            self._v = F.normalize(torch.mv(w.H, self._u), dim=0, eps=self.EPS, out=self._v)

    def sigma(self) -> torch.Tensor:
        """σ(W) ≈ uᵀ W v, after one power iteration when training."""
        w = self.weight.flatten(1)
        if self.training:  # type: ignore[attr-defined]
            self._power_iteration(w.detach(), 1)
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        return torch.vdot(u, torch.mv(w, v))

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        y = y / self.sigma()
        if self.bias is None:
            return y
        return y + self.bias.view((1, -1) + (1,) * (y.dim() - 2))


class SNLinear(_SpectralScaled, nn.Linear):
    """nn.Linear with spectral normalisation on its output (:class:`_SpectralScaled`)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        _init_weights(self)
        self._init_spectral()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scaled(F.linear(x, self.weight))


class SNConv2d(_SpectralScaled, nn.Conv2d):
    """nn.Conv2d with spectral normalisation on its output (:class:`_SpectralScaled`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        _init_weights(self)
        self._init_spectral()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scaled(self._conv_forward(x, self.weight, None))


def _init_weights(module: nn.Module) -> None:
    """As the original code: conv kernels truncated normal σ=0.02 (±2σ), linear and deconv kernels normal σ=0.02, biases 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
    elif isinstance(module, (nn.Linear, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, std=0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _check_image_shape(image_shape: tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (C, H, W) with H and W divisible by 4 (e.g. (1, 28, 28) or (3, 64, 64)); "
            f"got {image_shape!r}"
        )
    return shape  # type: ignore[return-value]


class Encoder(nn.Module):
    """conv4×4/2→64, LReLU, conv4×4/2→128, norm, dropout, LReLU, linear 1024, norm, dropout, LReLU, linear out.

    Spectral normalisation (:class:`SNConv2d`, :class:`SNLinear`) on all four layers when enabled.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        out_features: int,
        norm: str,
        spectral_norm: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        conv, linear = (SNConv2d, SNLinear) if spectral_norm else (nn.Conv2d, nn.Linear)
        layers = [
            conv(c, 64, 4, 2, 1),
            conv(64, 128, 4, 2, 1),
            linear(128 * (h // 4) * (w // 4), 1024),
            linear(1024, out_features),
        ]
        for layer in layers:
            if not isinstance(layer, _SpectralScaled):  # those initialise themselves, then their u and v
                _init_weights(layer)
        self.net = nn.Sequential(
            layers[0],
            nn.LeakyReLU(0.2),
            layers[1],
            make_norm(norm, 128, spatial=True),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            layers[2],
            make_norm(norm, 1024, spatial=False),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
            layers[3],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """linear 1024, norm, ReLU, linear 128·(H/4)(W/4), norm, ReLU, dropout, convT→64, norm, ReLU, dropout,
    convT→C, sigmoid − 0.5 (outputs in (−0.5, 0.5), the range of the scaled data)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], norm: str, dropout: float) -> None:
        super().__init__()
        c, h, w = image_shape
        flat = 128 * (h // 4) * (w // 4)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            make_norm(norm, 1024, spatial=False),
            nn.ReLU(),
            nn.Linear(1024, flat),
            make_norm(norm, flat, spatial=False),  # per-feature norm on the flat vector, as in the original
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Unflatten(1, (128, h // 4, w // 4)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            make_norm(norm, 64, spatial=True),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.ConvTranspose2d(64, c, 4, 2, 1),
        )
        self.net.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)) - 0.5


class AutoEncoder(nn.Module):
    """Deterministic auto-encoder f_φ, g_θ of Eq. 1; trained on Eq. 2.

    ``encoder_outputs`` defaults to ``latent_dim``; with ``2·latent_dim`` the encoder emits (μ, s) as in the
    original (the AE then uses μ only). ``encode`` returns the first ``latent_dim`` outputs (the mean).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int] | list[int],
        norm: str,
        spectral_norm: bool,
        dropout: float,
        encoder_outputs: int | None = None,
    ) -> None:
        super().__init__()
        shape = _check_image_shape(image_shape)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"config key 'ae.dropout': must be in [0, 1), got {dropout!r}")
        if norm not in NORMS:
            raise ValueError(f"config key 'ae.norm': {norm!r} is not allowed; use one of {', '.join(NORMS)}")
        outputs = int(encoder_outputs) if encoder_outputs is not None else int(latent_dim)
        if outputs < int(latent_dim):
            raise ValueError(f"encoder_outputs ({outputs}) must be at least latent_dim ({latent_dim})")
        self.latent_dim = int(latent_dim)
        self.image_shape = shape
        self.init_kwargs: dict[str, Any] = {
            "latent_dim": int(latent_dim),
            "image_shape": list(shape),
            "norm": norm,
            "spectral_norm": bool(spectral_norm),
            "dropout": float(dropout),
            "encoder_outputs": encoder_outputs if encoder_outputs is None else int(encoder_outputs),
        }
        self.encoder = Encoder(shape, outputs, norm, bool(spectral_norm), float(dropout))
        self.decoder = Decoder(self.latent_dim, shape, norm, float(dropout))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = f_φ(x): the first K encoder outputs (Eq. 1)."""
        return self.encoder(x)[:, : self.latent_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = g_θ(z) in (−0.5, 0.5) (Eq. 1)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction g_θ(f_φ(x)) (the argument of Eq. 2)."""
        return self.decode(self.encode(x))


class VAE(AutoEncoder):
    """Mean-field Gaussian VAE on the same nets (paper Sec. 4, Eq. 15): the encoder emits 2K values,
    μ = first K and std = softplus(second K) + 1e-6 (original code). ``encode`` and ``forward`` use μ."""

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int] | list[int],
        norm: str,
        spectral_norm: bool,
        dropout: float,
    ) -> None:
        super().__init__(
            latent_dim, image_shape, norm, spectral_norm, dropout, encoder_outputs=2 * int(latent_dim)
        )
        del self.init_kwargs["encoder_outputs"]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, std) of q_φ(z|x) = N(μ, diag(std²))."""
        h = self.encoder(x)
        mu, s = h[:, : self.latent_dim], h[:, self.latent_dim :]
        return mu, F.softplus(s) + STD_FLOOR


# --------------------------------------------------------------------------------------------------------
# Save / load


# --------------------------------------------------------------------------------------------------------
# Cost model


def forward_flops(model: nn.Module, batch_size: int, image_shape: tuple[int, int, int] | None = None) -> int:
    """Forward FLOPs (2 × multiply-accumulates of every Conv2d, ConvTranspose2d and Linear) of
    ``model(x)`` for a batch of ``batch_size`` images; norms, activations and spectral norm are ignored."""
    shape = tuple(image_shape or model.image_shape)  # type: ignore[attr-defined]
    macs = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs += output.numel() * k
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            macs += inputs[0].numel() * k
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    was_training = model.training
    param = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((batch_size, *shape), device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 2 * macs
