"""CompressionEnv: passes gymnasium's checker; every episode meets the budget; reward comes from the evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from autoprune.budget import Budget
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator
from autoprune.models import example_input
from autoprune.problem import OBSERVATION_FIELDS, CompressionEnv, SearchSpace


@pytest.fixture(scope="module")
def env(trained_digits_resnet, digits):
    analysis = analyse(trained_digits_resnet, example_input(1, 8))
    budget = Budget.parse("0.3flops")
    evaluator = Evaluator(analysis, digits, budget, heldout_images=100, recalibration_batches=2)
    return CompressionEnv(SearchSpace(analysis, budget), evaluator)


def test_gymnasium_env_checker_passes(env) -> None:
    check_env(env, skip_render_check=True)


def test_every_episode_meets_the_budget_and_is_rewarded_at_the_end(env) -> None:
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        assert obs.shape == (len(OBSERVATION_FIELDS),) and obs[0] == 0.0
        rewards, done = [], False
        while not done:
            action = rng.uniform(0, env.max_ratio, 1).astype(np.float32) * (episode != 2)  # episode 2: keep all
            obs, reward, done, truncated, info = env.step(action)
            assert env.observation_space.contains(obs) and not truncated
            assert info["keep"] <= info["requested_keep"] + 1e-9 or info["keep"] == env.space.min_keep
            rewards.append(reward)
        result = info["result"]
        assert result.feasible and result.flops_ratio <= 0.3
        assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == result.reward
        assert len(rewards) == env.space.size
