"""Fig. 4 (paper Sec. 4.1): interpolations through the flow's u and linear in z, the figure and its stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from pae.files.artifacts import save_flow, save_model
from pae.science import sampling
from pae.science.figures import FIG4_ROW_LABELS, fig4
from pae.science.flows import build_flow
from pae.science.images import to_model_input, to_uint8
from pae.science.nets import AutoEncoder
from pae.stages.figures import run_fig4
from synthetic import flow_arch

K = 4
FLOW_CFG = {
    "realnvp_max_K": 8, "realnvp_depth": {4: 2}, "realnvp_hidden": 8, "nsf_layers": 1, "nsf_hidden": 8,
    "nsf_bins": 4, "nsf_tail_bound": 3.0, "standardize": True,
}
SHAPES = [(1, 28, 28), (3, 64, 64)]
N_VALID = 6


class Models:
    """A tiny AE + flow for one image shape, their files and a dataset npz, made once per module."""

    def __init__(self, shape: tuple[int, int, int], root: Path) -> None:
        self.shape = shape
        torch.manual_seed(0)
        self.ae = AutoEncoder(K, shape, norm="batch", spectral_norm=True, dropout=0.2).eval()
        with torch.no_grad():  # a non-trivial decoder: the default init decodes almost the same image everywhere
            for p in self.ae.decoder.parameters():
                if p.ndim > 1:
                    p.mul_(20.0)
        rng = np.random.default_rng(1)
        self.x = {s: rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
                  for s, n in (("train", 4), ("valid", N_VALID), ("test", 4))}
        with torch.no_grad():  # standardise the flow on these images' encodings: their u are O(1) apart
            z = self.ae.encode(to_model_input(np.concatenate(list(self.x.values())), 255)).numpy()
        self.flow = build_flow(K, flow_arch(K, FLOW_CFG), z, seed=0)
        with torch.no_grad():  # a nonlinear flow: u-space and z-space paths differ
            for p in self.flow.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        self.flow.eval()
        self.root = root
        save_model(root / "ae.pt", self.ae, {"seed": 0})
        save_flow(root / "flow.pt", self.flow, {})
        np.savez(root / "data.npz", **{f"x_{s}": x for s, x in self.x.items()})
        samples = rng.integers(0, 256, size=(10, *shape), dtype=np.uint8)
        np.savez(root / "pae_samples.npz", x=samples)

    def recon(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.ae.decode(self.ae.encode(to_model_input(x, 255))).numpy()


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def models(request, tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("fig4_" + "x".join(map(str, request.param)))
    m = Models(request.param, root)
    yield m
    for f in root.glob("*.pt"):  # the 64×64 AE file is 270 MB
        f.unlink()


def fid_json(path: Path, sample: dict, recon: dict) -> Path:
    path.write_text(json.dumps({"model": "pae", "sample_fid": sample, "reconstruction_fid": recon}))
    return path


# ----------------------------------------------------------------------------------------------------------
# pae.science.sampling.interpolate
# ----------------------------------------------------------------------------------------------------------
def test_interpolation_shapes_endpoints_and_middle(models) -> None:
    m = models
    xa, xb = m.x["valid"][0:4:2], m.x["valid"][1:4:2]  # pairs (0, 1), (2, 3)
    steps = 5
    xu = sampling.interpolate(m.ae, xa, xb, steps, 255, space="u", flow=m.flow)
    xz = sampling.interpolate(m.ae, xa, xb, steps, 255, space="z")
    for x in (xu, xz):
        assert x.shape == (2, steps, *m.shape) and x.dtype == np.float32
        assert np.all(np.isfinite(x)) and x.min() >= -0.5 and x.max() <= 0.5
    rec_a, rec_b = m.recon(xa), m.recon(xb)
    # both endpoints are the reconstructions g(f(x)); in u up to the flow's round trip b⁻¹(b(z))
    # (float32 through eight layers in batches of other sizes: about 1e-5 apart at 64×64×3 on these CPUs)
    assert np.allclose(xz[:, 0], rec_a, atol=5e-5) and np.allclose(xz[:, -1], rec_b, atol=5e-5)
    assert np.allclose(xu[:, 0], rec_a, atol=1e-4) and np.allclose(xu[:, -1], rec_b, atol=1e-4)
    assert np.abs(rec_a - rec_b).max() > 0.05  # the endpoints themselves differ, so the checks above bite
    # the middle: z-space decodes the mean of the encodings, u-space g(b⁻¹(mean of the u)), and these differ
    xin = to_model_input(np.concatenate([xa[:1], xb[:1]]), 255)
    with torch.no_grad():
        z = m.ae.encode(xin)
        mid_z = m.ae.decode(z.mean(0, keepdim=True)).numpy()[0]
        mid_u = m.ae.decode(m.flow.inverse(m.flow.transform_to_noise(z).mean(0, keepdim=True))).numpy()[0]
    assert np.allclose(xz[0, 2], mid_z, atol=1e-5)
    assert np.allclose(xu[0, 2], mid_u, atol=1e-4)
    assert np.abs(xu[:, 1:-1] - xz[:, 1:-1]).max(axis=(2, 3, 4)).min() > 1e-2  # every pair, every inner step


def test_interpolation_deterministic_batching_and_single_pair(models) -> None:
    m = models
    xa, xb = m.x["valid"][0:6:2], m.x["valid"][1:6:2]
    m.ae.train()  # dropout on in train mode: interpolate must switch to eval mode and restore the mode
    a = sampling.interpolate(m.ae, xa, xb, 4, space="u", flow=m.flow)
    assert m.ae.training and not m.flow.training
    m.ae.eval()
    assert np.array_equal(a, sampling.interpolate(m.ae, xa, xb, 4, space="u", flow=m.flow))
    assert np.allclose(a, sampling.interpolate(m.ae, xa, xb, 4, space="u", flow=m.flow, batch_size=2), atol=1e-4)
    one = sampling.interpolate(m.ae, xa[1], xb[1], 4, space="u", flow=m.flow)  # one pair: (steps, C, H, W)
    assert one.shape == (4, *m.shape) and np.allclose(one, a[1], atol=1e-4)
    # float model-space inputs give the same as uint8 ones
    f = sampling.interpolate(m.ae, to_model_input(xa, 255).numpy(), to_model_input(xb, 255).numpy(), 4)
    assert np.allclose(f, sampling.interpolate(m.ae, xa, xb, 4), atol=1e-6)


def test_interpolation_errors(models) -> None:
    m = models
    x = m.x["valid"]
    with pytest.raises(ValueError, match="steps >= 2"):
        sampling.interpolate(m.ae, x[0], x[1], 1)
    with pytest.raises(ValueError, match="space"):
        sampling.interpolate(m.ae, x[0], x[1], 3, space="x")
    with pytest.raises(ValueError, match="needs the latent flow"):
        sampling.interpolate(m.ae, x[0], x[1], 3, space="u")
    with pytest.raises(ValueError, match="same shape"):
        sampling.interpolate(m.ae, x[:2], x[:3], 3)
    other = build_flow(K + 1, flow_arch(K + 1, FLOW_CFG), np.zeros((8, K + 1), np.float32), seed=0)
    with pytest.raises(ValueError, match="K=5"):
        sampling.interpolate(m.ae, x[0], x[1], 3, space="u", flow=other)


# ----------------------------------------------------------------------------------------------------------
# pae.science.figures.fig4
# ----------------------------------------------------------------------------------------------------------
def _texts(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fig4_layout_and_fid_labels(shape) -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, size=(12, *shape), dtype=np.uint8)
    iu = rng.integers(0, 256, size=(3, 5, *shape), dtype=np.uint8)
    iz = rng.integers(0, 256, size=(3, 5, *shape), dtype=np.uint8)
    fids = {"sample": {"inception": 49.21, "domain": 3.0},
            "reconstruction": {"inception": "unavailable: no Inception weights", "domain": 2.345}}
    fig = fig4(samples, iu, iz, fids, ncols=4)
    text = _texts(fig)
    assert "FID 49.2 (Inception)" in text and "FID 2.3 (domain CNN)" in text and "3.0" not in text
    assert text.count(FIG4_ROW_LABELS[0]) == 3 and text.count(FIG4_ROW_LABELS[1]) == 3
    assert "pair 3" in text and "49.2 / 44.0" in text  # the paper's caption values
    images = [im.get_array() for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 1 + 2 * 3  # sample grid, then per pair the u row and the z row
    h, w = shape[1:]
    assert images[0].shape[:2] == (3 * (h + 1) - 1, 4 * (w + 1) - 1)  # 12 samples in 4 columns
    for im in images[1:]:
        assert im.shape[:2] == (h, 5 * (w + 1) - 1) and (im.ndim == 3) == (shape[0] == 3)
    # the rows are the given interpolations, in order: pair 2's u row, then its z row
    assert np.array_equal(np.asarray(images[3])[:, :w].reshape(h, w, -1).transpose(2, 0, 1), iu[1, 0])
    assert np.array_equal(np.asarray(images[4])[:, :w].reshape(h, w, -1).transpose(2, 0, 1), iz[1, 0])
    none = fig4(samples, iu, iz, {"sample": {"inception": "unavailable: x", "domain": float("nan")},
                                  "reconstruction": {"inception": np.float32(7.25), "domain": "unavailable: y"}})
    text = _texts(none)
    assert "samples: FID unavailable" in text and "FID 7.2 (Inception)" in text
    with pytest.raises(ValueError, match="n_pairs, n_steps"):
        fig4(samples, iu, iz[:2], fids)
    with pytest.raises(ValueError, match="interpolations have images"):
        fig4(samples[:, :, :4], iu, iz, fids)


# ----------------------------------------------------------------------------------------------------------
# pae.stages.figures.run_fig4
# ----------------------------------------------------------------------------------------------------------
def _run(m: Models, stem: Path, **kw) -> list[Path]:
    fids = {"pae": fid_json(m.root / "pae.json", {"inception": "unavailable: no weights", "domain": 12.5},
                            {"inception": 44.0, "domain": 1.0}),
            "ae": fid_json(m.root / "ae.json", {"domain": 99.0}, {"domain": 1.0})}
    args = dict(samples_path=m.root / "pae_samples.npz", data_path=m.root / "data.npz", ae_path=m.root / "ae.pt",
                flow_path=m.root / "flow.pt", fid_files=fids, stem=stem, n_samples=8, n_pairs=2, n_steps=4,
                device="cpu", threads=1)
    return run_fig4(**(args | kw))


def test_run_fig4_writes_png_and_pdf(models, tmp_path, monkeypatch) -> None:
    m = models
    seen = {}

    def spy(samples, interp_u, interp_z, fids, ncols=8):
        seen.update(samples=samples, u=interp_u, z=interp_z, fids=fids)
        return fig4(samples, interp_u, interp_z, fids, ncols)

    monkeypatch.setattr("pae.stages.figures.fig4", spy)
    paths = _run(m, tmp_path / "figs" / "fig4")
    assert [p.name for p in paths] == ["fig4.png", "fig4.pdf"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1024
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(q.name for q in (tmp_path / "figs").iterdir()) == ["fig4.pdf", "fig4.png"]  # no temp files
    # what was drawn: 8 samples, validation pairs (0, 1), (2, 3), the PAE json's FIDs
    with np.load(m.root / "pae_samples.npz") as f:
        assert np.array_equal(seen["samples"], f["x"][:8])
    v = m.x["valid"]
    for space in ("u", "z"):
        x = seen[space]
        assert x.shape == (2, 4, *m.shape) and x.dtype == np.uint8
        expected = sampling.interpolate(m.ae, v[[0, 2]], v[[1, 3]], 4, space=space, flow=m.flow)
        assert np.abs(x.astype(int) - to_uint8(expected).astype(int)).max() <= 1
    assert np.abs(seen["u"][:, 0].astype(int) - to_uint8(m.recon(v[[0, 2]])).astype(int)).max() <= 1
    assert seen["fids"] == {"sample": {"inception": "unavailable: no weights", "domain": 12.5},
                           "reconstruction": {"inception": 44.0, "domain": 1.0}}


def test_run_fig4_errors(models, tmp_path) -> None:
    m = models
    with pytest.raises(ValueError, match=rf"data\.npz has {N_VALID} validation images; fig4 needs 8"):
        _run(m, tmp_path / "a", n_pairs=4)
    c, h, w = m.shape
    np.savez(tmp_path / "other.npz", x=np.zeros((4, c, h + 4, w), np.uint8))
    with pytest.raises(ValueError, match=r"other\.npz.*data\.npz"):
        _run(m, tmp_path / "b", samples_path=tmp_path / "other.npz")
    (tmp_path / "bad.json").write_text(json.dumps({"model": "pae", "reconstruction_fid": {}}))
    with pytest.raises(ValueError, match=r"bad\.json has no 'sample_fid'"):
        _run(m, tmp_path / "c", fid_files={"pae": tmp_path / "bad.json"})
    with pytest.raises(ValueError, match="n_steps >= 2"):
        _run(m, tmp_path / "d", n_steps=1)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.pdf"))
