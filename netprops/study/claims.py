"""The rules that turn a run's numbers into a verdict on a claim.

Two rules, both stated in the report next to every verdict:

* :func:`compare_runs` — "A is better than B" over seeds. With fewer than
  three runs per side it is distribution-free: *supported* only when every run
  of A beats every run of B by more than the margin. With three or more it is
  a one-sided Welch t-test of H0 "the difference is at most the margin":
  *supported* when p < alpha. Either way the claim is *not supported by this run*
  when A's mean is not better than B's at all, and *inconclusive* otherwise.
* :func:`every_sample` — "this holds" over independent samples (networks,
  seeds): *supported* when it holds in every sample, *not supported* when it
  holds in none, *inconclusive* when the samples disagree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from ..errors import check_positive_float, check_probability, check_type
from .results import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED

__all__ = ["SMALL_SAMPLE", "Comparison", "combine", "compare_runs", "every_sample", "mean", "sd"]

#: Below this many runs per side, :func:`compare_runs` uses the distribution-free rule.
SMALL_SAMPLE = 3


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean (NaN for an empty sequence)."""
    return math.fsum(values) / len(values) if values else math.nan


def sd(values: Sequence[float]) -> float:
    """Sample standard deviation (NaN for fewer than two values)."""
    return statistics.stdev(values) if len(values) > 1 else math.nan


def _values(name: str, values: Sequence[float]) -> list[float]:
    check_type(name, values, (list, tuple))
    out = [float(v) for v in values]
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}")
    return out


@dataclass(frozen=True)
class Comparison:
    """Outcome of :func:`compare_runs` (``diff`` is oriented so that positive favours A)."""

    verdict: str
    rule: str
    mean_a: float
    mean_b: float
    diff: float
    p_value: float | None
    n_a: int
    n_b: int

    def numbers(self) -> dict[str, float | int | None]:
        return {
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "diff": self.diff,
            "p_value": self.p_value,
            "n_a": self.n_a,
            "n_b": self.n_b,
        }


def compare_runs(
    a: Sequence[float],
    b: Sequence[float],
    *,
    margin: float,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    what: str = "value",
    names: tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Decide "A is better than B" from per-seed values ``a`` and ``b``.

    Parameters
    ----------
    a, b : sequence of float
        One finite value per run (seed).
    margin : float
        The smallest difference that counts (>= 0), in the values' units.
    higher_is_better : bool
        Direction of "better".
    alpha : float
        Level of the one-sided Welch t-test used with >= 3 runs per side.
    what : str
        Name of the quantity, for the rule's wording.
    names : (str, str)
        Names of A and B, for the rule's wording.

    Returns
    -------
    Comparison

    Raises
    ------
    TypeError, ValueError
        for empty or non-finite values, a negative margin, alpha outside (0, 1).
    """
    a = _values("a", a)
    b = _values("b", b)
    margin = check_positive_float("margin", margin, allow_zero=True)
    check_type("higher_is_better", higher_is_better, bool)
    alpha = check_probability("alpha", alpha)
    if alpha == 0:
        raise ValueError("alpha must be in (0, 1), got 0.0")
    check_type("names", names, tuple)
    name_a, name_b = (str(n) for n in names)
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (mean(a) - mean(b))
    better = "higher" if higher_is_better else "lower"
    small = min(len(a), len(b)) < SMALL_SAMPLE
    p_value: float | None = None
    if small:
        worst_gap = min(sign * x for x in a) - max(sign * y for y in b)
        rule = (
            f"{len(a)} vs {len(b)} run(s): supported when every run of {name_a} has a {what} "
            f"{better} than every run of {name_b} by more than {margin:g}; not supported when "
            f"{name_a}'s mean is not {better}; inconclusive otherwise (too few runs for a test "
            f"of seed-to-seed noise)"
        )
        strong = worst_gap > margin
    else:
        if sd(a) == 0 and sd(b) == 0:  # no noise at all: the t statistic is undefined
            p_value = 0.0 if diff > margin else 1.0
        else:
            # H0: the advantage is at most the margin (A shifted back by it), so a
            # supported claim means "better by more than the margin", not just "better".
            shifted = [x - sign * margin for x in a]
            alternative = "greater" if higher_is_better else "less"
            p_value = float(
                stats.ttest_ind(shifted, b, equal_var=False, alternative=alternative).pvalue
            )
        rule = (
            f"{len(a)} vs {len(b)} runs: supported when a one-sided Welch t-test of "
            f"H0 '{name_a}'s mean {what} is {better} than {name_b}'s by at most {margin:g}' "
            f"gives p < {alpha:g}; not supported when {name_a}'s mean is not {better}; "
            f"inconclusive otherwise"
        )
        strong = diff > margin and p_value < alpha
    if diff <= 0:
        verdict = NOT_SUPPORTED
    elif strong:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Comparison(verdict, rule, mean(a), mean(b), diff, p_value, len(a), len(b))


def every_sample(holds: Sequence[bool]) -> str:
    """Verdict for "it holds" over independent samples: all, none, or mixed.

    Raises
    ------
    ValueError
        for an empty sequence.
    """
    check_type("holds", holds, (list, tuple))
    if not holds:
        raise ValueError("holds must list at least one sample")
    if all(holds):
        return SUPPORTED
    if not any(holds):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """Verdict of a claim made of parts: every part supported, any part refuted, or else."""
    if not verdicts:
        raise ValueError("verdicts must list at least one verdict")
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    return INCONCLUSIVE
