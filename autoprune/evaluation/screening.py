"""Multi-fidelity screening for any searcher: one rung of asynchronous successive halving (ASHA).

Each candidate is first scored on a small slice of the held-out split; it goes on to the whole split only if
that screening score is among the top 1/eta of the screening scores seen so far. Candidates that stop early are
stored (and told to the searcher) with their screening score but never become the best result. The rule's state
is rebuilt from every answered result, cached ones included, so a resumed search screens exactly as before.
"""

from __future__ import annotations

import numpy as np

from autoprune.errors import InputError
from autoprune.evaluation import Result


class Screening:
    """Decides the screening threshold for the next candidate."""

    def __init__(self, eta: float = 3.0, warmup: int = 10) -> None:
        if eta <= 1 or warmup < 1:
            raise InputError("screening needs screen_eta > 1 and screen_warmup >= 1")
        self.eta, self.warmup = eta, warmup
        self.scores: list[float] = []

    def threshold(self) -> float:
        """The screening score a candidate needs to be scored in full (-inf while warming up)."""
        if len(self.scores) < self.warmup:
            return -np.inf
        return float(np.quantile(self.scores, 1.0 - 1.0 / self.eta))

    def record(self, result: Result) -> None:
        if result.screen_score is not None:
            self.scores.append(result.screen_score)
