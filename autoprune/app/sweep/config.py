"""A sweep file: the grid (models, budgets, agents, seeds), where it goes, and the settings every search shares.

Any other key is an `autoprune search` setting (data, evals, space, heldout_images, ...) applied to every point.
The whole grid is validated before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autoprune.budget import Budget
from autoprune.errors import InputError
from autoprune.searchers import searcher_class
from autoprune.settings import ExperimentConfig, load_space, read_yaml, validated


class SweepConfig(BaseModel):
    """The grid and the run directory; `weights` maps a model name to its checkpoint (default: shipped)."""

    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=1, description="the grid's models")
    budgets: list[str] = Field(min_length=1, description="the grid's budgets")
    agents: list[str] = Field(min_length=1, description="the grid's searchers")
    seeds: list[int] = Field(min_length=1, description="the grid's seeds")
    out: str = Field(description="the sweep's directory; each search gets one inside it")
    weights: dict[str, str] = Field(default_factory=dict, description="a model name's checkpoint (default: the "
                                                                      "shipped one)")
    search: dict[str, Any] = Field(default_factory=dict, description="settings shared by every search (the file's "
                                                                     "other top-level keys)")


_GRID_KEYS = frozenset(SweepConfig.model_fields) - {"search"}  # top-level keys of a sweep file
# search settings a sweep sets itself, for each point (point_config) or for all of them (run_sweep's workers, address)
_PER_POINT = {"model", "budget", "agent", "seed", "out", "workers", "address", "weights"}


@dataclass(frozen=True)
class SweepPoint:
    """One search of the grid."""

    model: str
    budget: str
    agent: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.budget}-{self.agent}-s{self.seed}"


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep file (grid keys at the top level, every other key a search setting)."""
    data = read_yaml(Path(path), "sweep")
    grid = {k: v for k, v in data.items() if k in _GRID_KEYS}
    shared = {k: v for k, v in data.items() if k not in _GRID_KEYS}
    misplaced = sorted(_PER_POINT & shared.keys())
    if misplaced:
        raise InputError(f"{path}: {', '.join(misplaced)} cannot be shared by every search; use the grid keys "
                         "models, budgets, agents, seeds (and weights: {model: checkpoint})")
    placed = sorted({"device", "gpus_per_worker"} & shared.keys())
    if placed:
        raise InputError(f"{path}: {', '.join(placed)}: a sweep places its searches with $device and "
                         "$gpus_per_search; remove the key")
    config = validated(SweepConfig, {**grid, "search": shared}, str(path))
    for budget in config.budgets:
        Budget.parse(budget)
    for agent in config.agents:
        searcher_class(agent)
    for point in points(config):
        point_config(config, point)  # every search's settings are valid
    load_space(config.search.get("space", "default"))
    return config


def points(config: SweepConfig) -> list[SweepPoint]:
    """The grid in a fixed order."""
    return [SweepPoint(m, b, a, s) for m in config.models for b in config.budgets for a in config.agents
            for s in config.seeds]


def point_config(config: SweepConfig, point: SweepPoint) -> ExperimentConfig:
    """The settings of one search: shared settings, the point, its own run directory inside the sweep's."""
    return validated(ExperimentConfig, {**config.search, "model": point.model, "budget": point.budget,
                                        "agent": point.agent, "seed": point.seed,
                                        "weights": config.weights.get(point.model),
                                        "out": str(Path(config.out) / point.name)}, f"sweep point {point.name}")
