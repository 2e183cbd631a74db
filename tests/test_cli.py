"""Command line (`pae fit | sample | score | fid`): the documented example, bad input, VAE baselines, FID."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from docblocks import doc_block
from pae.cli import main


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _metrics(out: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(AUROC|AUPR|FPR@95) ([0-9.]+)", out)}


class _StandInFeatures:
    """Offline stand-in for the Inception network (its weights are not cached here): 4×4 average-pooled pixels,
    so that the documented `pae fid` lines, --save-stats and the statistics file run end to end."""

    name, dim = "inception", 49

    def __call__(self, x_uint8):
        x = np.asarray(x_uint8, np.float64).mean(1)
        return x.reshape(len(x), 7, 4, 7, 4).mean((2, 4)).reshape(len(x), -1)


def test_cli_example_runs_as_documented(tmp_path, monkeypatch, capsys):
    from pae.files.artifacts import inception_weights_source

    monkeypatch.chdir(tmp_path)
    if inception_weights_source(None).startswith("unavailable"):
        monkeypatch.setattr("pae.cli._fid_extractor", lambda args: _StandInFeatures())
    exec(compile(doc_block("cli-data"), "docs/library.md[cli-data]", "exec"), {})  # noqa: S102
    results = {}
    for line in doc_block("cli").splitlines():
        argv = shlex.split(line)
        assert argv[0] == "pae", line
        results[line] = _run(capsys, argv[1:])
        assert results[line][0] == 0, (line, results[line][2])
    rc, text, err = next(r for line, r in results.items() if line.startswith("pae fit"))
    assert "saved pae (K=4)" in text and (tmp_path / "runs" / "mine" / "flow.pt").is_file()
    assert "epoch 1/1" in err  # the per-epoch log lines
    png = Image.open(tmp_path / "samples.png")
    assert png.size == (4 * 29 - 1, 4 * 29 - 1)  # 16 images in a 4×4 grid with 1-pixel gaps
    with np.load(tmp_path / "samples.npz") as f:
        assert f["x"].shape == (64, 1, 28, 28) and f["x"].dtype == np.uint8
    assert sorted(p.name for p in (tmp_path / "sample_pngs").iterdir()) == [f"image_{i:04d}.png" for i in range(8)]
    _, text, _ = next(r for line, r in results.items() if line.startswith("pae score"))
    metrics = _metrics(text)
    assert set(metrics) == {"AUROC", "AUPR", "FPR@95"} and all(0 <= v <= 1 for v in metrics.values())
    assert "in-distribution pngs (64 images)" in text  # the folder of PNGs was read
    fids = [r[1] for line, r in results.items() if line.startswith("pae fid")]
    assert "saved inception statistics of pngs (64 images) to pngs_stats.npz" in fids[0]
    with np.load(tmp_path / "pngs_stats.npz") as f:
        assert f["mu"].ndim == 1 and f["sigma"].shape == (len(f["mu"]), len(f["mu"]))
    from_stats = float(re.search(r"FID \(inception\) ([0-9.]+)", fids[1]).group(1))
    rc, again, err = _run(capsys, shlex.split("pae fid --real pngs --fake samples.npz")[1:])
    assert rc == 0, err  # the statistics file gives the FID the images give
    assert from_stats == pytest.approx(float(re.search(r"FID \(inception\) ([0-9.]+)", again).group(1)), rel=1e-6)
    folder = tmp_path / "inpainted"
    for name in ("input", "map", "mean", "uncertainty", "interval_lo", "interval_hi", "samples"):
        assert Image.open(folder / f"{name}.png").size[0] > 0, name
    with np.load(folder / "result.npz") as f:
        assert f["samples"].shape == (1, 32, 1, 28, 28) and f["hidden"][..., :14].all()
        assert (f["lo"] <= f["hi"]).all() and not f["hidden"][..., 14:].any()


def test_python_m_pae_and_help():
    proc = subprocess.run([sys.executable, "-m", "pae", "fit", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--data", "--latent-dim", "--out", "--epochs", "--flow-epochs", "--set", "--device"):
        assert option in proc.stdout
    assert "default: 500" in proc.stdout  # defaults in the help come from config.yaml


def _write_bad_inputs(tmp_path):
    good = np.zeros((8, 28, 28), np.uint8)
    np.savez(tmp_path / "two.npz", a=good, b=good)
    np.savez(tmp_path / "odd.npz", x=np.zeros((8, 30, 30), np.uint8))
    np.savez(tmp_path / "floats.npz", x=np.full((8, 28, 28), 255.0))
    np.save(tmp_path / "flat.npy", np.zeros((8, 784), np.uint8))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "images.txt").write_text("0 1 2")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ("fit --data missing.npz --out m", ["missing.npz", "no such file"]),
        ("fit --data images.txt --out m", ["images.txt", "numpy.savez"]),
        ("fit --data broken.npz --out m", ["broken.npz", "not a readable"]),
        ("fit --data two.npz --out m", ["two.npz", "['a', 'b']", "--key"]),
        ("fit --data odd.npz --out m", ["odd.npz[x]", "multiples of 4"]),
        ("fit --data floats.npz --out m", ["floats.npz[x]", "x / 255"]),
        ("fit --data flat.npy --out m", ["flat.npy[x]", "(N, C, H, W)"]),
        ("fit --data two.npz --key c --out m", ["two.npz", "'c'", "fix --key"]),
        ("fit --data odd.npz --key x --set ae.epoch=1 --out m", ["odd.npz[x]"]),
        ("score --model nowhere --in-dist two.npz --key a --ood two.npz", ["nowhere", "does not exist"]),
        ("sample --model nowhere -n 4 --out s.gif", ["s.gif", "unsupported output type"]),
        ("fid --real two.npz --key a --fake missing.npz", ["missing.npz", "no such file"]),
        ("fit --data notes --out m", ["notes", "existing folder with no readable image files", "readme.txt"]),
        ("fit --data nowhere_dir --out m", ["nowhere_dir", "no such file or folder"]),
        ("score --model nowhere --in-dist stats.npz --ood two.npz", ["stats.npz", "FID statistics", "--real"]),
        ("fid --real two.npz --key a", ["--fake", "--save-stats"]),
        ("fid --real stats.npz --save-stats again.npz", ["stats.npz", "already is a statistics file"]),
        ("fid --real two.npz --key a --save-stats s.txt", ["s.txt", ".npz"]),
        ("posterior --model nowhere --images two.npz --key a --out p", ["nothing to do", "--mask"]),
        ("sample --model nowhere -n 4 --out s.jpg", ["s.jpg", "unsupported output type"]),
    ],
)
def test_bad_input_is_one_line_naming_the_file_exit_2(args, needles, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_bad_inputs(tmp_path)
    rc, out, err = _run(capsys, shlex.split(args))
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_unknown_setting_is_exit_2_naming_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savez("d.npz", x=np.zeros((40, 28, 28), np.uint8))
    rc, _, err = _run(capsys, shlex.split("fit --data d.npz --out m --set ae.epoch=1"))
    assert rc == 2 and "'epoch'" in err and len(err.strip().splitlines()) == 1


def test_vae_baseline_with_typed_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("d.npz", x_train=rng.integers(0, 256, (48, 28, 28), dtype=np.uint8),
             x_valid=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8))
    np.save("ood.npy", rng.random((16, 28, 28)))  # floats in [0, 1] are accepted too
    rc, out, err = _run(capsys, shlex.split(
        "fit --data d.npz --model-type vae --latent-dim 4 --epochs 1 --batch-size 16 --out v --quiet "
        "--set ae.lr=1e-4 --set objective.beta=2 --set ood.iwae_samples=3"))
    assert rc == 0, err
    assert err == ""  # --quiet
    info = json.loads((tmp_path / "v" / "model.json").read_text())
    assert info["model"] == "vae" and info["settings"]["ae"]["lr"] == 1e-4
    assert info["settings"]["vae"]["models"]["vae"]["beta"] == 2.0 and info["settings"]["ood"]["iwae_samples"] == 3
    rc, out, err = _run(capsys, shlex.split("score --model v --in-dist d.npz --key x_valid --ood ood.npy --quiet"))
    assert rc != 0  # --key applies to both files; ood.npy has no x_valid
    rc, out, err = _run(capsys, shlex.split("score --model v --in-dist ood.npy --ood ood.npy --out s.npz --quiet"))
    assert rc == 0, err
    assert out.startswith("score elbo:") and _metrics(out)["AUROC"] == pytest.approx(0.5)
    with np.load(tmp_path / "s.npz") as f:
        np.testing.assert_array_equal(f["scores_in"], f["scores_ood"])  # same images, same seed


def test_fid_with_domain_features(tmp_path, monkeypatch, capsys):
    from pae.files.artifacts import save_model
    from pae.science.classifier import fit_classifier

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 1, 28, 28), dtype=np.uint8)
    model, _ = fit_classifier(x, rng.integers(0, 3, 32), epochs=1, seed=0, log=lambda s: None)
    save_model("clf.pt", model)
    np.savez("real.npz", x=x)
    np.savez("same.npz", x=x)
    np.savez("other.npz", x=x // 4)
    values = {}
    for fake in ("same", "other"):
        rc, out, err = _run(capsys, shlex.split(
            f"fid --real real.npz --fake {fake}.npz --features domain --classifier clf.pt --quiet"))
        assert rc == 0, err
        values[fake] = float(re.search(r"FID \(domain\) ([0-9.]+)", out).group(1))
    assert values["same"] == pytest.approx(0.0, abs=1e-6) and values["other"] > 0.01
    # statistics saved once stand in for the set; statistics of other features are refused
    rc, out, err = _run(capsys, shlex.split(
        "fid --real real.npz --save-stats real_stats.npz --features domain --classifier clf.pt --quiet"))
    assert rc == 0 and "saved domain statistics of real.npz (32 images)" in out, err
    rc, out, err = _run(capsys, shlex.split(
        "fid --real real_stats.npz --fake other.npz --features domain --classifier clf.pt --quiet"))
    assert rc == 0, err
    assert float(re.search(r"FID \(domain\) ([0-9.]+)", out).group(1)) == pytest.approx(values["other"], rel=1e-6)
    rc, _, err = _run(capsys, shlex.split("fid --real real_stats.npz --fake other.npz"))
    assert rc == 2 and "features 'domain'" in err and "--features domain" in err
    rc, _, err = _run(capsys, shlex.split("fid --real real.npz --fake same.npz --features domain"))
    assert rc == 2 and "--classifier" in err


def test_denoise_with_a_mask_file_writes_a_new_folder(tmp_path, monkeypatch, capsys):
    """--mask-file: nonzero pixels of an image of the images' size are filled in (here with noise as well)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("d.npz", x=rng.integers(0, 256, (32, 28, 28), dtype=np.uint8))
    mask = np.zeros((28, 28), np.uint8)
    mask[5:15, 5:15] = 255
    Image.fromarray(mask).save("mask.png")
    rc, _, err = _run(capsys, shlex.split("fit --data d.npz --latent-dim 4 --epochs 1 --flow-epochs 1 --batch-size 16 "
                                          "--out run --quiet"))
    assert rc == 0, err
    cmd = "denoise --model run --images d.npz --mask-file mask.png --noise-sigma 0.1 --steps 5 --starts 1 --samples 8 "
    rc, out, err = _run(capsys, shlex.split(cmd + "--out out --quiet"))
    assert rc == 0 and "posterior (u-space) of 32 images" in out, err
    with np.load(tmp_path / "out" / "result.npz") as f:
        assert f["hidden"][:, 0, 5:15, 5:15].all() and f["hidden"].sum() == 32 * 100
        assert f["samples"].shape == (32, 8, 1, 28, 28) and float(f["noise_sigma"]) == 0.1
    rc, _, err = _run(capsys, shlex.split(cmd + "--out out --quiet"))
    assert rc == 2 and "out: exists and is not an empty folder" in err
    rc, _, err = _run(capsys, shlex.split(cmd + "--mask left:3 --out out2 --quiet"))
    assert rc == 2 and "not both" in err
