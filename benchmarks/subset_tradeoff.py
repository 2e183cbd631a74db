"""What halving the quick configuration's evaluation subsets costs, measured on the score files of a run made
with the larger counts (no rerun): Table 2's MAP (Eq. 12 at the MAP of Eq. 9) and VAE ELBO / IWAE rows on every
other saved image of each set (what half the count picks, up to rounding), and the posterior metrics on the
first half of the analysed images (posterior.n_images picks the first n test images).

    .venv/bin/python benchmarks/subset_tradeoff.py RUN_FOLDER [--after RUN_AFTER] --out docs/results/quick/subset-tradeoff.md

RUN_FOLDER is a run's output folder (e.g. results/quick) whose files were written with the larger counts;
RUN_AFTER, a run with the smaller counts, adds Table 2 of both runs side by side (what the change did, measured).
Each AUROC comes with its bootstrap std (200 resamples of both sets), so a shift can be read against the
sampling error it already had.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from pae.science.metrics import auroc

ROWS = {"ood_scores_map.npz": ("eq12_map",), "ood_scores_vae.npz": ("elbo", "iwae")}
IN_SET = "test"
POSTERIOR_COLUMNS = ("psnr_mean", "class_share", "map_class_correct", "pred_cover_fg_68", "pred_cover_fg_95",
                     "multimodal_share")


def bootstrap_std(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 200) -> float:
    """Std of the AUROC over `n` resamples (with replacement) of both sets."""
    return float(np.std([auroc(rng.choice(a, a.size), rng.choice(b, b.size)) for _ in range(n)]))


def auroc_rows(scores: dict[str, np.ndarray], rows: tuple[str, ...], seed: int = 0) -> list[dict[str, object]]:
    """One record per row and OoD set: AUROC and bootstrap std on all saved images and on every other one."""
    rng = np.random.default_rng(seed)
    out = []
    for row in rows:
        sets = [k.split("__", 1)[1] for k in scores if k.startswith(f"{row}__") and not k.endswith(f"__{IN_SET}")]
        for name in sets:
            a, b = scores[f"{row}__{IN_SET}"], scores[f"{row}__{name}"]
            full, half = auroc(a, b), auroc(a[::2], b[::2])
            out.append({"row": row, "set": name, "n": b.size, "auroc": full, "std": bootstrap_std(a, b, rng),
                        "n_half": b[::2].size, "auroc_half": half, "std_half": bootstrap_std(a[::2], b[::2], rng),
                        "shift": half - full})
    return out


def first_half(posterior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A posterior file's arrays restricted to its first half of images (image axis 0, or 1 for per-start arrays)."""
    n = posterior["x"].shape[0]
    out = {}
    for key, value in posterior.items():
        if value.ndim >= 1 and value.shape[0] == n and not key.startswith("meta__"):
            value = value[: n // 2]
        elif value.ndim >= 2 and value.shape[1] == n:
            value = value[:, : n // 2]
        out[key] = value
    return out


def posterior_halved(run: Path):
    """The posterior metrics (pae.stages.posterior.run_posterior_metrics) on the first half of the images, or None
    when the run has no posterior files."""
    import pandas as pd

    from pae.stages.posterior import run_posterior_metrics

    folders = sorted(run.glob("*/K*/seed*/posterior"))
    if not folders:
        return None
    folder = folders[0]
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, dict[str, str]] = {}
        for path in sorted(folder.glob("*_*.npz")):
            corruption, space = path.stem.rsplit("_", 1)
            with np.load(path) as arrays:
                half = first_half({k: arrays[k] for k in arrays.files})
            scale, sigma_floor = float(half["meta__scale"]), float(half["meta__sigma_floor"])  # as the run had them
            files.setdefault(corruption, {})[space] = f"{tmp}/{path.name}"
            np.savez(files[corruption][space], **half)
        run_dir, dataset = folder.parent, folder.parts[-4]
        run_posterior_metrics(files, run_dir / "ae.pt", run_dir / "ae_stats.npz",
                              next((run / dataset / "classifier").glob("seed*/classifier.pt")),
                              f"{tmp}/half.csv", f"{tmp}/half.md", scale=scale, sigma_floor=sigma_floor, device="cpu",
                              log=lambda s: None)
        return pd.read_csv(f"{tmp}/half.csv")


def posterior_shifts(before, after) -> list[str]:
    """Markdown rows: two `posterior_metrics.csv` frames side by side, metric by metric, with the difference."""
    import pandas as pd

    rows = []
    for (_, x), (_, y) in zip(before.iterrows(), after.iterrows(), strict=True):
        rows += [f"| {x['corruption']} | {x['method']} | {c} | {int(x['n_images'])} | {x[c]:.3f} | "
                 f"{int(y['n_images'])} | {y[c]:.3f} | {y[c] - x[c]:+.3f} |" for c in POSTERIOR_COLUMNS if pd.notna(x[c])]
    return rows


def commit_of(run: Path) -> str:
    """The commit of a run's Table 2 (its provenance record), or "unknown"."""
    provenance = run / "table2.provenance.json"
    return json.loads(provenance.read_text())["git"]["commit"][:7] if provenance.is_file() else "unknown"


def table2_shifts(before: Path, after: Path) -> list[str]:
    """Markdown rows: every Table 2 cell of both runs that differs, with the difference."""
    import pandas as pd

    keys = ["row", "column"]
    a, b = (pd.read_csv(run / "table2.csv")[keys + ["ours"]] for run in (before, after))
    both = a.merge(b, on=keys, suffixes=("_before", "_after"))
    changed = both[both["ours_before"] != both["ours_after"]]
    return [f"| {r.row} | {r.column} | {r.ours_before:.3f} | {r.ours_after:.3f} | {r.ours_after - r.ours_before:+.3f} |"
            for r in changed.itertuples()]


def report(run: Path, after: Path | None = None) -> str:
    """The Markdown report of the module docstring."""
    lines = [f"# Halved evaluation subsets: what they cost (score files of a run at commit {commit_of(run)})", "",
             "Written by `benchmarks/subset_tradeoff.py` from the run's score files (no rerun). AUROC ± bootstrap "
             "std on the saved images and on every other one.", "",
             "| file | row | OoD set | n | AUROC | n | AUROC (half) | shift |", "|---|---|---|---|---|---|---|---|"]
    for path in sorted(run.glob("*/K*/seed0/ood_scores_*.npz")):
        if path.name not in ROWS:
            continue
        with np.load(path) as arrays:
            scores = {k: arrays[k] for k in arrays.files if not k.startswith("meta__")}
        for r in auroc_rows(scores, ROWS[path.name]):
            lines.append(f"| {path.relative_to(run)} | {r['row']} | {r['set']} | {r['n']} | {r['auroc']:.3f} ± "
                         f"{r['std']:.3f} | {r['n_half']} | {r['auroc_half']:.3f} ± {r['std_half']:.3f} | "
                         f"{r['shift']:+.3f} |")
    if after is not None:
        lines += ["", f"Table 2 of that run and of a run with the halved counts (commit {commit_of(after)}): every cell "
                  "that differs. Laplace keeps its 100 images per set, drawn from the smaller MAP subset.", "",
                  "| row | OoD set | before | after | shift |", "|---|---|---|---|---|", *table2_shifts(run, after)]
    halved = posterior_halved(run)
    if halved is not None:
        import pandas as pd

        full = pd.read_csv(run / "posterior_metrics.csv")
        lines += ["", "Posterior metrics on all analysed images and on the first half (a share p on n images has a "
                  "binomial std of √(p(1 − p)/n)).", "",
                  "| corruption | method | metric | n | all | n | first half | shift |", "|---|---|---|---|---|---|---|---|",
                  *posterior_shifts(full, halved)]
        if after is not None:
            lines += ["", f"The posterior metrics of both runs (commit {commit_of(run)}, then {commit_of(after)}, whose "
                      "random starts differ as well):", "",
                      "| corruption | method | metric | n | before | n | after | shift |", "|---|---|---|---|---|---|---|---|",
                      *posterior_shifts(full, pd.read_csv(after / "posterior_metrics.csv"))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run's output folder written with the larger counts")
    parser.add_argument("--after", type=Path, help="a run's output folder written with the halved counts")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    text = report(args.run, args.after)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()
