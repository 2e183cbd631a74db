"""Stage drivers of workflow/rules/train.smk: the auto-encoder (Eq. 2), its latents and Eq. 8 σ, and the latent
flow (Eq. 5)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pae.files import io
from pae.files.artifacts import load_latents, load_model, load_split, load_train_valid, save_flow, save_model
from pae.files.io import FileCheckpoint, save_json, save_npz
from pae.science import runtime
from pae.science.flows import FlowArchitecture, FlowTraining, fit_flow, mean_nll
from pae.science.nets import AutoEncoder
from pae.science.runtime import resolve_device
from pae.science.train import (
    LogFn,
    LossFn,
    TrainSettings,
    ae_loss,
    encode_splits,
    train_model,
)


def train_network(
    build: Callable[[tuple[int, ...]], nn.Module],
    loss_fn: LossFn,
    data_path: str | Path,
    model_path: str | Path,
    checkpoint_path: str | Path,
    settings: TrainSettings,
    meta: Mapping[str, Any],
    log: LogFn = print,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """`pae.science.train.train_model` on the data's train split (validation MSE each epoch, resumable from
    `checkpoint_path`), then save the network with meta (settings, training seconds, final val_mse). Shared
    by the AE and the VAE baselines, which the paper trains "with the same procedure". The caller removes
    the checkpoint once all its outputs are written."""
    x_train, x_valid = load_train_valid(data_path)
    log(f"{dict(meta)} on {data_path}")
    model, history = train_model(build, loss_fn, x_train, x_valid, settings, FileCheckpoint(checkpoint_path), log)
    info = dict(meta) | {"data": str(data_path), "settings": asdict(settings),
                         "train_seconds": float(sum(h["seconds"] for h in history)),
                         "val_mse": float(history[-1]["val_mse"]), "epochs": len(history)}
    save_model(model_path, model, info)
    return model, history


def run_train_ae(
    data_path: str | Path,
    model_path: str | Path,
    history_path: str | Path,
    checkpoint_path: str | Path,
    latent_dim: int,
    net: Mapping[str, Any],
    settings: TrainSettings,
    log: LogFn = print,
) -> list[dict[str, float]]:
    """Rule train_ae: the infoGAN AE (net: norm, spectral_norm, dropout, encoder_outputs) trained on Eq. 2;
    writes model and history, then removes the checkpoint."""
    _, history = train_network(lambda shape: AutoEncoder(latent_dim, shape, **net), ae_loss, data_path,
                               model_path, checkpoint_path, settings, {"latent_dim": int(latent_dim)}, log)
    save_json(history_path, history)
    Path(checkpoint_path).unlink(missing_ok=True)
    return history


def run_encode_ae(
    model_path: str | Path,
    data_path: str | Path,
    stats_path: str | Path,
    metrics_path: str | Path,
    scale: float,
    batch_size: int,
    device: str,
    log: LogFn = print,
) -> dict[str, float]:
    """Rule encode_ae: latents of every split, σ of Eq. 8 on the validation split, MSE metrics."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    model, meta = load_model(model_path, dev)
    splits = {split: load_split(data_path, split) for split in ("train", "valid", "test")}
    latents, sigma, mse = encode_splits(model, splits, scale, batch_size, dev)
    metrics = {
        "latent_dim": int(latents["z_train"].shape[1]),
        "val_mse": float(np.mean(sigma.astype(np.float64) ** 2)),
        "test_mse": mse["test"],
        "mean_sigma2": float(np.mean(sigma.astype(np.float64) ** 2)),
        "train_seconds": meta["train_seconds"] if "train_seconds" in meta else None,  # models trained elsewhere
        "encode_seconds": time.perf_counter() - t0,
    }
    save_npz(stats_path, sigma=sigma, **latents)
    save_json(metrics_path, metrics)
    log(" ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics


def _write_history_csv(path: str | Path, hist: Mapping[str, list[float]]) -> None:
    keys = ["epoch", "train_nll", "valid_nll", "lr", "seconds"]
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        w.writerows(zip(*(hist[k] for k in keys), strict=True))


def run_train_flow(
    stats_path: str | Path,
    flow_out: str | Path,
    metrics_out: str | Path,
    history_out: str | Path,
    arch: FlowArchitecture,
    training: FlowTraining,
    seed: int,
    device: str,
    threads: int,
) -> dict[str, Any]:
    """Rule train_flow: ae_stats.npz → flow.pt, flow_metrics.json, flow_history.csv (`pae.science.flows.fit_flow`)."""
    runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    lat = load_latents(stats_path)
    t0 = time.perf_counter()
    flow, hist = fit_flow(lat["z_train"], lat["z_valid"], arch, training, seed, dev, log=lambda s: print(s, flush=True))
    wall = time.perf_counter() - t0
    best = hist["best_epoch"][0]
    metrics: dict[str, Any] = {
        "K": flow.K, "kind": flow.kind, "parameters": sum(p.numel() for p in flow.parameters()),
        "epochs": int(training.epochs), "best_epoch": best, "valid_nll": hist["valid_nll"][best - 1],
        "train_nll": mean_nll(flow, torch.as_tensor(lat["z_train"], device=dev)),
        "last_epoch_train_nll_noisy": hist["train_nll"][-1], "last_epoch_valid_nll": hist["valid_nll"][-1],
        "wall_seconds": wall, "device": str(dev),
    }
    if "z_test" in lat:
        metrics["test_nll"] = mean_nll(flow, torch.as_tensor(lat["z_test"], device=dev))
    meta = {"seed": int(seed), "stats": str(stats_path), **{k: metrics[k] for k in ("valid_nll", "best_epoch")}}
    flow.cpu()
    save_flow(flow_out, flow, meta)
    _write_history_csv(history_out, hist)
    io.save_json(metrics_out, metrics)
    return metrics
