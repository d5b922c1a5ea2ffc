"""Budget strings: every documented form parses; malformed ones give a message naming the fix."""

from __future__ import annotations

import pytest

from autoprune.budget import Budget
from autoprune.errors import UserError


@pytest.mark.parametrize(("text", "expected"), [
    ("0.25flops", {"flops": 0.25}),
    ("25%flops", {"flops": 0.25}),
    ("25 % FLOPs", {"flops": 0.25}),
    ("0.5params", {"params": 0.5}),
    ("0.3macs", {"flops": 0.3}),
    ("3ms", {"latency": 0.003}),
    (".25flops,0.5params", {"flops": 0.25, "params": 0.5}),
    ("0.25flops, 50%params, 2.5ms", {"flops": 0.25, "params": 0.5, "latency": 0.0025}),
    ("0.5latency", {"latency": 0.5}),
    ("75%latency,0.3flops", {"latency": 0.75, "flops": 0.3}),
])
def test_valid_budgets(text: str, expected: dict[str, float]) -> None:
    budget = Budget.parse(text)
    assert {c.metric: c.limit for c in budget.constraints} == pytest.approx(expected)
    assert Budget.parse(str(budget)) == budget  # round-trips through its text


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty budget"), ("flops", "malformed"), ("0.25", "malformed"), ("0.25flop", "malformed"),
    ("-0.2flops", "malformed"), ("1.5flops", "(0, 1]"), ("0flops", "(0, 1]"), ("150%params", "(0, 1]"),
    ("0ms", "positive"), ("5%ms", "positive"), ("0.2flops,0.3flops", "twice"), ("0.2flops;0.3params", "malformed"),
    ("1.2latency", "(0, 1]"), ("0.5latency,3ms", "twice"),
])
def test_malformed_budgets_name_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        Budget.parse(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_satisfied_checks_every_constraint() -> None:
    budget = Budget.parse("0.25flops,0.5params")
    assert budget.satisfied(0.25, 0.5)
    assert not budget.satisfied(0.26, 0.1)
    assert not budget.satisfied(0.2, 0.51)
    assert Budget.parse("3ms").satisfied(1.0, 1.0, latency_seconds=0.0029)
    with pytest.raises(ValueError, match="latency"):
        Budget.parse("3ms").satisfied(0.1, 0.1)


def test_a_latency_fraction_is_of_the_dense_models_latency_and_milliseconds_are_absolute() -> None:
    fraction, absolute = Budget.parse("0.5latency"), Budget.parse("2ms")
    assert fraction.satisfied(1.0, 1.0, latency_seconds=0.0049, dense_latency_seconds=0.01)
    assert not fraction.satisfied(1.0, 1.0, latency_seconds=0.0051, dense_latency_seconds=0.01)
    assert absolute.satisfied(1.0, 1.0, latency_seconds=0.0019, dense_latency_seconds=0.01)
    assert fraction.latency_text(0.004, 0.01) == "0.4000latency" and absolute.latency_text(0.004, 0.01) == "4.000ms"
    with pytest.raises(ValueError, match="latency"):  # a fraction needs the dense model's latency
        fraction.satisfied(1.0, 1.0, latency_seconds=0.004)
