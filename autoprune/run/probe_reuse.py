"""Read an earlier run's sensitivity probes for `--probes-from` (what makes them reusable, and the check that they
are: autoprune.problem.probes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoprune.errors import RunDirectoryError
from autoprune.evaluation import Evaluator, Fidelity, Result
from autoprune.problem.probes import check_reusable
from autoprune.run.directory import STORE_NAME
from autoprune.run.store import TrialStore


def reused_probes(source: str, settings: dict[str, Any], fingerprint: str, evaluator: Evaluator,
                  dense_policy: list[float], fidelity: Fidelity,
                  searcher_probed_alike: Callable[[dict[str, Any]], bool] = lambda stored: False,
                  ) -> dict[str, Result]:
    """The sensitivity probes stored in the run directory `source`, {policy hash: result}, judged under this run's
    budget and reward, the dense model's scored again here (`fidelity`: how a probe is scored). Raises a one-line
    error when that run's probes would not be this run's.

    The probes scored before that run's search count, and so do its sensitivity searcher's (stored among its
    evaluations) when `searcher_probed_alike(that run's settings)` says it scored probes at `fidelity`."""
    path = Path(source) / STORE_NAME
    if not path.is_file():
        raise RunDirectoryError(f"{source!r} ($probes_from) holds no run (no {STORE_NAME}); name the run directory "
                                "of an earlier search of this model")
    store = TrialStore(path, read_only=True)
    try:
        stored = store.run_config()
        probes = [r for _, r in store.trained_results("probe")]
        if searcher_probed_alike(stored):  # a screened row holds its screening score, not its probe's
            probes += [r for r in store.results("probe") if r.screen_score is None]
    finally:
        store.close()
    dense = evaluator(dense_policy, fidelity)
    check_reusable(source, stored, settings, fingerprint, probes, dense)
    return {**{r.policy_hash: evaluator.judged(r) for r in probes}, dense.policy_hash: dense}
