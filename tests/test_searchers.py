"""What each searcher promises beyond ask/tell: GA elitism, DDPG learning through the env, TPE's study,
multi-fidelity screening, and agent configs whose documented defaults are the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.vec_env import DummyVecEnv

from autoprune.problem import CompressionEnv
from autoprune.searchers import AGENTS, TrialStore, make_searcher, run_search, searcher_class
from autoprune.searchers.screening import Screening

AGENTS_DIR = Path(__file__).resolve().parent.parent / "agents"


@pytest.fixture(scope="module")
def setup(trained_digits_resnet, digits, search_setup):
    space, evaluator = search_setup(trained_digits_resnet, digits, screen_images=50)
    return space, evaluator


@pytest.mark.parametrize("name", [n for n in AGENTS if n not in ("uniform", "random")])
def test_agent_yaml_documents_the_real_defaults(name: str) -> None:
    documented = yaml.safe_load((AGENTS_DIR / f"{name}.yaml").read_text())
    assert documented == searcher_class(name).Settings().model_dump()


def test_ga_keeps_its_elite_and_never_re_evaluates_it(setup) -> None:
    space, evaluator = setup
    ga = make_searcher("ga", space, seed=2, population=6, elite=2)
    seen, best_per_generation = set(), []
    for _ in range(4):  # four generations
        generation = ga.generation
        while ga.generation == generation or ga._pending or ga._asked:
            policies = ga.ask(3)
            if not policies:
                break
            assert not {tuple(p) for p in policies} & seen  # elites and unchanged copies are not asked again
            seen.update(tuple(p) for p in policies)
            ga.tell(policies, [evaluator(p) for p in policies])
            if not ga._pending and not ga._asked:
                break
        best_per_generation.append(max(i.fitness.values[0] for i in ga.population))
        assert all(space.feasible(list(i)) for i in ga.population)
    assert best_per_generation == sorted(best_per_generation)  # elitism: the best never gets worse


def test_anneal_runs_one_chain_per_worker(setup) -> None:
    space, evaluator = setup
    anneal = make_searcher("anneal", space, seed=1)
    first = anneal.ask(3)
    assert first[0] == space.project(space.uniform(1.0))  # every chain starts from uniform or its neighbour
    anneal.tell(first, [evaluator(p) for p in first])
    assert [chain[0] for chain in anneal.chains] == first
    for _ in range(4):
        before = [chain[0] for chain in anneal.chains]
        moves = anneal.ask(3)
        results = [evaluator(p) for p in moves]
        anneal.tell(moves, results)
        for i, (policy, result) in enumerate(zip(moves, results, strict=True)):
            assert anneal.chains[i][0] in (before[i], policy)  # a chain moves only to its own proposal
            if anneal.chains[i][0] == policy:
                assert anneal.chains[i][1] == result.reward
    single = make_searcher("anneal", space, seed=1)
    assert single.ask(1) == [first[0]]  # one worker: the classic single chain, from uniform


def test_ddpg_explores_then_learns_from_shared_episode_rewards(setup) -> None:
    space, evaluator = setup
    ddpg = make_searcher("ddpg", space, seed=0, warmup_episodes=3, batch_size=8)
    actor_before = [p.clone() for p in ddpg.agent.actor.parameters()]
    for _ in range(3):  # warm-up: random actions, no training
        policies = ddpg.ask(1)
        ddpg.tell(policies, [evaluator(p) for p in policies])
    assert all(torch.equal(a, b) for a, b in zip(actor_before, ddpg.agent.actor.parameters(), strict=True))
    buffer = ddpg.agent.replay_buffer
    assert buffer.size() == 3 * space.size  # every step of every episode stored
    rewards = buffer.rewards[: buffer.size(), 0].reshape(3, space.size)
    assert np.all(rewards == rewards[:, :1])  # the episode's reward is shared by all its steps
    policies = ddpg.ask(2)
    ddpg.tell(policies, [evaluator(p) for p in policies])
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, ddpg.agent.actor.parameters(), strict=True))
    assert all(space.feasible(p) for p in policies)


def test_ddpg_rolls_out_one_env_per_worker_through_a_vectorised_env(setup) -> None:
    """ask(3) steps 3 envs of SB3's vectorised env side by side and proposes exactly what 3 asks of one would,
    so a resumed search retraces the shorter last batch an interrupted run may have asked."""
    space, evaluator = setup
    together, alone = (make_searcher("ddpg", space, seed=5, warmup_episodes=1, batch_size=8) for _ in range(2))
    for ddpg in (together, alone):  # past the warm-up and trained once: the actor's means shape the policies
        policies = ddpg.ask(2)
        ddpg.tell(policies, [evaluator(p) for p in policies])
    side_by_side = together.ask(3)
    assert isinstance(together._vec, DummyVecEnv) and together._vec.num_envs == 3
    assert side_by_side == [alone.ask(1)[0] for _ in range(3)]
    assert len({tuple(p) for p in side_by_side}) == 3 and all(space.feasible(p) for p in side_by_side)


def test_tpe_study_holds_every_told_result(setup) -> None:
    space, evaluator = setup
    tpe = make_searcher("tpe", space, seed=1, startup_trials=2)
    told = []
    for _ in range(3):
        policies = tpe.ask(2)
        results = [evaluator(p) for p in policies]
        tpe.tell(policies, results)
        told += [r.reward for r in results]
    assert [t.value for t in tpe.study.trials] == told
    assert all(space.feasible(p) for p in policies)


def test_env_without_evaluator_hands_back_the_policy(setup) -> None:
    space, _ = setup
    env = CompressionEnv(space)
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, reward, done, _, info = env.step(np.array([0.5], dtype=np.float32))
    assert reward == 0.0 and len(info["policy"]) == space.size and space.feasible(info["policy"])


def test_screening_scores_only_promising_candidates_in_full(setup, tmp_path: Path) -> None:
    space, evaluator = setup
    policy = space.uniform(0.4)
    stopped, promoted = evaluator(policy, screen_threshold=np.inf), evaluator(policy, screen_threshold=-np.inf)
    assert not stopped.complete and stopped.score == stopped.screen_score
    assert promoted.complete and promoted.screen_score == stopped.screen_score
    assert promoted.score == evaluator(policy).score  # full fidelity is the ordinary evaluation

    store = TrialStore(tmp_path / "screened.sqlite")
    outcome = run_search(make_searcher("random", space, seed=5), evaluator, store, evals=14,
                         screening=Screening(eta=3, warmup=4))
    results = store.results()
    assert all(r.complete for r in results[:4])  # warm-up: scored in full
    assert any(not r.complete for r in results[4:])
    assert outcome.best.complete and store.best() == outcome.best
    assert outcome.best.reward == max(r.reward for r in results if r.complete)
