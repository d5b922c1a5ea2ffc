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
# the keep levels every group is probed at for the sensitivity-threshold allocation, in the pipeline's baselines and
# in the sensitivity searcher alike (one level alone lost 1.2 points at MobileNetV2 / 0.10 flops,
# experiments/results/compare_pipeline.md)
PROBE_LEVELS = (0.8, 0.6, 0.4, 0.2)
# held-out images a probe is scored on (of the default 2,000): its drop is paired with the dense model's on the same
# images, so fewer measure it well, at about 30 % less cost (experiments/results/probe_images.md)
PROBE_IMAGES = 1000


class SpaceConfig(BaseModel):
    """Which channels a search may remove: keep-ratio bounds, channel rounding and the ranking criterion."""

    model_config = ConfigDict(extra="forbid")
    min_keep: float = Field(0.05, gt=0, le=1, description="the least share of its channels a group keeps")
    max_keep: float = Field(1.0, gt=0, le=1, description="the most share of its channels a group keeps")
    round_to: int = Field(1, ge=1, description="channel counts are rounded to a multiple of this")
    criterion: str = Field("l1", description="how channels are ranked: l1, l2, fpgm, bn_scale, slim, random, or "
                                             "measured on data: apoz, mean_activation, taylor")
    criterion_batches: int = Field(8, ge=1, description="training batches of 64 images that data criteria are "
                                                        "measured on")
    sensitivity: str | None = Field(None, description="a filter sensitivity CSV (autoprune sensitivity) that raises "
                                                      "each group's least keep ...")
    tolerance: float = Field(0.02, ge=0, description="... to its least probed keep ratio that cost at most this "
                                                     "much held-out score")


class ScoringSettings(BaseModel):
    """How every candidate is scored: held out, recalibrated, briefly trained. Defined once, here: the Evaluator
    takes these and an experiment's settings include them."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="the training batches' order, and in an experiment the searcher's seed")
    heldout_images: int = Field(2000, ge=1, description="held-out images every candidate is scored on")
    recalibration_batches: int = Field(8, ge=0, description="training batches BatchNorm statistics are "
                                                            "re-estimated on before scoring")
    finetune_steps: int = Field(0, ge=0, description="SGD steps each candidate is trained before it is scored")
    candidate_lr: float = Field(0.01, gt=0, description="the learning rate of the candidates' short fine-tunes "
                                                        "(finetune_steps) and of the finalists' rungs; the final "
                                                        "fine-tune has its own (finetune_lr)")
    screen_images: int = Field(0, ge=0, description="multi-fidelity screening: score each candidate on this many "
                                                    "held-out images first (0: off)")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="autocast while scoring candidates (off: exact "
                                                                   "fp32 scores)")
    channels_last: Literal["auto", "on", "off"] = Field("auto", description="channels-last memory layout while "
                                                                            "scoring (auto: on CPUs, where it is "
                                                                            "faster)")
    reuse_prefix: bool = Field(True, description="sensitivity probes of one group reuse its first probe's "
                                                 "unchanged prefix (exact; off: every probe runs whole)")


class ExperimentConfig(ScoringSettings):
    """One search: model, data, budget, searcher and evaluation settings (the scoring ones from ScoringSettings)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field("resnet20", description="a zoo name, a torchvision classifier or package.module:factory")
    weights: str | None = Field(None, description="the dense model's checkpoint (default: the shipped one)")
    data: str = Field("fashion-mnist", description="fashion-mnist, digits, cifar10 or imagefolder")
    data_dir: str | None = Field(None, description="where the dataset's files are")
    budget: str | None = Field(None, description="e.g. 0.25flops, 0.5params, 3ms, or several joined by commas")
    agent: str = Field("anneal", description="the searcher: uniform, random, anneal, ga, tpe, ddpg or sensitivity")
    agent_config: dict[str, Any] = Field(default_factory=dict, description="the searcher's settings "
                                                                           "(agents/NAME.yaml)")
    space: str = Field("default", description="search_spaces/NAME.yaml or a path")
    evals: int = Field(30, ge=1, description="the search's evaluations (the finalists and the fine-tune come after)")
    finalists: int = Field(3, ge=0, description="the search's best distinct policies re-ranked with the baselines' "
                                                "by short fine-tunes (0: off, baselines included)")
    finalist_rungs: list[float] = Field(default_factory=lambda: [0.1, 0.3],
                                        description="successive halving: each rung's fine-tune, in epochs of the "
                                                    "training split")
    finalist_eta: float = Field(3.0, gt=1, description="each rung keeps the best 1/eta of its finalists")
    finalist_baselines: bool = Field(True, description="uniform, global and isomorphic ranking compete as "
                                                       "finalists too")
    finalist_sensitivity: list[float] = Field(default_factory=lambda: list(PROBE_LEVELS),
                                              description="so does the sensitivity-threshold allocation: every group "
                                                          "probed at these keep levels and its least keep ([]: off)")
    finalist_continue: bool = Field(True, description="each rung continues its survivors' training from the last "
                                                      "rung's weights (false: from the pruned weights)")
    finalist_distill: bool = Field(False, description="rung fine-tunes distil from the dense model")
    # 0.005: half a point of accuracy, about the rungs' noise in compare_pipeline.md
    finalist_margin: float = Field(0.005, ge=0, description="the sensitivity allocation ships unless a finalist "
                                                            "leads it at the last rung by more than this held-out "
                                                            "score")
    probes_from: str | None = Field(None, description="an earlier run's directory whose sensitivity probes this run "
                                                      "reuses (same model, data, seed and scoring)")
    finetune_epochs: int = Field(2, ge=0, description="after the search: fine-tune the winner this many epochs "
                                                      "(0: off)")
    finetune_lr: float = Field(0.01, gt=0, description="the final fine-tune's peak learning rate (cosine schedule)")
    distill: bool = Field(False, description="the final fine-tune distils from the dense model")
    screen_eta: float = Field(3.0, gt=1, description="screening: only the top 1/eta of screening scores get the full "
                                                     "held-out split")
    screen_warmup: int = Field(10, ge=1, description="screening: candidates always scored in full before it starts")
    device: str = Field("auto", description="where this process computes: auto (CUDA when there is one), cpu, cuda "
                                            "or cuda:N")
    workers: int = Field(1, ge=1, description="evaluations in parallel; more than 1 (or an address) runs them on Ray")
    gpus_per_worker: float = Field(0.0, ge=0, description="each Ray worker's share of a GPU (0.25: four share one; "
                                                          "0: CPU)")
    address: str | None = Field(None, description="an existing Ray cluster (HOST:PORT or auto); default: a private "
                                                  "local instance")
    dashboard: bool = Field(False, description="with a private local Ray instance: also start Ray's dashboard, on "
                                               "127.0.0.1")
    out: str | None = Field(None, description="the run directory (default runs/<model>-<budget>-<agent>-s<seed>)")

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
