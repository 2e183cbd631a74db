"""The configuration files validate, and invalid values are reported by key with the allowed values."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import update_config

from pae.config import ConfigError, validate_config


def _load(repo, overlay=None):
    config = yaml.safe_load((repo / "config.yaml").read_text())
    if overlay:
        update_config(config, yaml.safe_load((repo / overlay).read_text()))
    return config


@pytest.mark.parametrize("overlay", [None, "config/quick.yaml", "config/test.yaml"])
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
