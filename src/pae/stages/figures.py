"""Stage drivers of workflow/rules/figures.smk: Figs. 2, 3, 4 and 5."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from pae.files import io
from pae.files.artifacts import load_flow, load_images, load_model, load_samples, load_scores, read_json
from pae.science import runtime
from pae.science.figures import fig2, fig3, fig4, fig5
from pae.science.images import to_model_input, to_uint8
from pae.science.metrics import rates_at_fn_rate
from pae.science.sampling import interpolate
from pae.stages.common import save_figure
from pae.stages.ood import score_pair

FIG5_COLUMNS = ["score", "K", "seed", "ratio", "tpr", "fpr", "n_in", "n_ood",
                "ratio_in_positive", "tpr_in_positive", "fpr_in_positive"]


def fig5_ratios(
    recon_files: Mapping[int, Sequence[str | Path]],
    density_files: Mapping[int, Sequence[str | Path]],
    fn_rate: float,
    ood: str = "mnist",
) -> pd.DataFrame:
    """TP/FP ratio at FN = fn_rate per K, score and seed, in-distribution test split vs OoD set `ood` (see
    `tp_fp_rates`).

    ratio, tpr, fpr: OoD positive (plotted in Fig. 5): the threshold misses fn_rate of the OoD images and
    fpr is the fraction of in-distribution images flagged. ratio_in_positive, tpr_in_positive,
    fpr_in_positive: in-distribution positive (the original AUROC code's convention): the threshold rejects
    fn_rate of the in-distribution images and fpr is the fraction of OoD images accepted
    (`pae.science.metrics.rates_at_fn_rate`)."""
    records = []
    for label, files, key in (("reconstruction error", recon_files, "recon"),
                              ("latent density", density_files, "density")):
        for K, paths in files.items():
            for p in paths:
                scores, meta = load_scores(p)
                a, b = score_pair(scores, key, ood, Path(p))
                records.append({"score": label, "K": int(K), "seed": meta["seed"], "n_in": a.size,
                                "n_ood": b.size, **rates_at_fn_rate(a, b, fn_rate)})
    return pd.DataFrame.from_records(records, columns=FIG5_COLUMNS)


def run_fig5(
    ae_paths: Mapping[int, str | Path],
    recon_files: Mapping[int, Sequence[str | Path]],
    density_files: Mapping[int, Sequence[str | Path]],
    ood_path: str | Path,
    out_stem: str | Path,
    fn_rate: float = 0.05,
    scale: float = 255,
    n_images: int = 8,
    device: str = "auto",
    threads: int | None = None,
    ood: str = "mnist",
    labels: tuple[str, str] = ("F-MNIST", "MNIST"),
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Fig. 5: images of OoD set `ood` (file `ood_path`; paper: MNIST) and their reconstructions by the AEs
    of the in-distribution dataset at each K (`ae_paths`, one seed; paper: F-MNIST), and TP/FP at FN = fn_rate against K for reconstruction error and latent density (all seeds), OoD
    positive. Writes out_stem.png/.pdf and out_stem.csv (`fig5_ratios`: the plotted OoD-positive ratios and
    the in-distribution-positive ones); returns the ratios."""
    if threads is not None:
        runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    x = load_images(ood_path, "x")[: int(n_images)]
    recons = {}
    for K, path in sorted(ae_paths.items()):
        model, _ = load_model(path, dev)
        with torch.no_grad():
            recons[int(K)] = to_uint8(model(to_model_input(x, scale=scale).to(dev)), scale=scale)
    ratios = fig5_ratios(recon_files, density_files, fn_rate, ood)
    for _, r in ratios.iterrows():
        log(f"K={r['K']} seed {r['seed']} {r['score']}: TP/FP = {r['ratio']:.4g} (OoD positive; "
            f"in-distribution positive: {r['ratio_in_positive']:.4g})")
    save_figure(fig5(x, recons, ratios, fn_rate, labels), out_stem)
    with io.atomic_path(Path(out_stem).with_suffix(".csv")) as tmp:
        ratios.to_csv(tmp, index=False, float_format="%.6g")
    return ratios


def run_fig2(sample_files: dict[str, str | Path], stem: str | Path, n_images: int = 64) -> list[Path]:
    """Rule fig2: panel title → samples npz (x uint8), first `n_images` of each."""
    return save_figure(fig2({title: load_samples(p, n_images) for title, p in sample_files.items()}), stem)


def run_fig3(sample_files: dict[int, str | Path], score_files: dict[int, str | Path], stem: str | Path,
             n_images: int = 64) -> list[Path]:
    """Rule fig3: K → PAE samples npz and K → fid_scores json (its sample_fid block)."""
    fids = {int(K): read_json(p, "run the rule fid_scores")["sample_fid"] for K, p in score_files.items()}
    return save_figure(fig3({int(K): load_samples(p, n_images) for K, p in sample_files.items()}, fids), stem)


def run_fig4(
    samples_path: str | Path,
    data_path: str | Path,
    ae_path: str | Path,
    flow_path: str | Path,
    fid_files: dict[str, str | Path],
    stem: str | Path,
    n_samples: int = 32,
    n_pairs: int = 4,
    n_steps: int = 8,
    scale: float = 255,
    device: str = "auto",
    threads: int | None = None,
) -> list[Path]:
    """Rule fig4 (CelebA, K = 64): the first `n_samples` PAE samples (Eq. 6) and, for validation images
    (0, 1), (2, 3), … (`n_pairs` pairs), `n_steps` interpolations through the flow's u and linear in z
    (`pae.science.sampling.interpolate`); FIDs from the PAE's fid_scores json (`fid_files["pae"]`: sample_fid and
    reconstruction_fid; `fid_files["ae"]` only supplies reconstruction_fid if the PAE's lacks it). Writes
    stem.png/.pdf."""
    if int(n_samples) < 1 or int(n_pairs) < 1 or int(n_steps) < 2:
        raise ValueError(f"fig4 needs n_samples >= 1, n_pairs >= 1 and n_steps >= 2, got {n_samples}, {n_pairs}, "
                         f"{n_steps}")
    if "pae" not in fid_files:
        raise ValueError(f"fid_files needs the PAE's fid_scores json under 'pae', got keys {sorted(fid_files)}")
    if threads is not None:
        runtime.set_threads(threads)
    dev = runtime.resolve_device(device)
    samples = load_samples(samples_path, int(n_samples))
    x_valid = load_images(data_path, "valid")
    n_images = 2 * int(n_pairs)
    if len(x_valid) < n_images:
        raise ValueError(f"{data_path} has {len(x_valid)} validation images; fig4 needs {n_images} for {n_pairs} "
                         "interpolation pairs (lower n_pairs)")
    if samples.shape[1:] != x_valid.shape[1:]:
        raise ValueError(f"samples in {samples_path} are {samples.shape[1:]} images but the validation images in "
                         f"{data_path} are {x_valid.shape[1:]}; they must come from the same dataset")
    remake = "run the rule fid_scores"
    scores = read_json(fid_files["pae"], remake)
    if "reconstruction_fid" not in scores and "ae" in fid_files:
        scores = {**scores, "reconstruction_fid": read_json(fid_files["ae"], remake).get("reconstruction_fid")}
    for key in ("sample_fid", "reconstruction_fid"):
        if not isinstance(scores.get(key), dict):
            raise ValueError(f"{fid_files['pae']} has no {key!r} block; delete it and {remake}")
    ae, _ = load_model(ae_path, dev, "run the rule train_ae")
    shape = tuple(getattr(ae, "image_shape", x_valid.shape[1:]))
    if shape != x_valid.shape[1:]:
        raise ValueError(f"the auto-encoder {ae_path} takes {shape} images but {data_path} holds "
                         f"{x_valid.shape[1:]} images")
    flow, _ = load_flow(flow_path, dev)
    if flow.K != getattr(ae, "latent_dim", flow.K):
        raise ValueError(f"the flow {flow_path} has K={flow.K} but the auto-encoder {ae_path} has K={ae.latent_dim}")
    x_a, x_b = x_valid[0:n_images:2], x_valid[1:n_images:2]
    interp = {space: to_uint8(interpolate(ae, x_a, x_b, int(n_steps), scale, space=space, flow=flow), scale)
              for space in ("u", "z")}
    fids = {"sample": scores["sample_fid"], "reconstruction": scores["reconstruction_fid"]}
    return save_figure(fig4(samples, interp["u"], interp["z"], fids), stem)
