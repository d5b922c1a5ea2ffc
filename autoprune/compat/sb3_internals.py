"""stable-baselines3's private methods, overridden here only.

SB3 gives DDPG one learning rate for actor and critic; AMC trains them at different rates, and SB3's only place to
set a rate per optimiser is its private `_update_learning_rate` hook, called before every gradient phase. An
upgrade that renames or stops calling it fails tests/test_compat.py with a message naming this module. Tested with
stable-baselines3 2.9.
"""

from __future__ import annotations

from stable_baselines3 import DDPG


class TwoRateDDPG(DDPG):
    """stable-baselines3's DDPG with separate actor and critic learning rates (AMC's recipe)."""

    def __init__(self, *args, actor_lr: float, critic_lr: float, **kwargs) -> None:
        self.actor_lr, self.critic_lr = actor_lr, critic_lr
        super().__init__(*args, learning_rate=critic_lr, **kwargs)

    def _update_learning_rate(self, optimizers) -> None:
        for group in self.actor.optimizer.param_groups:
            group["lr"] = self.actor_lr
        for group in self.critic.optimizer.param_groups:
            group["lr"] = self.critic_lr
