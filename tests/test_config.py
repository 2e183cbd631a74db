"""The configuration files validate, and invalid values are reported by key with the allowed values."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from pae.config import ConfigError, validate_config


def _load(repo, overlay=None):
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    if overlay:
        update_config(config, yaml.safe_load((repo / overlay).read_text()))
    return config


OVERLAYS = sorted(str(p.relative_to(p.parents[1])) for p in (Path(__file__).parents[1] / "config").glob("*.yaml")
                  if p.name != "config.yaml")


@pytest.mark.parametrize("overlay", [None, *OVERLAYS])
def test_shipped_configs_are_valid(repo_root, overlay):
    validate_config(_load(repo_root, overlay), repo_root / "workflow/schemas/config.schema.yaml")


def test_enum_error_names_key_and_allowed_values(repo_root):
    config = _load(repo_root)
    config["data"]["scale"] = 300
    with pytest.raises(ConfigError) as err:
        validate_config(config, repo_root / "workflow/schemas/config.schema.yaml")
    message = str(err.value)
    assert "data.scale" in message and "255" in message and "256" in message


def test_unknown_and_wrong_type_keys_are_all_reported(repo_root):
    config = copy.deepcopy(_load(repo_root))
    config["ae"]["epoch"] = 5  # misspelt
    config["flow"]["lr"] = -1.0
    with pytest.raises(ConfigError) as err:
        validate_config(config, repo_root / "workflow/schemas/config.schema.yaml")
    message = str(err.value)
    assert "'epoch'" in message and "flow.lr" in message and "2 problem(s)" in message


# ---- every key documented, with a default equal to config.yaml -------------------------------------------

SCHEMA = "workflow/schemas/config.schema.yaml"


def test_every_leaf_key_has_a_description_and_the_config_yaml_default(repo_root):
    from pae.config import schema_leaves

    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    leaves = schema_leaves(repo_root / SCHEMA)
    assert len(leaves) > 60
    problems = []
    for key, schema in leaves.items():
        if not str(schema.get("description", "")).strip():
            problems.append(f"{key}: no description")
        if "default" not in schema:
            problems.append(f"{key}: no default")
            continue
        value = config
        for part in key.split("."):
            value = value[part]
        if schema["default"] != value:
            problems.append(f"{key}: schema default {schema['default']!r} != config.yaml {value!r}")
    assert not problems, "\n".join(problems)


def test_packaged_defaults_and_schema_are_the_repository_files(repo_root):
    from pae.config import config_schema, paper_defaults

    assert paper_defaults() == yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    assert config_schema() == yaml.safe_load((repo_root / SCHEMA).read_text())
    assert paper_defaults("ae") == paper_defaults()["ae"]
    with pytest.raises(KeyError, match="sections"):
        paper_defaults("nope")


# ---- typed --config overrides ------------------------------------------------------------------------------


def _snakemake_overrides(repo_root, *entries):
    """config.yaml updated exactly as Snakemake does with `--config ENTRIES` (string values, merged sections)."""
    from snakemake.cli import parse_config

    config = _load(repo_root)
    update_config(config, parse_config(list(entries)))
    return config


def test_snakemake_config_overrides_are_typed_and_merged(repo_root):
    from pae.config import prepare_config

    config = _snakemake_overrides(
        repo_root, "seeds=[0,1]", "data={download: false}", "device=cuda:1",
        "flow={realnvp_depth: {4: 2}, lr: 1e-4}", "ood={map_count: null}", "channels_last=true",
    )
    assert config["seeds"] == ["0", "1"] and config["data"]["download"] == "false"  # what Snakemake hands over
    prepare_config(config, repo_root / SCHEMA)
    assert config["seeds"] == [0, 1]
    assert config["data"]["download"] is False and config["data"]["valid_size"] == 10000  # section merged
    assert config["device"] == "cuda:1"
    assert config["flow"]["realnvp_depth"] == {4: 2, 8: 10, 16: 12, 32: 18}  # "4" from the command line wins
    assert config["flow"]["lr"] == 1e-4 and config["ood"]["map_count"] is None and config["channels_last"] is True


def test_overrides_of_either_or_keys_are_typed(repo_root):
    from pae.config import prepare_config

    for entry, expected in (("posterior={steps_per_stage: 100}", 100),
                            ("posterior={steps_per_stage: [10, 20, 30, 40]}", [10, 20, 30, 40])):
        config = _snakemake_overrides(repo_root, entry)
        prepare_config(config, repo_root / SCHEMA)
        assert config["posterior"]["steps_per_stage"] == expected


def test_a_section_given_as_one_string_is_merged_into_the_defaults(repo_root):
    from pae.config import prepare_config

    config = _load(repo_root)
    config["data"] = "{download: false, scale: 256}"
    config["seeds"] = "[3, 4]"
    prepare_config(config, repo_root / SCHEMA)
    assert config["data"]["download"] is False and config["data"]["scale"] == 256
    assert config["data"]["dir"] == "data" and config["seeds"] == [3, 4]


def test_strings_the_schema_accepts_stay_strings(repo_root):
    from pae.config import prepare_config

    config = _snakemake_overrides(repo_root, "outdir=null", "data={mirror: null, dir: '123'}")
    prepare_config(config, repo_root / SCHEMA)
    assert config["outdir"] == "null"  # a folder name; outdir cannot be null
    assert config["data"]["mirror"] is None  # mirror may be null: "null" means null
    assert config["data"]["dir"] == "123"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_accepts_cuda_index(repo_root, device):
    config = _load(repo_root)
    config["device"] = device
    validate_config(config, repo_root / SCHEMA)


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CUDA", "cpu:0"])
def test_device_rejects_others_naming_the_key(repo_root, device):
    config = _load(repo_root)
    config["device"] = device
    with pytest.raises(ConfigError, match=r"config key 'device'.*cuda:N"):
        validate_config(config, repo_root / SCHEMA)


def test_uncoercible_override_is_reported_by_key(repo_root):
    from pae.config import prepare_config

    config = _snakemake_overrides(repo_root, "seeds=[0,x]", "data={download: maybe}")
    with pytest.raises(ConfigError) as err:
        prepare_config(config, repo_root / SCHEMA)
    assert "seeds.1" in str(err.value) and "data.download" in str(err.value)


def test_parse_assignments_for_the_command_line():
    from pae.config import parse_assignments

    got = parse_assignments(["ae.lr=1e-4", "seeds=[0, 1]", "data={download: false}", "flow.realnvp_depth.4=2"])
    assert got == {"ae": {"lr": 1e-4}, "seeds": [0, 1], "data": {"download": False}, "flow": {"realnvp_depth": {"4": 2}}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["ae.lr"])


def test_snakemake_dry_run_with_typed_overrides(repo_root, tmp_path):
    """The workflow itself accepts --config seeds=[0,1] data='{download: false}' device=cuda:1."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(repo_root / "workflow" / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1", "--configfile", str(repo_root / "config/test.yaml"),
           "--config", "seeds=[0,1]", "data={download: false}", "device=cuda:1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "seed1" in proc.stdout and "seed2" not in proc.stdout


def test_config_readme_is_generated_from_the_schema(repo_root):
    """config/README.md is `make config-docs` output of the current schema: one row per leaf key."""
    from pae.config import reference_markdown, schema_leaves

    text = (repo_root / "config" / "README.md").read_text()
    assert text == reference_markdown(), "config/README.md is out of date: run `make config-docs`"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert sorted(r.split("`")[1] for r in rows) == sorted(schema_leaves())  # every leaf once
    changed = reference_markdown({**schema_leaves_root(repo_root), "properties": {"outdir": {
        "type": "string", "default": "elsewhere", "description": "x"}}})
    assert changed != text and "`\"elsewhere\"`" in changed  # a changed default changes the file


def schema_leaves_root(repo_root):
    import yaml

    return yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
