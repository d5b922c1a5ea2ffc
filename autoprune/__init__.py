"""autoprune: search-based automated neural-network compression for PyTorch."""

__version__ = "0.1.0"

__all__ = ["export", "finetune", "load", "report", "search"]


def search(*args, **kwargs):
    """Search a pruning policy under a budget; see autoprune.app.pipeline.search (imported lazily: torch is heavy)."""
    from autoprune.app.pipeline import search as _search

    return _search(*args, **kwargs)


def load(path, model=None):
    """A slim model saved by autoprune (slim.pt, finetuned.pt, `export --format torch`), loaded with
    weights_only=True; see autoprune.models.slim_checkpoint.load. A run directory loads its delivered model:
    the fine-tuned one when the run was fine-tuned, else the pruned one."""
    from pathlib import Path

    from autoprune.models.slim_checkpoint import load as _load
    from autoprune.run.directory import model_path

    return _load(model_path(Path(path)) if Path(path).is_dir() else path, model)


def finetune(run_dir, epochs: int = 5, **settings):
    """Fine-tune a finished run's best slim model; see autoprune.toolbox.finetune.finetune_run."""
    from pathlib import Path

    from autoprune.toolbox.finetune import finetune_run

    return finetune_run(Path(run_dir), epochs, **settings)


def export(run_dir, fmt: str = "pt2", **settings):
    """Export a finished run's slim model (pt2, torch, onnx or torchscript), checked; see
    autoprune.run.export.export_run."""
    from pathlib import Path

    from autoprune.run.export import export_run

    return export_run(Path(run_dir), fmt, **settings)


def report(run_dir):
    """Re-create a run's report.md and figures; see autoprune.run.report.write_run_report."""
    from autoprune.run.report import write_run_report

    return write_run_report(run_dir)
