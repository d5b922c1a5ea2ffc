"""Contract tests of the other libraries' internals autoprune relies on (autoprune/compat/): each fails with a message
naming the module to mend when an upgrade of Torch-Pruning, Ray or stable-baselines3 changes what it reads or
writes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import version

import numpy as np
import pytest
import torch
from torch import nn


@contextlib.contextmanager
def contract(library: str, module: str, what: str) -> Iterator[None]:
    """Turn any failure inside into one message: which library changed what, and which module to mend."""
    try:
        yield
    except Exception as exc:  # an AttributeError, a changed value, an assertion: all the same contract broken
        pytest.fail(f"{library} {version(library)} changed {what} ({type(exc).__name__}: {exc}); "
                    f"mend autoprune/compat/{module}.py", pytrace=False)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.body(x) * self.scale
        return self.head(x.mean((2, 3)))


def test_torch_pruning_groups_members_and_handlers_are_as_read() -> None:
    from autoprune.compat import tp_internals as tpi

    model = Residual().eval()
    x = torch.randn(2, 1, 6, 6)
    with contract("torch-pruning", "tp_internals", "its dependency graph, groups or node types"):
        graph = tpi.build_graph(model, x, [])
        assert tpi.output_layers(graph, (nn.Conv2d, nn.Linear)) == [model.head]
        groups = tpi.all_groups(graph, [model.head], (nn.Conv2d, nn.Linear))
        (group,) = groups  # the residual add couples stem, BatchNorm, body, scale and head
        assert tpi.group_root(group) in (model.stem, model.body)
        members = tpi.members(group)
        targets = {id(m.target): m for m in members}
        assert {id(model.stem), id(model.bn), id(model.body), id(model.head), id(model.scale)} <= targets.keys()
        assert targets[id(model.scale)].kind == "parameter" and targets[id(model.stem)].kind == "module"
        assert tpi.out_channels(graph, model.stem) == 8
        assert tpi.prunes_out(graph, targets[id(model.stem)].handler)
        assert tpi.prunes_in(graph, targets[id(model.head)].handler)
        assert not tpi.prunes_out(graph, targets[id(model.head)].handler)
        assert all(len(m.indices) == len(m.roots) == 8 for m in members)
    with contract("torch-pruning", "tp_internals", "its pruning handlers (pruning_dim, call signature)"):
        conv = nn.Conv2d(1, 8, 3)
        stem_member = targets[id(model.stem)]
        tpi.run_handler(stem_member.handler, stem_member.pruning_dim, conv, [0, 5])
        assert conv.out_channels == 6 and conv.weight.shape[0] == 6
        scale_member = targets[id(model.scale)]
        pruned = tpi.run_handler(scale_member.handler, scale_member.pruning_dim, nn.Parameter(torch.ones(1, 8, 1, 1)),
                                 [1])
        assert pruned.shape == (1, 7, 1, 1)


def test_ray_keeps_its_cluster_switch_and_dashboard_check_where_they_are_read() -> None:
    from autoprune.compat import ray_internals

    with contract("ray", "ray_internals", "ray._private.ray_constants.ENABLE_RAY_CLUSTER"):
        from ray._private import ray_constants

        before = ray_constants.ENABLE_RAY_CLUSTER
        assert isinstance(before, bool)
        with ray_internals.loopback_only():
            assert ray_constants.ENABLE_RAY_CLUSTER is False
        assert ray_constants.ENABLE_RAY_CLUSTER is before
    with contract("ray", "ray_internals", "ray._private.utils.get_dashboard_dependency_error"):
        assert ray_internals.dashboard_dependency_error() is None  # the dev extras install ray[default]


def test_stable_baselines3_calls_the_learning_rate_hook_before_training() -> None:
    import gymnasium as gym
    from stable_baselines3.common.logger import configure

    from autoprune.compat.sb3_internals import TwoRateDDPG

    with contract("stable_baselines3", "sb3_internals", "DDPG's private _update_learning_rate hook"):
        agent = TwoRateDDPG("MlpPolicy", gym.make("Pendulum-v1"), actor_lr=1e-4, critic_lr=1e-3, learning_starts=0,
                            batch_size=4, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
        agent.set_logger(configure(None, [""]))
        rng = np.random.default_rng(0)
        for _ in range(8):
            observation = rng.standard_normal((1, 3)).astype(np.float32)
            agent.replay_buffer.add(observation, observation, np.zeros((1, 1), np.float32), np.array([1.0]),
                                    np.array([False]), [{}])
        agent.train(gradient_steps=1, batch_size=4)
        assert [g["lr"] for g in agent.actor.optimizer.param_groups] == [1e-4]
        assert [g["lr"] for g in agent.critic.optimizer.param_groups] == [1e-3]


def test_other_libraries_internals_are_touched_only_in_compat() -> None:
    from pathlib import Path

    import autoprune

    package = Path(autoprune.__file__).parent
    internals = ["ray._private", "module2node", "OPTYPE", ".dep.", "pruning_dim =", "def _update_learning_rate"]
    found = [f"{path.relative_to(package)}: {marker}" for path in sorted(package.rglob("*.py"))
             if path.parent.name != "compat" for marker in internals if marker in path.read_text()]
    assert not found, f"move these into autoprune/compat/: {found}"
