"""workflow/envs/pae.yaml (conda) mirrors the pip pins of requirements.lock for pyproject's direct dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11 (tomllib)")


def _direct_dependencies(repo: Path) -> dict[str, Requirement]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _lock_pins(repo: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (repo / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: '{line}' is not an exact 'name==version' pin"
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _env(repo: Path) -> dict:
    return yaml.safe_load((repo / "workflow" / "envs" / "pae.yaml").read_text())


def _env_pip_pins(env: dict) -> dict[str, str]:
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "workflow/envs/pae.yaml needs exactly one `pip:` section"
    pins: dict[str, str] = {}
    for entry in pip_sections[0]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s=<>!~;]+)", entry.strip())
        assert match, f"workflow/envs/pae.yaml pip entry '{entry}' is not an exact 'name==version' pin"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"workflow/envs/pae.yaml pins '{name}' twice"
        pins[name] = match.group(2)
    return pins


def test_every_direct_dependency_is_pinned_in_the_lock(repo_root: Path) -> None:
    lock = _lock_pins(repo_root)
    missing = sorted(set(_direct_dependencies(repo_root)) - set(lock))
    assert not missing, f"pyproject dependencies without a pin in requirements.lock: {missing}"


def test_lock_pins_satisfy_pyproject_specifiers(repo_root: Path) -> None:
    lock = _lock_pins(repo_root)
    for name, req in _direct_dependencies(repo_root).items():
        assert Version(lock[name]) in req.specifier, f"{name}=={lock[name]} violates pyproject's '{req}'"


def test_env_pins_equal_lock_pins_of_direct_dependencies(repo_root: Path) -> None:
    lock = _lock_pins(repo_root)
    direct = _direct_dependencies(repo_root)
    expected = {name: lock[name] for name in direct if name in lock}
    env_pins = _env_pip_pins(_env(repo_root))
    missing = sorted(set(expected) - set(env_pins))
    extra = sorted(set(env_pins) - set(expected))
    assert not missing, f"direct dependencies pinned in requirements.lock but not in workflow/envs/pae.yaml: {missing}"
    assert not extra, f"workflow/envs/pae.yaml pins packages that are not direct dependencies in pyproject: {extra}"
    differ = {n: (env_pins[n], expected[n]) for n in expected if env_pins[n] != expected[n]}
    assert not differ, f"workflow/envs/pae.yaml vs requirements.lock versions differ (env, lock): {differ}"


def test_env_python_matches_requires_python(repo_root: Path) -> None:
    env = _env(repo_root)
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\s*[=<>]", d)]
    assert len(pythons) == 1, "workflow/envs/pae.yaml must pin python exactly once (e.g. python=3.11)"
    version = re.search(r"(\d+\.\d+)", pythons[0]).group(1)
    requires = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(version) in SpecifierSet(requires), f"{pythons[0]} violates requires-python {requires}"
    assert "conda-forge" in env["channels"]


def test_post_deploy_script_installs_the_package(repo_root: Path) -> None:
    # Snakemake runs <env>.post-deploy.sh (same stem as the env file) after creating the environment.
    script = repo_root / "workflow" / "envs" / "pae.post-deploy.sh"
    if not script.exists():
        pytest.fail("workflow/envs/pae.post-deploy.sh is missing: the conda env would lack the `pae` package")
    text = script.read_text()
    assert text.startswith("#!"), "post-deploy script needs a shebang (Snakemake picks the interpreter)"
    assert re.search(r"pip install .*--no-deps.*-e ", text), "post-deploy must pip install -e the checkout"
