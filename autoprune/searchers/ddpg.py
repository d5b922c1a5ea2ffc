"""AMC's DDPG agent (He et al. 2018) through CompressionEnv, on stable-baselines3's DDPG.

AMC's recipe: warm-up episodes with random actions, then the actor's action plus truncated-normal noise whose
sigma decays per episode; the episode's reward is shared by every step; discount 1; a moving-average reward
baseline; one gradient step per layer after each episode. DDPG rather than TD3: it is AMC's agent, and with a
few hundred episodes TD3's delayed, twin-critic updates only slow learning down.

stable-baselines3 owns the networks, the replay buffer and the update; we drive the episodes ourselves so that
they fit ask/tell: `ask(n)` rolls out n episodes side by side with the current actor, through SB3's vectorised env
over n copies of CompressionEnv (one per worker; the env's clipping keeps each within the budget); each episode
ends on a policy that the runtime's pool evaluates, and `tell` stores the transitions with the rewards and trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field
from scipy.stats import truncnorm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from autoprune.compat.sb3_internals import TwoRateDDPG
from autoprune.problem import CompressionEnv
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import PrivateRandomState, Searcher, SearcherSettings, Told


class BaselineReplayBuffer(ReplayBuffer):
    """A replay buffer that hands out rewards minus a moving-average baseline (AMC's reward normalisation)."""

    baseline = 0.0

    def sample(self, batch_size: int, env=None):
        samples = super().sample(batch_size, env)
        return samples._replace(rewards=samples.rewards - self.baseline)


class DDPGSearcher(Searcher):
    """One episode of CompressionEnv per policy."""

    name = "ddpg"

    class Settings(SearcherSettings):
        """AMC's DDPG agent (He et al. 2018) on stable-baselines3 (autoprune.searchers.ddpg.DDPGSearcher), one
        CompressionEnv episode per evaluation. Defaults follow the AMC paper; the warm-up is scaled to 200
        evaluations (AMC: 100 warm-up episodes of 400)."""

        warmup_episodes: int = Field(50, ge=0, description="episodes with uniformly random pruning ratios before the "
                                                           "actor acts")
        noise_sigma: float = Field(0.5, gt=0, description="truncated-normal exploration noise around the actor's "
                                                          "ratio")
        noise_decay: float = Field(0.95, gt=0, le=1, description="the noise's sigma shrinks by this factor per "
                                                                 "episode after the warm-up")
        hidden: list[int] = Field(default_factory=lambda: [300, 300], min_length=1,
                                  description="actor and critic hidden layers")
        actor_lr: float = Field(1e-4, gt=0, description="the actor's learning rate")
        critic_lr: float = Field(1e-3, gt=0, description="the critic's learning rate")
        tau: float = Field(0.01, gt=0, le=1, description="soft target-network update")
        batch_size: int = Field(64, ge=1, description="transitions per gradient step")
        buffer_episodes: int = Field(100, ge=1, description="replay buffer size in episodes (times the number of "
                                                            "groups in transitions)")
        discount: float = Field(1.0, ge=0, le=1, description="the reward is shared by every step of an episode, "
                                                             "undiscounted")
        baseline_alpha: float = Field(0.5, ge=0, lt=1, description="moving-average reward baseline subtracted from "
                                                                   "sampled rewards")
        fill_budget: bool = Field(True, description="grow an episode's policy onto the budget boundary, as every "
                                                    "searcher's is")

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        s = self.settings
        self.env = CompressionEnv(space)
        self._random = PrivateRandomState(seed)
        with self._random.active():
            self.agent = TwoRateDDPG(
                "MlpPolicy", self.env, actor_lr=s.actor_lr, critic_lr=s.critic_lr,
                buffer_size=s.buffer_episodes * space.size, learning_starts=0, batch_size=s.batch_size, tau=s.tau,
                gamma=s.discount, replay_buffer_class=BaselineReplayBuffer, policy_kwargs={"net_arch": list(s.hidden)},
                seed=seed, device="cpu",
            )
            self.agent.set_logger(configure(None, [""]))
        self.episodes = 0  # episodes rolled out so far
        self._rewards_seen = 0
        self._vec: DummyVecEnv | None = None

    def _vec_env(self, n: int) -> DummyVecEnv:
        """n copies of CompressionEnv stepped together (SB3's vectorised env): one episode per worker."""
        if self._vec is None or self._vec.num_envs != n:
            self._vec = DummyVecEnv([lambda: CompressionEnv(self.space)] * n)
        return self._vec

    def _ratios(self, observations: np.ndarray, uniforms: Sequence[float]) -> list[float]:
        """Each env's pruning ratio from its uniform draw: random during warm-up, else the actor's with
        truncated-normal noise (inverse CDF) whose sigma decays with the episode's number. The actor sees one
        observation at a time: a batched forward pass rounds differently, and replay must be exact."""
        s, high = self.settings, self.env.max_ratio
        ratios = []
        for i, (observation, uniform) in enumerate(zip(observations, uniforms, strict=True)):
            episode = self.episodes + i
            if episode < s.warmup_episodes:
                ratios.append(high * float(uniform))
                continue
            mean = float(self.agent.predict(observation, deterministic=True)[0][0])
            sigma = s.noise_sigma * s.noise_decay ** (episode - s.warmup_episodes)
            noisy = truncnorm.ppf(uniform, (0.0 - mean) / sigma, (high - mean) / sigma, loc=mean, scale=sigma)
            ratios.append(float(np.clip(noisy, 0.0, high)))
        return ratios

    def _episodes(self, n: int) -> list[tuple[list[float], list[tuple]]]:
        """Roll out n episodes side by side; each ends in a policy for the pool to evaluate (its reward comes
        with `tell`). Every episode has one step per group, so all end together."""
        vec = self._vec_env(n)
        # each episode's draws come from its own stretch of the stream, in episode order: episodes rolled out
        # together get what they would one after another, so a resumed run retraces a stop's shorter last batch
        uniforms = [self.rng.random(self.space.size) for _ in range(n)]
        observations = vec.reset()
        transitions: list[list[tuple]] = [[] for _ in range(n)]
        policies: list[list[float] | None] = [None] * n
        while any(policy is None for policy in policies):
            step = len(transitions[0])
            ratios = self._ratios(observations, [draws[step] for draws in uniforms])
            following, _, dones, infos = vec.step(np.array(ratios, dtype=np.float32).reshape(n, 1))
            for i, (done, info) in enumerate(zip(dones, infos, strict=True)):
                reached = info["terminal_observation"] if done else following[i]  # the vec env resets on done
                executed = 1.0 - info["keep"]  # what the wall let through is what shaped the outcome
                transitions[i].append((observations[i], reached, executed, bool(done)))
                if done:
                    policies[i] = self.space.project(info["policy"]) if self.settings.fill_budget else info["policy"]
            observations = following
        self.episodes += n
        return list(zip(policies, transitions, strict=True))

    def propose(self, n: int) -> list[tuple[list[float], list[tuple]]]:
        """Each policy's note is its episode's transitions, stored with the reward once it is told."""
        with self._random.active():
            return self._episodes(n)

    def learn(self, told: list[Told]) -> None:
        buffer: BaselineReplayBuffer = self.agent.replay_buffer
        with self._random.active():
            for _, transitions, result in told:
                reward = float(result.reward)
                alpha = self.settings.baseline_alpha if self._rewards_seen else 0.0
                buffer.baseline = alpha * buffer.baseline + (1 - alpha) * reward
                self._rewards_seen += 1
                for observation, following, executed, done in transitions:
                    action = self.agent.policy.scale_action(np.array([[executed]], dtype=np.float32))
                    buffer.add(observation[None], following[None], action, np.array([reward]), np.array([done]),
                               [{}])
            if self.episodes > self.settings.warmup_episodes:
                steps = sum(len(t.note) for t in told)
                self.agent.train(gradient_steps=steps, batch_size=self.settings.batch_size)
