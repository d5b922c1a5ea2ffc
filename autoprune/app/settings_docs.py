"""The settings' documentation, produced from the settings models' fields (one source): each searcher's
`agents/NAME.yaml` (its defaults, each with its description) and `docs/settings.md` (every setting of a search, a
search space, a sweep and a pruning schedule). `make settings-docs` writes them; tests/test_settings_docs.py keeps
the files equal to what this module produces."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import yaml
from pydantic import BaseModel

from autoprune.app.sweep.config import SweepConfig
from autoprune.searchers import AGENTS, searcher_class
from autoprune.searchers.base import NoSettings
from autoprune.settings import CONFIG_DIR, ExperimentConfig, ScoringSettings, SpaceConfig
from autoprune.toolbox.schedules.config import ScheduleConfig

WIDTH = 118
VALUE_COLUMN = 26  # where an agent file's comments start
# ExperimentConfig's sections in the order docs/settings.md lists them: top-level fields, or a nested family
# (ExperimentConfig.FAMILIES) with the top-level fields that belong beside it; a new field must join one
SECTIONS: dict[str, tuple[str, ...]] = {
    "What to search": ("model", "weights", "data", "data_dir", "budget", "target", "agent", "agent_config", "space",
                       "evals", "seed"),
    "Scoring every candidate": ("heldout_images", "recalibration_batches", "finetune_steps", "candidate_lr", "amp",
                                "channels_last", "reuse_prefix"),
    "Screening": ("screening",),
    "Baselines and finalists": ("finalists", "probes_from"),
    "The final fine-tune": ("finetune",),
    "Where it runs": ("device", "workers", "gpus_per_worker", "address", "dashboard", "out"),
}


def settings_models() -> dict[str, type[BaseModel]]:
    """Every settings model a user writes, by where it is written."""
    models: dict[str, type[BaseModel]] = {"experiment": ExperimentConfig, "search space": SpaceConfig,
                                          "sweep": SweepConfig, "schedule": ScheduleConfig}
    models.update({f"agent {name}": searcher_class(name).Settings for name in documented_agents()})
    return models


def documented_agents() -> list[str]:
    """The searchers that have settings (and so an agents/NAME.yaml)."""
    return [name for name in AGENTS if searcher_class(name).Settings is not NoSettings]


def _value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()


def _summary(model: type[BaseModel]) -> str:
    return " ".join(inspect.cleandoc(model.__doc__ or "").split())


def agent_yaml(name: str) -> str:
    """agents/NAME.yaml: the searcher's settings' description as the header, then each default with its own."""
    settings = searcher_class(name).Settings
    lines = textwrap.wrap(_summary(settings), WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
    for field, info in settings.model_fields.items():
        entry = f"{field}: {_value(info.get_default(call_default_factory=True))}"
        comment = textwrap.wrap(info.description or "", WIDTH - VALUE_COLUMN - 2)
        first = f"{entry:<{VALUE_COLUMN}}" if len(entry) < VALUE_COLUMN else f"{entry} "
        lines.append(f"{first}# {comment[0]}")
        lines += [f"{'':<{VALUE_COLUMN}}# {more}" for more in comment[1:]]
    return "\n".join(lines) + "\n"


def _table(model: type[BaseModel], fields: tuple[str, ...] | None = None) -> list[str]:
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for field in fields or tuple(model.model_fields):
        info = model.model_fields[field]
        default = "(required)" if info.is_required() else f"`{_value(info.get_default(call_default_factory=True))}`"
        rows.append(f"| `{field}` | {default} | {info.description} |")
    return rows


def _experiment_table(fields: tuple[str, ...]) -> list[str]:
    """An experiment section's settings: a family's as `family.field` (with its flat name), the rest as they are."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for name in fields:
        family = ExperimentConfig.FAMILIES.get(name)
        if family is None:
            rows += _table(ExperimentConfig, (name,))[2:]
            continue
        for field, info in family.model_fields.items():
            default = _value(info.get_default(call_default_factory=True))
            rows.append(f"| `{name}.{field}` (`{family.FLAT[field]}`) | `{default}` | {info.description} |")
    return rows


def settings_markdown() -> str:
    """docs/settings.md."""
    unplaced = set(ExperimentConfig.model_fields) - {f for fields in SECTIONS.values() for f in fields}
    if unplaced:
        raise ValueError(f"ExperimentConfig fields without a section in SECTIONS: {sorted(unplaced)}")
    lines = ["# Settings", "",
             "Produced from the settings models by `make settings-docs` (autoprune/app/settings_docs.py); a test "
             "keeps this page equal to them.", "",
             "## A search", "",
             "Experiment files (`autoprune search --config FILE`) and `autoprune.search(...)` keywords take every "
             "setting below. A family's settings nest under its name in a file (`finalists: {count: 3, rungs: "
             "[0.1, 0.3]}`) or go flat by the name in brackets, which `autoprune.search(...)` keywords and stored "
             "run settings use; command-line flags, where one exists (`finetune_epochs`: `--finetune-epochs`), "
             f"override the file. {_summary(ExperimentConfig)} The scoring settings and `screening.images` also "
             f"configure an `Evaluator`: {', '.join(f'`{f}`' for f in ScoringSettings.model_fields)}.", ""]
    for section, fields in SECTIONS.items():
        lines += [f"### {section}", "", *_experiment_table(fields), ""]
    lines += ["## Search spaces", "", f"`search_spaces/NAME.yaml`, chosen with `--space`. {_summary(SpaceConfig)}",
              "", *_table(SpaceConfig), "",
              "## Searchers", "", "`agent_config:` in an experiment file (or `agent_config=` in Python); the "
              "defaults are in `agents/NAME.yaml`.", ""]
    for name in documented_agents():
        settings = searcher_class(name).Settings
        lines += [f"### {name}", "", _summary(settings), "", *_table(settings), ""]
    lines += ["## Sweeps", "", f"`autoprune sweep FILE`. {_summary(SweepConfig)}", "", *_table(SweepConfig), "",
              "## Pruning schedules", "", f"`autoprune prune --schedule FILE`. {_summary(ScheduleConfig)}", "",
              *_table(ScheduleConfig), ""]
    return "\n".join(lines)


def write_settings_docs(docs_dir: Path) -> list[Path]:
    """Write every agents/NAME.yaml (inside the package) and `docs_dir`/settings.md; returns the paths."""
    written = []
    for name in documented_agents():
        path = CONFIG_DIR / "agents" / f"{name}.yaml"
        path.write_text(agent_yaml(name))
        written.append(path)
    path = docs_dir / "settings.md"
    path.write_text(settings_markdown())
    return [*written, path]
