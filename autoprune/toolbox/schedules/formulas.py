"""The sparsity curves of the pruning schedules, as plain functions of the training step."""

from __future__ import annotations


def agp_sparsity(step: int, initial: float, final: float, start: int, end: int, frequency: int) -> float:
    """Automated gradual pruning (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(nΔt))³, with t held
    at the last pruning step t0 + kΔt; `initial` before `start`, `final` from `end` on (end = t0 + nΔt)."""
    if step < start:
        return initial
    if step >= end:
        return final
    held = start + (step - start) // frequency * frequency
    return final + (initial - final) * (1 - (held - start) / (end - start)) ** 3


def is_pruning_step(step: int, start: int, end: int, frequency: int) -> bool:
    """True at t0, t0 + Δt, ... before `end`, and at `end` itself (where the final sparsity is reached)."""
    return step == end or (start <= step < end and (step - start) % frequency == 0)


def lottery_round_fraction(final: float, rounds: int) -> float:
    """The share of the weights still left that each of `rounds` rounds prunes to reach `final` sparsity:
    1 - (1 - P)^(1/n) (Frankle & Carbin 2019)."""
    return 1 - (1 - final) ** (1 / rounds)


def lottery_sparsity_after(round_index: int, final: float, rounds: int) -> float:
    """Overall sparsity after `round_index` (1-based) rounds: 1 - (1 - P)^(r/n)."""
    return 1 - (1 - final) ** (round_index / rounds)
