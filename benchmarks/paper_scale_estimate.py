"""Paper-scale CPU-hours of the pipeline's dominant jobs, from the cost curves and config/config.yaml.

    .venv/bin/python benchmarks/paper_scale_estimate.py                     # benchmarks/cost_curves.csv
    .venv/bin/python benchmarks/paper_scale_estimate.py --curves /tmp/c.csv --config config/config.yaml

Method: the job list is computed from the config the way the rule files build it (no Snakemake dry run): AEs =
ae.latent_dims × seeds, VAEs = vae.models × seeds, one flow per AE, encode_ae per AE, the ood_scores parts of
pae.stages.rules.table2_plan plus the Fig. 5 density and reconstruction parts (ood.fig5_K) per seed, and the
posterior jobs of the fig6 target (posterior.run × spaces u, z, first seed; with the MNIST AE + flow they need).
Each job's cost is its count of units (training steps, images, image-steps, row-steps) times the measured seconds
per unit of benchmarks/cost_curves.py (random-weight networks on this machine's CPU, wall seconds at the
threads of the measurement, CPU-hours = wall hours × threads). It is an EXTRAPOLATION from seconds-long
measurements on a shared, busy machine, not a measured run; no GPU was measured. Not estimated (no cost curve):
FID with Inception features (no weights offline), the domain classifier, sampling, data preparation, figures.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SPLIT_TRAIN, SPLIT_TEST = 60_000, 10_000  # F-MNIST / MNIST official split sizes (train includes validation)


@dataclass(frozen=True)
class Term:
    """One group of jobs: how many, CPU-hours in all, and how the number was made."""

    name: str
    jobs: int
    cpu_h: float
    method: str
    target: str = "all"


class Curves:
    """Lookup of cost-curve rows: per-unit and per-operation seconds at (or nearest to) an x."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = list(rows)

    def row(self, curve: str, x: float | None = None) -> Mapping[str, Any]:
        """The row of `curve` at x (nearest on a log scale when x was not measured); largest x when x is None."""
        pts = [r for r in self.rows if r["curve"] == curve]
        if not pts:
            raise LookupError(f"cost curve {curve!r} was not measured")
        if x is None:
            return max(pts, key=lambda r: float(r["x"]))
        return min(pts, key=lambda r: (abs(math.log(float(r["x"]) / x)), float(r["x"])))

    def fit(self, curve: str) -> tuple[float, float, str]:
        """(fixed seconds per call, marginal seconds per unit) through the two largest-x points of `curve`.

        A row's seconds = fixed + units(x) · cost, units(x) = x · seconds / (per_unit · x) recovered from the row;
        with one point or a non-positive slope, (0, per_unit of the largest point): an upper bound."""
        pts = sorted((float(r["x"]), r) for r in self.rows if r["curve"] == curve)
        if not pts:
            raise LookupError(f"cost curve {curve!r} was not measured")
        top = pts[-1][1]
        if len(pts) >= 2:
            (_, r1), (_, r2) = pts[-2], pts[-1]
            u1 = float(r1["seconds"]) / float(r1["per_unit"])  # units in the operation at x1
            u2 = float(r2["seconds"]) / float(r2["per_unit"])
            if u2 > u1:
                cost = (float(r2["seconds"]) - float(r1["seconds"])) / (u2 - u1)
                fixed = float(r2["seconds"]) - u2 * cost
                if cost > 0 and fixed >= 0:
                    return fixed, cost, f"two-point fit at x={r1['x']},{r2['x']}"
        return 0.0, float(top["per_unit"]), f"per unit at x={top['x']} (no fit; an upper bound)"

    def threads(self) -> int:
        return max((int(r["threads"]) for r in self.rows), default=1)


def note_int(row: Mapping[str, Any], key: str) -> int | None:
    """The integer after `key=` in a row's note (e.g. K=64, k=100), or None."""
    found = re.search(rf"\b{key}=(\d+)", str(row["note"]))
    return int(found.group(1)) if found else None


def n_scored(cfg: Mapping[str, Any]) -> int:
    """Images per scored run: the F-MNIST test split, MNIST test, Omniglot (data.omniglot_count), two flips."""
    return SPLIT_TEST + SPLIT_TEST + int(cfg["data"]["omniglot_count"]) + 2 * SPLIT_TEST


def score_jobs(cfg: Mapping[str, Any]) -> set[tuple[str, int]]:
    """(part, K) of every ood_scores job per seed: Table 2's rows and Fig. 5's density + recon parts."""
    from pae.settings import Settings
    from pae.stages.rules import table2_plan

    jobs = set(table2_plan(Settings.from_config(cfg)).values())
    if cfg["ood"]["map_steps"] == 0:
        jobs = {j for j in jobs if j[0] != "map"}
    for K in cfg["ood"]["fig5_K"]:
        jobs |= {("density", int(K)), ("recon", int(K))}
    return jobs


def estimate(rows: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any]) -> list[Term]:
    """Terms of the paper-scale estimate for config `cfg` from cost-curve rows (see the module docstring)."""
    c = Curves(rows)
    cpu = c.threads() / 3600.0  # wall seconds at `threads` → CPU-hours
    seeds = len(cfg["seeds"])
    Ks = [int(k) for k in cfg["ae"]["latent_dims"]]
    n_valid = int(cfg["data"]["valid_size"])
    n_train = SPLIT_TRAIN - n_valid
    terms: list[Term] = []

    ood = c.row("ood_scoring_vs_images")  # largest N: the best-amortised per-image cost
    img_s = float(ood["per_unit"])
    img_txt = f"{img_s * 1e3:.3g} ms/image (density + recon scoring at N={ood['x']}, an upper bound for one part)"

    def train_job(curve: str, epochs: int) -> tuple[float, str]:
        bs = int(cfg["ae"]["batch_size"])  # the VAEs share the AE's training settings
        r = c.row(curve, bs)
        step_s, steps = float(r["per_unit"]) * bs, n_train // bs  # exact when batch bs was measured
        per_epoch = steps * step_s + n_valid * img_s
        how = "" if int(r["x"]) == bs else f", from the per-image cost at batch {r['x']}"
        return epochs * per_epoch, (f"{epochs} epochs x ({steps} steps x {step_s:.3g} s at batch {bs}{how} "
                                    f"+ {n_valid} validation images x {img_s * 1e3:.3g} ms)")

    ae_s, ae_txt = train_job("ae_step_vs_batch", int(cfg["ae"]["epochs"]))
    n_ae = len(Ks) * seeds
    terms.append(Term("train_ae", n_ae, n_ae * ae_s * cpu, f"{len(Ks)} K x {seeds} seeds; per job {ae_txt}"))
    vae_s, vae_txt = train_job("vae_step_vs_batch", int(cfg["vae"]["epochs"]))
    n_vae = len(cfg["vae"]["models"]) * seeds
    terms.append(Term("train_vae", n_vae, n_vae * vae_s * cpu,
                      f"{len(cfg['vae']['models'])} models x {seeds} seeds; per job {vae_txt}"))

    f = cfg["flow"]
    fbs, f_epochs = int(f["batch_size"]), int(f["epochs"])

    def flow_job(K: int) -> tuple[float, str]:
        r = c.row("flow_train_paper_vs_K", K)
        steps = n_train // fbs
        per_epoch = steps * float(r["seconds"]) + n_valid * float(r["per_unit"])
        return f_epochs * per_epoch, f"K={K}: {steps} steps x {float(r['seconds']):.3g} s (measured at K={r['x']})"

    flow_parts = [flow_job(K) for K in Ks]
    terms.append(Term("train_flow", n_ae, sum(s for s, _ in flow_parts) * seeds * cpu,
                      f"{f_epochs} epochs, batch {fbs}, per K x {seeds} seeds; " + "; ".join(t for _, t in flow_parts)
                      + f"; validation {n_valid} latents/epoch at the training cost per latent (upper bound)"))
    n_enc = n_train + n_valid + SPLIT_TEST
    terms.append(Term("encode_ae", n_ae, n_ae * n_enc * img_s * cpu, f"{n_enc} images per AE x {img_txt}"))

    jobs = score_jobs(cfg)
    n_img = n_scored(cfg)
    simple = sorted(j for j in jobs if j[0] in ("density", "recon"))
    terms.append(Term("ood_scores density/recon", len(simple) * seeds, len(simple) * seeds * n_img * img_s * cpu,
                      f"parts {', '.join(f'{p}@K{K}' for p, K in simple)} x {seeds} seeds; {n_img} images each x "
                      f"{img_txt}"))
    o = cfg["ood"]
    for _part, K in sorted(j for j in jobs if j[0] == "map"):
        m, lap = c.row("map_refine_vs_images"), c.row("laplace_vs_images")
        lap_fixed, lap_cost, lap_how = c.fit("laplace_vs_images")
        n_map = min(o.get("map_count") or n_img, n_img)
        n_lap = min(o.get("laplace_count") or n_img, n_img)
        steps = int(o["map_steps"]) + 1
        batches = math.ceil(n_lap / int(o["batch_size"]))
        per_job = n_map * steps * float(m["per_unit"]) + n_lap * lap_cost + batches * lap_fixed
        terms.append(Term(f"ood_scores map@K{K}", seeds, seeds * per_job * cpu,
                          f"{n_map} images x {steps} objective evaluations x {float(m['per_unit']) * 1e3:.3g} ms "
                          f"(Eq. 9, at {m['x']} images, K={note_int(m, 'K')}) + {n_lap} images x {lap_cost:.3g} s + "
                          f"{batches} batches x {lap_fixed:.3g} s (Eq. 11, K={note_int(lap, 'K')}, "
                          f"{lap_how})"))
    for _part, K in sorted(j for j in jobs if j[0] == "vae"):
        r = c.row("iwae_vs_images")
        k_meas, k = note_int(r, "k"), int(o["iwae_samples"])
        if k_meas is None:
            raise LookupError("iwae_vs_images row does not name its k (note 'k=...')")
        n_iw = min(o.get("iwae_count") or n_img, n_img)
        per_img = float(r["per_unit"]) * k / k_meas
        terms.append(Term(f"ood_scores vae@K{K}", seeds, seeds * n_iw * per_img * cpu,
                          f"{n_iw} images x {per_img:.3g} s (ELBO + IWAE, k={k}; measured at k={k_meas})"))

    p = cfg["posterior"]
    from pae.science.posterior import PosteriorSettings

    st = PosteriorSettings.from_config({k: p[k] for k in ("random_starts", "encoder_start", "lr_stages",
                                                          "steps_per_stage", "n_samples", "batch_size")})
    row_steps = int(p["n_images"]) * st.n_starts * sum(st.steps)
    n_corr = len(p["run"])
    for space in ("u", "z"):
        curve = f"posterior_{space}_vs_steps"
        fixed, cost, how = c.fit(curve)
        found = re.search(r"(\d+) images", str(c.row(curve)["note"]))
        n_meas = int(found.group(1)) if found else 1
        per_job = row_steps * cost + fixed * int(p["n_images"]) / n_meas  # fixed: Hessians, samples (per image)
        terms.append(Term(f"posterior ({space} space)", n_corr, n_corr * per_job * cpu,
                          f"{n_corr} corruptions x {p['n_images']} images x {st.n_starts} starts x {sum(st.steps)} "
                          f"Adam steps x {cost * 1e6:.3g} us per row-step + {fixed / n_meas:.3g} s per image "
                          f"(K={p['K']}, {how})", target="fig6"))
    pK = int(p["K"])
    pf_s, pf_txt = flow_job(pK)
    terms.append(Term(f"train_ae + train_flow ({p['dataset']} K={pK})", 2, (ae_s + pf_s) * cpu,
                      f"first seed only; AE as train_ae; flow {pf_txt}", target="fig6"))
    return terms


def print_estimate(terms: Sequence[Term]) -> None:
    """Each term and the totals of the `all` and `fig6` targets."""
    print("Paper-scale CPU estimate (config/config.yaml) - EXTRAPOLATED from benchmarks/cost_curves.py "
          "(random-weight nets, shared busy CPU); no GPU measured")
    for t in terms:
        print(f"  [{t.target}] {t.name}: {t.jobs} jobs, {t.cpu_h:,.1f} CPU-h  ({t.method})")
    for target in ("all", "fig6"):
        total = sum(t.cpu_h for t in terms if t.target == target)
        print(f"  total, {target} target (dominant terms only): {total:,.1f} CPU-h = {total / 24:,.1f} CPU-days")
    print("  not estimated: FID (Inception features; no weights offline), train_classifier, sample_model, "
          "fid_reference, data, figures, tables")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> list[Term]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", default=str(REPO / "benchmarks" / "cost_curves.csv"))
    p.add_argument("--config", default=str(REPO / "config" / "config.yaml"),
                   help="config file, merged over config/config.yaml as Snakemake overlays it")
    args = p.parse_args(argv)
    from pae.config import deep_merge

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = deep_merge(base, yaml.safe_load(Path(args.config).read_text()) or {})
    terms = estimate(read_rows(Path(args.curves)), cfg)
    print_estimate(terms)
    return terms


if __name__ == "__main__":
    main()
