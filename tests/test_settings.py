"""An experiment's settings families (screening, finalists, finetune): nested in files, flat by their earlier names
in older files, flags and keywords, and stored flat so runs of earlier versions still resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune.errors import UserError
from autoprune.settings import ExperimentConfig, load_experiment

NESTED = """budget: 0.5flops
screening: {images: 200, eta: 4}
finalists:
  count: 2
  rungs: [0.2, 0.5]
  sensitivity: [0.7]
finetune: {epochs: 1, lr: 0.02}
"""
FLAT = """budget: 0.5flops
screen_images: 200
screen_eta: 4
finalists: 2
finalist_rungs: [0.2, 0.5]
finalist_sensitivity: [0.7]
finetune_epochs: 1
finetune_lr: 0.02
"""


def test_a_nested_file_and_an_older_flat_file_give_the_same_settings(tmp_path: Path) -> None:
    (tmp_path / "nested.yaml").write_text(NESTED)
    (tmp_path / "flat.yaml").write_text(FLAT)
    nested, flat = (load_experiment(str(tmp_path / f"{name}.yaml"), {}) for name in ("nested", "flat"))
    assert nested == flat
    assert nested.finalists.count == 2 and nested.finalists.rungs == [0.2, 0.5] and nested.finalists.eta == 3.0
    assert nested.screening.images == 200 and nested.scoring()["screen_images"] == 200
    assert nested.finetune.epochs == 1 and nested.finetune.distill is False


def test_flags_override_one_field_of_a_family_and_keep_the_files_others(tmp_path: Path) -> None:
    (tmp_path / "nested.yaml").write_text(NESTED)
    config = load_experiment(str(tmp_path / "nested.yaml"), {"finalists": 5, "finetune_epochs": 3, "evals": None})
    assert config.finalists.count == 5 and config.finalists.rungs == [0.2, 0.5]  # the file's rungs stay
    assert config.finetune.epochs == 3 and config.finetune.lr == 0.02
    assert ExperimentConfig(finalists=0, finalist_margin=0.01).finalists.model_dump() == {
        **ExperimentConfig().finalists.model_dump(), "count": 0, "margin": 0.01}


def test_runs_store_flat_settings_as_earlier_versions_did() -> None:
    stored = ExperimentConfig(budget="0.5flops", finalist_rungs=[0.2]).run_settings()
    assert stored["finalist_rungs"] == [0.2] and stored["finalists"] == 3 and stored["screen_images"] == 0
    assert not any(isinstance(v, dict) for k, v in stored.items() if k != "agent_config")
    assert set(stored) == ExperimentConfig.flat_names() - ExperimentConfig.RESUMABLE_CHANGES


@pytest.mark.parametrize(("settings", "named"), [
    ({"finalist_rungs": [0.5, 0.2]}, "finalist_rungs"),
    ({"finalists": {"rungs": [0.5, 0.2]}}, "finalist_rungs"),
    ({"finalists": {"count": -1}}, "finalists"),
    ({"finetune": {"epoch": 1}}, "finetune.epoch"),
])
def test_a_bad_family_setting_is_named_as_flags_and_keywords_name_it(tmp_path: Path, settings: dict,
                                                                     named: str) -> None:
    from autoprune.settings import validated

    with pytest.raises(UserError, match=f"^test: {named}: "):
        validated(ExperimentConfig, {"budget": "0.5flops", **settings}, "test")
