"""Configuration: the paper defaults, typed `--config` overrides, and checks whose messages name the key.

One source of defaults. ``config/config.yaml`` at the repository root holds the paper's settings (every key
commented); the package carries it as ``pae/paper_defaults.yaml`` (a link to that file, copied into wheels)
and the JSON schema as ``pae/config.schema.yaml`` (a link to ``workflow/schemas/config.schema.yaml``), so
the workflow, the public API (`pae.PAE`) and the command line read the same values.

Typed overrides. Snakemake parses ``--config key=value`` values with YAML's *base* loader, so
``--config seeds=[0,1]`` arrives as ``['0', '1']`` and ``--config data='{download: false}'`` as
``{'download': 'false'}`` (merged into the ``data`` section by Snakemake); mapping keys such as the K of
``flow.realnvp_depth`` arrive as strings beside the file's integer keys. :func:`prepare_config` turns every
string the schema does not accept as a string back into the YAML value it spells, turns numeric string
keys of free-form mappings into integers (the command-line entry wins), merges a section given as one
YAML string into the section it overrides, and then validates.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DEFAULTS_RESOURCE = "paper_defaults.yaml"  # a symbolic link to ../../config/config.yaml
SCHEMA_RESOURCE = "config.schema.yaml"  # -> ../../workflow/schemas/config.schema.yaml

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT = re.compile(r"[+-]?\d+")
_NULLS = ("null", "Null", "NULL", "~")


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and how to fix it."""


# --------------------------------------------------------------------------------------------------------
# Packaged defaults and schema


@functools.cache
def _packaged(name: str) -> dict[str, Any]:
    resource = importlib.resources.files("pae").joinpath(name)
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as err:
        raise FileNotFoundError(
            f"pae/{name} is missing or a broken link ({err}); in a source checkout it links to the "
            "repository's config/config.yaml / workflow/schemas/config.schema.yaml: restore the link or reinstall pae"
        ) from err
    return yaml.safe_load(text)


def paper_defaults(section: str | None = None) -> dict[str, Any]:
    """A fresh copy of config/config.yaml (the paper's settings), or of one of its sections (e.g. "ae", "flow")."""
    config = _packaged(DEFAULTS_RESOURCE)
    if section is None:
        return copy.deepcopy(config)
    if section not in config:
        raise KeyError(f"config/config.yaml has no section {section!r}; sections: {sorted(config)}")
    return copy.deepcopy(config[section])


def config_schema() -> dict[str, Any]:
    """A fresh copy of the JSON schema of the configuration."""
    return copy.deepcopy(_packaged(SCHEMA_RESOURCE))


def _load_schema(schema: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return config_schema()
    if isinstance(schema, Mapping):
        return dict(schema)
    return yaml.safe_load(Path(schema).read_text())


# --------------------------------------------------------------------------------------------------------
# Error messages and validation


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
        return f"config key '{key}': {error.message} (check the spelling against config/config.yaml)"
    if error.validator == "pattern":
        hint = f": {schema['description']}" if "description" in schema else ""
        return f"config key '{key}': {error.instance!r} is not allowed{hint}"
    hint = f" ({schema['description']})" if "description" in schema else ""
    return f"config key '{key}': {error.message}{hint}"


WORKFLOW_FIX = "Fix the value in config/config.yaml, your --configfile overlay or --config, then rerun."


def validate_config(
    config: Mapping[str, Any],
    schema_path: str | Path | Mapping[str, Any] | None = None,
    fix: str = WORKFLOW_FIX,
) -> None:
    """Validate `config` against the JSON schema (default: the packaged one); raise ConfigError listing
    every problem, followed by the line `fix`."""
    schema = _load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  ".join(describe_error(e) for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n  {lines}\n{fix}")


# --------------------------------------------------------------------------------------------------------
# Typed overrides


def _resolve(sub: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """`sub` with local `$ref`s ("#/definitions/...") replaced by what they point to."""
    sub = dict(sub) if isinstance(sub, Mapping) else {}
    while "$ref" in sub:
        ref = sub.pop("$ref")
        if not ref.startswith("#/"):
            raise ConfigError(f"schema reference {ref!r} is not local; only '#/...' references are supported")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        sub = {**node, **sub}
    return sub


#: What a JSON-Schema keyword means where a schema node leaves it out (the JSON Schema specification's
#: meaning: no named properties, any value for other keys and items, any type).
_ABSENT_KEYWORD: dict[str, Any] = {"properties": {}, "additionalProperties": {}, "items": {}, "type": "any"}


def _keyword(sub: Mapping[str, Any], name: str) -> Any:
    """Keyword `name` of schema node `sub`, or its meaning when absent (`_ABSENT_KEYWORD`)."""
    return sub[name] if name in sub else _ABSENT_KEYWORD[name]


def _accepts(sub: Mapping[str, Any], value: Any, root: Mapping[str, Any]) -> bool:
    schema = {**sub, "definitions": root["definitions"]}
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def _typed_key(key: Any) -> Any:
    return int(key) if isinstance(key, str) and _INT.fullmatch(key.strip()) else key


def _parse_string(value: str, sub: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """The YAML value `value` spells, when the schema does not take the string itself (or it spells null)."""
    is_null = value.strip() in _NULLS
    if _accepts(sub, value, root) and not (is_null and _accepts(sub, None, root)):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, str) and _NUMBER.fullmatch(value.strip()):
        parsed = float(value)  # YAML 1.1 reads "1e-3" as a string
    if isinstance(parsed, str) or (parsed is None and not is_null):
        return value
    return parsed


def _coerce(value: Any, sub: Any, root: Mapping[str, Any]) -> Any:
    sub = _resolve(sub, root)
    branches = sub.get("oneOf") or sub.get("anyOf")
    if branches:  # e.g. "a number or a list of numbers": the first branch the coerced value satisfies
        rest = {k: v for k, v in sub.items() if k not in ("oneOf", "anyOf")}
        for branch in branches:
            candidate = _coerce(value, {**rest, **_resolve(branch, root)}, root)
            if _accepts(sub, candidate, root):
                return candidate
        return value
    if isinstance(value, str):
        value = _parse_string(value, sub, root)
    if isinstance(value, Mapping):
        props = _keyword(sub, "properties")
        extra = _keyword(sub, "additionalProperties")
        extra = extra if isinstance(extra, Mapping) else {}
        out: dict[Any, Any] = {}
        free_form = not props
        # keys that are already typed first, so a numeric string key (from the command line) overrides them
        items = sorted(value.items(), key=lambda kv: isinstance(kv[0], str) and free_form)
        for k, v in items:
            key = _typed_key(k) if free_form else k
            out[key] = _coerce(v, props.get(key, extra), root)
        return out
    if isinstance(value, list):
        return [_coerce(v, _keyword(sub, "items"), root) for v in value]
    return value


def deep_merge(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """A new mapping: `base` updated by `override`, mappings merged recursively (not replaced).

    A numeric string key of `override` (e.g. "4" from the command line) updates the integer key 4 of `base`.
    """
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        key = k
        if isinstance(k, str) and k not in out and _typed_key(k) in out:
            key = _typed_key(k)
        if isinstance(v, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], v)
        else:
            out[key] = copy.deepcopy(v)
    return out


def coerce_types(
    config: Mapping[str, Any],
    schema: str | Path | Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`config` with `--config` strings turned into the values they spell where the schema asks for them.

    A top-level section given as one YAML string (e.g. ``data`` = "{download: false}") is parsed and
    merged into ``base[section]`` (default: the paper defaults), so the other keys of the section survive.
    """
    root = _load_schema(schema)
    out = _coerce(dict(config), root, root)
    for section, value in config.items():
        if isinstance(value, str) and isinstance(out.get(section), Mapping):
            base_section = (base if base is not None else paper_defaults()).get(section)
            if isinstance(base_section, Mapping):
                out[section] = deep_merge(base_section, out[section])
    return out


def fill_defaults(config: Mapping[str, Any], schema: str | Path | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `config` with every key the schema gives a default filled in where it is missing, sections
    included, so a config that names only what it changes is complete.

    (Snakemake's `snakemake.utils.validate(..., set_default=True)` fills a default only inside a section
    the config already has, stops at the first error, and needs a running workflow for relative schema
    paths; the library and the `pae` command must also work without Snakemake. Hence this walker.)
    """
    root = _load_schema(schema)

    def fill(value: Any, sub: Mapping[str, Any]) -> Any:
        sub = _resolve(sub, root)
        props = sub.get("properties")
        if not props or not isinstance(value, Mapping):
            return copy.deepcopy(value)
        out = {k: copy.deepcopy(v) for k, v in value.items()}
        for name, child in props.items():
            child = _resolve(child, root)
            if name in out:
                out[name] = fill(out[name], child)
            elif "default" in child:
                out[name] = copy.deepcopy(child["default"])
            elif child.get("properties"):
                out[name] = fill({}, child)
        return out

    return fill(config, root)


def prepare_config(
    config: dict[str, Any],
    schema: str | Path | Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    fix: str = WORKFLOW_FIX,
) -> dict[str, Any]:
    """Coerce `--config` strings (:func:`coerce_types`), fill the schema's defaults (:func:`fill_defaults`)
    and validate, *in place*; returns `config`.

    Called by workflow/rules/common.smk on Snakemake's `config` object (hence in place).
    """
    completed = fill_defaults(coerce_types(config, schema, base), schema)
    config.clear()
    config.update(completed)
    validate_config(config, schema, fix)
    return config


def parse_assignments(entries: Iterable[str]) -> dict[str, Any]:
    """``["ae.lr=1e-4", "seeds=[0, 1]", "data={download: false}"]`` → a nested mapping of typed values.

    Dotted keys address nested sections; values are YAML (numbers like 1e-4 included).
    """
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, raw = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {entry!r} is not KEY=VALUE (e.g. ae.lr=1e-4 or seeds=[0,1])")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {entry!r}: the value is not valid YAML ({err.problem})") from err
        if isinstance(value, str) and _NUMBER.fullmatch(raw.strip()):
            value = float(raw)
        node = out
        parts = [p.strip() for p in key.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {entry!r}: '{part}' is set to a value and used as a section")
        node[parts[-1]] = value
    return out


def schema_leaves(schema: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Dotted key → (resolved) schema of every leaf key: a property that is not a section with named
    properties of its own (free-form mappings such as flow.realnvp_depth and vae.models are leaves)."""
    root = _load_schema(schema)
    leaves: dict[str, dict[str, Any]] = {}

    def walk(sub: Mapping[str, Any], prefix: str) -> None:
        for name, child in _keyword(sub, "properties").items():
            resolved = _resolve(child, root)
            key = f"{prefix}{name}"
            if resolved.get("properties"):
                walk(resolved, key + ".")
            else:
                leaves[key] = resolved

    walk(root, "")
    return leaves


def _type_of(sub: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """A short type for the reference table: integer, number ≥ 0, one of a | b, list of integer, ..."""
    sub = _resolve(sub, root)
    if "enum" in sub:
        return "one of " + " \\| ".join(str(v) for v in sub["enum"])
    if "oneOf" in sub or "anyOf" in sub:
        return " or ".join(_type_of(b, root) for b in sub.get("oneOf") or sub["anyOf"])
    kind = _keyword(sub, "type")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in sub:
        return f"list of {_type_of(sub['items'], root)}"
    return {"object": "mapping"}.get(kind, kind)


def reference_markdown(schema: str | Path | Mapping[str, Any] | None = None) -> str:
    """config/README.md: one table row per leaf key of the schema (key, type, default, description),
    grouped by section; written by `make config-docs`, checked by tests/test_config.py."""
    root = _load_schema(schema)
    lines = ["# Configuration reference", "",
             "Generated from `workflow/schemas/config.schema.yaml` by `make config-docs`; do not edit by hand.",
             "Every key has a default (the paper's setting, also in `config/config.yaml`), so an overlay",
             "(`--configfile`) or `--config` names only what it changes. `config/quick.yaml`, `test.yaml`,",
             "`reverse.yaml`, `celeba.yaml` and `quick-all-rows.yaml` are such overlays.", ""]
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, sub in schema_leaves(root).items():
        groups.setdefault(key.split(".")[0] if "." in key else "", []).append((key, sub))
    for section, rows in groups.items():
        lines += ["", f"## `{section}`" if section else "## top level", "", "| key | type | default | description |",
                  "|---|---|---|---|"]
        for key, sub in rows:
            lines.append(_reference_row(key, sub, root))
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _reference_row(key: str, sub: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    default = json.dumps(sub["default"], ensure_ascii=False) if "default" in sub else "(required)"
    text = str(sub["description"]).replace("|", "\\|").replace("\n", " ")
    return f"| `{key}` | {_type_of(sub, root)} | `{default}` | {text} |"
