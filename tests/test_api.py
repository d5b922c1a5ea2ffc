"""The public API's names survive importing every module (a subpackage once shadowed `autoprune.search`)."""

from __future__ import annotations

import importlib
import pkgutil

import autoprune


def test_autoprune_search_stays_the_api_function_after_every_import() -> None:
    for module in pkgutil.walk_packages(autoprune.__path__, "autoprune."):
        importlib.import_module(module.name)
    assert callable(autoprune.search) and autoprune.search.__module__ == "autoprune"
