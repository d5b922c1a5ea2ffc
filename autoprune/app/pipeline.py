"""The public Python API: `autoprune.search(...)` runs a whole search and returns the best result and the slim
model. The CLI's `autoprune search` is a thin layer over `prepare_search` and `finish_search` here.

Everything that can be wrong with the input is checked before the run directory is touched, so a bad call
leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoprune.app.finalists import Finalist, FinalsOutcome, choose_finalists, policy_results, run_finalists
from autoprune.app.loop import run_search
from autoprune.budget import Budget
from autoprune.data import DataBundle, load_data
from autoprune.device import DeviceBatches, describe, resolve_device, to_model_device
from autoprune.engine import Analysis, Cost, analyse, count_cost, measure_latency
from autoprune.engine.criteria import needs_data
from autoprune.engine.latency_model import LatencyModel
from autoprune.engine.rounding import resolve_round_to
from autoprune.engine.target import DeploymentTarget, target_latencies
from autoprune.errors import InfeasibleBudgetError, InputError, RunDirectoryError, SearchInterrupted, UserFunctionError
from autoprune.evaluation import (
    CANDIDATE,
    Evaluator,
    Fidelity,
    Result,
    policy_hash,
    score_if_feasible,
    top1_accuracy,
)
from autoprune.evaluation.evaluator import Metric, Reward
from autoprune.evaluation.screening import Screening
from autoprune.models import example_input, load_model
from autoprune.models.slim_checkpoint import save_slim
from autoprune.problem import SearchSpace
from autoprune.problem.probes import FINGERPRINT_KEY, PROBE_FIDELITY, model_fingerprint, probe_origin
from autoprune.run.directory import (
    LOCK_NAME,
    OPTUNA_NAME,
    PROGRAM_NAME,
    RUNG_STATES_NAME,
    SLIM_NAME,
    STORE_NAME,
    BaselineRecord,
    ChannelCounts,
    FinetunedScores,
    ModelScores,
    RunSummary,
    SearchRecord,
    TargetLatency,
    run_lock,
    write_summary,
)
from autoprune.run.export import export_model
from autoprune.run.optuna_export import export_study
from autoprune.run.probe_reuse import reused_probes
from autoprune.run.report import write_run_report
from autoprune.run.rung_states import RungStates
from autoprune.run.store import TrialStore
from autoprune.runtime import make_runtime
from autoprune.runtime.checks import check_gpus_per_worker
from autoprune.searchers import AGENTS, make_searcher, searcher_class
from autoprune.searchers.base import Proposal, Searcher
from autoprune.searchers.baselines import baseline_policies, sensitivity_policy
from autoprune.settings import ExperimentConfig, SpaceConfig, load_space, validated
from autoprune.signals import acknowledge, signal_number
from autoprune.toolbox.finetune import FinetuneOutcome, finetune, save_finetuned
from autoprune.toolbox.sensitivity import tolerated_keep
from autoprune.training import Loss, smoothed_cross_entropy


@dataclass
class PreparedSearch:
    """Everything a search needs, validated, before any file is written."""

    config: ExperimentConfig
    data: DataBundle
    analysis: Analysis
    space: SearchSpace
    evaluator: Evaluator
    searcher: Searcher
    run_dir: Path | None
    target: DeploymentTarget = field(default_factory=DeploymentTarget)  # where the delivered model is timed
    run_settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # the dense model's weights, hashed (stored with the settings, for probes_from)
    reused_probes: dict[str, Result] = field(default_factory=dict)  # another run's probes, by policy hash
    resume: bool = False
    lock: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # the run directory's, once taken


@dataclass
class SearchReport:
    """The outcome of a search: the best result, its slim model, and where the run was written."""

    best: Result
    model: nn.Module  # the delivered model: fine-tuned when finetune_epochs was set
    run_dir: Path | None
    summary: RunSummary  # what best.json holds
    finetune: FinetuneOutcome | None = None
    finals: FinalsOutcome | None = None  # the finalists' rungs, when they ran


def prepare_search(config: ExperimentConfig, model: nn.Module | None = None, data: DataBundle | None = None,
                   metric: Metric = top1_accuracy, reward: Reward = score_if_feasible,
                   resume: bool = False, loss: Loss | None = None) -> PreparedSearch:
    """Validate every input and build the search's parts; raises an AutopruneError of the problem's kind. `loss`
    trains the finalists and the final fine-tune (default: smoothed cross-entropy, for classifiers)."""
    if config.budget is None:
        raise InputError("no budget given; pass $budget such as 0.25flops")
    budget = Budget.parse(config.budget)
    target = DeploymentTarget.parse(config.target)
    device = resolve_device(config.device)
    space_config: SpaceConfig = load_space(config.space)
    run_dir = _check_run_dir(config.out, resume)
    if config.address not in (None, "auto"):
        from autoprune.runtime.ray_pool import check_reachable

        check_reachable(config.address)
    bundle = data if data is not None else load_data(config.data, config.data_dir)
    if model is None:
        model, _ = load_model(config.model, bundle.in_channels, bundle.num_classes, bundle.name, config.weights,
                              require_weights=True)
    _check_worker_devices(config, device)
    model.to(device).eval()
    if config.finalists.count or config.finetune.epochs or config.finetune_steps:
        _check_trainable(model, bundle, loss)
    batches = (list(bundle.loader("train", batch_size=64, limit=64 * space_config.criterion_batches))
               if needs_data(space_config.criterion) else None)  # apoz, mean_activation, taylor
    analysis = analyse(model, example_input(bundle.in_channels, bundle.image_size), criterion=space_config.criterion,
                       batches=batches)
    space_config = space_config.model_copy(update={"round_to": resolve_round_to(space_config.round_to, analysis,
                                                                                 target)})
    floors = tolerated_keep(space_config.sensitivity, space_config.tolerance) if space_config.sensitivity else None
    latency = LatencyModel(analysis, target, space_config.min_keep) if budget.limit("latency") is not None else None
    space = SearchSpace(analysis, budget, space_config.min_keep, space_config.max_keep, group_min_keep=floors,
                        latency=latency)
    searcher = make_searcher(config.agent, space, config.seed, **config.agent_config)
    if searcher.required_evals is not None and config.evals < searcher.required_evals:
        raise InputError(f"agent {config.agent} needs at least {searcher.required_evals} evaluations on this model "
                         f"(its probes, then its policy); raise $evals to {searcher.required_evals}")
    evaluator = Evaluator(analysis, bundle, budget, metric=metric, reward=reward, loss=loss, device=device,
                          latency=latency, **config.scoring())
    settings = config.run_settings(data=bundle.name, budget=str(budget), agent_config=searcher.settings.model_dump(),
                                   space=space_config.model_dump())
    fingerprint = model_fingerprint(model)
    reused = _reused_probes(config, settings, fingerprint, evaluator, space, searcher) if config.probes_from else {}
    prepared = PreparedSearch(config, bundle, analysis, space, evaluator, searcher, run_dir, target, settings,
                              resume=resume, fingerprint=fingerprint, reused_probes=reused)
    if run_dir is not None and run_dir.is_dir():  # held until the search ends: no other process may use it
        prepared.lock.enter_context(run_lock(run_dir))
    if run_dir is not None and resume:
        try:
            _check_same_settings(run_dir, settings, fingerprint)
        except BaseException:
            prepared.lock.close()
            raise
    return prepared


def _reused_probes(config: ExperimentConfig, settings: dict[str, Any], fingerprint: str, evaluator: Evaluator,
                   space: SearchSpace, searcher: Searcher) -> dict[str, Result]:
    """The sensitivity probes of the run in $probes_from (its finalists', or its sensitivity searcher's where it
    scored them as this run scores probes), checked to score this run's model (probe_reuse). They answer the
    finalists' probes, or with finalists off the sensitivity searcher's (those it scores alike)."""
    if not (config.finalists.count and config.finalists.sensitivity) and searcher.probe_fidelity(
            searcher.settings.model_dump()) is None:
        raise InputError("$probes_from reuses sensitivity probes, and this run probes nothing ($finalists=0 or no "
                         "$finalist_sensitivity levels, and $agent is not sensitivity): drop $probes_from")
    fidelity = PROBE_FIDELITY

    def searcher_probed_alike(stored: dict[str, Any]) -> bool:
        """Whether that run's searcher asked for probes, scoring them as this run scores probes."""
        if stored.get("agent") not in AGENTS:
            return False
        return searcher_class(stored["agent"]).probe_fidelity(stored.get("agent_config") or {}) == fidelity

    return reused_probes(config.probes_from, settings, fingerprint, evaluator, [1.0] * space.size, fidelity,
                         searcher_probed_alike)


def _check_worker_devices(config: ExperimentConfig, device: torch.device) -> None:
    """Ray workers compute where --gpus-per-worker puts them; asking for CUDA by name and giving them no GPU
    would leave every evaluation on the CPU."""
    check_gpus_per_worker(config.gpus_per_worker, config.workers, config.address)
    on_ray = config.workers > 1 or config.address is not None
    if on_ray and device.type == "cuda" and config.device != "auto" and not config.gpus_per_worker:
        raise InputError(f"$device={config.device} with Ray workers needs $gpus_per_worker (e.g. "
                         f"{1 / config.workers:g} to share one GPU among {config.workers} workers); without it "
                         "they evaluate on the CPU")


def _check_trainable(model: nn.Module, data: DataBundle, loss: Loss | None) -> None:
    """The training loss must accept the model's outputs and the data's targets (a regression needs its own)."""
    x, y = to_model_device(model, *next(iter(data.loader("train", batch_size=2))))
    try:
        with torch.no_grad():
            value = (loss or smoothed_cross_entropy)(model(x), y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError("it must return a scalar tensor")
    except Exception as error:
        what = "your loss" if loss else "the default loss (cross-entropy, for classifiers)"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserFunctionError(f"training the slim models with {what} fails on {data.name!r} ({detail}); pass "
                                "loss=(outputs, targets) -> scalar tensor, or turn training off with finalists=0 and "
                                "finetune_epochs=0") from None


def _check_same_settings(run_dir: Path, settings: dict[str, Any], fingerprint: str) -> None:
    """Refuse a resume whose run settings differ from the stored ones, or whose model's weights differ from the
    run's (where it stored their fingerprint). A setting the run's version of autoprune did not have yet is
    compared with the value that run behaved as: its default, or its BEFORE_ADDED value."""
    stored = TrialStore(run_dir / STORE_NAME).run_config()
    defaults = ExperimentConfig().flat()
    known = {**{k: defaults[k] for k in settings if k in defaults}, **ExperimentConfig.BEFORE_ADDED, **stored}
    changed = sorted(k for k in settings if k in known and known[k] != settings[k])
    if stored.get(FINGERPRINT_KEY, fingerprint) != fingerprint:
        changed.append("the model's weights")
    if changed:
        raise RunDirectoryError(f"$resume with different settings ({', '.join(changed)}) than the run in "
                                f"{str(run_dir)!r}; resume with the same settings or use another $out")


def _check_run_dir(out: str | None, resume: bool) -> Path | None:
    if out is None:
        if resume:
            raise RunDirectoryError("$resume needs $out naming the run directory to continue")
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"$out {out!r} is a file; give a directory for the run")
    has_store = (path / STORE_NAME).is_file()
    if resume and not has_store:
        raise RunDirectoryError(f"nothing to resume in {out!r} (no {STORE_NAME}); drop $resume to start a new run")
    if not resume and has_store:
        raise RunDirectoryError(f"{out!r} already holds a search; pass $resume to continue it or choose another $out")
    return path


FinalistCallback = Callable[[Finalist, Result, bool], None]
BaselineCallback = Callable[[str, Result, bool], None]


def execute_search(prepared: PreparedSearch,
                   on_result: Callable[[Result, Result | None, bool], None] | None = None,
                   on_finalist: FinalistCallback | None = None,
                   on_baseline: BaselineCallback | None = None) -> SearchReport:
    """Score the baselines' policies (when finalists are on), run the prepared search from the best of them,
    then the finalists' rungs, writing the store as it goes; then fine-tune the winner and write the run's
    files. `on_baseline(name, result, from_store)` follows the baselines and the sensitivity probes,
    `on_result(result, best, from_store)` the search, `on_finalist(finalist, result, from_store)` the rungs."""
    with prepared.lock, _holding_run_dir(prepared):
        return _execute(prepared, on_result, on_finalist, on_baseline)


@contextlib.contextmanager
def _holding_run_dir(prepared: PreparedSearch) -> Iterator[None]:
    """Create the run directory (if any) and hold its lock; checked again under the lock, since another
    process may have started a run there since `prepare_search` looked."""
    run_dir = prepared.run_dir
    if run_dir is None:
        yield
        return
    created = next((p for p in reversed([run_dir, *run_dir.absolute().parents]) if not p.exists()), None)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        try:
            _check_run_dir(str(run_dir), prepared.resume)
            yield
        except BaseException:
            if created is not None and all(p.name == LOCK_NAME for p in run_dir.iterdir()):
                shutil.rmtree(created, ignore_errors=True)  # failed before writing anything: leave no trace
            raise


def _execute(prepared: PreparedSearch, on_result: Callable[[Result, Result | None, bool], None] | None,
             on_finalist: FinalistCallback | None, on_baseline: BaselineCallback | None) -> SearchReport:
    config = prepared.config
    # before any file is written: starting the runtime may fail
    runtime = make_runtime(prepared.evaluator, config.workers, config.address, config.dashboard,
                           config.gpus_per_worker)
    stop: KeyboardInterrupt | None = None
    finals: FinalsOutcome | None = None
    baselines: dict[str, Result] = {}
    probed = ProbeResults()
    search: SearchRecord | None = None
    with tempfile.TemporaryDirectory() as scratch:  # the store lives in the run directory, or here if none
        store_dir = prepared.run_dir or Path(scratch)
        store = TrialStore(store_dir / STORE_NAME)
        store.set_run_config({**prepared.run_settings, FINGERPRINT_KEY: prepared.fingerprint})
        screening = Screening(config.screening.eta, config.screening.warmup) if config.screening.images else None
        try:
            # with finalists off, another run's probes ($probes_from) answer the sensitivity searcher's directly
            probed = (ProbeResults() if config.finalists.count else
                      ProbeResults(PROBE_FIDELITY, dict(prepared.reused_probes)))
            if config.finalists.count:
                baselines = _score_baselines(prepared, runtime, store, on_baseline, probed)
            start = _best_of(baselines.values())
            if start is not None:  # the search starts from the best allocation a user would try first
                prepared.searcher.start_from([start.policy])
            best = run_search(prepared.searcher, runtime, store, config.evals, on_result=on_result,
                              screening=screening, known=probed.answer).best
            search = _search_record(store, config.agent, next((n for n, r in baselines.items() if r is start), None))
            if best is not None and config.finalists.count:
                finals = _run_finals(prepared, runtime, store, baselines, on_finalist)
                best = finals.winner.result
        except KeyboardInterrupt as signalled:  # Ctrl-C (or SIGTERM, see autoprune.signals): keep what finished
            acknowledge()
            stop, best = signalled, store.best()
            search = search or _search_record(store, config.agent, None)
        finally:
            runtime.close()
        evaluations = len(store)
        if prepared.run_dir is not None:
            export_study(store.results(), [g.name for g in prepared.analysis.groups],
                         prepared.run_dir / OPTUNA_NAME, study_name=prepared.run_dir.name)
        store.close()
    stages = RunStages(baselines, len(probed.results) if config.finalists.count else 0, search)
    if stop is not None:
        if best is not None:
            finish_search(prepared, best, interrupted=True, stages=stages)
        raise SearchInterrupted(signal_number(stop), evaluations, prepared.run_dir, best is not None)
    if best is None:
        raise InfeasibleBudgetError("no evaluated policy met the budget; loosen the budget or raise $evals")
    return finish_search(prepared, best, finals=finals, stages=stages)


@dataclass
class RunStages:
    """What the stages before the finalists did, for best.json and the report: the baselines' results (by name),
    how many sensitivity probes were scored for them, and the search."""

    baselines: dict[str, Result] = field(default_factory=dict)
    probes: int = 0
    search: SearchRecord | None = None


def _search_record(store: TrialStore, agent: str, started_from: str | None) -> SearchRecord:
    """The search stage as its store holds it: its candidates (its probes counted apart) and its best score."""
    candidates = store.results("candidate")
    scored = [r.score for r in candidates if r.feasible and r.complete]
    return SearchRecord(agent=agent, evaluations=len(candidates), within_budget=sum(r.feasible for r in candidates),
                        best_score=max(scored, default=None), probes=len(store.results("probe")),
                        started_from=started_from)


@dataclass
class ProbeResults:
    """The sensitivity probes scored before the search: how they were scored and their results, by policy hash."""

    fidelity: Fidelity = CANDIDATE
    results: dict[str, Result] = field(default_factory=dict)

    def answer(self, proposal: Proposal) -> Result | None:
        """The result of a search's proposal that is one of these probes asked to be scored the same way (the
        sensitivity searcher's probes): evaluated once, it took the search no time."""
        result = self.results.get(policy_hash(proposal.policy))
        if result is None or proposal.fidelity != self.fidelity:
            return None
        return replace(result, wall_time=0.0)


def _score_baselines(prepared: PreparedSearch, runtime, store: TrialStore, on_baseline: BaselineCallback | None,
                     probed: ProbeResults) -> dict[str, Result]:
    """Recalibrated results of the baselines' policies ({name: result}): uniform, global and isomorphic ranking
    (free to compute) and the sensitivity-threshold allocation (its probes scored first, and kept in `probed`),
    as configured; stored among the finalists' evaluations, so a resumed run reads them back."""
    config = prepared.config
    policies = baseline_policies(prepared.space) if config.finalists.baselines else {}
    if config.finalists.sensitivity:
        def probe_scores(probes: list[list[float]], fidelity: Fidelity) -> list[float]:
            named = {probe_origin(i): p for i, p in enumerate(probes)}
            results = policy_results(named, runtime, store, on_baseline, fidelity, known=prepared.reused_probes,
                                     kind="probe")
            probed.fidelity = fidelity
            probed.results.update({r.policy_hash: r for r in results.values()})
            return [r.score for r in results.values()]

        policies["sensitivity"] = sensitivity_policy(prepared.space, probe_scores, config.finalists.sensitivity)
    return policy_results(policies, runtime, store, on_baseline)


def _best_of(results: Iterable[Result]) -> Result | None:
    """The feasible, fully scored result with the highest reward, if any."""
    return max((r for r in results if r.feasible and r.complete), key=lambda r: r.reward, default=None)


def _run_finals(prepared: PreparedSearch, runtime, store: TrialStore, baselines: dict[str, Result],
                on_finalist: FinalistCallback | None) -> FinalsOutcome:
    """The search's top distinct architectures and the baselines' policies through successive halving over short
    fine-tunes, the sensitivity allocation as the incumbent (autoprune.app.finalists)."""
    config = prepared.config
    finalists = choose_finalists(store.results("candidate"), config.finalists.count, baselines)
    states = RungStates(store.path.parent / RUNG_STATES_NAME) if config.finalists.continue_rungs else None
    outcome = run_finalists(finalists, runtime, store, rung_steps(config.finalists.rungs, prepared.data),
                            config.finalists.eta, on_finalist, incumbent="sensitivity", margin=config.finalists.margin,
                            continue_rungs=states, distill=config.finalists.distill)
    if states is not None:
        states.clear()
    return outcome


def rung_steps(epochs: list[float], data: DataBundle, batch_size: int = 128) -> list[int]:
    """Rung lengths in epochs of the training split as SGD steps (at least one; equal lengths merged)."""
    per_epoch = len(data.loader("train", batch_size=batch_size))
    return sorted({max(1, round(e * per_epoch)) for e in epochs})


def finish_search(prepared: PreparedSearch, best: Result, interrupted: bool = False,
                  finals: FinalsOutcome | None = None, stages: RunStages | None = None) -> SearchReport:
    """Build the best slim model, measure dense and slim on held-out and test data, fine-tune it if asked (not
    when the search was `interrupted`: then these are the best-so-far files), and write the run's files
    (slim.pt: the pruned model; finetuned.pt; model.pt2: the delivered model, fine-tuned when it was; best.json,
    report.md)."""
    analysis, evaluator, data = prepared.analysis, prepared.evaluator, prepared.data
    finetune_epochs = 0 if interrupted else prepared.config.finetune.epochs
    best, on_target = _timed_within_budget(prepared, best)
    slim = evaluator.build(best.policy)
    slim_before = copy.deepcopy(slim) if finetune_epochs else slim
    x = analysis.example_input
    test_batches = list(data.loader("test", batch_size=500))
    test = DeviceBatches(test_batches, evaluator.device)  # moved as they are read: a test split may be large
    default_metric = evaluator.metric is top1_accuracy  # then the test score is top-1 accuracy
    dense_cost, slim_cost = count_cost(analysis.model, x), count_cost(slim, x)

    def scores(model: nn.Module, cost: Cost, heldout: float) -> ModelScores:
        test_score = evaluator.metric(model, test)
        return ModelScores(macs=cost.macs, flops=cost.flops, params=cost.params, latency_s=measure_latency(model, x),
                           heldout_score=heldout, test_score=test_score,
                           test_accuracy=test_score if default_metric else None)

    summary = RunSummary(
        budget=str(prepared.space.budget), agent=prepared.config.agent, seed=prepared.config.seed,
        result=best.to_dict(), policy={g.name: r for g, r in zip(analysis.groups, best.policy, strict=True)},
        channels={g.name: ChannelCounts(dense=g.channels, slim=k)
                  for g, k in zip(analysis.groups, best.kept_channels, strict=True)},
        dense=scores(analysis.model, dense_cost, evaluator.metric(analysis.model, evaluator.heldout)),
        slim=scores(slim, slim_cost, best.score), settings=prepared.run_settings,
        device=describe(evaluator.device), interrupted=interrupted,
        finalists=finals.to_dict() if finals is not None else None, **_stage_fields(stages or RunStages(), finals,
                                                                                     interrupted))
    tuned = None
    if finetune_epochs:
        teacher = analysis.model if prepared.config.finetune.distill else None
        tuned = finetune(slim, data, finetune_epochs, lr=prepared.config.finetune.lr, teacher=teacher,
                         seed=prepared.config.seed, loss=evaluator.loss,
                         metric=None if default_metric else evaluator.metric)
        summary.finetuned = FinetunedScores(epochs=finetune_epochs, heldout_score=tuned.best_heldout,
                                            test_score=tuned.test_after,
                                            test_accuracy=tuned.test_after if default_metric else None)
    summary.on_target = on_target.model_copy(update={"macs_ratio": slim_cost.macs / dense_cost.macs})
    if prepared.run_dir is not None:
        _write_run_files(prepared, summary, slim_before, tuned, slim, test_batches[0][0][:16])
    return SearchReport(best, slim, prepared.run_dir, summary, tuned, finals)


MAX_NARROWING = 3  # times a policy that misses its latency limit as timed is narrowed before giving up


def _timed_within_budget(prepared: PreparedSearch, best: Result) -> tuple[Result, TargetLatency]:
    """The shipped policy and its slim model timed beside the dense model on the deployment target (alone: the
    search's workers are closed). Under a latency budget a policy the timing puts over the limit is narrowed
    (projected onto the limit scaled by how far the latency model erred) and scored again, at most MAX_NARROWING
    times; the record says whether the delivered model meets the budget as timed."""
    analysis, space, evaluator = prepared.analysis, prepared.space, prepared.evaluator
    x = analysis.example_input

    def timed(result: Result) -> dict[str, float]:
        return target_latencies({"dense": analysis.model, "delivered": evaluator.build(result.policy)}, x,
                                prepared.target)

    measured, shrunk = timed(best), 0
    constraint = next((c for c in space.budget.constraints if c.metric == "latency"), None)

    def used(times: dict[str, float]) -> float:  # of the latency limit, as the budget spells it
        return times["delivered"] if constraint.absolute else times["delivered"] / times["dense"]

    while constraint is not None and used(measured) > constraint.limit and shrunk < MAX_NARROWING:
        scale = constraint.limit / used(measured) * 0.99
        tightened = Budget(tuple(replace(c, limit=c.limit * scale) if c is constraint else c
                                 for c in space.budget.constraints))
        try:
            narrower = SearchSpace(analysis, tightened, space.min_keep, space.max_keep,
                                   group_min_keep={g.name: float(low) for g, low in zip(analysis.groups, space.lower,
                                                                                        strict=True)},
                                   latency=space.latency)
        except InfeasibleBudgetError:
            break
        best, shrunk = evaluator(narrower.project(best.policy, grow=False)), shrunk + 1
        measured = timed(best)
    return best, TargetLatency(target=str(prepared.target), dense_s=measured["dense"],
                               delivered_s=measured["delivered"], macs_ratio=best.flops_ratio,
                               latency_budget=str(constraint) if constraint else None,
                               meets_budget=used(measured) <= constraint.limit if constraint else None, shrunk=shrunk,
                               dense_predicted_s=space.latency.dense_s if space.latency else None,
                               delivered_predicted_s=best.latency)


def _stage_fields(stages: RunStages, finals: FinalsOutcome | None, interrupted: bool) -> dict[str, Any]:
    """best.json's account of the stages: the baselines, the search, and where the shipped policy came from."""
    if interrupted:
        shipped_from, decision = "search", "the best so far of an interrupted run"
    elif finals is not None:
        shipped_from, decision = finals.winner.origin, finals.decision
    else:
        shipped_from, decision = "search", "the search's best held-out score (finalists off)"
    baselines = {name: BaselineRecord(score=r.score, flops_ratio=r.flops_ratio, feasible=r.feasible,
                                      latency_s=r.latency) for name, r in stages.baselines.items()} or None
    return {"shipped_from": shipped_from, "decision": decision, "baselines": baselines, "probes": stages.probes,
            "search": stages.search}


def _write_run_files(prepared: PreparedSearch, summary: RunSummary, best_model: nn.Module,
                     tuned: FinetuneOutcome | None, tuned_model: nn.Module, images: torch.Tensor) -> None:
    """slim.pt (the pruned model, autoprune.load), the fine-tune's files, model.pt2 (the delivered model as a
    torch.export program, checked on `images`), then best.json (last: a run with best.json has all its files) and
    the report."""
    run_dir, data = prepared.run_dir, prepared.data
    meta = {"model": prepared.config.model, "weights": prepared.config.weights, "data": data.name,
            "in_channels": data.in_channels, "num_classes": data.num_classes, "image_size": data.image_size,
            "budget": summary.budget, "policy": summary.policy}
    save_slim(run_dir / SLIM_NAME, best_model, meta)
    if tuned is not None:
        save_finetuned(run_dir, tuned_model, meta, tuned)
    delivered = copy.deepcopy(tuned_model if tuned is not None else best_model).cpu()
    export_model(delivered, "pt2", run_dir / PROGRAM_NAME, images, meta)  # a CPU program: it runs anywhere
    write_summary(run_dir, summary)
    write_run_report(run_dir)


def search(model: nn.Module | str | None = None, data: DataBundle | str | None = None, budget: str = "0.25flops",
           agent: str | None = None, evals: int | None = None, metric: Metric = top1_accuracy,
           reward: Reward = score_if_feasible, seed: int | None = None, out: str | Path | None = None,
           resume: bool = False, loss: Loss | None = None, **settings: Any) -> SearchReport:
    """Search a pruning policy for `model` under `budget` and return the best result and its slim model.

    `model` is an nn.Module (trained) or a model name (its shipped or `weights=` checkpoint is loaded); `data` a
    DataBundle or a dataset name. `metric(model, batches) -> float` scores a slim model on held-out batches;
    `reward(result) -> float` turns a Result into what the searcher maximises; `loss(outputs, targets) -> tensor`
    trains the finalists and the final fine-tune (default: smoothed cross-entropy, for classifiers). Other
    settings are those of ExperimentConfig (space, heldout_images, recalibration_batches, finalists,
    finetune_epochs, agent_config, ...), and so are the defaults of those left out (None).
    """
    defaults = ExperimentConfig()
    data = defaults.data if data is None else data
    bundle = data if isinstance(data, DataBundle) else load_data(data, settings.pop("data_dir", None))
    net = model if isinstance(model, nn.Module) else None
    name = type(model).__name__ if isinstance(model, nn.Module) else model
    given = {"model": name, "agent": agent, "evals": evals, "seed": seed}
    config = validated(ExperimentConfig, {**{k: v for k, v in given.items() if v is not None}, "data": bundle.name,
                                           "budget": budget, "out": str(out) if out is not None else None,
                                           **settings}, "autoprune.search")
    prepared = prepare_search(config, model=net, data=bundle, metric=metric, reward=reward, resume=resume, loss=loss)
    return execute_search(prepared)
