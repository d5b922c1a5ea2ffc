"""Pruning schedules (one-shot, iterative, AGP, lottery ticket) from YAML files, run while training."""

from autoprune.toolbox.schedules.config import ScheduleConfig, load_schedule
from autoprune.toolbox.schedules.runner import ScheduleOutcome, overall_sparsity, run_schedule

__all__ = ["ScheduleConfig", "ScheduleOutcome", "load_schedule", "overall_sparsity", "run_schedule"]
