"""Evaluations on Ray actors: a private local Ray instance, or an existing cluster.

Each actor receives the evaluator once (model, held-out and recalibration batches, budget, metric, reward:
about 10 MB for ResNet-20 on Fashion-MNIST, through Ray's object store) and keeps it; afterwards only policies go
out and Results come back. An actor that dies (its process, or its node) has its evaluation re-run on another
actor and a replacement is started where the cluster has room; when none is left the run stops with a message
to resume it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import sys
from collections import deque
from collections.abc import Iterator, Sequence

import ray
import torch
from ray.exceptions import AuthenticationError, RayActorError, RayError, RayTaskError

from autoprune.compat.ray_internals import dashboard_dependency_error, loopback_only
from autoprune.errors import AutopruneError, ClusterError, InputError
from autoprune.evaluation import Evaluator, Job, Result
from autoprune.runtime.allocator import keep_freed_memory
from autoprune.runtime.checks import check_gpus_per_worker
from autoprune.signals import keeping_sigterm_handler

START_TIMEOUT_S = 120.0  # how long workers may take to start (loading torch, receiving the evaluator)
START_TIMEOUT_VARIABLE = "AUTOPRUNE_WORKER_START_TIMEOUT"
TOKEN_REFUSED = ("InvalidAuthToken", "Unauthenticated")  # Ray's words when a cluster refuses a driver's token
OPEN_TELEMETRY_VARIABLE = "RAY_enable_open_telemetry"  # Ray's choice of metrics exporter (metrics_that_stop_with_ray)


def worker_start_timeout() -> float:
    """Seconds a worker may take to start, also how long a run with every worker lost waits for a replacement:
    START_TIMEOUT_S, or $AUTOPRUNE_WORKER_START_TIMEOUT (say, longer for clusters that scale up on demand)."""
    text = os.environ.get(START_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return START_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InputError(f"{START_TIMEOUT_VARIABLE}={text!r} is not a positive number of seconds; set it to, say, 120")
    return seconds


@contextlib.contextmanager
def metrics_that_stop_with_ray() -> Iterator[None]:
    """While Ray starts: use its OpenCensus metrics rather than OpenTelemetry, unless $RAY_enable_open_telemetry
    says otherwise. Ray 2.60's OpenTelemetry metric reader in the driver outlives `ray.shutdown()` (one more for
    each time Ray is started in a process) and its background thread still runs while the interpreter tears down,
    which now and then crashed the process at exit with a segmentation fault (ray-project/ray#60048 fixed the
    same race in workers). The OpenCensus exporter stops with `ray.shutdown()`. Ray's C++ side reads the switch
    when the driver connects, and the processes it starts inherit it."""
    saved = os.environ.get(OPEN_TELEMETRY_VARIABLE)
    if saved is None:
        os.environ[OPEN_TELEMETRY_VARIABLE] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(OPEN_TELEMETRY_VARIABLE, None)


def start_or_join_ray(address: str | None, cpus: int, dashboard: bool = False) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS), or start a private local instance on loopback only with
    `cpus` CPUs and, only when asked, Ray's dashboard (its address printed). True when this call started Ray (so
    the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and dashboard:
        raise InputError("$dashboard starts the dashboard of a local Ray instance; a cluster's is started with "
                         "`ray start --head --include-dashboard true`: drop $dashboard or $address")
    if address is not None and address != "auto":
        check_reachable(address)
    if dashboard and (missing := dashboard_dependency_error()):
        raise InputError(f"$dashboard needs Ray's dashboard packages ({missing}): pip install "
                         "'autoprune[dashboard]', or drop $dashboard")
    said = KeptStderr()
    try:
        if address is None:
            with loopback_only(), metrics_that_stop_with_ray(), keeping_sigterm_handler():
                # "local": a new instance even where one started by `ray start` runs (ray.init would join it)
                context = ray.init(address="local", num_cpus=cpus, include_dashboard=dashboard,
                                   dashboard_host="127.0.0.1", log_to_driver=False, logging_level=logging.WARNING)
            if dashboard:
                print(f"Ray dashboard: http://{context.dashboard_url} (it asks for Ray's token: `ray get-auth-token` "
                      "prints it)", file=sys.stderr)
        else:
            with metrics_that_stop_with_ray(), keeping_sigterm_handler(), stderr_kept(said):
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        if isinstance(exc, AuthenticationError) or any(mark in said.text for mark in TOKEN_REFUSED):
            raise ClusterError(f"the Ray cluster at {address} refused this process: it wants its token (Ray's token "
                               "authentication); export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<the token `ray "
                               "get-auth-token` prints on its head node> and run again") from None
        raise ClusterError(f"cannot join the Ray cluster at {address!r} ({str(exc).splitlines()[0]}); start it with "
                           "`ray start --head` or fix $address") from None
    return address is None


class KeptStderr:
    """What the process wrote to its standard error while `stderr_kept` held it."""

    text = ""


@contextlib.contextmanager
def stderr_kept(kept: KeptStderr) -> Iterator[None]:
    """Hold back what this process (Ray's C++ core included) writes to its standard error while joining a cluster:
    passed on when the join succeeds, read instead when it fails, so that a refused token is one line, not Ray's
    warning per retry."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept.text = sink.read().decode(errors="replace")
            if not failed and kept.text:
                sys.stderr.write(kept.text)


def check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes-long connection timeout, when nothing listens at HOST:PORT."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not HOST:PORT or auto; use the address `ray start --head` "
                         "printed")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start it with "
                           "`ray start --head` or fix $address") from None


@ray.remote(num_cpus=1)
class EvaluatorActor:
    """One worker: holds an evaluator on its device (the GPU Ray gave it, else the CPU), evaluates policies."""

    def __init__(self, evaluator: Evaluator, threads: int, gpu: bool) -> None:
        torch.set_num_threads(threads)  # workers on one machine must not fight over its cores
        keep_freed_memory()  # else every activation buffer is mmapped and page-faulted anew (allocator.py)
        # a private copy: tensors read zero-copy from Ray's shared-memory object store evaluated about 5 % slower;
        # Ray shows an actor only the GPUs it was given, so its GPU is cuda:0 (shared when it asked for a fraction)
        self.evaluator = copy.deepcopy(evaluator).to("cuda:0" if gpu else "cpu")

    def device(self) -> str:
        return str(self.evaluator.device)

    def ready(self) -> bool:
        return True

    def evaluate(self, job: Job) -> Result:
        return self.evaluator.run(job)


class RayRuntime:
    """`workers` evaluator actors on Ray. Without `address` (or RAY_ADDRESS) a private local Ray instance is
    started, listening on loopback only, with its dashboard only when asked."""

    def __init__(self, evaluator: Evaluator, workers: int, address: str | None = None, threads: int = 1,
                 dashboard: bool = False, gpus_per_worker: float = 0.0) -> None:
        if workers < 1:
            raise InputError(f"$workers must be at least 1, got {workers}")
        check_gpus_per_worker(gpus_per_worker)
        self.gpus_per_worker = gpus_per_worker
        self._start_timeout = worker_start_timeout()
        self._owns_ray = start_or_join_ray(address, workers, dashboard)
        self.workers = workers
        self.lost = 0  # evaluations re-run because their worker died
        self._threads = threads
        self._evaluator_ref = ray.put(evaluator.portable())  # on the CPU: each worker moves it to its device
        self._actors: list = []
        self._starting = {}  # ready() ref -> actor, for actors not yet known to be up
        for _ in range(workers):
            self._start_actor()
        self._await_started(min_ready=workers)

    def _start_actor(self) -> None:
        actor = EvaluatorActor.options(num_gpus=self.gpus_per_worker).remote(self._evaluator_ref, self._threads,
                                                                             self.gpus_per_worker > 0)
        self._starting[actor.ready.remote()] = actor

    def _await_started(self, min_ready: int) -> None:
        """Wait until at least `min_ready` new actors are up (all of them at start-up)."""
        refs = list(self._starting)
        ready, _ = ray.wait(refs, num_returns=min(min_ready, len(refs)), timeout=self._start_timeout)
        for ref in ready:
            actor = self._starting.pop(ref)
            try:
                ray.get(ref)
                self._actors.append(actor)
            except RayActorError:
                continue
        if len(ready) < min_ready:
            resources = ray.cluster_resources()
            needs = "1 CPU" + (f" and {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else "")
            has = f"{resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs"
            self.close()
            raise ClusterError(f"only {len(ready)} of {min_ready} Ray workers started within {self._start_timeout:g} s "
                               f"(the cluster has {has}, each worker needs {needs}); lower $workers or "
                               "$gpus_per_worker, or add nodes")

    def evaluate(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Result]]:
        running: dict = {}  # result ref -> (actor, job index)
        try:
            yield from self._evaluate(jobs, running)
        finally:  # stopped early (an error, Ctrl-C): no result ref may outlive Ray in a kept traceback's frame
            running.clear()

    def _evaluate(self, jobs: Sequence[Job], running: dict) -> Iterator[tuple[int, Result]]:
        queue = deque(range(len(jobs)))
        idle = list(self._actors)
        while queue or running:
            self._adopt_started(idle)
            while queue and idle:
                actor, index = idle.pop(), queue.popleft()
                running[actor.evaluate.remote(jobs[index])] = (actor, index)
            if not running:  # work left, no worker: wait for replacements, else give up
                self._await_replacement(idle)
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=5.0)
            for ref in done:
                actor, index = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError:  # the worker process or its node died: run the job elsewhere
                    self._actors.remove(actor)
                    queue.appendleft(index)
                    self.lost += 1
                    print(f"warning: a Ray worker was lost ({len(self._actors)} left); its evaluation runs again "
                          "on another worker", file=sys.stderr)
                    self._start_actor()
                    continue
                except RayTaskError as exc:  # an error in the evaluation itself (say, the user's metric)
                    cause = exc.cause if isinstance(exc.cause, Exception) else exc
                    raise (cause if isinstance(cause, AutopruneError) else AutopruneError(
                        f"evaluation failed on a Ray worker: {str(cause).splitlines()[-1]}")) from None
                idle.append(actor)
                yield index, result

    def _adopt_started(self, idle: list) -> None:
        """Add replacement actors that have come up since the last look."""
        if not self._starting:
            return
        ready, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
        for ref in ready:
            actor = self._starting.pop(ref)
            try:
                ray.get(ref)
            except RayActorError:
                continue
            self._actors.append(actor)
            idle.append(actor)

    def _await_replacement(self, idle: list) -> None:
        if self._starting:
            ready, _ = ray.wait(list(self._starting), num_returns=1, timeout=self._start_timeout)
            if ready:
                self._adopt_started(idle)
                if idle:
                    return
        self.close()
        raise ClusterError(f"all Ray workers were lost and none restarted within {self._start_timeout:g} s; every "
                           "finished evaluation is in the store: bring the cluster back and rerun with $resume")

    def close(self) -> None:
        """Stop the actors, drop every Ray handle and object reference this runtime holds, then stop the local
        Ray instance if this runtime started it. A reference that outlives `ray.shutdown()` keeps Ray's core
        worker alive until the interpreter's own teardown frees it, and that can crash the process at exit."""
        for actor in [*self._actors, *self._starting.values()]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self._actors, self._starting, self._evaluator_ref = [], {}, None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
