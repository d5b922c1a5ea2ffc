"""The public API's names survive importing every module (a subpackage once shadowed `autoprune.search`)."""

from __future__ import annotations

import importlib
import pkgutil

import autoprune


def test_autoprune_search_stays_the_api_function_after_every_import() -> None:
    for module in pkgutil.walk_packages(autoprune.__path__, "autoprune."):
        importlib.import_module(module.name)
    assert callable(autoprune.search) and autoprune.search.__module__ == "autoprune"


def test_a_resume_with_any_changed_setting_is_refused_and_new_settings_are_checked_too(
        trained_digits_resnet, digits, tmp_path) -> None:
    import copy
    import sqlite3

    import pytest
    import torch
    from pydantic import Field

    from autoprune.errors import UserError
    from autoprune.settings import ExperimentConfig

    out = tmp_path / "run"
    quick = {"agent": "random", "evals": 2, "finalists": 0, "finetune_epochs": 0, "heldout_images": 200}
    autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, **quick)
    # settings the hand-kept fingerprint once forgot: a resume would have mixed rungs of two lengths
    # and a scoring setting, defined once for the Evaluator and the experiment: the candidates' learning rate
    for changed in ({"finalist_rungs": [0.2, 0.4]}, {"finalist_margin": 0.02}, {"finalist_sensitivity": []},
                    {"candidate_lr": 0.02}):
        with pytest.raises(UserError, match=f"different settings \\({next(iter(changed))}\\)"):
            autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, resume=True,
                             **quick, **changed)
    # the same settings and other weights (fine-tuned since, say): the run's fingerprint of them tells
    other = copy.deepcopy(trained_digits_resnet)
    with torch.no_grad():
        next(other.parameters()).mul_(1.01)
    with pytest.raises(UserError, match="different settings \\(the model's weights\\)"):
        autoprune.search(other, data=digits, budget="0.5flops", out=out, resume=True, **quick)
    # a run stored before a setting existed behaved as its default: a resume must match that default
    with sqlite3.connect(out / "store.sqlite") as older:  # as a store written before candidate_lr was a setting
        older.execute("DELETE FROM run WHERE key = 'candidate_lr'")
    older.close()
    with pytest.raises(UserError, match="different settings \\(candidate_lr\\)"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, resume=True, **quick,
                         candidate_lr=0.05)
    # ... unless the setting came with a default those runs did not behave as: the rungs that trained from the
    # pruned weights again, stored before finalist_continue (default: continue) existed
    with sqlite3.connect(out / "store.sqlite") as older:
        older.execute("DELETE FROM run WHERE key = 'finalist_continue'")
    older.close()
    with pytest.raises(UserError, match="different settings \\(finalist_continue\\)"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, resume=True, **quick)
    autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, resume=True, **quick,
                     finalist_continue=False)
    with sqlite3.connect(out / "store.sqlite") as older:  # the resume above stored the setting as it behaved
        assert older.execute("SELECT value FROM run WHERE key = 'finalist_continue'").fetchone() == ("false",)
        older.execute("UPDATE run SET value = 'true' WHERE key = 'finalist_continue'")
    older.close()
    # how a run computes may change: more evaluations, another device, another final fine-tune
    more = autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=out, resume=True,
                            **{**quick, "evals": 3}, device="cpu", finetune_lr=0.02)
    assert more.best.feasible

    class Extended(ExperimentConfig):
        brand_new_setting: int = Field(0, ge=0)

    assert Extended(budget="0.5flops").run_settings()["brand_new_setting"] == 0  # checked with no further edit
    assert not set(ExperimentConfig.RESUMABLE_CHANGES) & set(ExperimentConfig(budget="0.5flops").run_settings())


def test_api_errors_are_told_apart_by_kind_and_speak_in_keyword_arguments(
        trained_digits_resnet, digits, tmp_path) -> None:
    import pytest

    from autoprune.errors import AutopruneError, InfeasibleBudgetError, InputError, RunDirectoryError

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    calls = [({"budget": "0.25flop"}, InputError), ({"budget": "0.5flops", "out": a_file}, RunDirectoryError),
             ({"budget": "0.0001flops"}, InfeasibleBudgetError),
             ({"budget": "0.5flops", "out": tmp_path / "none", "resume": True}, RunDirectoryError)]
    kinds = set()
    for kwargs, kind in calls:
        with pytest.raises(AutopruneError) as info:
            autoprune.search(trained_digits_resnet, data=digits, evals=1, **kwargs)
        assert type(info.value) is kind, (kwargs, info.value)
        assert "--" not in str(info.value), str(info.value)  # the flags are the command line's words
        kinds.add(type(info.value))
    assert len(kinds) == 3
    resume_hint = str(RunDirectoryError("drop $resume, or use another $out; $device=cpu"))
    assert resume_hint == "drop resume=True, or use another out=; device='cpu'"
    assert RunDirectoryError("drop $resume; $device=cpu").for_cli() == "drop --resume; --device cpu"
