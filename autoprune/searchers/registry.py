"""Searchers by name, as `--agent` names them. Imported on first use: ga, tpe and ddpg pull in DEAP, Optuna and
stable-baselines3, which would add seconds to every command, error messages included."""

from __future__ import annotations

import importlib
from typing import Any

from autoprune.errors import InputError
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import Searcher

_LOCATIONS = {
    "uniform": "autoprune.searchers.algorithms:UniformSearcher",
    "random": "autoprune.searchers.algorithms:RandomSearcher",
    "anneal": "autoprune.searchers.algorithms:AnnealSearcher",
    "ga": "autoprune.searchers.genetic:GeneticSearcher",
    "tpe": "autoprune.searchers.tpe:TPESearcher",
    "ddpg": "autoprune.searchers.ddpg:DDPGSearcher",
    "sensitivity": "autoprune.searchers.threshold:SensitivityThresholdSearcher",
}
AGENTS: tuple[str, ...] = tuple(_LOCATIONS)


def searcher_class(name: str) -> type[Searcher]:
    """The searcher class for an agent name."""
    if name not in _LOCATIONS:
        raise InputError(f"unknown agent {name!r}; use one of {', '.join(AGENTS)}")
    module, cls = _LOCATIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_searcher(name: str, space: SearchSpace, seed: int = 0, **settings: Any) -> Searcher:
    """A searcher by name with its hyper-parameters (validated; an unknown or bad one is an InputError)."""
    return searcher_class(name)(space, seed, **settings)
