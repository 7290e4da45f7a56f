"""How edgekit's modules import each other: no cycle, counting imports inside functions, and no module that
shares its name with an API function (so none has to pretend to be callable).

The graph is read from the source with the AST, so an import that runs only on some path counts as much as one
at the top of a file. An edge A -> B means A's source holds ``import B`` or ``from B import name`` (B the module
imported, or the package when ``name`` is not a submodule of it), and also A -> P for each package P above B that
is not above A: importing ``edgekit.profiling.layers`` from ``edgekit.targets.tensorrt.layers`` runs
``edgekit/profiling/__init__.py`` first, while a module's own packages have always been imported before it.
"""
from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed package: dotted name -> (file, is a package), folders as pyproject maps them."""
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    found = {}
    for package, folder in package_dirs.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [*package.split("."), *path.relative_to(ROOT / folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _owner(name: str, known) -> str | None:
    """The module ``name`` refers to: itself, else the nearest package above it that is a module here."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, is_package: bool, known) -> dict[str, int]:
    """edgekit modules ``name`` imports anywhere in its file -> the first line that does."""
    package = name if is_package else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            owner = _owner(target, known) if target.split(".")[0] == "edgekit" else None
            if owner is None:
                continue
            parts = owner.split(".")
            above = [".".join(parts[:i]) for i in range(1, len(parts))]
            for module in [owner, *(p for p in above if not (name + ".").startswith(p + "."))]:
                if module != name:
                    found.setdefault(module, node.lineno)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports_of(name, path, is_package, known) for name, (path, is_package) in known.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycle():
    graph = import_graph()
    known = modules()
    found = cycles(graph)
    lines = []
    for component in found:
        lines.append(f"cycle among {len(component)} modules:")
        for a in component:
            for b, line in sorted(graph[a].items()):
                if b in component:
                    lines.append(f"  {a} -> {b}  ({known[a][0].relative_to(ROOT)}:{line})")
    assert found == [], "\n".join(lines)


def test_the_graph_counts_imports_inside_functions_and_packages_above():
    graph = import_graph()
    assert "edgekit.pipeline" in graph["edgekit.api"]  # imported inside api.export
    assert "edgekit.sources.timm_source" in graph["edgekit.sources.directory"]  # inside directory_model
    assert "edgekit.engines" in graph["edgekit.targets.openvino.backend"]  # above edgekit.engines.openvino it imports
    assert "edgekit.targets" not in graph["edgekit.targets.openvino.backend"]  # a package above it, imported before it
    assert "edgekit.models._registry" in graph["edgekit.models"]  # a folder pyproject maps under edgekit
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


@pytest.mark.parametrize("name", ["evaluate", "export", "inspect", "list_models", "profile", "quantize", "sensitivity"])
def test_api_functions_stay_functions(name):
    """No module is named like an API function: importing it would bind the module over the function."""
    import importlib

    import edgekit

    assert f"edgekit.{name}" not in modules()
    for module in ("edgekit.accuracy", "edgekit.quant.bundle", "edgekit.profiling.profiler",
                   "edgekit.profiling.report"):
        importlib.import_module(module)
    assert isinstance(getattr(edgekit, name), types.FunctionType)
    assert name in edgekit.__all__


def test_no_module_replaces_itself_in_sys_modules():
    offenders = [str(path.relative_to(ROOT)) for path, _ in modules().values()
                 if "sys.modules[__name__]" in path.read_text()]
    assert offenders == []
