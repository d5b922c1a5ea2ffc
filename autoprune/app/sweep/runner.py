"""Runs a sweep's searches as Ray tasks, one CPU each (and a share of a GPU when asked), on a private local Ray
instance or an existing cluster.

Each search has its own run directory and store, so a task that is re-run (Ray retries tasks whose worker or node
died) or a sweep that is resumed continues the search from its store instead of repeating it.

The sensitivity probes of one model and seed score the same at every budget and for every searcher, so the first
search of each (model, seed) in grid order probes, and the others start once it has finished, reusing its probes
(`probes_from`, autoprune.run.probe_reuse).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayTaskError

from autoprune.app.sweep.config import SweepConfig, SweepPoint, point_config, points
from autoprune.app.sweep.report import SweepReport, collect_rows, write_report
from autoprune.errors import AutopruneError, ClusterError, InputError, RunDirectoryError
from autoprune.run.directory import BEST_NAME, STORE_NAME, read_summary, run_lock
from autoprune.runtime.checks import check_gpus_per_worker


@ray.remote(num_cpus=1)
def _search_task(settings: dict[str, Any]) -> str:
    """One search of the grid, in a Ray worker: continues its own store if an earlier attempt left one."""
    import torch

    from autoprune.app.pipeline import execute_search, prepare_search
    from autoprune.settings import ExperimentConfig

    torch.set_num_threads(1)  # one core per search; the sweep's parallelism is across searches
    config = ExperimentConfig(**settings)
    resume = (Path(config.out) / STORE_NAME).is_file()
    execute_search(prepare_search(config, resume=resume))
    return config.out


def probe_leaders(config: SweepConfig, grid: list[SweepPoint]) -> dict[SweepPoint, SweepPoint]:
    """{point: the point whose sensitivity probes it reuses}: the first of each (model, seed) in grid order, for
    every other point of it, where the searches probe (finalists on, with levels) and the sweep names no source."""
    leaders: dict[SweepPoint, SweepPoint] = {}
    first: dict[tuple[str, int], SweepPoint] = {}
    for point in grid:
        settings = point_config(config, point)
        if not (settings.finalists.count and settings.finalists.sensitivity) or settings.probes_from:
            continue
        leader = first.setdefault((point.model, point.seed), point)
        if leader != point:
            leaders[point] = leader
    return leaders


def _state(config: SweepConfig, point: SweepPoint) -> str:
    run = Path(config.out) / point.name
    if (run / BEST_NAME).is_file() and not read_summary(run).interrupted:
        return "finished"
    return "started" if (run / STORE_NAME).is_file() else "new"


def run_sweep(config: SweepConfig, workers: int | None = None, address: str | None = None, resume: bool = False,
              on_finished: Callable[[SweepPoint, int, int], None] | None = None,
              dashboard: bool = False, device: str = "auto", gpus_per_search: float = 0.0) -> SweepReport:
    """Run every unfinished search of the grid, then write the summary table (markdown, CSV) and Pareto plot.

    `workers` is how many searches run at once on a local Ray instance (default: this machine's cores), with its
    dashboard on 127.0.0.1 when asked; each search gets `gpus_per_search` of a GPU and runs on it (0: on the CPU);
    `on_finished(point, done, total)` reports progress.
    """
    search_device = sweep_device(device, gpus_per_search)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"sweep out {config.out!r} is a file; give a directory")
    if resume and not out.is_dir():
        raise RunDirectoryError(f"nothing to resume in {config.out!r}; drop $resume to start the sweep")
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):  # one process per sweep directory (each search also locks its own)
        return _run_grid(config, out, workers, address, resume, on_finished, dashboard, search_device,
                         gpus_per_search)


def sweep_device(device: str, gpus_per_search: float) -> str:
    """The device each search task uses: the GPU Ray gives it (cuda:0 inside the task) when it asks for a share
    of one, else the CPU; a device that contradicts `gpus_per_search` is a one-line error."""
    check_gpus_per_worker(gpus_per_search)
    wanted = device.strip().lower()
    if wanted not in ("auto", "cpu", "cuda"):
        raise InputError(f"a sweep's $device is auto, cpu or cuda (Ray picks each search's GPU), got {device!r}")
    if wanted == "cuda" and not gpus_per_search:
        raise InputError("$device=cuda needs $gpus_per_search, e.g. 0.5 to run two searches on each GPU")
    if wanted == "cpu" and gpus_per_search:
        raise InputError("$gpus_per_search puts searches on GPUs: drop it or use $device=auto")
    return "cuda:0" if gpus_per_search else "cpu"


def _run_grid(config: SweepConfig, out: Path, workers: int | None, address: str | None, resume: bool,
              on_finished: Callable[[SweepPoint, int, int], None] | None, dashboard: bool, device: str,
              gpus_per_search: float) -> SweepReport:
    grid = points(config)
    states = {point: _state(config, point) for point in grid}
    if not resume and any(s != "new" for s in states.values()):
        raise RunDirectoryError(f"{config.out!r} already holds this sweep's searches; pass $resume to continue it or "
                                "choose another $out")
    todo = [p for p in grid if states[p] != "finished"]
    done = len(grid) - len(todo)
    if todo:
        from autoprune.runtime.ray_pool import start_or_join_ray

        owns_ray = start_or_join_ray(address, workers or os.cpu_count() or 1, dashboard)
        pending: dict = {}  # task ref -> grid point
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            if gpus_per_search > gpus:  # else Ray would hold the searches back for ever
                raise ClusterError(f"$gpus_per_search={gpus_per_search:g} asks for GPUs and the Ray cluster has "
                                   f"{gpus:g}; drop $gpus_per_search or add GPU nodes")
            task = _search_task.options(num_gpus=gpus_per_search)
            leaders = probe_leaders(config, grid)
            waiting = {p for p in todo if p in leaders and states[leaders[p]] != "finished"}

            def submit(point: SweepPoint) -> None:
                settings = {**point_config(config, point).model_dump(), "device": device}
                if point in leaders:
                    settings["probes_from"] = str(out / leaders[point].name)
                pending[task.remote(settings)] = point

            for point in todo:
                if point not in waiting:
                    submit(point)
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    point = pending.pop(ref)
                    try:
                        ray.get(ref)
                    except RayTaskError as exc:
                        cause = exc.cause if isinstance(exc.cause, AutopruneError) else None
                        kind = type(cause) if cause else AutopruneError  # a caller still tells the kinds apart
                        message = cause.template if cause else str(exc).strip().splitlines()[-1]
                        raise kind(f"search {point.name} failed: {message}; fix it and rerun the sweep with "
                                   "$resume (finished searches are kept)") from None
                    done += 1
                    if on_finished is not None:
                        on_finished(point, done, len(grid))
                    for follower in [p for p in todo if p in waiting and leaders[p] == point]:
                        waiting.discard(follower)
                        submit(follower)
        finally:
            pending.clear()  # no task ref may outlive Ray (see RayRuntime.close)
            if owns_ray:
                ray.shutdown()
    rows = collect_rows(config, grid)
    return write_report(rows, out)
