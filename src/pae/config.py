"""Configuration checks with messages that name the offending key and the allowed values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and how to fix it."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def describe_error(error: jsonschema.ValidationError) -> str:
    """One line per problem: dotted key, offending value, what is allowed."""
    key = _key(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"config key '{key}': {error.instance!r} is not allowed; use one of {allowed}"
    if error.validator == "additionalProperties":
        return f"config key '{key}': {error.message} (check the spelling against config.yaml)"
    hint = f" ({schema['description']})" if "description" in schema else ""
    return f"config key '{key}': {error.message}{hint}"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Validate `config` against the JSON schema; raise ConfigError listing every problem."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  ".join(describe_error(e) for e in errors)
        raise ConfigError(
            f"invalid configuration ({len(errors)} problem(s)):\n  {lines}\n"
            "Fix the value in config.yaml, your --configfile overlay or --config, then rerun."
        )
