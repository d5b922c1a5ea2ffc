"""Every setting explains itself: each field of each settings model has a description, and the agent files and
docs/settings.md are produced from those fields (one source), so they cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoprune.app.settings_docs import agent_yaml, documented_agents, settings_markdown, settings_models
from autoprune.settings import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent
FIX = "run `make settings-docs` and commit the files it writes"


@pytest.mark.parametrize("where", list(settings_models()))
def test_every_field_of_every_settings_model_has_a_description(where: str) -> None:
    model = settings_models()[where]
    missing = [name for name, info in model.model_fields.items() if not (info.description or "").strip()]
    assert not missing, f"{where} settings without a description: {missing}"
    assert (model.__doc__ or "").strip(), f"{where} settings have no docstring to head their documentation"


@pytest.mark.parametrize("name", documented_agents())
def test_each_agent_file_is_produced_from_its_settings(name: str) -> None:
    assert (CONFIG_DIR / "agents" / f"{name}.yaml").read_text() == agent_yaml(name), FIX


def test_the_settings_page_is_produced_from_the_settings() -> None:
    assert (ROOT / "docs" / "settings.md").read_text() == settings_markdown(), FIX
