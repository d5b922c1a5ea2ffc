"""Config files (search spaces, agents, experiments) as YAML, validated by pydantic with messages naming the
field. Command-line flags override experiment-file values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoprune.errors import FileProblemError, InputError

# The shipped search spaces and agent settings live inside the package, so that every install (wheel, sdist,
# editable) carries them; the repository's top-level search_spaces/ and agents/ are links to these folders.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class SpaceConfig(BaseModel):
    """Which channels a search may remove: keep-ratio bounds, channel rounding and the ranking criterion."""

    model_config = ConfigDict(extra="forbid")
    min_keep: float = Field(0.05, gt=0, le=1)
    max_keep: float = Field(1.0, gt=0, le=1)
    round_to: int = Field(1, ge=1)
    criterion: str = "l1"
    criterion_batches: int = Field(8, ge=1)  # training batches of 64 images that data criteria are measured on
    sensitivity: str | None = None  # a filter sensitivity CSV (autoprune sensitivity): raises each group's least keep
    tolerance: float = Field(0.02, ge=0)  # ... to 1 - its largest level that cost at most this much score


class ScoringSettings(BaseModel):
    """How every candidate is scored: held out, recalibrated, briefly trained. Defined once, here: the Evaluator
    takes these and an experiment's settings include them."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0  # the training batches' order (and, in an experiment, the searcher's seed)
    heldout_images: int = Field(2000, ge=1)
    recalibration_batches: int = Field(8, ge=0)
    finetune_steps: int = Field(0, ge=0)  # SGD steps per candidate before it is scored
    # the learning rate of the candidates' short fine-tunes (finetune_steps) and of the finalists' rungs; the
    # final fine-tune has its own (finetune_lr)
    candidate_lr: float = Field(0.01, gt=0)
    screen_images: int = Field(0, ge=0)  # multi-fidelity screening slice (0: off)
    amp: Literal["off", "bf16", "fp16"] = "off"  # autocast while scoring candidates (off: exact fp32 scores)
    # channels-last memory layout while scoring (auto: on CPUs, where it is faster; on or off to force it)
    channels_last: Literal["auto", "on", "off"] = "auto"
    # sensitivity probes of one group reuse its first probe's unchanged prefix (exact; off: every probe runs whole)
    reuse_prefix: bool = True


class ExperimentConfig(ScoringSettings):
    """One search: model, data, budget, searcher and evaluation settings (the scoring ones from ScoringSettings)."""

    model_config = ConfigDict(extra="forbid")
    model: str = "resnet20"
    weights: str | None = None
    data: str = "fashion-mnist"
    data_dir: str | None = None
    budget: str | None = None
    agent: str = "anneal"
    agent_config: dict[str, Any] = Field(default_factory=dict)
    space: str = "default"
    evals: int = Field(30, ge=1)  # the search's evaluations (the finalists and the fine-tune come after)
    finalists: int = Field(3, ge=0)  # the search's best distinct policies re-ranked by short fine-tunes (0: off)
    # successive halving: each rung's fine-tune, in epochs of the training split (Fashion-MNIST: 430 steps each)
    finalist_rungs: list[float] = Field(default_factory=lambda: [0.1, 0.3])
    finalist_eta: float = Field(3.0, gt=1)  # each rung keeps the best 1/eta of its finalists
    finalist_baselines: bool = True  # uniform, global and isomorphic ranking compete as finalists too
    # so does the sensitivity-threshold allocation: every group probed at these keep levels (and its least keep),
    # one evaluation each ([]: off); the sensitivity searcher's levels (one level alone lost 1.2 points at
    # MobileNetV2 / 0.10 flops, experiments/results/compare_pipeline.md)
    finalist_sensitivity: list[float] = Field(default_factory=lambda: [0.8, 0.6, 0.4, 0.2])
    # each rung continues its survivors' training from the last rung's weights (False: from the pruned weights)
    finalist_continue: bool = True
    finalist_distill: bool = False  # rung fine-tunes distil from the dense model
    # the sensitivity allocation runs every rung and ships unless a finalist leads it at the last rung by more
    # than this held-out score (0.005: half a point of accuracy, about the rungs' noise in compare_pipeline.md)
    finalist_margin: float = Field(0.005, ge=0)
    # an earlier run's directory whose sensitivity probes this run reuses (same model, data, seed and scoring; the
    # budget and the search may differ): autoprune.run.probe_reuse
    probes_from: str | None = None
    finetune_epochs: int = Field(2, ge=0)  # after the search: fine-tune the winner this many epochs (0: off)
    finetune_lr: float = Field(0.01, gt=0)  # the final fine-tune's peak learning rate (cosine schedule)
    distill: bool = False  # fine-tune with knowledge distillation from the dense model
    screen_eta: float = Field(3.0, gt=1)  # only the top 1/eta of screening scores get the full held-out split
    screen_warmup: int = Field(10, ge=1)  # candidates always scored in full before screening starts
    device: str = "auto"  # where this process computes: auto (CUDA when there is one), cpu, cuda or cuda:N
    workers: int = Field(1, ge=1)  # evaluations in parallel; more than 1 (or an address) runs them on Ray
    gpus_per_worker: float = Field(0.0, ge=0)  # each Ray worker's share of a GPU (0.25: four share one; 0: CPU)
    address: str | None = None  # an existing Ray cluster (HOST:PORT or auto); default: a private local instance
    dashboard: bool = False  # with a private local Ray instance: also start Ray's dashboard, on 127.0.0.1
    out: str | None = None

    # how and where a run computes, not what it computes: a run may be resumed with these changed (more
    # evaluations, another device or cluster, another final fine-tune); every other field is in the resume check
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset({
        "evals", "out", "data_dir", "device", "gpus_per_worker", "address", "dashboard", "finetune_epochs",
        "finetune_lr", "distill", "channels_last", "reuse_prefix", "probes_from"})

    # settings added with a default that runs started before them did not behave as: what those runs did
    BEFORE_ADDED: ClassVar[dict[str, Any]] = {"finalist_continue": False}

    def scoring(self) -> dict[str, Any]:
        """The ScoringSettings part of these settings, as the Evaluator's keyword arguments."""
        return self.model_dump(include=set(ScoringSettings.model_fields))

    def run_settings(self, **resolved: Any) -> dict[str, Any]:
        """The settings that decide what a run's stored evaluations mean: every field but RESUMABLE_CHANGES, with
        `resolved` values (e.g. the budget normalised, the search space read) in place of the given ones. A
        resumed run must match them, so a field added here is checked without further edits."""
        settings = self.model_dump(exclude=set(self.RESUMABLE_CHANGES))
        unknown = set(resolved) - set(settings)
        if unknown:
            raise ValueError(f"not run settings: {sorted(unknown)}")
        return {**settings, **resolved}

    @field_validator("finalist_rungs")
    @classmethod
    def _increasing(cls, rungs: list[float]) -> list[float]:
        if not rungs or any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ValueError("must be one or more fine-tune lengths in epochs, each positive and longer than the "
                             "last, e.g. [0.125, 0.5]")
        return rungs

    @field_validator("finalist_sensitivity")
    @classmethod
    def _keep_levels(cls, levels: list[float]) -> list[float]:
        if not all(0 < v < 1 for v in levels):
            raise ValueError("must be keep ratios in (0, 1), e.g. [0.6, 0.3], or [] to skip the sensitivity probes")
        return levels


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileProblemError(f"{what} file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FileProblemError(f"{what} file {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise FileProblemError(f"{what} file {str(path)!r} must hold a mapping of settings")
    return data


def validated(cls: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return cls(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{source}: {field}: {first['msg']}") from None


def load_space(name_or_path: str) -> SpaceConfig:
    """A search space by name (search_spaces/NAME.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / "search_spaces" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise InputError(f"unknown search space {name_or_path!r}; use one of {', '.join(shipped_spaces())} or "
                             "a YAML path")
    return validated(SpaceConfig, read_yaml(path, "search space"), str(path))


def shipped_spaces() -> list[str]:
    """Names of the search spaces the package ships (its configs/search_spaces/*.yaml)."""
    return sorted(p.stem for p in (CONFIG_DIR / "search_spaces").glob("*.yaml"))


def load_experiment(path: str | None, overrides: dict[str, Any]) -> ExperimentConfig:
    """An experiment file (if given) with command-line overrides (None values are ignored)."""
    data = read_yaml(Path(path), "experiment") if path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validated(ExperimentConfig, data, path or "command line")
