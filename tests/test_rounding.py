"""`round_to: auto`: the channel multiple a deployment target runs fastest, measured on real slim models with ONNX
Runtime once, cached on disk, and used by the search space (stored resolved, so a resume checks it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoprune.app.pipeline import prepare_search
from autoprune.engine import analyse
from autoprune.engine.rounding import MULTIPLES, preferred_multiple
from autoprune.engine.target import DeploymentTarget
from autoprune.errors import UserError
from autoprune.models import example_input
from autoprune.settings import ExperimentConfig, SpaceConfig


def test_the_preferred_multiple_is_measured_once_then_read_back(trained_digits_resnet, tmp_path: Path) -> None:
    analysis = analyse(trained_digits_resnet, example_input(1, 8))
    target = DeploymentTarget.parse("onnxruntime,batch=1,threads=1")
    choice = preferred_multiple(analysis, target, cache=tmp_path)
    assert choice.multiple in choice.relative_latency and set(choice.relative_latency) <= set(MULTIPLES)
    fastest = min(choice.relative_latency.values())
    assert choice.relative_latency[choice.multiple] <= fastest * 1.02  # the fastest, or tied with it
    assert analysis.round_to == 1  # the analysis is left as it was
    (entry,) = (tmp_path / "rounding").glob("*.json")
    stored = json.loads(entry.read_text())
    assert stored["value"]["multiple"] == choice.multiple and "onnxruntime" in stored["key"]
    # what is on disk is what a later call gets
    entry.write_text(json.dumps({**stored, "value": {**stored["value"], "multiple": 4}}))
    assert preferred_multiple(analysis, target, cache=tmp_path).multiple == 4
    other = preferred_multiple(analysis, DeploymentTarget.parse("onnxruntime,batch=2,threads=1"), cache=tmp_path)
    assert other.multiple in MULTIPLES and len(list((tmp_path / "rounding").glob("*.json"))) == 2  # per target


def test_the_default_space_rounds_widths_as_the_target_prefers_and_stores_the_multiple(monkeypatch,
                                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOPRUNE_CACHE_DIR", str(tmp_path))
    prepared = prepare_search(ExperimentConfig(data="digits", budget="0.5flops",
                                               target="onnxruntime,batch=1,threads=1"))
    multiple = prepared.analysis.round_to
    assert multiple in MULTIPLES and prepared.run_settings["space"]["round_to"] == multiple
    for _ in range(3):
        proposal = prepared.searcher.ask(1)[0]
        for kept, group in zip(prepared.analysis.kept_channels(proposal.policy), prepared.analysis.groups,
                               strict=True):
            assert kept % min(multiple, group.channels) == 0 or kept == group.channels
        prepared.searcher.tell({proposal.trial: prepared.evaluator(proposal.policy)})


@pytest.mark.parametrize("round_to", [0, "fast"])
def test_a_bad_round_to_is_refused(round_to) -> None:
    from autoprune.settings import validated

    with pytest.raises(UserError, match="round_to"):
        validated(SpaceConfig, {"round_to": round_to}, "space")
