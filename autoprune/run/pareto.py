"""The Pareto front of points that trade a cost (fewer is better) against a value (more is better)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def pareto_front(items: Iterable[T], cost: Callable[[T], float], value: Callable[[T], float]) -> list[T]:
    """The items no other item beats on both cost (lower) and value (higher), by increasing cost."""
    front: list[T] = []
    best = float("-inf")
    for item in sorted(items, key=lambda i: (cost(i), -value(i))):
        if value(item) > best:
            front.append(item)
            best = value(item)
    return front
