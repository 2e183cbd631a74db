"""The per-image OoD scores of Table 2 (paper Sec. 2.2): Eq. 5, Eq. 12, Eq. 12 at the MAP of Eq. 9, Eq. 11
and the reconstruction error, each "higher = more in-distribution" (`pae.science.density` for the terms)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from pae.science.density import eq12_terms, eval_mode, map_gradient_norm, map_refine, squared_error
from pae.science.images import to_model_input
from pae.science.posterior import laplace_log_px

_LOG = logging.getLogger(__name__)

SCORES = ("density", "recon", "eq12", "eq12_map", "laplace")


def image_scores(
    model: nn.Module,
    x_uint8: np.ndarray,
    scores: tuple[str, ...] | list[str],
    scale: float,
    flow: nn.Module | None = None,
    sigma: torch.Tensor | None = None,
    recon_sigma: str | None = None,
    map_steps: int | None = None,
    map_lr: float | None = None,
    batch_size: int = 500,
    log: Any = _LOG.info,
) -> dict[str, np.ndarray]:
    """Requested OoD scores (subset of SCORES; higher = more in-distribution) for uint8 images (N, C, H, W).

    model: a `pae.science.nets.AutoEncoder` (encode = encoder mean, decode = g_θ); images enter as x/scale − 0.5
    without dequantisation. density, eq12, eq12_map and laplace need `flow`; eq12, eq12_map, laplace and recon
    with recon_sigma="pixelwise" need the floored Eq. 8 `sigma`. laplace is the Laplace log p(x) of Eq. 11 at
    the MAP z' of Eq. 9 (the same z' as eq12_map). Returns float64 arrays of shape (N,); with eq12_map or
    laplace also ``map_grad_norm_start`` and ``map_grad_norm``: ‖∇_z Eq. 9‖ at f_φ(x) and at z' (convergence
    of the MAP; `pae.science.density.map_gradient_norm`).
    """
    unknown = set(scores) - set(SCORES)
    if unknown:
        raise ValueError(f"unknown score(s) {sorted(unknown)}; choose from {SCORES}")
    if "recon" in scores and recon_sigma not in ("unweighted", "pixelwise"):
        raise ValueError(f"config key ood.recon_sigma must be 'unweighted' or 'pixelwise', got {recon_sigma!r}")
    if {"eq12_map", "laplace"} & set(scores) and (map_steps is None or map_lr is None):
        raise ValueError("the MAP scores (eq12_map, laplace) need map_steps and map_lr (config ood.map_steps, ood.map_lr)")
    needs_flow = {"density", "eq12", "eq12_map", "laplace"} & set(scores)
    if needs_flow and flow is None:
        raise ValueError(f"score(s) {sorted(needs_flow)} need a flow")
    if sigma is None and ({"eq12", "eq12_map", "laplace"} & set(scores) or ("recon" in scores and recon_sigma == "pixelwise")):
        raise ValueError("Eq. 12 scores and pixel-wise reconstruction errors need the Eq. 8 sigma")
    device = next(model.parameters()).device
    sig = sigma.to(device) if sigma is not None else None
    out: dict[str, list[torch.Tensor]] = {s: [] for s in scores}
    uses_map = "eq12_map" in scores or "laplace" in scores
    if uses_map:
        out |= {"map_grad_norm_start": [], "map_grad_norm": []}
    mods = [model] + ([flow] if flow is not None else [])
    with eval_mode(*mods):
        for i in range(0, len(x_uint8), batch_size):
            xb = to_model_input(x_uint8[i : i + batch_size], scale=scale, dequantize=False).to(device)
            with torch.no_grad():
                z = model.encode(xb)
                if "recon" in scores or "eq12" in scores:
                    x_hat = model.decode(z)
                if "recon" in scores:
                    w = sig if recon_sigma == "pixelwise" else None
                    out["recon"].append(-squared_error(xb, x_hat, w))
                if "density" in scores or "eq12" in scores:
                    logp = flow.log_prob(z)
                if "density" in scores:
                    out["density"].append(logp)
                if "eq12" in scores:
                    out["eq12"].append(-0.5 * squared_error(xb, x_hat, sig) + logp)
            if uses_map:
                z_map = map_refine(xb, z, model.decoder, flow, sig, map_steps, map_lr, batch_size=len(xb))
                out["map_grad_norm_start"].append(map_gradient_norm(xb, z, model.decoder, flow, sig, len(xb)))
                out["map_grad_norm"].append(map_gradient_norm(xb, z_map, model.decoder, flow, sig, len(xb)))
            if "eq12_map" in scores:
                with torch.no_grad():
                    out["eq12_map"].append(eq12_terms(xb, z_map, model.decoder, flow, sig))
            if "laplace" in scores:
                out["laplace"].append(laplace_log_px(xb, z_map, model.decoder, flow, sig))
            if log is not None and uses_map:
                log(f"  MAP: {min(i + batch_size, len(x_uint8))}/{len(x_uint8)} images")
    result = {}
    for s, parts in out.items():
        arr = torch.cat(parts).double().cpu().numpy() if parts else np.zeros(0)
        if np.isnan(arr).any():
            raise FloatingPointError(f"score {s!r} is NaN for {int(np.isnan(arr).sum())} image(s)")
        result[s] = arr
    return result
