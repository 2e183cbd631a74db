"""Command line: ``pae fit | sample | score | fid | posterior`` (also ``python -m pae``); see ``pae <command> --help``.

    pae fit --data my_pngs/ --latent-dim 32 --out runs/mine
    pae sample --model runs/mine -n 64 --out samples.png        # or samples.npz, or samples/ (one PNG each)
    pae score --model runs/mine --in-dist a.npz --ood b_pngs/ --kind density
    pae fid --real a_pngs/ --save-stats a_stats.npz
    pae fid --real a_stats.npz --fake samples.npz
    pae posterior --model runs/mine --images x.png --mask left:16 --out inpainted/

Images are read from an image folder (PNG, JPEG, ...: sorted files, flat or one level of class subfolders; for
`fit` train/ [valid/] subfolders), one image file, an .npz (arrays x_train [x_valid] or x for `fit`; x, x_test or
the only array elsewhere; --key picks another) or an .npy, as uint8 0..255 or floats in [0, 1], shaped
(N, C, H, W) or (N, H, W). Bad input ends with one line naming the path and the fix, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """A problem with the command line or its input files; printed as one line, exit status 2."""


# --------------------------------------------------------------------------------------------------------
# Reading and writing images


def _user_input(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a `pae.files.user_images` reader or writer; its one-line error becomes a UsageError (exit 2)."""
    from pae.files.datasets import DatasetError

    try:
        return fn(*args, **kwargs)
    except DatasetError as err:
        raise UsageError(str(err)) from err


def read_images(path: str | Path, key: str | None = None, net_shape: bool = True) -> np.ndarray:
    """uint8 (N, C, H, W) images from an image folder, an image file, an .npz (--key, else x, x_test or its only
    array) or an .npy file (`pae.files.user_images.read_user_images`)."""
    from pae.files.user_images import read_user_images

    return _user_input(read_user_images, path, key, net_shape)


def read_training(path: str | Path, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x_train, x_valid or None) from an image folder (train/ [valid/] subfolders, or all images), an .npz with
    x_train [x_valid], or x, or one array; or an .npy."""
    from pae.files.user_images import read_user_training

    return _user_input(read_user_training, path, key)


def write_images(path: str | Path, images: np.ndarray) -> Path:
    """float [0, 1] images (N, C, H, W) → .png (one grid), .npz (uint8 array x, as the workflow's samples), .npy,
    or a folder of PNGs (a path without suffix)."""
    from pae.files.user_images import write_user_images

    return _user_input(write_user_images, path, images)


OUTPUT_SUFFIXES = (".png", ".npz", ".npy", "")


# --------------------------------------------------------------------------------------------------------
# Commands


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from pae.config import deep_merge, parse_assignments

    overrides: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"{path}: no such file (--config); give a YAML file with sections ae:, flow:, ...")
        try:
            overrides = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UsageError(f"{path}: not valid YAML ({err}); fix the file given to --config") from err
        if not isinstance(overrides, dict):
            raise UsageError(f"{path}: must hold a mapping of sections (ae:, flow:, data:, ...); fix --config")
    overrides = deep_merge(overrides, parse_assignments(args.set or []))
    for flag, section, key in (("epochs", "ae", "epochs"), ("flow_epochs", "flow", "epochs"),
                               ("batch_size", "ae", "batch_size")):
        value = getattr(args, flag)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def cmd_fit(args: argparse.Namespace) -> None:
    from pae.api import API_FIX, MODELS
    from pae.config import ConfigError

    x_train, x_valid = read_training(args.data, args.key)
    if args.valid:
        x_valid = read_images(args.valid, args.key)
    ov = _overrides(args)
    allowed = {"ae", "flow", "data", "ood"} if args.model_type == "pae" else {"ae", "data", "ood", "objective"}
    unknown = sorted(set(ov) - allowed)
    if unknown:
        raise UsageError(f"settings section(s) {unknown} do not apply to `pae fit --model-type {args.model_type}`; "
                         f"use {', '.join(sorted(allowed))}")
    if args.model_type != "pae" and args.flow_epochs is not None:
        raise UsageError("--flow-epochs applies to --model-type pae only (VAEs have no flow)")
    cls = MODELS[args.model_type]
    try:
        model = cls(args.latent_dim, **ov, device=args.device, seed=args.seed, verbose=not args.quiet)
    except ConfigError as err:
        raise UsageError(str(err).replace(API_FIX, "Fix the --set, --config or --device value (keys of config/config.yaml).")) from err
    model.fit(x_train, x_valid)
    folder = model.save(args.out)
    print(f"saved {args.model_type} (K={model.latent_dim}) to {folder}")


def cmd_sample(args: argparse.Namespace) -> None:
    from pae.api import load

    if Path(args.out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"{args.out}: unsupported output type; use .png (one grid), .npz, .npy, or a folder name "
                         "without suffix for one PNG per image (--out)")
    if args.n < 1:
        raise UsageError(f"-n must be a positive number of images, got {args.n}")
    model = load(args.model, device=args.device, verbose=not args.quiet)
    images = model.sample(args.n, temperature=args.temperature, seed=args.seed)
    print(f"wrote {len(images)} samples {images.shape[1:]} to {write_images(args.out, images)}")


def detection_metrics(scores_in: np.ndarray, scores_ood: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR and FPR at 95 % TPR with OoD images as the positive class (scores: higher = more
    in-distribution)."""
    from pae.science.metrics import aupr, auroc, fpr_at_tpr

    return {"AUROC": auroc(scores_in, scores_ood), "AUPR": aupr(scores_in, scores_ood),
            "FPR@95": fpr_at_tpr(scores_in, scores_ood, 0.95)}


def cmd_score(args: argparse.Namespace) -> None:
    from pae.api import load

    x_in = read_images(args.in_dist, args.key)
    x_ood = read_images(args.ood, args.key)
    model = load(args.model, device=args.device, verbose=not args.quiet)
    kind = args.kind or ("density" if model.model_name == "pae" else "elbo")
    try:
        s_in, s_ood = model.score(x_in, kind=kind), model.score(x_ood, kind=kind)
    except ValueError as err:
        raise UsageError(f"{err} (--kind)") from err
    result = detection_metrics(s_in, s_ood)
    if args.out:
        from pae.files.io import save_npz

        save_npz(args.out, scores_in=s_in, scores_ood=s_ood)
    print(f"score {kind}: in-distribution {args.in_dist} ({len(s_in)} images), OoD {args.ood} ({len(s_ood)} images)")
    print("  ".join(f"{k} {v:.4f}" for k, v in result.items()))


def _inception_source(args: argparse.Namespace) -> str:
    from pae.files.artifacts import inception_weights_source

    with contextlib.redirect_stderr(io.StringIO()):  # we print our own one-line message
        return inception_weights_source(args.inception_weights, args.download)


def _fid_extractor(args: argparse.Namespace) -> Any:
    from pae.config import paper_defaults
    from pae.science.features import InceptionUnavailable
    from pae.science.runtime import resolve_device
    from pae.stages.fid import build_extractors

    device = resolve_device(args.device)
    if args.features == "domain":
        if not args.classifier:
            raise UsageError("--features domain needs --classifier PATH (a classifier.pt trained by the workflow, "
                             "e.g. results/fmnist/classifier/seed0/classifier.pt)")
        if not Path(args.classifier).is_file():
            raise UsageError(f"{args.classifier}: no such file (--classifier)")
        scale = paper_defaults("data")["scale"]  # the classifier's inputs are x/scale - 0.5, as in the workflow
        extractors, status, _ = build_extractors(args.classifier, None, args.normalize, scale, device, False)
    else:
        source = _inception_source(args)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its "unavailable" note; we raise our own line
                extractors, status, _ = build_extractors(None, source, args.normalize, 255, device, False)
        except FileNotFoundError as err:
            raise UsageError(str(err).replace("config key 'fid.inception_weights'", "--inception-weights")) from err
        if "inception" not in extractors:
            reason = status["inception"].split(":", 1)[-1].strip() if "inception" in status else "unavailable"
            raise InceptionUnavailable(
                f"Inception weights unavailable: {reason}; pass --inception-weights PATH "
                "(pt_inception-2015-12-05-6726825d.pth), allow --download, or use --features domain --classifier PATH"
            )
    return extractors[args.features]


def _fid_input(args: argparse.Namespace, path: str, flag: str) -> tuple[Any, ...]:
    """("stats", mu, sigma, n_images or None, image shape or None) of a statistics file, or ("images", x), checked."""
    from pae.files.user_images import is_fid_stats, load_fid_stats

    if is_fid_stats(path):
        mu, sigma, meta = _user_input(load_fid_stats, path)
        for key, want in (("features", args.features), ("normalize", args.normalize)):
            if key in meta and meta[key] != want:
                raise UsageError(f"{path}: statistics of {key} {meta[key]!r}, but this FID uses {want!r}; pass "
                                 f"--{key} {meta[key]} or make the statistics again ({flag})")
        shape = tuple(int(v) for v in str(meta["image_shape"]).split("x")) if meta.get("image_shape") else None
        n_images = int(meta["n_images"]) if "n_images" in meta else None  # pytorch-fid's files do not record it
        return "stats", mu, sigma, n_images, shape
    x = read_images(path, args.key, net_shape=False)
    if len(x) < 2 or x.shape[1] not in (1, 3):
        raise UsageError(f"{path}: FID needs at least 2 images with 1 or 3 channels, got shape {x.shape}")
    return "images", x


def _fid_statistics(args: argparse.Namespace, source: tuple[Any, ...], extractor: list[Any]
                    ) -> tuple[np.ndarray, np.ndarray, int | None, tuple[int, ...] | None]:
    from pae.science.features import image_statistics

    if source[0] == "stats":
        return source[1:]  # type: ignore[return-value]
    x = source[1]
    if not extractor:
        extractor.append(_fid_extractor(args))
    mu, sigma = image_statistics(x, extractor[0], args.batch_size)
    return mu, sigma, len(x), tuple(x.shape[1:])


def cmd_fid(args: argparse.Namespace) -> None:
    from pae.files.user_images import save_fid_stats
    from pae.science.metrics import frechet_distance

    if args.fake is None and not args.save_stats:
        raise UsageError("give --fake IMAGES|STATS to compute a FID, or --save-stats OUT.npz to save the statistics "
                         "of --real")
    if args.save_stats and Path(args.save_stats).suffix != ".npz":
        raise UsageError(f"{args.save_stats}: FID statistics are written as .npz (--save-stats)")
    real = _fid_input(args, args.real, "--real")
    fake = _fid_input(args, args.fake, "--fake") if args.fake is not None else None
    if args.save_stats and real[0] == "stats":
        raise UsageError(f"{args.real} already is a statistics file; --save-stats needs images as --real")
    if fake is not None and real[0] == fake[0] == "images" and real[1].shape[1:] != fake[1].shape[1:]:
        raise UsageError(f"{args.fake}: images {fake[1].shape[1:]} differ from {args.real}'s {real[1].shape[1:]}")
    extractor: list[Any] = []
    mu1, s1, n1, shape1 = _fid_statistics(args, real, extractor)
    if args.save_stats:
        _user_input(save_fid_stats, args.save_stats, mu1, s1, features=args.features, normalize=args.normalize,
                    n_images=n1, image_shape="x".join(map(str, shape1 or ())), source=str(args.real))
        print(f"saved {args.features} statistics of {args.real} ({n1} images) to {args.save_stats}")
    if fake is None:
        return
    mu2, s2, n2, shape2 = _fid_statistics(args, fake, extractor)
    if shape1 and shape2 and shape1 != shape2:
        raise UsageError(f"{args.fake}: images {shape2} differ from the statistics' {shape1} ({args.real})")
    if mu1.shape != mu2.shape:
        raise UsageError(f"{args.fake}: {len(mu2)} features, but {args.real} has {len(mu1)}; use statistics of the "
                         "same --features")
    value = frechet_distance(mu1, s1, mu2, s2)
    print(f"FID ({args.features}) {value:.4f}  real {args.real} ({_count(n1)}), fake {args.fake} ({_count(n2)})")


def _count(n_images: int | None) -> str:
    return "image count not recorded" if n_images is None else f"{n_images} images"


def cmd_posterior(args: argparse.Namespace) -> None:
    from pae.api import load
    from pae.files.user_images import write_result_folder

    x = read_images(args.images, args.key)
    mask: Any = args.mask
    if args.mask_file:
        if args.mask:
            raise UsageError("give --mask or --mask-file, not both")
        mask = read_images(args.mask_file, net_shape=False) > 0
        if mask.shape[0] == 1:
            mask = mask[0]
    if mask is None and args.noise_sigma == 0:
        raise UsageError("nothing to do: give --mask / --mask-file (inpainting) and/or --noise-sigma (denoising)")
    if args.n_show < 1:
        raise UsageError(f"--show must be a positive number of samples per image, got {args.n_show}")
    model = load(args.model, device=args.device, verbose=not args.quiet)
    settings = {k: v for k, v in (("random_starts", args.starts), ("n_samples", args.samples)) if v is not None}
    if args.steps is not None:
        settings |= {"steps_per_stage": args.steps}
    try:
        out = model.posterior(x, mask=mask, noise_sigma=args.noise_sigma, space=args.space, settings=settings,
                              level=args.level, seed=args.seed)
    except ValueError as err:
        raise UsageError(f"{err} (--mask, --space, --steps, --samples)") from err
    shown = out.samples[:, : args.n_show]
    n_show = shown.shape[1]
    inputs = np.where(out.hidden, 0.5, x.astype(np.float32) / 255.0)
    top = float(out.std.max()) or 1.0
    grids = {
        "input": (inputs, None), "map": (out.map, None), "mean": (out.mean, None),
        "uncertainty": (out.std / top, None), "interval_lo": (out.lo, None), "interval_hi": (out.hi, None),
        "samples": (shown.reshape(-1, *shown.shape[2:]), n_show),
    }
    res = out.result
    arrays = {"map": out.map, "mean": out.mean, "std": out.std, "lo": out.lo, "hi": out.hi, "hidden": out.hidden,
              "samples": out.samples, "samples_u": res.samples_u.cpu().numpy(), "map_u": res.map_u.cpu().numpy(),
              "weights": res.mixture.weights.cpu().numpy(), "n_modes": res.mixture.n_modes.cpu().numpy(),
              "level": np.asarray(out.level), "space": np.asarray(out.space),
              "noise_sigma": np.asarray(args.noise_sigma)}
    folder = _user_input(write_result_folder, args.out, grids, arrays)
    print(f"posterior ({args.space}-space) of {len(x)} images: {folder}/map.png (MAP), samples.png ({n_show} per "
          f"image, one row each), mean.png, uncertainty.png (predictive std / {top:.4f}), interval_lo/hi.png "
          f"({round(100 * out.level)} % interval), input.png, result.npz; modes per image "
          f"{float(res.mixture.n_modes.float().mean()):.2f}")


# --------------------------------------------------------------------------------------------------------
# Parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="where torch runs: auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch log lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pae",
        description="Probabilistic Auto-Encoder (Böhm & Seljak 2020): fit on your images, sample, score "
                    "out-of-distribution data, compute FIDs. Every setting defaults to the paper's value "
                    "(the repository's config/config.yaml).",
        epilog="Images: an image folder (PNG, JPEG, ...), an image file, .npz or .npy (uint8 0..255 or float "
               "[0, 1], shape (N, C, H, W) or (N, H, W)). "
               "Run `pae COMMAND --help` for the options of each command.",
    )
    from pae import __version__
    from pae.config import paper_defaults

    d = paper_defaults()  # the help shows the defaults the models use
    parser.add_argument("--version", action="version", version=f"pae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_fit(sub, d)
    _add_sample(sub)
    _add_score(sub)
    _add_fid(sub)
    _add_posterior(sub, d)
    return parser


def _add_fit(sub: Any, d: dict[str, Any]) -> None:
    """The `pae fit` subcommand and its options."""
    p = sub.add_parser("fit", help="train a PAE (auto-encoder, then flow) or a VAE baseline",
                       description="Train the auto-encoder on Eq. 2, then the normalizing flow on its latents "
                                   "(Eq. 4-5), and save the model folder.")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="training images: an image folder (all images, or train/ and valid/ subfolders), an .npz "
                        "with x_train (and optionally x_valid) or x, or a .npy array")
    p.add_argument("--valid", metavar="PATH",
                   help="validation images (folder, .npz, .npy); default: x_valid / valid/ of --data, else 1/6 of "
                        "the training images held out (the paper's 10k of 60k)")
    p.add_argument("--key", help="name of the image array in the .npz files (default: x_train/x_valid, or x)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="model folder to write (ae.pt, flow.pt, ae_stats.npz, model.json)")
    p.add_argument("--model-type", choices=["pae", "vae", "betavae"], default="pae",
                   help="pae (default), or the paper's VAE / β-VAE baselines on the same nets (Eq. 15)")
    p.add_argument("--latent-dim", type=int, metavar="K",
                   help=f"latent dimension K (default: {d['fid']['table1_K']} for pae, the K of the paper's "
                        f"Table 1; {d['vae']['latent_dim']} (vae.latent_dim) for the baselines)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help=f"auto-encoder / VAE epochs (default: {d['ae']['epochs']} / {d['vae']['epochs']}, the paper's)")
    p.add_argument("--flow-epochs", type=int, metavar="N",
                   help=f"flow epochs (default: {d['flow']['epochs']}, the paper's)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help=f"auto-encoder / VAE batch size (default: {d['ae']['batch_size']})")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any setting by its config/config.yaml key, e.g. --set ae.lr=1e-4 --set "
                        "flow.latent_noise=0 --set data.scale=256 (objective.beta=... for VAEs); repeatable")
    p.add_argument("--config", metavar="FILE",
                   help="YAML file with sections ae:, flow:, data:, ood: (objective: for VAEs) overriding "
                        "the paper defaults; --set and the flags above win over it")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batch order and noise (default: 0)")
    _common(p)
    p.set_defaults(func=cmd_fit)


def _add_sample(sub: Any) -> None:
    """The `pae sample` subcommand and its options."""
    p = sub.add_parser("sample", help="draw images from a fitted model",
                       description="Draw samples x = g(b⁻¹(u)), u ~ N(0, T²I) (Eq. 6) from a PAE, or g(z), "
                                   "z ~ N(0, T²I) from a VAE.")
    p.add_argument("--model", required=True, metavar="DIR", help="model folder written by `pae fit` "
                   "(or a workflow run folder such as results/fmnist/K64/seed0)")
    p.add_argument("-n", type=int, default=64, help="number of images (default: 64)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="samples.png (one grid), samples.npz (uint8 array x), samples.npy, or a new folder "
                        "name without suffix (one PNG per image)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale T of the latent noise (default: 1, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise: same seed, same images (default: 0)")
    _common(p)
    p.set_defaults(func=cmd_sample)


def _add_score(sub: Any) -> None:
    """The `pae score` subcommand and its options."""
    p = sub.add_parser("score", help="out-of-distribution detection: AUROC, AUPR, FPR@95",
                       description="Score in-distribution and OoD images with a fitted model and print AUROC, "
                                   "AUPR and the false-positive rate at 95% true-positive rate (OoD = positive).")
    p.add_argument("--model", required=True, metavar="DIR", help="model folder written by `pae fit`")
    p.add_argument("--in-dist", required=True, metavar="PATH", help="in-distribution images (folder, .npz, .npy)")
    p.add_argument("--ood", required=True, metavar="PATH", help="out-of-distribution images (folder, .npz, .npy)")
    p.add_argument("--key", help="name of the image array in both files (default: x, x_test or the only array)")
    p.add_argument("--kind", help="PAE: density (Eq. 5, default), recon (reconstruction error), eq12 (Eq. 12), "
                                  "eq12_map (Eq. 12 at the MAP latent), laplace (Eq. 11 at the MAP latent); "
                                  "VAE: elbo (default), iwae, recon")
    p.add_argument("--out", metavar="FILE", help="also save the per-image scores (scores_in, scores_ood) to this .npz")
    _common(p)
    p.set_defaults(func=cmd_score)


def _add_fid(sub: Any) -> None:
    """The `pae fid` subcommand and its options."""
    p = sub.add_parser("fid", help="Fréchet distance between two image sets",
                       description="FID between two image sets with Inception (pytorch-fid's weights; the paper's "
                                   "protocol: per-image min-max normalisation) or domain-classifier features.")
    p.add_argument("--real", required=True, metavar="PATH",
                   help="reference images (image folder, .npz, .npy) or a statistics file from --save-stats")
    p.add_argument("--fake", metavar="PATH",
                   help="generated images (image folder, .npz, .npy; e.g. from `pae sample`) or a statistics file")
    p.add_argument("--save-stats", metavar="OUT.npz",
                   help="write the feature statistics (mu, sigma: pytorch-fid's names) of --real to this .npz, "
                        "for reuse as --real or --fake; without --fake nothing else is computed")
    p.add_argument("--key", help="name of the image array in both files (default: x, x_test or the only array)")
    p.add_argument("--features", choices=["inception", "domain"], default="inception",
                   help="inception (default; needs the weights file, see --inception-weights) or domain "
                        "(a domain classifier, see --classifier)")
    p.add_argument("--inception-weights", metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (default: pytorch-fid's cache in $TORCH_HOME/hub)")
    p.add_argument("--download", action="store_true", help="fetch the Inception weights when not cached")
    p.add_argument("--classifier", metavar="PATH", help="classifier.pt written by the workflow's train_classifier")
    p.add_argument("--normalize", choices=["minmax", "none"], default="minmax",
                   help="Inception inputs: minmax = each image scaled to [0, 1] (the original's), none = x/255")
    p.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default: 50)")
    _common(p)
    p.set_defaults(func=cmd_fid)


def _add_posterior(sub: Any, d: dict[str, Any]) -> None:
    """The `pae posterior` subcommand and its options."""
    post = d["posterior"]
    p = sub.add_parser("posterior", aliases=["inpaint", "denoise"],
                       help="inpaint and/or denoise images with uncertainty (MAP, posterior samples, intervals)",
                       description="The posterior of Sec. 2.3 (Eq. 13-14) of corrupted images x̃ = M x + n: MAP from "
                                   "several starts, a Laplace-mixture posterior in the flow's latent space u, samples "
                                   "and per-pixel intervals of the predictive g(z) + σ·ε. Writes a new folder with "
                                   "input.png, map.png, samples.png, mean.png, uncertainty.png, interval_lo.png, "
                                   "interval_hi.png and result.npz.")
    p.add_argument("--model", required=True, metavar="DIR", help="PAE folder written by `pae fit` (or a run folder)")
    p.add_argument("--images", required=True, metavar="PATH",
                   help="the corrupted images (image folder, image file, .npz, .npy); hidden pixels are ignored")
    p.add_argument("--key", help="name of the image array in an .npz (default: x, x_test or the only array)")
    p.add_argument("--mask", metavar="SPEC",
                   help="pixels to fill in: left:K / right:K (the first / last K columns), random:F (a share F)")
    p.add_argument("--mask-file", metavar="PATH",
                   help="pixels to fill in as an image or array of the images' size (nonzero = unknown)")
    p.add_argument("--noise-sigma", type=float, default=0.0,
                   help="std of the Gaussian noise in the input, pixel units of [0, 1] (default: 0)")
    p.add_argument("--space", choices=["u", "z"], default="u",
                   help="u: the paper's posterior with the flow prior (default); z: N(0, I) prior on z (original code)")
    p.add_argument("--starts", type=int, metavar="N",
                   help=f"random starts besides the encoder start (default: {post['random_starts']})")
    p.add_argument("--steps", type=int, metavar="N",
                   help=f"Adam steps per learning-rate stage (default: {post['steps_per_stage']}, the original code's; "
                        "a few hundred suffice for small images on a CPU)")
    p.add_argument("--samples", type=int, metavar="N",
                   help=f"posterior samples per image (default: {post['n_samples']})")
    p.add_argument("--show", dest="n_show", type=int, default=8, help="samples per image in samples.png (default: 8)")
    p.add_argument("--level", type=float, default=0.9, help="level of the per-pixel interval (default: 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts, samples and random masks")
    p.add_argument("--out", required=True, metavar="DIR", help="a new folder for the results")
    _common(p)
    p.set_defaults(func=cmd_posterior)


def _one_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    head, rest = lines[0], lines[1:]
    if head.endswith(":") and rest:  # "invalid configuration (2 problem(s)):" + one line per problem
        return f"{head} {'; '.join(rest)}"
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pae` command; returns the exit status (0 ok, 2 bad input, 1 failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from pae.science.features import InceptionUnavailable

    debug = bool(os.environ.get("PAE_DEBUG"))
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"pae {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, KeyError, InceptionUnavailable) as err:
        if debug:
            raise
        print(f"pae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except (FloatingPointError, RuntimeError) as err:
        if debug:
            raise
        print(f"pae {args.command}: failed: {_one_line(err)} (set PAE_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
