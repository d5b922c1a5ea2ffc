"""Run reports: report.md and its figures for a search run (`autoprune report RUN_DIR`), Pareto fronts."""

from autoprune.reports.pareto import pareto_front
from autoprune.reports.run_report import write_run_report

__all__ = ["pareto_front", "write_run_report"]
