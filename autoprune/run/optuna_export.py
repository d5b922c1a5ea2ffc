"""The trial store mirrored as an Optuna study, so `optuna-dashboard sqlite:///RUN/optuna.db` shows a search.

The SQLite trial store stays the record (it is written per evaluation and drives resume); this copy is rebuilt
from it at the end of every search, whatever the searcher. Params are the per-group keep ratios, the value is
the reward, and the other Result fields are user attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution

from autoprune.evaluation import Result
from autoprune.files import replacing

_ATTRIBUTES = ("score", "macs", "flops_ratio", "params", "params_ratio", "latency", "feasible", "complete",
               "kept_channels", "policy_hash", "wall_time")


def export_study(results: Sequence[Result], group_names: Sequence[str], path: Path, study_name: str) -> None:
    """Write `results` as the single study `study_name` in the SQLite file `path` (replaced atomically)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with replacing(path) as scratch:
        study = optuna.create_study(storage=f"sqlite:///{scratch}", study_name=study_name, direction="maximize")
        distributions = {name: FloatDistribution(0.0, 1.0) for name in group_names}
        study.add_trials([
            optuna.trial.create_trial(
                params=dict(zip(group_names, result.policy, strict=True)), distributions=distributions,
                value=result.reward, user_attrs={key: getattr(result, key) for key in _ATTRIBUTES},
            )
            for result in results
        ])
        del study
