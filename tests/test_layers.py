"""The package's layers: each module imports only from its own layer or those below it, at the top of the file
or hidden in a function body (docs/architecture.md)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import autoprune

PACKAGE = Path(autoprune.__file__).parent
LAYERS = [  # bottom to top; docs/architecture.md lists the same
    {"errors", "files", "bisection", "signals", "device", "budget", "settings", "data", "models", "training",
     "compat"},
    {"engine"},
    {"evaluation"},
    {"problem"},
    {"runtime"},
    {"searchers"},
    {"run"},
    {"toolbox"},
    {"app"},
    {"cli", "__init__"},
]


def layer_of(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of autoprune (api, engine, ...) a module imports, anywhere in its body."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                 [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        parts |= {name.split(".")[1] for name in names if name.startswith("autoprune.")}
    return parts


def test_every_module_imports_only_its_own_layer_or_lower_ones() -> None:
    against = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for part in imported_parts(path):
            if layer_of(part) > layer_of(own):
                against.append(f"{path.relative_to(PACKAGE)} imports autoprune.{part}")
    assert not against, against
    top_level = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or
                 (p.is_dir() and (p / "__init__.py").is_file())}
    assert top_level == set().union(*LAYERS)  # every part has its layer


def module_name(path: Path) -> str:
    parts = ("autoprune", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle between modules, counting imports hidden in function bodies (a package's __init__ counts
    as the package)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autoprune"):
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                imported |= submodules or {node.module}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in modules}
        graph[name] = imported - {name}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        pytest.fail("import cycle: " + " imports ".join(reversed(cycle.args[1])))  # listed importer last
