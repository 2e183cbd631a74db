"""Smoke tests of the benchmark scripts: main_job.py's parsing, cost_curves.py --quick, the paper-scale arithmetic."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _bench(path: Path, seconds: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds:.2f}\t0:00:00\t100.0\t200.0\t50.0\t60.0\t0.00\t0.10\t90.00\t{cpu:.2f}\n")


def _run_folder(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    _bench(out / "benchmarks" / "train_ae" / "fmnist_K4_seed0.tsv", 100.5, 80.0)
    _bench(out / "benchmarks" / "train_ae" / "fmnist_K64_seed0.tsv", 250.25, 200.0)
    _bench(out / "benchmarks" / "table2.tsv", 6.25, 3.7)
    rows = [
        ("PAE density", "MNIST", "0.997", "0.997"),
        ("PAE density", "OMNIGLOT", "0.982", "0.981"),
        ("PAE density", "FMNIST-hflip", "0.715", "0.698"),
        ("PAE density", "FMNIST-vflip", "0.885", "0.891"),
        ("AE reconstruction error", "MNIST", "0.979", "0.986"),
        ("AE reconstruction error", "OMNIGLOT", "0.866", "0.916"),  # the largest gap: 0.050
        ("AE reconstruction error", "FMNIST-hflip", "0.100", ""),  # no paper value: skipped
        ("AE reconstruction error", "FMNIST-vflip", "0.848", "0.880"),
        ("VAE IWAE", "MNIST", "0.500", "0.990"),  # not a paper row of ours: ignored
    ]
    with open(out / "table2.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "K", "column", "ours", "ours_std", "n_seeds", "paper", "difference"])
        for row, col, ours, paper in rows:
            diff = f"{float(ours) - float(paper):.4f}" if paper else ""
            w.writerow([row, 4, col, ours, 0, 1, paper, diff])
    return out


def test_main_job_parses_stages_and_table2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mj = _load("main_job")
    out = _run_folder(tmp_path)
    res = mj.main(["--out", str(out), "--csv", str(tmp_path / "stages.csv")])
    text = capsys.readouterr().out
    stages = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in text.splitlines()
              if line.startswith(("train_ae:", "table2:"))}
    assert stages["train_ae:"] == pytest.approx([350.75, 2, 250.25, 280.0], abs=0.051)  # total, jobs, max, cpu
    assert stages["table2:"] == pytest.approx([6.25, 1, 6.25, 3.7], abs=0.051)
    assert "sum of job seconds: 357.0 s (0:05:57)" in text
    assert "wall: not given (Snakemake's benchmark files carry no start/end timestamps" in text
    assert "largest |ours - paper| over 7 paper cells: 0.0500 at AE reconstruction error / OMNIGLOT" in text
    assert math.isclose(res["worst"].abs_diff, 0.05, abs_tol=1e-9)
    with open(tmp_path / "stages.csv", newline="") as fh:
        table = {r["stage"]: r for r in csv.DictReader(fh)}
    assert table["train_ae"]["jobs"] == "2" and float(table["train_ae"]["total_s"]) == pytest.approx(350.75)


def test_main_job_wall_and_missing_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mj = _load("main_job")
    out = _run_folder(tmp_path)
    (out / "table2.csv").unlink()
    mj.main(["--out", str(out), "--wall", "178.5"])
    text = capsys.readouterr().out
    assert "wall: 178.5 s (0:02:58, given with --wall); sum of job seconds / wall = 2.00" in text
    assert "table2.csv not found" in text


def test_main_job_setup_is_added_to_the_wall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mj = _load("main_job")
    result = mj.main(["--out", str(_run_folder(tmp_path)), "--wall", "600", "--setup", "90.5"])
    text = capsys.readouterr().out
    assert "environment set-up: 90.5 s; set-up + wall: 690.5 s (0:11:30)" in text
    assert "cores busy: job CPU seconds / (wall × 2 cores) = 0.24" in text  # (80 + 200 + 3.7) / 1200
    assert result["setup_s"] == 90.5
    with pytest.raises(SystemExit):
        mj.main(["--out", str(tmp_path), "--setup", "90"])  # set-up without the workflow's wall



def test_suite_timing_reads_both_pytest_summaries_and_the_total() -> None:
    st = _load("suite_timing")
    log = ("....\n396 passed, 4 deselected in 628.76s (0:10:28)\n---- tests/test_slurm.py (run beside the rest)\n"
           "======================== 4 passed in 325.83s (0:05:25) =========================\n")
    assert st.report(log, 749.24, "abc1234", 0).splitlines() == [
        "rest of the suite: 396 passed, 4 deselected in 628.76s (0:10:28)",
        "tests/test_slurm.py (beside the rest): 4 passed in 325.83s (0:05:25)",
        "set-up + wall: 749.2 s (0:12:29)",
        "target: .ci/run (make test) in a fresh clone at commit abc1234, exit status 0",
    ]
    failed = st.report("1 failed, 395 passed in 600.00s (0:10:00)\n", 700, "abc1234", 2)
    assert failed.startswith("rest of the suite: 1 failed, 395 passed") and "exit status 2" in failed


def test_keep_freed_buffers_benchmark_measures_both_passes() -> None:
    import platform

    kf = _load("keep_freed_buffers")
    for what, n in (("eval", 600), ("train", 2)):
        r = kf.child(what, True, 4, n)
        assert r["wall"] > 0 and r["user"] >= 0 and r["kernel"] >= 0
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            assert r["took"] == 1.0  # mallopt accepted both settings


def test_quick_schedule_times_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    qs = _load("quick_schedule")
    rows = qs.main(["--steps", "1", "--flow-epochs", "1", "--latents", "1024"])
    ae = [r for r in rows if r["what"] == "ae"]
    flow = [r for r in rows if r["what"] == "flow"]
    assert {(r["precision"], r["dropout"], r["batch"]) for r in ae} == {
        (p, d, b) for p in ("fp32", "bf16") for d in (0.2, 0.0) for b in (128, 256)}
    assert {(r["threads"], r["batch"]) for r in flow} == {(t, b) for t in (1, 2) for b in (256, 512)}
    assert all(r["images_per_s"] > 0 for r in ae) and all(r["seconds_per_epoch"] > 0 for r in flow)
    assert "s per epoch (1024 latents + validation)" in capsys.readouterr().out


def test_cost_curves_quick_writes_every_curve(tmp_path: Path) -> None:
    cc = _load("cost_curves")
    rows = cc.main(["--quick", "--csv", str(tmp_path / "c.csv"), "--png", str(tmp_path / "c.png")])
    with open(tmp_path / "c.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert tuple(written[0]) == cc.FIELDS
    assert {r["curve"] for r in written} == set(cc.CURVES)
    assert len(written) == len(rows)
    assert all(float(r["seconds"]) > 0 and float(r["per_unit"]) > 0 for r in written)
    assert (tmp_path / "c.png").stat().st_size > 0


def test_paper_scale_estimate_arithmetic() -> None:
    ps = _load("paper_scale_estimate")
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

    def row(curve: str, x: float, seconds: float, per_unit: float, note: str = "") -> dict[str, object]:
        return {"curve": curve, "x": x, "seconds": seconds, "per_unit": per_unit, "threads": 1, "note": note}

    rows = [
        row("ae_step_vs_batch", 64, 0.2, 0.2 / 64, "AE K=64"),
        row("vae_step_vs_batch", 64, 0.25, 0.25 / 64, "VAE K=32"),
        row("ood_scoring_vs_images", 5000, 5.0, 1e-3),
        *[row("flow_train_paper_vs_K", K, 0.01, 0.01 / 128) for K in (4, 8, 16, 32, 64, 128)],
        row("map_refine_vs_images", 500, 6.0, 6.0 / (500 * 6), "K=64"),
        row("laplace_vs_images", 4, 5.0 + 4 * 0.25, (5.0 + 4 * 0.25) / 4, "K=64"),  # 5 s fixed + 0.25 s/image
        row("laplace_vs_images", 16, 5.0 + 16 * 0.25, (5.0 + 16 * 0.25) / 16, "K=64"),
        row("iwae_vs_images", 32, 3.2, 0.1, "VAE K=32, k=100"),
        row("posterior_u_vs_steps", 120, 1.0, 1e-5, "K=8, 8 images"),
        row("posterior_z_vs_steps", 120, 1.0, 1e-5, "K=8, 8 images"),
    ]
    terms = {t.name: t for t in ps.estimate(rows, cfg)}
    per_epoch = (50_000 // 64) * 0.2 + 10_000 * 1e-3
    assert terms["train_ae"].jobs == 18
    assert terms["train_ae"].cpu_h == pytest.approx(18 * 500 * per_epoch / 3600)
    fixed, cost, _ = ps.Curves(rows).fit("laplace_vs_images")
    assert (fixed, cost) == (pytest.approx(5.0), pytest.approx(0.25))
    n = 10_000 * 4 + 13_180
    lap = n * 0.25 + math.ceil(n / 500) * 5.0
    assert terms["ood_scores map@K64"].cpu_h == pytest.approx(3 * (n * 101 * 2e-3 + lap) / 3600)
    assert terms["ood_scores vae@K32"].cpu_h == pytest.approx(3 * n * 0.1 / 3600)
    assert terms["posterior (u space)"].target == "fig6"
    assert terms["posterior (u space)"].cpu_h == pytest.approx(5 * 1000 * 11 * 40_000 * 1e-5 / 3600)


def _tidy(path: Path, cells: dict[tuple[str, str], float]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "column", "ours"])
        for (row, column), value in cells.items():
            w.writerow([row, column, value])


def test_compare_schedules_means_over_table2_and_the_battery(tmp_path: Path) -> None:
    mod = _load("compare_schedules")
    runs = {}
    for name, shift in (("quick", 0.0), ("former", 0.1)):
        folder = tmp_path / name
        folder.mkdir()
        _tidy(folder / "table2.csv", {("PAE density", "MNIST"): 0.8 + shift, ("PAE density", "OMNIGLOT"): 0.6 + shift})
        _tidy(folder / "battery.csv", {("PAE density", "noise"): 0.5 - shift, ("PAE density", "flat"): 0.7 - shift,
                                       ("PAE density", "mean"): 99.0})  # the table's own mean column is not averaged
        run = folder / "fmnist" / "K4" / "seed0"
        run.mkdir(parents=True)
        (run / "ae_history.json").write_text(json.dumps([{"val_mse": 0.03, "seconds": 5.0},
                                                         {"val_mse": 0.02 + shift, "seconds": 6.0}]))
        runs[name] = folder
    text = mod.comparison(runs)
    assert "| fmnist K = 4 | AE validation MSE per pixel | 0.02 | 0.12 |" in text  # the last epoch's
    assert "| fmnist K = 4 | AE training s | 11 | 11 |" in text
    assert "| PAE density | **Table 2 mean** | 0.700 | 0.800 |" in text
    assert "| PAE density | **battery mean** | 0.600 | 0.500 |" in text
    assert "| PAE density | noise | 0.500 | 0.400 |" in text
    with pytest.raises(SystemExit, match="battery.csv does not exist"):
        (tmp_path / "former" / "battery.csv").unlink()
        mod.comparison(runs)


def test_subset_tradeoff_halves_every_set_and_keeps_the_image_axes() -> None:
    st = _load("subset_tradeoff")
    # in-distribution scores 0..99; AUROC = P(OoD score < in-distribution score) + P(tie) / 2
    ramp = np.arange(100.0)
    scores = {"elbo__test": ramp, "elbo__mnist": ramp - 200.0, "elbo__omniglot": ramp + 50.0}
    rows = {r["set"]: r for r in st.auroc_rows(scores, ("elbo",))}
    assert set(rows) == {"mnist", "omniglot"}
    assert rows["mnist"]["auroc"] == rows["mnist"]["auroc_half"] == 1.0 and rows["mnist"]["std"] < 1e-12
    # OoD = in + 50: 1225 of 10 000 pairs below and 50 tied; every other image: 300 of 2500 below, 25 tied
    assert rows["omniglot"]["auroc"] == pytest.approx((1225 + 25) / 10000) and rows["omniglot"]["n_half"] == 50
    assert rows["omniglot"]["auroc_half"] == pytest.approx((300 + 12.5) / 2500) and rows["omniglot"]["std"] > 0
    post = {"x": np.zeros((10, 1, 2, 2)), "final_u": np.zeros((3, 10, 4)), "var": np.ones((1, 2, 2)),
            "meta__scale": np.array(255), "seconds": np.array(1.0)}
    half = st.first_half(post)
    assert half["x"].shape == (5, 1, 2, 2) and half["final_u"].shape == (3, 5, 4)
    assert half["var"].shape == (1, 2, 2) and half["meta__scale"].shape == ()


def test_subset_tradeoff_lists_the_table2_cells_that_moved(tmp_path: Path) -> None:
    st = _load("subset_tradeoff")
    for run, map_value in (("before", 0.85), ("after", 0.84)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "table2.csv").write_text(
            "row,column,ours\nPAE density,MNIST,0.996\nEq. 12 with MAP,MNIST," + str(map_value) + "\n")
    assert st.table2_shifts(tmp_path / "before", tmp_path / "after") == ["| Eq. 12 with MAP | MNIST | 0.850 | 0.840 | -0.010 |"]
