"""Sweeps: a grid of searches (models x budgets x agents x seeds) as Ray tasks, with a summary and a Pareto plot."""

from autoprune.app.sweep.config import SweepConfig, SweepPoint, load_sweep
from autoprune.app.sweep.runner import run_sweep

__all__ = ["SweepConfig", "SweepPoint", "load_sweep", "run_sweep"]
