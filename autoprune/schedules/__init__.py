"""Pruning schedules (one-shot, iterative, AGP, lottery ticket) from YAML files, run while training."""

from autoprune.schedules.config import ScheduleConfig, load_schedule
from autoprune.schedules.runner import ScheduleOutcome, overall_sparsity, run_schedule

__all__ = ["ScheduleConfig", "ScheduleOutcome", "load_schedule", "overall_sparsity", "run_schedule"]
