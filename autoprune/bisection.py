"""The one bisection every budget fit uses: where a monotone yes/no question changes its answer."""

from __future__ import annotations

from collections.abc import Callable


def bracket(ok: Callable[[float], bool], good: float, bad: float, steps: int = 30) -> tuple[float, float]:
    """Narrow [good, bad] (either order) around the point where `ok` stops holding, `steps` halvings.

    `good` is taken to satisfy `ok` and `bad` not to (neither is checked); `ok` must change its answer once
    between them, as "meets the budget" does along a ray of policies. Returns the final (good, bad): the
    answer is `good`, the nearest point to the boundary known to satisfy `ok`.
    """
    for _ in range(steps):
        middle = (good + bad) / 2
        if ok(middle):
            good = middle
        else:
            bad = middle
    return good, bad
