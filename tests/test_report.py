"""The extended OoD battery's generators, the reproduction report (formatting, driver, snapshot, README results
block) and, in a real headless browser when Debian's chromium is installed, the offline HTML page; and end to end
on the synthetic mirror: `table2`, then the report, then `paper_quick`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pae.science import report as fmt
from pae.science.battery import BATTERY_KINDS, battery_images, blur, shift
from pae.settings import Settings
from pae.stages.battery import battery_sets, set_seed
from pae.stages.report import build_report, report_input_files, run_snapshot, run_write_report

REF = np.random.default_rng(0).integers(0, 256, size=(12, 1, 28, 28), dtype=np.uint8)
PARAMS = {"blur": {"sigma": 1.5}, "shift": {"pixels": 6}}


# ------------------------------------------------------------------------------------------------ battery


@pytest.mark.parametrize("kind", sorted(BATTERY_KINDS))
def test_every_battery_kind_gives_seeded_uint8_images_of_the_reference_shape(kind):
    a = battery_images(kind, REF, 5, np.random.default_rng(3), PARAMS.get(kind))
    b = battery_images(kind, REF, 5, np.random.default_rng(3), PARAMS.get(kind))
    assert a.dtype == np.uint8 and a.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(a, b)


def test_battery_transforms_do_what_they_say():
    x = battery_images("invert", REF, None, np.random.default_rng(0))
    np.testing.assert_array_equal(x, 255 - REF)
    rot = battery_images("rot90", REF, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(rot[0, 0], np.rot90(REF[0, 0]))
    const = battery_images("constant", REF, 4, np.random.default_rng(0))
    assert all(len(np.unique(img)) == 1 for img in const)
    flat = np.full((2, 1, 8, 8), 100, dtype=np.uint8)
    np.testing.assert_array_equal(blur(flat, 2.0), flat)  # a blur keeps a constant image
    img = np.zeros((1, 1, 6, 6), dtype=np.uint8)
    img[0, 0, 2, 2] = 255
    moved = shift(img, 2, np.random.default_rng(0))
    assert moved.sum() == 255 and moved[0, 0, 2, 2] == 0  # the one bright pixel moved, none lost


def test_battery_rejects_unknown_kinds_and_missing_parameters():
    with pytest.raises(ValueError, match="unknown battery kind"):
        battery_images("swirl", REF, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs parameter"):
        battery_images("blur", REF, 2, np.random.default_rng(0))


def test_battery_config_is_checked_and_completed():
    config = {"datasets": ["fmnist"], "data": {"valid_size": 10, "split_seed": 0, "omniglot_count": 10,
                                              "celeba_size": 64, "celeba_resample": "bicubic"},
              "ood": {"in_dataset": "fmnist", "sets": [{"name": "mnist", "dataset": "mnist"}],
                      "battery": [{"name": "noise", "kind": "uniform_noise"}]}}
    (entry,) = battery_sets(Settings.from_config(config))
    assert entry["dataset"] == "fmnist" and entry["label"] == "noise"
    config["ood"]["battery"] = [{"name": "mnist", "kind": "invert", "dataset": "mnist"}]
    with pytest.raises(ValueError, match="ood.battery"):
        battery_sets(Settings.from_config(config))
    config["ood"]["battery"] = [{"name": "b", "kind": "blur"}]
    with pytest.raises(ValueError, match="needs"):
        battery_sets(Settings.from_config(config))
    assert not np.array_equal(set_seed(0, "a").integers(0, 1 << 30, 4), set_seed(0, "b").integers(0, 1 << 30, 4))


# ---------------------------------------------------------------------------------------------- formatting


def table2_frame(n_seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "row": ["PAE density", "PAE density"], "column": ["MNIST", "OMNIGLOT"], "K": [64, 64],
        "ours": [0.9961, 0.9700], "ours_std": [0.0010, 0.0020], "n_seeds": [n_seeds, n_seeds],
        "paper": [0.997, 0.981], "difference": [0.9961 - 0.997, 0.9700 - 0.981],
        "aupr": [0.99, 0.97], "aupr_std": [0.0, 0.0], "fpr95": [0.02, 0.1], "fpr95_std": [0.0, 0.0]})


def test_cells_put_the_paper_beside_ours_and_mark_gaps_beyond_two_std():
    first, second = (line for _, line in table2_frame().iterrows())
    assert fmt.comparison_cell(first) == "0.996 ± 0.001 (paper 0.997, Δ -0.001)"  # |Δ| 0.0009 < 2 std
    assert fmt.comparison_cell(second).endswith(" †")  # |Δ| 0.011 > 2 × 0.002
    gaps = fmt.two_std_gaps(table2_frame())
    assert len(gaps) == 1 and gaps[0].startswith("PAE density / OMNIGLOT")
    single = next(table2_frame(1).iterrows())[1]
    assert "±" not in fmt.comparison_cell(single) and not fmt.exceeds_two_std(-0.5, 0.0, 1)


def test_markdown_and_html_render_every_block():
    blocks = [("h", 1, "Title"), ("p", "a `code` <b>"), ("list", ["x"]), ("table", ["", "A"], [["r", "1|2"]]),
              ("img", "figures/f.png", "Fig. 1"), ("pre", "raw")]
    md = fmt.render_markdown(blocks)
    assert "# Title" in md and "| r | 1\\|2 |" in md and "![Fig. 1](figures/f.png)" in md
    page = fmt.render_html(blocks, "T")
    assert "<code>code</code> &lt;b&gt;" in page and 'src="figures/f.png"' in page and "http" not in page
    assert fmt.relocate_assets(md, "figures/", "quick/").count("](quick/f.png)") == 1


README_BLOCK = """intro
<!-- results: docs/results/quick.json -->
| result | ours | paper |
|---|---|---|
| Table 2 · PAE density · MNIST | 0.996 ± 0.001 | 0.997 |
| Table 2 · PAE density · OMNIGLOT | 0.970 | 0.981 |
<!-- /results -->
"""


def test_readme_block_numbers_must_match_the_snapshot():
    values = fmt.summary_values("Table 2", table2_frame())
    source, rows = fmt.parse_summary_block(README_BLOCK)
    assert source == "docs/results/quick.json" and len(rows) == 2
    assert fmt.summary_mismatches(rows, values) == []
    _, wrong = fmt.parse_summary_block(README_BLOCK.replace("0.970 |", "0.971 |"))
    (problem,) = fmt.summary_mismatches(wrong, values)
    assert "OMNIGLOT" in problem and "0.971" in problem and "0.970" in problem
    _, missing = fmt.parse_summary_block(README_BLOCK.replace("OMNIGLOT", "KMNIST"))
    assert "not in the snapshot" in fmt.summary_mismatches(missing, values)[0]
    assert fmt.parse_summary_block("no block") is None
    generated = "<!-- results: x -->\n" + "\n".join(fmt.summary_rows(values, ["Table 2 · PAE"])) + "\n<!-- /results -->"
    assert fmt.summary_mismatches(fmt.parse_summary_block(generated)[1], values) == []  # written rows read back


def test_readme_summary_agrees_with_the_committed_snapshot(repo_root):
    parsed = fmt.parse_summary_block((repo_root / "README.md").read_text())
    if parsed is None or not parsed[1]:
        pytest.skip("README.md's results block quotes no numbers yet (it is written from docs/results/ by the lead)")
    source, rows = parsed
    snapshot = repo_root / source
    assert snapshot.exists(), f"README.md quotes {source}, which is not committed; run `make snapshot`"
    assert fmt.summary_mismatches(rows, json.loads(snapshot.read_text())["values"]) == []


def test_readme_times_agree_with_the_committed_timing_reports(repo_root):
    """Each 'took X min Y s at commit C (`docs/results/quick/timing-NAME.txt`' of the README quotes that
    committed report's total (benchmarks/main_job.sh for make targets, benchmarks/suite_timing.sh for the tests)."""
    readme = " ".join((repo_root / "README.md").read_text().split())
    quoted = re.findall(r"took (\d+) min (\d+) s at commit (\w+) \(`(docs/results/quick/timing-[\w-]+\.txt)`", readme)
    if not quoted:
        pytest.skip("README.md quotes no timing report")
    for minutes, secs, commit, path in quoted:
        report = (repo_root / path).read_text()
        total = re.search(r"set-up \+ wall: [\d.]+ s \((\d+):(\d+):(\d+)\)", report)
        assert total, f"{path} has no 'set-up + wall' line"
        hours, mins, s = map(int, total.groups())
        assert (int(minutes), int(secs)) == (60 * hours + mins, s), f"README quotes {minutes} min {secs} s for {path}"
        assert f"at commit {commit}" in report, f"{path} was not measured at {commit}"


# ------------------------------------------------------------------------------------------ driver, snapshot


def fake_results(out: Path) -> None:
    """An output folder as `make table2` leaves it (Table 2 and its provenance) plus one figure."""
    from matplotlib import pyplot as plt

    out.mkdir(parents=True)
    table2_frame().to_csv(out / "table2.csv", index=False)
    (out / "table2.md").write_text("# Table 2\n")
    (out / "figures").mkdir()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(out / "figures" / "fig5.png")
    plt.close(fig)


def write_fake_report(tmp_path: Path) -> Path:
    out = tmp_path / "results" / "quick"
    fake_results(out)
    run_write_report(out, out / "report.md", out / "report.html", out / "report.json", config={"outdir": str(out)},
                     repo_dir=Path(__file__).parents[1], bench_dir=out / "benchmarks", reverse_dir=tmp_path / "none")
    return out


def test_report_shows_what_exists_and_names_what_to_run_for_the_rest(tmp_path):
    out = write_fake_report(tmp_path)
    md = (out / "report.md").read_text()
    assert "0.996 ± 0.001 (paper 0.997, Δ -0.001)" in md and "Not run yet: `make table1" in md
    assert "![Fig. 5" in md and "Fig. 2: not run yet" in md and "config hash" in md
    record = json.loads((out / "report.json").read_text())
    assert record["values"]["Table 2 · PAE density · MNIST"]["paper"] == pytest.approx(0.997)
    assert record["figures"] == ["figures/fig5.png"] and record["provenance"]["packages"]["numpy"]


def test_report_shows_the_reverse_table_from_its_own_folder(tmp_path):
    out, reverse = tmp_path / "results" / "quick", tmp_path / "results" / "reverse"
    fake_results(out)
    reverse.mkdir()
    table2_frame(1).assign(paper=float("nan"), difference=float("nan")).to_csv(reverse / "table2.csv", index=False)
    blocks, record = build_report(out, None, reverse)
    assert "Table 2 in reverse: MNIST in-distribution (not in the paper)" in record["present"]
    assert record["values"]["Reverse Table 2 · PAE density · MNIST"]["paper"] is None


def test_report_waits_only_for_files_that_exist_or_that_the_run_builds():
    shows, exists = ["t2.csv", "t1.csv", "fig.png"], {"fig.png"}.__contains__
    assert report_input_files(["t2.csv"], shows, ["t1.csv"], False, exists) == ["t2.csv", "fig.png"]
    assert report_input_files(["t2.csv"], shows, ["t1.csv"], True, exists) == ["t2.csv", "t1.csv", "fig.png"]


def test_snapshot_is_named_after_the_reports_output_folder(tmp_path):
    out = write_fake_report(tmp_path)
    (out / "timing-table2.txt").write_text("set-up + wall: 700.0 s (0:11:40)\n")  # benchmarks/main_job.sh's report
    docs = tmp_path / "docs" / "results"
    written = run_snapshot(out, docs)
    assert {p.name for p in written} == {"quick.md", "quick.html", "quick.json", "fig5.png", "timing-table2.txt"}
    assert (docs / "quick" / "timing-table2.txt").read_text() == (out / "timing-table2.txt").read_text()
    md = (docs / "quick.md").read_text()
    assert "](quick/fig5.png)" in md and "](figures/" not in md and (docs / "quick" / "fig5.png").exists()
    _, values = build_report(out, None, tmp_path / "none")
    assert json.loads((docs / "quick.json").read_text())["values"] == values["values"]


# ------------------------------------------------------------------------------------------ headless browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        for key in ("href", "src"):
            if tag != "img" and attrs.get(key):
                self.links.append(attrs[key])


def browser_check(page: Path, tmp_path: Path) -> list[dict[str, str]]:
    """Load `page` in headless chromium, offline; the DOM after load must show every image loaded (the page's
    onload/onerror hooks), each image file must exist, and no link may point elsewhere or at a missing file."""
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "<body" in dom, "chromium rendered no page"
    parser = Links()
    parser.feed(dom)
    for img in parser.images:
        assert img.get("data-loaded") == "1" and "data-broken" not in img, f"image {img.get('src')} did not load"
        assert (page.parent / img["src"]).is_file()
    for link in parser.links:
        assert not re.match(r"[a-z]+://", link) or link.startswith("file:"), f"network link {link}"
        if not link.startswith("#"):
            assert (page.parent / link).exists(), f"broken link {link}"
    return parser.images


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_html_report_renders_offline_with_every_image_in_a_browser(tmp_path):
    out = write_fake_report(tmp_path)
    assert len(browser_check(out / "report.html", tmp_path)) == 1
    docs = tmp_path / "docs"
    run_snapshot(out, docs)
    assert len(browser_check(docs / "quick.html", tmp_path)) == 1
    (out / "figures" / "fig5.png").unlink()  # the check must fail on a missing image
    with pytest.raises(AssertionError, match="did not load"):
        browser_check(out / "report.html", tmp_path)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_report_after_table2_then_the_whole_quick_paper(workflow_run, tmp_path):
    assert "Table 2: out-of-distribution detection (AUROC)" in workflow_run.report_after_table2["present"]
    assert workflow_run.report_after_table2["figures"] == []
    out = workflow_run.work / "results" / "test"
    record = json.loads((out / "report.json").read_text())
    assert len(record["figures"]) == 4
    for section in ("Table 1", "Table 2", "Extended OoD battery", "Reconstruction error", "Posterior", "Fig. 5 TP"):
        assert any(p.startswith(section) for p in record["present"]), section
    battery = pd.read_csv(out / "battery.csv")
    assert len(set(battery["column"])) == 10 and len(set(battery["row"])) == 7  # 9 sets + mean; every Table 2 row
    scored = dict(np.load(out / "fmnist" / "K8" / "seed0" / "battery_scores_vae.npz"))
    assert len(scored["iwae__noise_uniform"]) == 12  # ood.battery_costly_count of the set's 24 images
    assert "on evenly spaced subsets" in (out / "battery.md").read_text()
    fig5_only = np.load(out / "fmnist" / "K4" / "seed0" / "ood_scores_density.npz")  # Table 2: density at K 8
    assert {k.split("__")[1] for k in fig5_only.files if k.startswith("density__")} == {"test", "mnist"}
    if CHROMIUM:
        assert len(browser_check(out / "report.html", tmp_path)) == 4
