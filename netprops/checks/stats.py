"""Acceptance bounds for the statistical checks, via scipy.stats (METHODS.md).

Every bound in netprops comes from here, so a formula is written once.
"""

from __future__ import annotations

import math

from scipy import stats

from ..errors import check_int, check_positive_int, check_probability

__all__ = [
    "DEFAULT_ALPHA",
    "bernstein_upper",
    "binom_interval",
    "binom_upper",
    "chi2_interval",
    "chi2_upper",
    "mc_sample_size",
    "z_two_sided",
]

#: Per-check false-failure probability. With ~100 tests × ~1000 examples this keeps
#: the suite-wide false-failure chance near 1e-4 per change of the test code (METHODS.md §3).
DEFAULT_ALPHA = 1e-9


def _alpha(alpha: float) -> float:
    alpha = check_probability("alpha", alpha)
    if alpha == 0:
        raise ValueError("alpha must be a probability in (0, 1), got 0.0")
    return alpha


def chi2_interval(dof: int, alpha: float = DEFAULT_ALPHA) -> tuple[float, float]:
    """Two-sided acceptance interval for a χ²_dof statistic at level ``alpha``."""
    dof = check_positive_int("dof", dof)
    alpha = _alpha(alpha)
    return float(stats.chi2.ppf(alpha / 2, dof)), float(stats.chi2.isf(alpha / 2, dof))


def chi2_upper(dof: int, alpha: float = DEFAULT_ALPHA) -> float:
    """One-sided upper acceptance bound for a χ²_dof statistic at level ``alpha``."""
    dof = check_positive_int("dof", dof)
    return float(stats.chi2.isf(_alpha(alpha), dof))


def z_two_sided(alpha: float = DEFAULT_ALPHA, tests: int = 1) -> float:
    """Critical |Z| for ``tests`` two-sided normal tests, Bonferroni-corrected to level ``alpha``."""
    tests = check_positive_int("tests", tests)
    return float(stats.norm.isf(_alpha(alpha) / (2 * tests)))


def binom_interval(n: int, p: float, alpha: float = DEFAULT_ALPHA) -> tuple[int, int]:
    """Two-sided acceptance interval [lo, hi] for a Bin(n, p) count at level ``alpha``."""
    n = check_positive_int("n", n)
    p = check_probability("p", p, allow_one=True)
    alpha = _alpha(alpha)
    return int(stats.binom.ppf(alpha / 2, n, p)), int(stats.binom.isf(alpha / 2, n, p))


def mc_sample_size(
    effect: float, alpha: float = DEFAULT_ALPHA, tests: int = 1, power: float = 0.99
) -> int:
    """Monte Carlo draws so a mean shift of ``effect`` standard deviations is caught with ``power``.

    ``N = ((z_{alpha/(2·tests)} + z_power) / effect)²`` (METHODS.md §3).
    """
    if not effect > 0:
        raise ValueError(f"effect must be > 0 (a shift in standard deviations), got {effect!r}")
    power = check_probability("power", power)
    z = z_two_sided(alpha, tests)
    return math.ceil(((z + float(stats.norm.ppf(power))) / effect) ** 2)


def binom_upper(n: int, p: float, alpha: float = DEFAULT_ALPHA) -> int:
    """One-sided upper acceptance bound for a Bin(n, p) count: the smallest c with P(X > c) <= alpha.

    ``n = 0`` gives 0 (an empty count cannot exceed anything).
    """
    n = check_int("n", n, min_value=0)
    p = check_probability("p", p, allow_one=True)
    alpha = _alpha(alpha)
    return 0 if n == 0 else int(stats.binom.isf(alpha, n, p))


def bernstein_upper(mean: float, n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Upper acceptance bound for the average of ``n`` independent variables in [0, 1]
    whose expectations are at most ``mean``.

    Bernstein's inequality with the variance bound Var <= E[X] <= ``mean``:
    ``P(avg - mean >= t) <= exp(-n t² / (2 (mean + t/3)))``; the bound is
    ``mean + t`` with ``t`` solving ``exp(...) = alpha`` (docs/methods.md §Training
    dynamics and structural properties).
    """
    mean = check_probability("mean", mean, allow_one=True)
    n = check_positive_int("n", n)
    log_term = math.log(1.0 / _alpha(alpha))
    # n t² = 2 L (mean + t/3)  ->  t = (2L/3 + sqrt((2L/3)² + 8 n L mean)) / (2n)
    a = 2.0 * log_term / 3.0
    t = (a + math.sqrt(a * a + 8.0 * n * log_term * mean)) / (2.0 * n)
    return mean + t
