"""CompressionEnv: AMC's layer-by-layer MDP (He et al. 2018) as a gymnasium environment.

One episode walks the prunable channel groups in network order. At each step the agent sees a normalised
embedding of the group and picks its pruning ratio; the ratio is clipped by the budget "wall" (the most the
group may keep while every later group can still shrink to its least), so every finished episode meets the
budget. The reward, given at the last step, is the evaluator's reward for the whole policy. Without an evaluator
the episode ends with reward 0 and the policy in `info["policy"]`, for agents that evaluate in batches (the
DDPG searcher asks for whole episodes and learns their rewards when told).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from torch import nn

from autoprune.engine import count_cost
from autoprune.evaluation import Result
from autoprune.problem.space import SearchSpace

OBSERVATION_FIELDS = (
    "index", "type", "in_channels", "out_channels", "stride", "kernel", "params", "macs",
    "macs_removed", "macs_remaining", "previous_action",
)


class CompressionEnv(gym.Env):
    """Observation: 11 values in [0, 1] (OBSERVATION_FIELDS). Action: pruning ratio in [0, max_ratio]."""

    metadata = {"render_modes": []}

    def __init__(self, space: SearchSpace, evaluate: Callable[[list[float]], Result] | None = None) -> None:
        super().__init__()
        self.space = space
        self.evaluate = evaluate
        self.max_ratio = float(1.0 - space.min_keep)
        self.action_space = gym.spaces.Box(0.0, self.max_ratio, shape=(1,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(len(OBSERVATION_FIELDS),), dtype=np.float32)
        self._static = self._layer_features()
        self._keeps: list[float] = []
        self.last_result: Result | None = None

    def _layer_features(self) -> np.ndarray:
        """Per group: index, type, channels in/out, stride, kernel, params, MACs (all scaled to [0, 1])."""
        analysis = self.space.analysis
        rows = {r.name: r for r in count_cost(analysis.model, analysis.example_input).layers}
        modules = dict(analysis.model.named_modules())
        features = []
        n = len(analysis.groups)
        for i, group in enumerate(analysis.groups):
            root = rows[group.name]
            depthwise = any(isinstance(modules.get(name), nn.Conv2d) and rows[name].groups > 1
                            and rows[name].groups == rows[name].in_channels for name in group.layers if name in rows)
            kind = 1.0 if isinstance(modules[group.name], nn.Linear) else (0.5 if depthwise else 0.0)
            layers = [rows[name] for name in group.layers if name in rows]
            features.append([i / max(n - 1, 1), kind, root.in_channels, group.channels, max(root.stride),
                             max(root.kernel), sum(r.params for r in layers), sum(r.macs for r in layers)])
        table = np.array(features, dtype=np.float64)
        table[:, 2:] /= np.maximum(table[:, 2:].max(axis=0), 1e-12)
        return table

    def _observation(self) -> np.ndarray:
        t = len(self._keeps)
        done_part = self._keeps + [1.0] * (self.space.size - t)
        removed = 1.0 - self.space.costs.fraction(done_part)
        remaining = self._static[t:, 7].sum() / max(self._static[:, 7].sum(), 1e-12)
        previous = (1.0 - self._keeps[-1]) if self._keeps else 0.0
        obs = np.concatenate([self._static[t], [removed, remaining, previous]])
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def wall(self) -> float:
        """The most the current group may keep, given the choices so far and the least for every later group."""
        t = len(self._keeps)
        return self.space.most_keep(t, before=self._keeps, cap=float(self.space.upper[t]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._keeps = []
        self.last_result = None
        return self._observation(), {}

    def step(self, action):
        ratio = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, self.max_ratio))
        keep = min(1.0 - ratio, self.wall())
        self._keeps.append(max(keep, float(self.space.lower[len(self._keeps)])))
        info: dict[str, Any] = {"keep": self._keeps[-1], "requested_keep": 1.0 - ratio}
        if len(self._keeps) < self.space.size:
            return self._observation(), 0.0, False, False, info
        info["policy"] = list(self._keeps)
        reward = 0.0
        if self.evaluate is not None:
            self.last_result = self.evaluate(list(self._keeps))
            info["result"], reward = self.last_result, float(self.last_result.reward)
        final = np.concatenate([self._static[-1], [1.0 - self.space.costs.fraction(self._keeps), 0.0, ratio]])
        return np.clip(final, 0, 1).astype(np.float32), reward, True, False, info
