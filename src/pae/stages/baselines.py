"""Stage drivers of workflow/rules/baselines.smk: the VAE and β-VAE baselines (Eq. 15) and the samples of every
model (Eq. 6)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pae.files import io
from pae.files.artifacts import load_flow, load_images, load_model
from pae.files.io import save_json
from pae.science import runtime
from pae.science.catalog import SAMPLE_KINDS
from pae.science.images import to_uint8
from pae.science.nets import VAE
from pae.science.runtime import resolve_device
from pae.science.sampling import reconstructions, sample_ae, sample_pae, sample_vae, sampling_seed
from pae.science.train import LogFn, TrainSettings, reconstruction_mse
from pae.science.vae import beta_vae_loss
from pae.stages.train import train_network


def run_train_vae(
    data_path: str | Path,
    model_path: str | Path,
    metrics_path: str | Path,
    checkpoint_path: str | Path,
    latent_dim: int,
    net: Mapping[str, Any],
    objective: Mapping[str, Any],
    settings: TrainSettings,
    log: LogFn = print,
) -> dict[str, Any]:
    """Rule train_vae: a VAE on the AE's nets trained on Eq. 15 (objective: beta, capacity, capacity_steps,
    sigma) like the AE (`pae.stages.train.train_network`); writes the model and metrics (test-split MSE per
    pixel, history), then removes the checkpoint."""
    unknown = sorted(set(objective) - {"beta", "capacity", "capacity_steps", "sigma"})
    if unknown:
        raise ValueError(
            f"config key 'vae.models.*': unknown key(s) {unknown}; use beta, capacity, capacity_steps, sigma"
        )
    loss_fn = beta_vae_loss(float(objective["beta"]), float(objective["capacity"]),
                            int(objective["capacity_steps"]), float(objective["sigma"]))
    meta = {"latent_dim": int(latent_dim), "objective": dict(objective)}
    model, history = train_network(lambda shape: VAE(latent_dim, shape, **net), loss_fn, data_path, model_path,
                                   checkpoint_path, settings, meta, log)
    test_mse = reconstruction_mse(model, load_images(data_path, "test"), settings.scale, 500,
                                  resolve_device(settings.device))
    metrics = {
        "latent_dim": int(latent_dim),
        **{k: objective[k] for k in ("beta", "capacity", "capacity_steps", "sigma")},
        "test_mse": test_mse,
        "val_mse": history[-1]["val_mse"],
        "kl": history[-1]["kl"],
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "history": history,
    }
    save_json(metrics_path, metrics)
    Path(checkpoint_path).unlink(missing_ok=True)
    log(f"test_mse {test_mse:.6g} val_mse {metrics['val_mse']:.6g}")
    return metrics


def run_sample_model(
    model: str,
    inputs: dict[str, str],
    out: str | Path,
    count: int,
    seed: int,
    scale: float,
    temperature: float = 1.0,
    device: str = "auto",
    threads: int = 1,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Rule sample_model: write `count` samples (or test-split reconstructions) as uint8 x (N, C, H, W).

    inputs: {"model": ae.pt / vae.pt / betavae.pt} plus {"flow": flow.pt} for pae and {"data": dataset.npz}
    for recon.
    """
    if model not in SAMPLE_KINDS:
        raise ValueError(f"unknown sample model {model!r}; use one of {', '.join(SAMPLE_KINDS)}")
    runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    net, _ = load_model(inputs["model"], dev)
    s = sampling_seed(seed)
    if model == "ae":
        x = sample_ae(net, count, s, batch_size)
    elif model in ("vae", "betavae"):
        x = sample_vae(net, count, s, batch_size)
    elif model == "pae":
        flow, _ = load_flow(inputs["flow"], dev)
        x = sample_pae(net, flow, count, s, temperature, batch_size)
    else:
        x_test = load_images(inputs["data"], "test")
        if len(x_test) < count:
            print(f"warning: {inputs['data']} has only {len(x_test)} test images (< samples.count={count})")
        x = reconstructions(net, x_test[:count], scale, batch_size)
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"{model} produced non-finite images; check {inputs['model']}")
    xu = to_uint8(x, scale)
    io.save_npz(out, x=xu)
    print(f"{model}: wrote {len(xu)} images {xu.shape[1:]} to {out} (sampling seed {s})")
    return {"model": model, "count": len(xu), "seed": s}
