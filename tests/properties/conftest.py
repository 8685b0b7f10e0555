"""Shared settings of the property suite, and its false-failure accounting (docs/methods.md §Calibration and power).

Every statistical assertion in tests/properties and tests/quality calls a public
check at level ``ALPHA``: a correct layer fails it with probability at most
``ALPHA`` (over the seeds Hypothesis draws). By the union bound the chance that
a correct library fails ANY of them is at most ``Σ_tests examples × checks ×
devices × ALPHA``. We fix that sum's ceiling first and derive ``ALPHA`` from it:

* ``SUITE_FALSE_FAILURE_BUDGET = 1e-6`` — allowed chance of any false failure
  per change of the test code (under the ``ci`` profile examples are derandomized,
  so they change only when the tests, Hypothesis or Python change: the risk
  does not accumulate per CI run);
* ``STATISTICAL_CAPACITY = 1000`` — the most statistical check calls the suite
  may make per device under the ``ci`` profile (``@example`` s included);
* ``DEVICE_MULTIPLICITY = 2`` — a run selects at most two devices (``--device all``
  on a CUDA machine runs every device test twice);
* ``ALPHA = BUDGET / (CAPACITY × DEVICE_MULTIPLICITY) = 5e-10``.

Statistical tests declare their use with :func:`statistical` (Hypothesis tests)
or :func:`register_seeded` (tests over a fixed list of seeds); the registry
``STATISTICAL_TESTS`` holds ``examples × checks per example`` for each, and
``tests/quality/test_accounting.py`` asserts that the total stays within
``STATISTICAL_CAPACITY``, i.e. ``Σ examples·checks·devices·ALPHA ≤ 1e-6``.

The budget is per the ``ci`` profile (and the ``dev`` one, which has the same
example counts). The nightly ``thorough`` profile scales every count by
``2000/25`` (:func:`examples`) and is not derandomized: there a false failure is
``≤ 80 × 1e-6`` per run, and a failure replays from the seed Hypothesis prints.

Deadlines are off in every profile (the plugin registers them with
``deadline=None``): no test here depends on wall-clock time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from hypothesis import HealthCheck, settings

from netprops import make_generator

SUITE_FALSE_FAILURE_BUDGET = 1e-6
STATISTICAL_CAPACITY = 1000
DEVICE_MULTIPLICITY = 2
ALPHA = SUITE_FALSE_FAILURE_BUDGET / (STATISTICAL_CAPACITY * DEVICE_MULTIPLICITY)

#: Examples per test in the ``ci``/``dev`` profiles (the plugin's default).
PROFILE_BASE_EXAMPLES = 25

#: ``device`` is a parametrized plain string, never a per-test object; the other two
#: mirror the plugin's profiles (a per-test ``suppress_health_check`` replaces, not extends).
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StatisticalUse:
    """What one statistical test spends of the budget (per device, ``ci`` profile)."""

    test: str
    examples: int  # generated examples (max_examples) + explicit @example s, or seeds
    checks: int  # statistical check calls at level ALPHA per example
    alpha: float

    @property
    def calls(self) -> int:
        return self.examples * self.checks

    @property
    def false_failure_bound(self) -> float:
        return self.calls * DEVICE_MULTIPLICITY * self.alpha


#: test id ("module::qualname") -> its declared use; filled at import time.
STATISTICAL_TESTS: dict[str, StatisticalUse] = {}


def examples(n: int) -> int:
    """``n`` examples in the ``ci``/``dev`` profiles, scaled up with the profile's default.

    Per-test ``max_examples`` would otherwise pin the nightly ``thorough`` profile
    (2000 examples) to the CI count.
    """
    base = settings.default.max_examples
    return n if base <= PROFILE_BASE_EXAMPLES else math.ceil(n * base / PROFILE_BASE_EXAMPLES)


def hypothesis_settings(max_examples: int | None = None) -> settings:
    """Settings for a deterministic (algebraic) property: profile default examples, or ``max_examples``."""
    if max_examples is None:
        return settings(suppress_health_check=SUPPRESS)
    return settings(max_examples=examples(max_examples), suppress_health_check=SUPPRESS)


def registry_key(test: Callable[..., Any]) -> str:
    """``module::qualname`` of a test (of the function under ``@given``'s wrapper)."""
    inner = getattr(getattr(test, "hypothesis", None), "inner_test", test)
    return f"{inner.__module__}::{inner.__qualname__}"


def _register(test_id: str, n_examples: int, checks: int, alpha: float) -> None:
    if n_examples < 1 or checks < 1:
        raise ValueError(f"{test_id}: examples and checks must be >= 1")
    STATISTICAL_TESTS[test_id] = StatisticalUse(test_id, n_examples, checks, alpha)


def statistical(max_examples: int, *, checks: int = 1, alpha: float = ALPHA) -> Callable[[F], F]:
    """Declare a Hypothesis test whose examples each make ``checks`` statistical check calls.

    Apply ABOVE ``@given`` (and the ``@example`` s, which are counted too)::

        @statistical(max_examples=10, checks=2)
        @given(seed=seeds())
        @example(seed=0)
        def test_...(device, seed): ...

    Sets ``max_examples`` (scaled by :func:`examples` outside ci/dev) and the
    health-check suppression, and records the test in ``STATISTICAL_TESTS``.
    """

    def decorate(test: F) -> F:
        if not getattr(test, "is_hypothesis_test", False):
            raise TypeError(f"@statistical goes above @given, got {registry_key(test)}")
        test = settings(max_examples=examples(max_examples), suppress_health_check=SUPPRESS)(test)
        explicit = len(getattr(test, "hypothesis_explicit_examples", ()))
        _register(registry_key(test), max_examples + explicit, checks, alpha)
        test._netprops_statistical = (max_examples, explicit)  # type: ignore[attr-defined]
        return test

    return decorate


def register_seeded(
    test: Callable[..., Any], n_seeds: int, *, checks: int = 1, cases: int = 1, alpha: float = ALPHA
) -> None:
    """Declare a test that runs ``checks`` statistical checks for each of ``n_seeds`` seeds.

    ``cases`` counts its pytest parametrizations (other than ``device``).
    """
    _register(registry_key(test), n_seeds * cases, checks, alpha)


def budget_used() -> float:
    """Union bound on the chance of any false failure of the registered tests."""
    return sum(use.false_failure_bound for use in STATISTICAL_TESTS.values())


def randn(
    shape: tuple[int, ...],
    seed: int,
    device: str,
    dtype: torch.dtype = torch.float32,
    *,
    offset: float = 0.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """``offset + scale·N(0, 1)`` drawn in float64 from ``make_generator(seed, device)``, cast to ``dtype``."""
    g = make_generator(seed, device)
    z = torch.randn(shape, generator=g, device=device, dtype=torch.float64)
    return (offset + scale * z).to(dtype)
