"""The GPU path, measured: the quick main job (Table 2) on one device in fp32 (twice) and bf16, per-stage
seconds, the digits of the runs side by side, a train_ae killed after a checkpoint and resumed, and the
paper-scale GPU-hours of the `all` target's trainings from the measured epoch times.

    .venv/bin/python benchmarks/gpu_check.py                          # CUDA, config/quick.yaml, /tmp/gpu_check
    .venv/bin/python benchmarks/gpu_check.py --device cpu --configfile config/test.yaml --out /tmp/gc
    bash benchmarks/gpu_check.sh                                      # the same, CUDA, from the repository root

Each run is `snakemake --cores C table2 --config device=D precision=P outdir=...` in one work folder (the data
are prepared once and shared). fp32 runs twice to show whether the digits repeat on the device; bf16 once (its
digits differ from fp32 by rounding: the table shows by how much). The resume check starts train_ae with more
epochs, kills Snakemake after the first checkpoint and reruns; the log must say "resumed from".

GPU-hours for `all` (config/config.yaml, the paper schedule) = Σ over the trainings `all` asks for (AE per
dataset × K × seed, its flow, the VAE baselines of vae.models per seed on fid.dataset) of epochs × the measured
seconds per training image and epoch × the training images. An EXTRAPOLATION from a short run at the quick
config's batch sizes; evaluation jobs (scores, FID, posterior, figures) are not included.
Writes <out>/gpu_check.json and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pae.stages.provenance import stage_times  # noqa: E402

DIGITS = ("ours", "aupr", "fpr95")  # Table 2 numbers compared between runs


def snakemake(work: Path, configs: list[str], cores: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory",
            str(work), "--cores", str(cores), "--workflow-profile", "none", *args, "--configfile", *configs]


def merged_config(configs: list[str]) -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in configs:
        for key, value in (yaml.safe_load(Path(path).read_text()) or {}).items():
            cfg[key] = cfg[key] | value if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    return cfg


def run_main_job(work: Path, configs: list[str], cores: int, device: str, precision: str, name: str) -> dict:
    """One Table 2 run into results/<name>; wall seconds, per-stage seconds and the table."""
    outdir = f"results/{name}"
    t0 = time.perf_counter()
    proc = subprocess.run(snakemake(work, configs, cores, "table2", "--config", f"device={device}",
                                    f"precision={precision}", f"outdir={outdir}"),
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"gpu_check: the {name} run failed:\n{proc.stderr[-4000:]}")
    stages = {rule: round(v["total_s"], 1) for rule, v in stage_times(work / outdir / "benchmarks").items()
              if not rule.startswith("_")}
    table = pd.read_csv(work / outdir / "table2.csv")
    return {"name": name, "device": device, "precision": precision, "wall_s": round(wall, 1), "stages_s": stages,
            "table": table[["row", "column", *DIGITS]].to_dict("records"), "outdir": outdir}


def max_difference(a: dict, b: dict) -> float:
    x, y = pd.DataFrame(a["table"]), pd.DataFrame(b["table"])
    return float(max((pd.to_numeric(x[c]) - pd.to_numeric(y[c])).abs().max() for c in DIGITS))


def resume_check(work: Path, configs: list[str], cores: int, device: str, cfg: dict, timeout: float = 600) -> dict:
    """Kill train_ae after its first checkpoint (AE at the smallest K, first seed, 3 more epochs than the
    config) and rerun: the log must say it resumed."""
    K, seed, dataset = min(cfg["ae"]["latent_dims"]), cfg["seeds"][0], cfg["ood"]["in_dataset"]
    overlay = work / "resume.yaml"
    overlay.write_text(yaml.safe_dump({"ae": {"epochs": int(cfg["ae"]["epochs"]) + 3, "checkpoint_every": 1}}))
    target = f"results/resume/{dataset}/K{K}/seed{seed}/ae.pt"
    args = [target, "--config", f"device={device}", "outdir=results/resume"]
    proc = subprocess.Popen(snakemake(work, [*configs, str(overlay)], cores, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoint = work / target.replace("ae.pt", "ae.ckpt")
    deadline = time.time() + timeout
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    caught = checkpoint.exists() and proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if not caught:
        return {"resumed": False, "why": "train_ae finished or wrote no checkpoint before it could be killed"}
    subprocess.run(snakemake(work, [*configs, str(overlay)], cores, "--unlock", *args), capture_output=True)
    t0 = time.perf_counter()
    rerun = subprocess.run(snakemake(work, [*configs, str(overlay)], cores, "--rerun-incomplete", *args),
                           capture_output=True, text=True)
    log = work / f"results/resume/logs/train_ae/{dataset}_K{K}_seed{seed}.log"
    text = log.read_text() if log.exists() else ""
    resumed = rerun.returncode == 0 and "resumed from" in text and (work / target).exists()
    return {"resumed": resumed, "rerun_s": round(time.perf_counter() - t0, 1),
            "log_line": next((line for line in text.splitlines() if "resumed from" in line), None)}


def _history_seconds_per_image(work: Path, run: dict, cfg: dict) -> dict[str, float]:
    """Measured training seconds per image and epoch: AE and flow of every run folder, the VAEs' metrics."""
    out = work / run["outdir"]
    n_train = None
    per: dict[str, list[float]] = {"ae": [], "flow": [], "vae": []}
    import numpy as np

    data = work / cfg["data"]["dir"] / "processed" / f"{cfg['ood']['in_dataset']}.npz"
    with np.load(data) as arrays:
        n_train = len(arrays["x_train"])
    for hist in out.glob("*/K*/seed*/ae_history.json"):
        epochs = json.loads(hist.read_text())
        per["ae"] += [e["seconds"] / n_train for e in epochs]
    for hist in out.glob("*/K*/seed*/flow_history.csv"):
        per["flow"] += list(pd.read_csv(hist)["seconds"] / n_train)
    for metrics in out.glob("*/K*/seed*/*vae_metrics.json"):
        m = json.loads(metrics.read_text())
        if m.get("train_seconds") and m.get("epochs"):
            per["vae"].append(m["train_seconds"] / m["epochs"] / n_train)
    return {k: float(np.median(v)) for k, v in per.items() if v}


def paper_gpu_hours(per_image: dict[str, float], paper: dict, n_train: int = 50_000) -> dict[str, Any]:
    """GPU-hours of the `all` trainings of the paper config from seconds per image and epoch
    (n_train: F-MNIST's 60k training images minus the 10k validation split)."""
    seeds = len(paper["seeds"])
    n_ae = len(paper["datasets"]) * len(paper["ae"]["latent_dims"]) * seeds
    n_vae = len(paper["vae"]["models"]) * seeds
    terms = {
        "train_ae": n_ae * paper["ae"]["epochs"] * per_image.get("ae", float("nan")) * n_train,
        "train_flow": n_ae * paper["flow"]["epochs"] * per_image.get("flow", float("nan")) * n_train,
        "train_vae": n_vae * paper["vae"]["epochs"] * per_image.get("vae", per_image.get("ae", float("nan")))
        * n_train,
    }
    hours = {k: round(v / 3600, 2) for k, v in terms.items()}
    return {"jobs": {"train_ae": n_ae, "train_flow": n_ae, "train_vae": n_vae}, "gpu_hours": hours,
            "total_gpu_hours": round(sum(hours.values()), 2)}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: --device cuda but torch sees no CUDA device; use --device cpu")
        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def summary(result: dict) -> str:
    lines = [f"# GPU check on {result['device_name']} ({result['device']})", "",
             "| run | wall s | " + " | ".join(sorted({s for r in result["runs"] for s in r["stages_s"]})) + " |"]
    stages = sorted({s for r in result["runs"] for s in r["stages_s"]})
    lines.append("|---" * (2 + len(stages)) + "|")
    for r in result["runs"]:
        lines.append(f"| {r['name']} | {r['wall_s']} | " + " | ".join(str(r["stages_s"].get(s, "")) for s in stages)
                     + " |")
    lines += ["", f"- max |Table 2 difference| fp32 run 1 vs run 2: {result['fp32_repeat_max_diff']}",
              f"- max |Table 2 difference| fp32 vs bf16: {result['fp32_bf16_max_diff']}",
              f"- resume from checkpoint: {result['resume']}",
              f"- paper-scale `all` trainings: {result['paper_scale']['gpu_hours']} → "
              f"{result['paper_scale']['total_gpu_hours']} GPU-hours (extrapolated from the epoch times above)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--configfile", nargs="+", default=[str(REPO / "config" / "quick.yaml")])
    ap.add_argument("--out", default="/tmp/gpu_check", help="work folder (data, runs, gpu_check.json)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeats", type=int, default=2, help="fp32 runs (2: are the digits the same?)")
    args = ap.parse_args(argv)
    work = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    configs = [str(Path(c).resolve()) for c in args.configfile]
    cfg = merged_config(configs)
    result: dict[str, Any] = {"device": args.device, "device_name": device_name(args.device), "configs": configs}
    runs = [run_main_job(work, configs, args.cores, args.device, "fp32", f"fp32-run{i + 1}")
            for i in range(args.repeats)]
    runs.append(run_main_job(work, configs, args.cores, args.device, "bf16", "bf16-run1"))
    result["runs"] = runs
    result["fp32_repeat_max_diff"] = max_difference(runs[0], runs[1]) if args.repeats > 1 else None
    result["fp32_bf16_max_diff"] = max_difference(runs[0], runs[-1])
    result["resume"] = resume_check(work, configs, args.cores, args.device, cfg)
    per_image = _history_seconds_per_image(work, runs[0], cfg)
    result["seconds_per_image_epoch"] = per_image
    result["paper_scale"] = paper_gpu_hours(per_image, merged_config([]))
    (work / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(summary(result))
    return result


if __name__ == "__main__":
    main()
