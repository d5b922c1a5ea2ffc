"""Compute budgets such as `0.25flops`, `25%flops`, `0.5params`, `0.5latency`, `3ms` or `0.25flops,0.5params`.

FLOPs, params and `latency` budgets are fractions of the dense model; `ms` is absolute. Latency is the
deployment target's (engine.target): predicted by the latency model while searching, measured on the target for
the delivered model. One Budget both checks a slim model and tells searchers how far they may prune.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autoprune.errors import InputError

_PART = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<percent>%)?\s*"
                   r"(?P<unit>flops|macs|params|latency|ms)\s*$", re.IGNORECASE)
_EXAMPLES = "e.g. 0.25flops, 25%flops, 0.5params, 0.5latency, 3ms or 0.25flops,0.5latency"


@dataclass(frozen=True)
class Constraint:
    """One limit: `flops`, `params` or `latency` as a fraction of the dense model, or `latency` in seconds where
    `absolute`."""

    metric: str
    limit: float
    absolute: bool = False

    def __str__(self) -> str:
        return f"{self.limit * 1e3:g}ms" if self.absolute else f"{self.limit:g}{self.metric}"


@dataclass(frozen=True)
class Budget:
    """All constraints a slim model must meet."""

    constraints: tuple[Constraint, ...]

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parse a budget string; malformed or impossible values raise an InputError naming the fix."""
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"empty budget; write one such as {_EXAMPLES}")
        constraints: dict[str, Constraint] = {}
        for part in text.split(","):
            match = _PART.match(part)
            if match is None:
                raise InputError(f"malformed budget {text!r} (at {part.strip()!r}); write {_EXAMPLES}")
            number = float(match["number"])
            unit = match["unit"].lower()
            if unit == "ms":
                if match["percent"] or number <= 0:
                    raise InputError(f"latency budget {part.strip()!r} must be a positive number of ms, e.g. 3ms")
                constraint = Constraint("latency", number / 1e3, absolute=True)
            else:
                fraction = number / 100 if match["percent"] else number
                if not 0 < fraction <= 1:
                    raise InputError(f"budget {part.strip()!r} must keep a fraction in (0, 1] of the dense model "
                                     "(e.g. 0.25flops or 25%flops)")
                constraint = Constraint("flops" if unit in ("flops", "macs") else unit, fraction)
            if constraint.metric in constraints:
                raise InputError(f"budget {text!r} limits {constraint.metric} twice; give each metric once")
            constraints[constraint.metric] = constraint
        return cls(tuple(constraints.values()))

    def limit(self, metric: str) -> float | None:
        """The limit on `metric` ('flops', 'params' or 'latency'), or None if unconstrained."""
        return next((c.limit for c in self.constraints if c.metric == metric), None)

    def latency_text(self, latency_seconds: float, dense_latency_seconds: float) -> str:
        """A latency written as this budget limits it: a fraction of the dense model's, or milliseconds."""
        absolute = any(c.absolute for c in self.constraints)
        return f"{latency_seconds * 1e3:.3f}ms" if absolute else f"{latency_seconds / dense_latency_seconds:.4f}latency"

    def satisfied(self, flops_fraction: float, params_fraction: float, latency_seconds: float | None = None,
                  dense_latency_seconds: float | None = None) -> bool:
        """Whether a slim model with these costs meets every constraint (a latency fraction needs the dense
        model's latency too)."""
        for c in self.constraints:
            if c.metric == "latency":
                if latency_seconds is None or (not c.absolute and dense_latency_seconds is None):
                    raise ValueError(f"budget {self} needs a latency measurement")
                value = latency_seconds if c.absolute else latency_seconds / dense_latency_seconds
            else:
                value = flops_fraction if c.metric == "flops" else params_fraction
            if value > c.limit * (1 + 1e-9):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(c) for c in self.constraints)
