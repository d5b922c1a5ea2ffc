"""Sweeps: a grid of searches (models x budgets x agents x seeds) as Ray tasks, with a summary and a Pareto plot."""

from autoprune.sweep.config import SweepConfig, SweepPoint, load_sweep
from autoprune.sweep.runner import run_sweep

__all__ = ["SweepConfig", "SweepPoint", "load_sweep", "run_sweep"]
