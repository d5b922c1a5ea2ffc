"""Config files (search spaces, agents, experiments) as YAML, validated by pydantic with messages naming the
field. Command-line flags override experiment-file values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
# where the delivered model is timed by default (autoprune.engine.target says why): ONNX Runtime on the CPU, batch 1
DEFAULT_TARGET = "onnxruntime,batch=1"


class SpaceConfig(BaseModel):
    """Which channels a search may remove: keep-ratio bounds, channel rounding and the ranking criterion."""

    model_config = ConfigDict(extra="forbid")
    min_keep: float = Field(0.05, gt=0, le=1, description="the least share of its channels a group keeps")
    max_keep: float = Field(1.0, gt=0, le=1, description="the most share of its channels a group keeps")
    round_to: int | Literal["auto"] = Field("auto", description="channel counts are rounded to a multiple of "
                                                                "this; auto: the multiple the deployment target "
                                                                "runs fastest (measured once, cached)")

    @field_validator("round_to")
    @classmethod
    def _positive(cls, round_to: int | str) -> int | str:
        if round_to != "auto" and round_to < 1:
            raise ValueError("must be a positive whole number or auto")
        return round_to
    criterion: str = Field("l1", description="how channels are ranked: l1, l2, fpgm, bn_scale, slim, random, or "
                                             "measured on data: apoz, mean_activation, taylor")
    criterion_batches: int = Field(8, ge=1, description="training batches of 64 images that data criteria are "
                                                        "measured on")
    sensitivity: str | None = Field(None, description="a filter sensitivity CSV (autoprune sensitivity) that raises "
                                                      "each group's least keep ...")
    tolerance: float = Field(0.02, ge=0, description="... to its least probed keep ratio that cost at most this "
                                                     "much held-out score")


class CandidateScoring(BaseModel):
    """How every candidate is scored: held out, recalibrated, briefly trained."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="the training batches' order, and in an experiment the searcher's seed")
    heldout_images: int = Field(2000, ge=1, description="held-out images every candidate is scored on")
    recalibration_batches: int = Field(8, ge=0, description="training batches BatchNorm statistics are "
                                                            "re-estimated on before scoring")
    finetune_steps: int = Field(0, ge=0, description="SGD steps each candidate is trained before it is scored")
    candidate_lr: float = Field(0.01, gt=0, description="the learning rate of the candidates' short fine-tunes "
                                                        "(finetune_steps) and of the finalists' rungs; the final "
                                                        "fine-tune has its own (finetune_lr)")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="autocast while scoring candidates (off: exact "
                                                                   "fp32 scores)")
    channels_last: Literal["auto", "on", "off"] = Field("auto", description="channels-last memory layout while "
                                                                            "scoring (auto: on CPUs, where it is "
                                                                            "faster)")
    reuse_prefix: bool = Field(True, description="sensitivity probes of one group reuse its first probe's "
                                                 "unchanged prefix (exact; off: every probe runs whole)")


class ScoringSettings(CandidateScoring):
    """Every setting of the Evaluator, defined once, here: how candidates are scored, and the screening's first
    pass (an experiment holds it in its `screening` family)."""

    screen_images: int = Field(0, ge=0, description="multi-fidelity screening: score each candidate on this many "
                                                    "held-out images first (0: off)")


class Family(BaseModel):
    """A family of an experiment's settings, nested under its name in experiment files; each field also has the
    flat name it had before families (FLAT), which flags, `autoprune.search(...)` keywords, older experiment files
    and stored run settings use."""

    model_config = ConfigDict(extra="forbid")
    FLAT: ClassVar[dict[str, str]] = {}


class ScreeningSettings(Family):
    """Multi-fidelity screening (off by default): each candidate scored on a few held-out images first, and only
    the most promising on the whole split."""

    FLAT: ClassVar[dict[str, str]] = {"images": "screen_images", "eta": "screen_eta", "warmup": "screen_warmup"}
    images: int = Field(0, ge=0, description="score each candidate on this many held-out images first (0: off)")
    eta: float = Field(3.0, gt=1, description="only the top 1/eta of screening scores get the full held-out split")
    warmup: int = Field(10, ge=1, description="candidates always scored in full before screening starts")


class FinalistSettings(Family):
    """The baselines and the search's best policies re-ranked by short fine-tunes (successive halving)."""

    FLAT: ClassVar[dict[str, str]] = {
        "count": "finalists", "rungs": "finalist_rungs", "eta": "finalist_eta", "baselines": "finalist_baselines",
        "sensitivity": "finalist_sensitivity", "continue_rungs": "finalist_continue", "distill": "finalist_distill",
        "margin": "finalist_margin"}
    count: int = Field(3, ge=0, description="the search's best distinct policies re-ranked with the baselines' by "
                                            "short fine-tunes (0: off, baselines included)")
    rungs: list[float] = Field(default_factory=lambda: [0.1, 0.3],
                               description="successive halving: each rung's fine-tune, in epochs of the training "
                                           "split")
    eta: float = Field(3.0, gt=1, description="each rung keeps the best 1/eta of its finalists")
    baselines: bool = Field(True, description="uniform, global and isomorphic ranking compete as finalists too")
    sensitivity: list[float] = Field(default_factory=lambda: list(PROBE_LEVELS),
                                     description="so does the sensitivity-threshold allocation: every group probed "
                                                 "at these keep levels and its least keep ([]: off)")
    continue_rungs: bool = Field(True, description="each rung continues its survivors' training from the last "
                                                   "rung's weights (false: from the pruned weights)")
    distill: bool = Field(False, description="rung fine-tunes distil from the dense model")
    # 0.005: half a point of accuracy, about the rungs' noise in compare_pipeline.md
    margin: float = Field(0.005, ge=0, description="the sensitivity allocation ships unless a finalist leads it at "
                                                   "the last rung by more than this held-out score")

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, rungs: list[float]) -> list[float]:
        if not rungs or any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ValueError("must be one or more fine-tune lengths in epochs, each positive and longer than the "
                             "last, e.g. [0.125, 0.5]")
        return rungs

    @field_validator("sensitivity")
    @classmethod
    def _keep_levels(cls, levels: list[float]) -> list[float]:
        if not all(0 < v < 1 for v in levels):
            raise ValueError("must be keep ratios in (0, 1), e.g. [0.6, 0.3], or [] to skip the sensitivity probes")
        return levels


class FinetuneSettings(Family):
    """The final fine-tune of the shipped policy."""

    FLAT: ClassVar[dict[str, str]] = {"epochs": "finetune_epochs", "lr": "finetune_lr", "distill": "distill"}
    epochs: int = Field(2, ge=0, description="after the search: fine-tune the winner this many epochs (0: off)")
    lr: float = Field(0.01, gt=0, description="the final fine-tune's peak learning rate (cosine schedule)")
    distill: bool = Field(False, description="the final fine-tune distils from the dense model")


class ExperimentConfig(CandidateScoring):
    """One search: model, data, budget, searcher and how candidates are scored, then the families `screening`,
    `finalists` and `finetune`."""

    model: str = Field("resnet20", description="a zoo name, a torchvision classifier or package.module:factory")
    weights: str | None = Field(None, description="the dense model's checkpoint (default: the shipped one)")
    data: str = Field("fashion-mnist", description="fashion-mnist, digits, cifar10 or imagefolder")
    data_dir: str | None = Field(None, description="where the dataset's files are")
    budget: str | None = Field(None, description="e.g. 0.25flops, 0.5params, 0.5latency (of the dense model's, on "
                               "the deployment target), 3ms (there), or several joined by commas")
    target: str = Field(DEFAULT_TARGET, description="the deployment target the delivered model is timed on: "
                                                    "RUNTIME[,batch=N][,threads=N][,device=D][,precision=P], runtime "
                                                    "onnxruntime or torch (threads 0: the runtime's default)")
    agent: str = Field("anneal", description="the searcher: uniform, random, anneal, ga, tpe, ddpg or sensitivity")
    agent_config: dict[str, Any] = Field(default_factory=dict, description="the searcher's settings "
                                                                           "(agents/NAME.yaml)")
    space: str = Field("default", description="search_spaces/NAME.yaml or a path")
    evals: int = Field(30, ge=1, description="the search's evaluations (the finalists and the fine-tune come after)")
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings, description="multi-fidelity screening")
    finalists: FinalistSettings = Field(default_factory=FinalistSettings, description="baselines and finalists")
    probes_from: str | None = Field(None, description="an earlier run's directory whose sensitivity probes this run "
                                                      "reuses (same model, data, seed and scoring)")
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings, description="the final fine-tune")
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

    FAMILIES: ClassVar[dict[str, type[Family]]] = {"screening": ScreeningSettings, "finalists": FinalistSettings,
                                                   "finetune": FinetuneSettings}

    # how and where a run computes, not what it computes: a run may be resumed with these changed (more
    # evaluations, another device or cluster, another final fine-tune); every other setting (by its flat name) is
    # in the resume check
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset({
        "evals", "out", "data_dir", "device", "gpus_per_worker", "address", "dashboard", "finetune_epochs",
        "finetune_lr", "distill", "channels_last", "reuse_prefix", "probes_from", "target"})

    # settings added with a default that runs started before them did not behave as: what those runs did
    BEFORE_ADDED: ClassVar[dict[str, Any]] = {"finalist_continue": False}

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        return nested(data) if isinstance(data, dict) else data

    @classmethod
    def flat_names(cls) -> set[str]:
        """Every setting's flat name: what flags and `autoprune.search(...)` keywords are called."""
        names = set(cls.model_fields) - set(cls.FAMILIES)
        return names.union(*(family.FLAT.values() for family in cls.FAMILIES.values()))

    def scoring(self) -> dict[str, Any]:
        """The Evaluator's keyword arguments (ScoringSettings): how candidates are scored and the screening's
        first pass."""
        return {**self.model_dump(include=set(CandidateScoring.model_fields)), "screen_images": self.screening.images}

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (a family's fields by their FLAT names), as runs store them."""
        settings = self.model_dump(exclude=set(self.FAMILIES))
        for name, family in self.FAMILIES.items():
            values = getattr(self, name).model_dump()
            settings.update({family.FLAT[field]: value for field, value in values.items()})
        return settings

    def run_settings(self, **resolved: Any) -> dict[str, Any]:
        """The settings that decide what a run's stored evaluations mean, by flat name: every setting but
        RESUMABLE_CHANGES, with `resolved` values (e.g. the budget normalised, the search space read) in place of
        the given ones. A resumed run must match them, so a field added here is checked without further edits."""
        settings = {k: v for k, v in self.flat().items() if k not in self.RESUMABLE_CHANGES}
        unknown = set(resolved) - set(settings)
        if unknown:
            raise ValueError(f"not run settings: {sorted(unknown)}")
        return {**settings, **resolved}


def nested(data: dict[str, Any]) -> dict[str, Any]:
    """Experiment settings with each family's flat names (and `finalists: N`, the count) moved under the family;
    a family already nested keeps its values, and a flat name given beside it overrides."""
    data = dict(data)
    for name, family in ExperimentConfig.FAMILIES.items():
        given = data.get(name)
        values = dict(given) if isinstance(given, dict) else {}
        if name in data and not isinstance(given, dict | BaseModel):  # `finalists: 3`: the count
            values[next(f for f, flat in family.FLAT.items() if flat == name)] = data.pop(name)
        elif isinstance(given, BaseModel):
            values = given.model_dump()
        for field, flat in family.FLAT.items():
            if flat != name and flat in data:
                values[field] = data.pop(flat)
        if values or name in data:
            data[name] = values
    return data


def flat_name(location: tuple[Any, ...]) -> str:
    """A validation error's location as the setting's flat name where it is a family's field."""
    if len(location) >= 2 and location[0] in ExperimentConfig.FAMILIES:
        family = ExperimentConfig.FAMILIES[location[0]]
        if location[1] in family.FLAT:
            return family.FLAT[location[1]]
    return ".".join(str(p) for p in location)


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
        field = flat_name(tuple(first["loc"])) or "(top level)"
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
    data = nested(read_yaml(Path(path), "experiment")) if path else {}
    for key, value in nested({k: v for k, v in overrides.items() if v is not None}).items():
        merged = isinstance(value, dict) and isinstance(data.get(key), dict) and key in ExperimentConfig.FAMILIES
        data[key] = {**data[key], **value} if merged else value
    return validated(ExperimentConfig, data, path or "command line")
