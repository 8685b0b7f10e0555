"""Acceptance bounds for the statistical checks, via scipy.stats (docs/methods.md).

Every bound in netprops comes from here, so a formula is written once.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import stats

from ..errors import check_int, check_positive_int, check_probability

__all__ = [
    "DEFAULT_ALPHA",
    "bennett_log_tail",
    "bernstein_upper",
    "binom_interval",
    "binom_two_sided_pvalue",
    "binom_upper",
    "chi2_interval",
    "chi2_upper",
    "mc_sample_size",
    "nonnegative_log_lower_tail",
    "nonnegative_mean_upper_bound",
    "z_two_sided",
]

#: Per-check false-failure probability. With ~100 tests × ~1000 examples this keeps
#: the suite-wide false-failure chance near 1e-4 per change of the test code
#: (docs/methods.md §Monte Carlo checks).
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
    return _binom_interval(n, p, _alpha(alpha))


@functools.lru_cache(maxsize=1024)
def _binom_interval(n: int, p: float, alpha: float) -> tuple[int, int]:
    return int(stats.binom.ppf(alpha / 2, n, p)), int(stats.binom.isf(alpha / 2, n, p))


def mc_sample_size(
    effect: float, alpha: float = DEFAULT_ALPHA, tests: int = 1, power: float = 0.99
) -> int:
    """Monte Carlo draws so a mean shift of ``effect`` standard deviations is caught with ``power``.

    ``N = ((z_{alpha/(2·tests)} + z_power) / effect)²`` (docs/methods.md §Monte Carlo checks).
    """
    if not effect > 0:
        raise ValueError(f"effect must be > 0 (a shift in standard deviations), got {effect!r}")
    power = check_probability("power", power)
    z = z_two_sided(alpha, tests)
    return math.ceil(((z + float(stats.norm.ppf(power))) / effect) ** 2)


def binom_two_sided_pvalue(
    k: np.ndarray, n: int, p_low: np.ndarray, p_high: np.ndarray
) -> np.ndarray:
    """Equal-tail two-sided p-value of counts ``k ~ Bin(n, π)`` for the composite null
    ``π ∈ [p_low, p_high]`` (elementwise; bounds are clipped to [0, 1]).

    ``2·min(P(K <= k), P(K >= k))`` at the π of the interval closest to ``k/n``
    (the largest p-value the interval allows), capped at 1. A π of 0 or 1 with a
    count off that end gives 0.
    """
    lo = np.clip(np.minimum(p_low, p_high), 0.0, 1.0)
    hi = np.clip(np.maximum(p_low, p_high), 0.0, 1.0)
    k = np.asarray(k, dtype=np.float64)
    pi = np.clip(k / n, lo, hi)
    lower = stats.binom.cdf(k, n, pi)
    upper = stats.binom.sf(k - 1, n, pi)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def bennett_log_tail(
    deviation: torch.Tensor, variance: torch.Tensor, bound: torch.Tensor, n: int
) -> torch.Tensor:
    """Log of Bennett's bound on ``P(X̄ − μ >= deviation)`` for the mean of ``n`` i.i.d. draws.

    For draws with ``X − μ <= bound`` and ``Var X <= variance``:
    ``P(X̄ − μ >= d) <= exp(−n·v/b²·h(b·d/v))``, ``h(u) = (1 + u)·log(1 + u) − u``
    (docs/methods.md §Monte Carlo checks). The bound grows with ``v`` and ``b``, so
    upper bounds of both may be used. ``h(u) ≈ u²/2`` for small ``u`` gives the
    normal tail ``exp(−n·d²/(2v))`` without its 1/z prefactor; the ``−u³/6`` term
    is the allowance for skewness (at most ``b/σ``). Elementwise on float64
    tensors; ``deviation <= 0`` gives 0 (no evidence), ``variance = 0`` with
    ``deviation > 0`` gives −inf.
    """
    d = deviation.clamp_min(0.0)
    v = variance
    b = bound.clamp_min(0.0)
    with torch.no_grad():
        safe_v = torch.where(v > 0, v, torch.ones_like(v))
        u = b * d / safe_v
        small = u < 1e-4
        h_over_b2 = torch.where(
            small,
            # series of h(u)/b² = d²/v²·(1/2 − u/6 + u²/12): exact as b → 0
            (d / safe_v) ** 2 * (0.5 - u / 6 + u * u / 12),
            ((1 + u) * torch.log1p(u) - u) / torch.where(small, torch.ones_like(b), b * b),
        )
        log_tail = -n * safe_v * h_over_b2
        log_tail = torch.where(v > 0, log_tail, torch.where(d > 0, -math.inf, 0.0))
        return torch.where(d > 0, log_tail, torch.zeros_like(log_tail))


def nonnegative_mean_upper_bound(
    mean: torch.Tensor, bound: torch.Tensor, n: int, alpha: float
) -> torch.Tensor:
    """Upper confidence bound at level ``alpha`` on ``E Y`` from the mean of ``n`` i.i.d. ``Y >= 0``.

    With ``E Y² <= bound·E Y`` (true when ``Y <= bound``), the one-sided bound for
    non-negative variables ``P(E Y − Ȳ >= t) <= exp(−n·t²/(2·E Y²))`` (from
    ``e^(−u) <= 1 − u + u²/2`` for ``u >= 0``) gives, with ``x = log(1/alpha)`` and
    ``c = sqrt(2·bound·x/n)``: ``E Y <= ((c + sqrt(c² + 4·Ȳ))/2)²`` with
    probability at least ``1 − alpha`` (docs/methods.md §Monte Carlo checks).
    """
    alpha = _alpha(alpha)
    c = torch.sqrt(2.0 * bound.clamp_min(0.0) * math.log(1.0 / alpha) / n)
    return ((c + torch.sqrt(c * c + 4.0 * mean.clamp_min(0.0))) / 2.0) ** 2


def nonnegative_log_lower_tail(
    mean: torch.Tensor, expectation: torch.Tensor, bound: torch.Tensor, n: int
) -> torch.Tensor:
    """Log of the bound on ``P(Ȳ <= mean)`` for the mean of ``n`` i.i.d. ``Y >= 0`` with
    ``E Y = expectation`` and ``E Y² <= bound·E Y``: ``−n·(E Y − Ȳ)²/(2·bound·E Y)``
    when ``Ȳ < E Y``, else 0 (the inequality :func:`nonnegative_mean_upper_bound` inverts).
    """
    gap = (expectation - mean).clamp_min(0.0)
    denominator = 2.0 * bound.clamp_min(0.0) * expectation
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    log_tail = -n * gap * gap / safe
    return torch.where(denominator > 0, log_tail, torch.where(gap > 0, -math.inf, 0.0))


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
