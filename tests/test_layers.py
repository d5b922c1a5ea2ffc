"""The package's layers: each module imports only from its own layer or those below it, at the top of the file
or hidden in a function body (README, "Architecture")."""

from __future__ import annotations

import ast
from pathlib import Path

import autoprune

PACKAGE = Path(autoprune.__file__).parent
LAYERS = [  # bottom to top; the README's architecture section lists the same
    {"errors", "files", "bisection", "signals", "device", "budget", "config", "data", "models", "training"},
    {"engine"},
    {"evaluation"},
    {"problem"},
    {"runtime"},
    {"searchers"},
    {"rundir", "reports", "exporting", "finetuning", "sensitivity", "schedules", "pruning"},
    {"api", "sweep"},
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
