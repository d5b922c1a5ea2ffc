"""`autoprune search` and `sweep`, with the live progress bars and the summary a search prints."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from autoprune.cli.app import DataDirOpt, WeightsOpt, app
from autoprune.errors import SearchInterrupted
from autoprune.settings import ExperimentConfig

DEFAULTS = ExperimentConfig()  # the help's defaults: the settings' own


@app.command()
def search(
    budget: Annotated[str | None, typer.Option(help="e.g. 0.25flops, 25%flops, 0.5params, 0.5latency, 3ms")] = None,
    target: Annotated[str | None, typer.Option(
        help="deployment target the delivered model is timed on: RUNTIME[,batch=N][,threads=N], runtime "
             f"onnxruntime or torch (default {DEFAULTS.target})")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help=f"default {DEFAULTS.model}")] = None,
    weights: WeightsOpt = None,
    data: Annotated[str | None, typer.Option(help=f"default {DEFAULTS.data}")] = None,
    data_dir: DataDirOpt = None,
    agent: Annotated[str | None, typer.Option(help="uniform, random, anneal, ga, tpe, ddpg or sensitivity "
                                                   f"(default {DEFAULTS.agent})")] = None,
    space: Annotated[str | None, typer.Option(help="search_spaces/NAME.yaml or a path "
                                                  f"(default: {DEFAULTS.space})")] = None,
    evals: Annotated[int | None, typer.Option(help=f"the search's evaluations (default {DEFAULTS.evals})")] = None,
    seed: Annotated[int | None, typer.Option(help=f"default {DEFAULTS.seed}")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<model>-<budget>-<agent>-s<seed>)")]
    = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="experiment YAML; flags override it")] = None,
    finetune_steps: Annotated[int | None, typer.Option(help="SGD steps per candidate before scoring")] = None,
    screen_images: Annotated[int | None, typer.Option(
        help="multi-fidelity: score each candidate on this many held-out images first; only the best third "
             "get the full split (0: off)")] = None,
    workers: Annotated[int | None, typer.Option(help="evaluations in parallel on Ray actors "
                                                   f"(default {DEFAULTS.workers}: in process)")]
    = None,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (HOST:PORT or auto) instead of "
                                                     "starting a local one")] = None,
    dashboard: Annotated[bool | None, typer.Option("--dashboard", help="with --workers 2 or more: also start the "
                                                   "local Ray instance's dashboard, on 127.0.0.1")] = None,
    finalists: Annotated[int | None, typer.Option(
        help="score the baselines' policies, start the search from the best, then re-rank its best N distinct "
             f"policies with the baselines' by short fine-tunes (default {DEFAULTS.finalists.count}; 0: off)")] = None,
    probes_from: Annotated[Path | None, typer.Option(
        help="reuse the sensitivity probes of this earlier run's directory (the same model, data, seed and scoring; "
             "another budget or searcher)")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(
        help=f"after the search, fine-tune the winner this many epochs (default {DEFAULTS.finetune.epochs}; "
             "0: off)")] = None,
    distill: Annotated[bool | None, typer.Option("--distill", help="fine-tune with distillation from the dense "
                                                                   "model")] = None,
    device: Annotated[str | None, typer.Option(help="auto (default: CUDA when there is a GPU, else CPU), cpu, cuda "
                                                    "or cuda:N")] = None,
    amp: Annotated[str | None, typer.Option(help="score candidates under bf16 or fp16 autocast (default off: "
                                                 "exact fp32 scores)")] = None,
    channels_last: Annotated[str | None, typer.Option(
        help="score in channels-last memory layout: auto (default: on CPUs, where it is faster), on or off")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="with --workers: each Ray worker's share of a GPU "
                                                               "(0.25: four share one; default 0: CPU)")] = None,
) -> None:
    """Search a per-group pruning policy that meets the budget with the best held-out accuracy."""
    flags = dict(locals())
    from autoprune.app.pipeline import execute_search, prepare_search
    from autoprune.settings import load_experiment
    from autoprune.signals import sigterm_interrupts

    overrides = {name: str(value) if isinstance(value, Path) else value  # each flag is named as its setting
                 for name, value in flags.items() if name in ExperimentConfig.flat_names()}
    settings = load_experiment(str(config) if config else None, overrides)
    if settings.out is None:
        settings.out = f"runs/{settings.model}-{settings.budget}-{settings.agent}-s{settings.seed}"
    with sigterm_interrupts():
        prepared = prepare_search(settings, resume=resume)
        report = _run_with_progress(prepared, execute_search)
    _print_report(report)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep YAML, e.g. experiments/sweep_digits.yaml")],
    workers: Annotated[int | None, typer.Option(min=1, help="searches at once on a local Ray instance "
                                                            "(default: this machine's cores)")] = None,
    address: Annotated[str | None, typer.Option(help="run on this Ray cluster (HOST:PORT or auto)")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard", help="also start the local Ray instance's dashboard, "
                                                                "on 127.0.0.1")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted sweep")] = False,
    device: Annotated[str, typer.Option(help="auto (cuda with --gpus-per-search, else cpu), cpu or cuda")] = "auto",
    gpus_per_search: Annotated[float, typer.Option(min=0.0, help="each search's share of a GPU (0.5: two share "
                                                                 "one; default 0: CPU)")] = 0.0,
) -> None:
    """Run a grid of searches (models x budgets x agents x seeds) as Ray tasks; write a summary and a Pareto plot."""
    from rich.console import Console

    from autoprune.app.sweep import load_sweep, run_sweep

    console = Console()
    settings = load_sweep(config)
    report = run_sweep(settings, workers=workers, address=address, resume=resume, dashboard=dashboard,
                       device=device, gpus_per_search=gpus_per_search,
                       on_finished=lambda point, done, total: console.print(f"[{done}/{total}] {point.name} done"))
    console.print(f"{len(report.rows)} searches; report: {report.report} (summary {report.markdown}, "
                  f"{report.csv}; Pareto plot {report.pareto_plot})")


def _run_with_progress(prepared, execute):
    """Run the search under live progress bars, one per stage (baselines, search, finalists): evaluations done,
    and the latest baseline, the best search result or the latest rung result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[best]}"))
    config = prepared.config
    with Progress(*columns, transient=False) as progress:
        stages: dict[str, int] = {}

        def finish_stages() -> None:
            """Mark every bar finished (its clock stops) at what it completed."""
            for bar in stages.values():
                progress.update(bar, total=progress.tasks[bar].completed)

        def enter(stage: str, total: int | None = None) -> int:
            """The stage's bar, added when it starts, after the bars before it are finished."""
            if stage not in stages:
                finish_stages()
                stages[stage] = progress.add_task(stage, total=total, best="")
            return stages[stage]

        def on_baseline(name, result, cached) -> None:
            replayed = " (replayed)" if cached else ""
            progress.update(enter("baselines"), advance=1, best=f"{name}: {result.score:.4f}{replayed}")

        def on_result(result, best, cached) -> None:
            text = f"best {best.score:.4f} at {best.flops_ratio:.1%} FLOPs" if best else "no feasible policy yet"
            progress.update(enter("search", config.evals), advance=1, best=text + (" (replayed)" if cached else ""))

        def on_finalist(finalist, result, cached) -> None:
            text = f"{finalist.origin} policy: {result.score:.4f} after {result.train_steps} steps"
            progress.update(enter("finalists"), advance=1, best=text + (" (replayed)" if cached else ""))

        try:
            return execute(prepared, on_result, on_finalist, on_baseline)
        finally:
            finish_stages()


def _print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from autoprune.run.report import on_target_line

    summary, console = report.summary, Console()
    groups = Table(title=f"best policy under {summary.budget} ({summary.agent}, seed {summary.seed})")
    for column in ("group", "keep ratio", "channels dense", "channels slim"):
        groups.add_column(column)
    for name, channels in summary.channels.items():
        groups.add_row(name, f"{summary.policy[name]:.3f}", str(channels.dense), str(channels.slim))
    console.print(groups)
    if report.finals is not None:
        finals = Table(title=f"finalists: held-out score after each rung's fine-tuning steps "
                             f"({', '.join(map(str, report.finals.rungs))})")
        for column in ("origin", "policy", "search score", *(f"{steps} steps" for steps in report.finals.rungs)):
            finals.add_column(column)
        for finalist in report.finals.finalists:
            mark = " (winner)" if finalist is report.finals.winner else ""
            finals.add_row(finalist.origin + mark, finalist.result.policy_hash, f"{finalist.result.score:.4f}",
                           *(f"{finalist.rung_scores[s]:.4f}" if s in finalist.rung_scores else "-"
                             for s in report.finals.rungs))
        console.print(finals)
        console.print(f"winner: {report.finals.winner.origin} policy, {report.finals.decision}")
    dense, slim, tuned = summary.dense, summary.slim, summary.finetuned
    stages = (f"pruned and fine-tuned ({tuned.epochs} epochs; the delivered model)" if tuned is not None
              else "pruned, not fine-tuned")
    table = Table(title=f"dense vs slim, {stages}; computed on {summary.device}")
    for column in ("", "MACs", "params", f"latency (ms, {str(summary.device).split()[0]})", "held-out score",
                   "test score"):
        table.add_column(column)
    rows = [("dense", dense, dense), ("slim, pruned", slim, slim)]
    if tuned is not None:
        rows.append(("slim, fine-tuned", slim, tuned))
    for label, cost, score in rows:
        table.add_row(label, f"{cost.macs / 1e6:.2f} M", f"{cost.params / 1e6:.3f} M",
                      f"{cost.latency_s * 1e3:.2f}", f"{score.heldout_score:.4f}", f"{score.test_score:.4f}")
    console.print(table)
    delivered = ("finetuned.pt and model.pt2 hold the fine-tuned model, slim.pt the pruned one" if tuned is not None
                 else "slim.pt and model.pt2 hold the pruned model, not fine-tuned: run `autoprune finetune "
                      f"{report.run_dir}` before deploying it")
    measured = on_target_line(summary)
    if measured is not None:
        console.print(measured)
    console.print(f"slim/dense MACs {slim.macs / dense.macs:.3f}; run directory: {report.run_dir} "
                  f"(report.md, best.json, store.sqlite; {delivered}; load with autoprune.load or "
                  "torch.export.load)")


def interrupted_line(stop: SearchInterrupted) -> str:
    """What an interrupted search says: how far it got, what it wrote, and the command that continues it."""
    args = [a for a in sys.argv[1:] if a != "--resume"]
    if stop.run_dir is not None and "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(stop.run_dir)]
    wrote = (f"wrote the best so far to {stop.run_dir}/ (best.json, slim.pt, model.pt2, report.md)"
             if stop.wrote_best and stop.run_dir is not None else "no feasible result to write yet")
    where = f"every finished evaluation is in {stop.run_dir}/store.sqlite" if stop.run_dir else "no run directory"
    return (f"interrupted after {stop.evaluations} evaluations; {wrote}; {where}; continue with: "
            f"autoprune {shlex.join([*args, '--resume'])}")
