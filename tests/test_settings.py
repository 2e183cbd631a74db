"""The settings layer: every schema leaf is a typed setting, every setting is read, defaults come from the schema."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pae.config import ConfigError, fill_defaults, paper_defaults, schema_leaves
from pae.settings import SECTIONS, Settings

REPO = Path(__file__).resolve().parents[1]
CODE = [*sorted((REPO / "src" / "pae").rglob("*.py")), *sorted((REPO / "workflow").rglob("*.smk")),
        REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "scripts").glob("*.py"))]
SETTINGS_FILE = REPO / "src" / "pae" / "settings.py"
TYPE_OF = {cls.__name__: name for name, cls in SECTIONS.items()}


def setting_fields() -> set[str]:
    """Dotted names of every typed setting: the top-level fields of Settings and each section's fields."""
    out = {f.name for f in dataclasses.fields(Settings) if f.name not in SECTIONS}
    out |= {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    return out


def reads_in(text: str, section_of_class: dict[str, str] | None = None) -> set[str]:
    """Dotted settings read in `text`: `S.ae.epochs`, `settings.ood.rows`, `self.flow.lr`, `S.device`, reads
    through an alias (`OOD_CFG = S.ood` ... `OOD_CFG.rows`; `data: Data` ... `data.mirror`), and inside a
    section's own class (`self.lr` in `class Flow`)."""
    found: set[str] = set()
    for section, field in re.findall(r"\b(?:S|settings|self|typed)\.(\w+)\.(\w+)\b", text):
        found.add(f"{section}.{field}")
    for field in re.findall(r"\b(?:S|settings|self|typed)\.(\w+)\b", text):
        found.add(field)
    aliases = dict(re.findall(r"^\s*(\w+) = (?:S|settings|self|self\.typed)\.(\w+)\s*$", text, re.M))
    aliases |= {name: TYPE_OF[t] for name, t in re.findall(r"\b(\w+): (\w+)\b", text) if t in TYPE_OF}
    for alias, section in aliases.items():
        found |= {f"{section}.{f}" for f in re.findall(rf"\b{alias}\.(\w+)\b", text)}
    for cls, section in (section_of_class or {}).items():
        body = re.search(rf"^class {cls}\b.*?(?=^\S)", text + "\nEND", re.M | re.S)
        if body:
            found |= {f"{section}.{f}" for f in re.findall(r"\bself\.(\w+)\b", body.group(0))}
    return found


def all_reads() -> set[str]:
    found: set[str] = set()
    for path in CODE:
        text = path.read_text()
        found |= reads_in(text, {cls.__name__: name for name, cls in SECTIONS.items()} if path == SETTINGS_FILE else None)
    return found


def test_every_schema_leaf_is_a_typed_setting_and_back():
    leaves = set(schema_leaves())
    assert leaves - setting_fields() == set(), "schema keys without a field in pae.settings"
    assert setting_fields() - leaves == set(), "settings fields without a schema key (code reads a key the schema lacks)"


def test_every_setting_is_read_by_some_code():
    unread = sorted(setting_fields() - all_reads())
    assert unread == [], f"settings that no code reads (remove them from the schema, or use them): {unread}"


def test_the_checks_catch_what_they_guard():
    assert "posterior.threads" not in reads_in('threads: S.threads.eval\nPOST = S.posterior\nx = POST.n_images')
    assert {"posterior.threads", "posterior.n_images"} <= reads_in("POST = S.posterior\nPOST.threads; POST.n_images")
    assert "data.mirror" in reads_in("def f(data: Data):\n    return data.mirror")
    assert "flow.lr" in reads_in("class Flow:\n    def f(self):\n        return self.lr\n", {"Flow": "flow"})


def test_schema_defaults_complete_a_partial_config():
    assert fill_defaults({}) == paper_defaults()  # config/config.yaml equals the schema's defaults
    partial = {"ae": {"epochs": 3}, "seeds": [5]}
    full = Settings.from_config(partial)
    assert full.ae.epochs == 3 and full.seeds == [5] and full.ae.lr == paper_defaults("ae")["lr"]
    assert full.flow == Settings.from_config({}).flow


def test_settings_reject_bad_values_naming_the_key():
    with pytest.raises(ConfigError, match="ae.lr"):
        Settings.from_config({"ae": {"lr": -1}})
    with pytest.raises(ConfigError, match="'flow'.*nsf_binz"):
        Settings.from_config({"flow": {"nsf_binz": 4}})


def test_flow_architecture_and_the_2K_encoder_from_one_place():
    S = Settings.from_config({})
    assert S.flow.architecture(4).kind == "realnvp" and S.flow.architecture(4).n_layers == 8
    assert S.flow.architecture(64).kind == "nsf" and S.flow.architecture(64).num_bins == 32
    assert S.ae.net(8)["encoder_outputs"] == 8
    assert Settings.from_config({"ae": {"encoder_outputs": "2K"}}).ae.net(8)["encoder_outputs"] == 16


def test_quick_overlay_dry_run_gives_posterior_jobs_posterior_threads(tmp_path):
    overlay = tmp_path / "threads.yaml"
    overlay.write_text(yaml.safe_dump({"posterior": {"threads": 1}, "threads": {"eval": 2}}))
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "fig6", "--configfile",
           str(REPO / "config" / "quick.yaml"), str(overlay), "--config", f"outdir={tmp_path / 'out'}",
           f"data={{dir: {tmp_path / 'data'}}}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # one block per job; Snakemake prints "threads: N" only for N > 1
    blocks = re.split(r"^(?=(?:local)?rule \w+:)", out.stdout, flags=re.M)
    jobs = [(m.group(1), int(t.group(1)) if (t := re.search(r"^\s+threads: (\d+)", b, re.M)) else 1)
            for b in blocks if (m := re.match(r"(?:local)?rule (\w+):", b))]
    posterior = [(rule, t) for rule, t in jobs if rule in ("posterior", "posterior_metrics", "make_fig6")]
    assert {rule for rule, _ in posterior} == {"posterior", "posterior_metrics", "make_fig6"}
    assert all(t == 1 for _, t in posterior), posterior
    assert any(t == 2 for rule, t in jobs if rule == "encode_ae")  # threads.eval still applies elsewhere
