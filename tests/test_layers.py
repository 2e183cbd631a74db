"""The import graph of src/pae: one direction between the layers, no cycles at module or function level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lower layers never import higher ones. science: tensors and arrays in and out; files: paths, readers and
# writers; settings: the only code that knows config keys; stages: one driver per rule; api; cli (imported by
# nothing but `python -m pae`).
LAYERS = {"science": 0, "files": 1, "config": 2, "settings": 2, "stages": 3, "api": 4, "cli": 5, "__main__": 6}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None  # the package root `pae` is no layer


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every pae module `path` imports, at module level or inside functions (TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "pae")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pae":
            for alias in node.names:  # `from pae.science import flows` names the module pae.science.flows
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted((SRC / "pae").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, modules) - {module_name(p)} for p in paths}
    graph["pae"] = set()  # the package root imports the API lazily (`pae.PAE` on first use): no edge
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        for target in targets:
            if target.endswith(".cli") and module != "pae.__main__":
                bad.append(f"{module} imports the CLI {target}")
            low, high = layer(module), layer(target)
            if low is not None and high is not None and high > low:
                bad.append(f"{module} imports {target} from a higher layer")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between pae modules (package `__init__`s that import nothing are leaves)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_is_in_a_layer():
    outside = [m for m in import_graph() if m != "pae" and layer(m) is None]
    assert not outside, f"modules in no layer (put them in science/, files/ or stages/, or name them in LAYERS): {outside}"


def test_no_upward_imports():
    assert upward_imports(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "graph, problem",
    [
        ({"pae.science.a": {"pae.stages.b"}, "pae.stages.b": set()}, "upward"),
        ({"pae.stages.b": {"pae.cli"}, "pae.cli": set()}, "upward"),
        ({"pae.science.a": {"pae.science.b"}, "pae.science.b": {"pae.science.a"}}, "cycle"),
    ],
)
def test_the_checks_catch_what_they_guard(graph, problem):
    if problem == "upward":
        assert upward_imports(graph)
    else:
        assert cycles(graph) == [["pae.science.a", "pae.science.b", "pae.science.a"]]
