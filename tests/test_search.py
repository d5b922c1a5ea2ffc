"""Searchers, the SQLite store and resume, on a real model trained on digits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from autoprune.app.loop import run_search
from autoprune.engine import count_cost
from autoprune.errors import UserError
from autoprune.evaluation import Evaluator
from autoprune.run.store import TrialStore
from autoprune.searchers import AGENTS, make_searcher


@pytest.fixture(scope="module")
def setup(trained_digits_resnet, digits, search_setup):
    space, evaluator = search_setup(trained_digits_resnet, digits)
    return space, evaluator


class Counting:
    """The real evaluator, counting how often it runs."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator, self.calls = evaluator, 0

    def run(self, job):
        self.calls += 1
        return self.evaluator.run(job)


# the sensitivity searcher's first proposals are measurements (one group pruned alone), over the budget on purpose;
# tests/test_finalists.py checks the policy it allocates
@pytest.mark.parametrize("name", [a for a in AGENTS if a != "sensitivity"])
def test_every_searcher_proposes_feasible_policies_on_the_budget(setup, name: str) -> None:
    space, _ = setup
    searcher = make_searcher(name, space, seed=3)
    policies = [p.policy for p in searcher.ask(3)]
    assert policies
    for policy in policies:
        assert space.feasible(policy)
        assert space.costs.fraction(policy) > 0.35  # the budget is used, not wasted
        assert all(space.min_keep - 1e-9 <= r <= 1 + 1e-9 for r in policy)
    if name == "uniform":
        assert len(policies) == 1 and len(set(policies[0])) == 1 and searcher.done


def test_seeds_make_searches_reproducible(setup) -> None:
    space, _ = setup
    a, b, c = ([p.policy for p in make_searcher("random", space, seed=s).ask(2)] for s in (1, 1, 2))
    assert a == b and a != c
    with pytest.raises(UserError, match="unknown agent"):
        make_searcher("ppo", space)
    with pytest.raises(UserError, match="agent anneal: temperature: Extra inputs"):
        make_searcher("anneal", space, temperature=3)
    with pytest.raises(UserError, match="agent ga: population"):
        make_searcher("ga", space, population="many")


def test_anneal_beats_or_matches_uniform(setup, tmp_path: Path) -> None:
    space, evaluator = setup
    uniform = run_search(make_searcher("uniform", space), evaluator, TrialStore(tmp_path / "u.sqlite"), evals=10)
    assert uniform.evaluations == 1
    anneal = run_search(make_searcher("anneal", space, seed=0), evaluator, TrialStore(tmp_path / "a.sqlite"),
                        evals=8, batch_size=2)
    assert anneal.best.reward >= uniform.best.reward


# Small settings so that every searcher learns within a handful of evaluations (DDPG trains after 2 episodes).
QUICK = {"ga": {"population": 4, "elite": 1}, "tpe": {"startup_trials": 3}, "ddpg": {"warmup_episodes": 2},
         "sensitivity": {"levels": [0.5]}}


@pytest.mark.parametrize("name", list(AGENTS))
def test_same_seed_gives_the_same_search(setup, tmp_path: Path, name: str) -> None:
    space, evaluator = setup
    evals = make_searcher(name, space, **QUICK.get(name, {})).required_evals or 8
    runs = [run_search(make_searcher(name, space, seed=11, **QUICK.get(name, {})), evaluator,
                       TrialStore(tmp_path / f"{i}.sqlite"), evals, batch_size=2) for i in range(2)]
    assert runs[0].best.policy == runs[1].best.policy and runs[0].best.score == runs[1].best.score
    assert [r.policy for r in TrialStore(tmp_path / "0.sqlite").results()] == [
        r.policy for r in TrialStore(tmp_path / "1.sqlite").results()]


@pytest.mark.parametrize("name", ["anneal", "ga", "tpe", "ddpg"])
def test_resume_replays_without_losing_or_repeating_evaluations(setup, tmp_path: Path, name: str) -> None:
    space, evaluator = setup
    settings = QUICK.get(name, {})
    full_store = TrialStore(tmp_path / "full.sqlite")
    full = run_search(make_searcher(name, space, seed=7, **settings), evaluator, full_store, 9, batch_size=2)

    counting = Counting(evaluator)
    path = tmp_path / "resumed.sqlite"
    first = TrialStore(path)
    run_search(make_searcher(name, space, seed=7, **settings), counting, first, evals=5, batch_size=2)  # "killed"
    first.close()
    stored = len(TrialStore(path))
    counting.calls = 0
    resumed_store = TrialStore(path)
    resumed = run_search(make_searcher(name, space, seed=7, **settings), counting, resumed_store, evals=9,
                         batch_size=2)
    assert counting.calls == len(resumed_store) - stored  # only new policies were evaluated
    assert [r.policy for r in resumed_store.results()] == [r.policy for r in full_store.results()]
    assert resumed.best.policy == full.best.policy
    hashes = [h for (h,) in sqlite3.connect(path).execute("SELECT policy_hash FROM evaluations")]
    assert len(hashes) == len(set(hashes)) == len(full_store)


def test_store_round_trip_and_corrupt_file(setup, tmp_path: Path) -> None:
    space, evaluator = setup
    store = TrialStore(tmp_path / "s.sqlite")
    result = evaluator(space.uniform(0.3))
    store.add(result, "manual", 0)
    store.add(result, "manual", 0)  # the same policy again is not stored twice
    assert len(store) == 1 and store.get(result.policy_hash) == result and store.best() == result
    store.set_run_config({"budget": "0.4flops", "seed": 1})
    assert TrialStore(tmp_path / "s.sqlite").run_config() == {"budget": "0.4flops", "seed": 1}
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match="not a usable trial store"):
        TrialStore(bad)


def test_stored_policies_rebuild_to_exactly_the_evaluated_model(setup, tmp_path: Path) -> None:
    """Policies sit on the budget boundary, at channel-rounding steps: stored ratios must be exact."""
    space, evaluator = setup
    store = TrialStore(tmp_path / "exact.sqlite")
    run_search(make_searcher("random", space, seed=11), evaluator, store, evals=6)
    x = space.analysis.example_input
    for result in TrialStore(tmp_path / "exact.sqlite").results():
        assert count_cost(space.analysis.apply(result.policy), x).macs == result.macs
        assert result.feasible


def test_store_from_before_screening_still_resumes(setup, tmp_path: Path) -> None:
    """Stores written before the `complete` column existed open, keep their rows and count them as fully scored."""
    from autoprune.run.store import _SCHEMA

    space, evaluator = setup
    path = tmp_path / "old.sqlite"
    store = TrialStore(path)
    result = evaluator(space.uniform(0.3))
    store.add(result, "uniform", 0)
    store.close()
    old = sqlite3.connect(path)  # rebuild the table without the column, as the earlier version wrote it
    old.executescript("ALTER TABLE evaluations RENAME TO t; "
                      + _SCHEMA.replace(",\n    complete INTEGER NOT NULL DEFAULT 1", "")
                               .replace(",\n    kind TEXT NOT NULL DEFAULT 'candidate'", "")
                      + "INSERT INTO evaluations SELECT seq, policy_hash, policy, score, reward, macs, params, "
                        "flops_ratio, params_ratio, feasible, wall_time, searcher, seed, finished_at, result FROM t; "
                        "DROP TABLE t;")
    old.close()
    reopened = TrialStore(path)
    assert len(reopened) == 1 and reopened.best() == result


def test_repeated_policies_are_told_again_but_not_counted_or_evaluated_twice(setup, tmp_path: Path) -> None:
    """A GA's unchanged children, say: the budget of evaluations goes to distinct policies only."""
    from autoprune.searchers.algorithms import RandomSearcher

    class Repeating(RandomSearcher):
        told = 0

        def propose(self, n: int) -> list[tuple[list[float], None]]:
            fresh = super().propose(1)
            return fresh + fresh  # every batch asks one new policy twice

        def learn(self, told) -> None:
            self.told += len(told)

    space, evaluator = setup
    counting = Counting(evaluator)
    searcher = Repeating(space, seed=5)
    store = TrialStore(tmp_path / "s.sqlite")
    outcome = run_search(searcher, counting, store, evals=4, batch_size=2)
    assert outcome.evaluations == 4 and counting.calls == 4 == len(store)
    assert searcher.told == 8
