"""What each searcher promises beyond ask/tell: GA elitism, DDPG learning through the env, TPE's study,
multi-fidelity screening, and agent configs whose documented defaults are the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.vec_env import DummyVecEnv

from autoprune.app.loop import run_search
from autoprune.evaluation.screening import Screening
from autoprune.problem import CompressionEnv
from autoprune.run.store import TrialStore
from autoprune.searchers import AGENTS, make_searcher, searcher_class

AGENTS_DIR = Path(__file__).resolve().parent.parent / "agents"


@pytest.fixture(scope="module")
def setup(trained_digits_resnet, digits, search_setup):
    space, evaluator = search_setup(trained_digits_resnet, digits, screen_images=50)
    return space, evaluator


def evaluate(evaluator, proposals) -> dict:
    """Each proposal's result, keyed by its trial number as `tell` takes them."""
    return {p.trial: evaluator(p.policy) for p in proposals}


@pytest.mark.parametrize("name", ["tpe", "ga", "anneal", "ddpg"])
def test_results_are_learned_by_trial_number_in_the_order_asked(setup, name: str) -> None:
    """The runtime hands results back as workers finish: told in any order, a searcher learns the same."""
    space, evaluator = setup
    in_order, shuffled = (make_searcher(name, space, seed=4) for _ in range(2))
    for _ in range(2):
        asked = [in_order.ask(3), shuffled.ask(3)]
        assert [p.policy for p in asked[0]] == [p.policy for p in asked[1]]
        results = evaluate(evaluator, asked[0])
        in_order.tell(results)
        shuffled.tell({p.trial: results[p.trial] for p in reversed(asked[1])})
    assert [p.policy for p in in_order.ask(3)] == [p.policy for p in shuffled.ask(3)]
    assert in_order.outstanding == 3
    some = next(iter(results.values()))
    with pytest.raises(ValueError, match=r"trials \[99\] were never asked"):
        in_order.tell({99: some})
    with pytest.raises(ValueError, match=r"trials \[0\] were never asked for or were told already"):
        in_order.tell({0: some})


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
        while ga.generation == generation or ga._pending or ga.outstanding:
            proposals = ga.ask(3)
            if not proposals:
                break
            assert not {tuple(p.policy) for p in proposals} & seen  # elites and unchanged copies: not asked again
            seen.update(tuple(p.policy) for p in proposals)
            ga.tell(evaluate(evaluator, proposals))
            if not ga._pending and not ga.outstanding:
                break
        best_per_generation.append(max(i.fitness.values[0] for i in ga.population))
        assert all(space.feasible(list(i)) for i in ga.population)
    assert best_per_generation == sorted(best_per_generation)  # elitism: the best never gets worse


def test_anneal_runs_one_chain_per_worker(setup) -> None:
    space, evaluator = setup
    anneal = make_searcher("anneal", space, seed=1)
    first = [p.policy for p in anneal.ask(3)]
    assert first[0] == space.project(space.uniform(1.0))  # every chain starts from uniform or its neighbour
    anneal.tell({trial: evaluator(p) for trial, p in enumerate(first)})
    assert [chain[0] for chain in anneal.chains] == first
    for _ in range(4):
        before = [chain[0] for chain in anneal.chains]
        moves = anneal.ask(3)
        results = evaluate(evaluator, moves)
        anneal.tell(results)
        for i, move in enumerate(moves):
            assert anneal.chains[i][0] in (before[i], move.policy)  # a chain moves only to its own proposal
            if anneal.chains[i][0] == move.policy:
                assert anneal.chains[i][1] == results[move.trial].reward
    single = make_searcher("anneal", space, seed=1)
    assert [p.policy for p in single.ask(1)] == [first[0]]  # one worker: the classic single chain, from uniform


def test_ddpg_explores_then_learns_from_shared_episode_rewards(setup) -> None:
    space, evaluator = setup
    ddpg = make_searcher("ddpg", space, seed=0, warmup_episodes=3, batch_size=8)
    actor_before = [p.clone() for p in ddpg.agent.actor.parameters()]
    for _ in range(3):  # warm-up: random actions, no training
        ddpg.tell(evaluate(evaluator, ddpg.ask(1)))
    assert all(torch.equal(a, b) for a, b in zip(actor_before, ddpg.agent.actor.parameters(), strict=True))
    buffer = ddpg.agent.replay_buffer
    assert buffer.size() == 3 * space.size  # every step of every episode stored
    rewards = buffer.rewards[: buffer.size(), 0].reshape(3, space.size)
    assert np.all(rewards == rewards[:, :1])  # the episode's reward is shared by all its steps
    proposals = ddpg.ask(2)
    ddpg.tell(evaluate(evaluator, proposals))
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, ddpg.agent.actor.parameters(), strict=True))
    assert all(space.feasible(p.policy) for p in proposals)


def test_ddpg_rolls_out_one_env_per_worker_through_a_vectorised_env(setup) -> None:
    """ask(3) steps 3 envs of SB3's vectorised env side by side and proposes exactly what 3 asks of one would,
    so a resumed search retraces the shorter last batch an interrupted run may have asked."""
    space, evaluator = setup
    together, alone = (make_searcher("ddpg", space, seed=5, warmup_episodes=1, batch_size=8) for _ in range(2))
    for ddpg in (together, alone):  # past the warm-up and trained once: the actor's means shape the policies
        ddpg.tell(evaluate(evaluator, ddpg.ask(2)))
    side_by_side = [p.policy for p in together.ask(3)]
    assert isinstance(together._vec, DummyVecEnv) and together._vec.num_envs == 3
    assert side_by_side == [alone.ask(1)[0].policy for _ in range(3)]
    assert len({tuple(p) for p in side_by_side}) == 3 and all(space.feasible(p) for p in side_by_side)


def test_tpe_study_holds_every_told_result(setup) -> None:
    space, evaluator = setup
    tpe = make_searcher("tpe", space, seed=1, startup_trials=2)
    told = []
    for _ in range(3):
        proposals = tpe.ask(2)
        results = evaluate(evaluator, proposals)
        tpe.tell(results)
        told += [results[p.trial].reward for p in proposals]
    assert [t.value for t in tpe.study.trials] == told
    assert all(space.feasible(p.policy) for p in proposals)


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
