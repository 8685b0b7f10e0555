"""Measure a statistical check's false-failure rate (or its power) by simulation.

A check that states ``alpha`` promises that a correct subject fails with
probability at most ``alpha`` over seeds. :func:`calibrate` measures that
instead of asserting it: it runs the check on ``runs`` seeds at a loosened
level (e.g. ``alpha = 1e-2``, where failures are frequent enough to count)
and reports the observed rate with an exact (Clopper–Pearson) confidence
interval. On a broken subject the same count is the check's power.
docs/methods.md §Calibration and power holds the measured tables.

Example
-------
>>> import torch
>>> from torch import nn
>>> from netprops.checks import check_drop_rate
>>> result = calibrate(
...     check_drop_rate, lambda seed: (nn.Dropout(0.3), torch.ones(4, 8)), runs=50, alpha=0.05,
...     n=1000,
... )
>>> result.failures <= result.runs
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scipy import stats

from ..errors import PropertyViolation, check_int, check_positive_int, check_probability

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """The rejection count of a check over seeds.

    Attributes
    ----------
    check : the check's name.
    runs : number of seeds run.
    failures : how many raised ``PropertyViolation``.
    alpha : the level the check was given.
    confidence : level of the interval ``(low, high)`` on the true rejection rate.
    low, high : exact (Clopper–Pearson) confidence bounds on the rejection rate.
    """

    check: str
    runs: int
    failures: int
    alpha: float
    confidence: float
    low: float
    high: float

    @property
    def rate(self) -> float:
        """Observed rejection rate ``failures / runs``."""
        return self.failures / self.runs

    @property
    def consistent(self) -> bool:
        """Whether the data are consistent with a rate <= ``alpha`` (``low <= alpha``)."""
        return self.low <= self.alpha

    def __str__(self) -> str:
        return (
            f"{self.check}: {self.failures}/{self.runs} rejected at alpha={self.alpha:g} "
            f"(rate {self.rate:.4g}, {self.confidence:.0%} interval "
            f"[{self.low:.3g}, {self.high:.3g}])"
        )


def calibrate(
    check: Callable[..., Any],
    make_subject: Callable[[int], Any],
    *,
    runs: int = 10_000,
    alpha: float = 1e-2,
    first_seed: int = 0,
    confidence: float = 0.95,
    **options: Any,
) -> Calibration:
    """Run ``check`` on ``runs`` seeds and count how often it rejects.

    For each seed ``s`` in ``first_seed, first_seed + 1, ...`` the subject is
    ``make_subject(s)`` (a tuple of positional arguments, or one argument) and the
    call is ``check(*subject, seed=s, alpha=alpha, **options)``; a
    ``PropertyViolation`` counts as a rejection, any other exception propagates.
    The subject may use ``s`` for its own draws (weights, inputs): the count is
    then over subjects and check seeds together.

    Parameters
    ----------
    check : a statistical check taking ``seed=`` and ``alpha=``.
    make_subject : ``seed -> subject`` (tuple of positional arguments, or one).
    runs : number of seeds (>= 1).
    alpha : level passed to the check, in (0, 1).
    first_seed : the first seed (>= 0).
    confidence : level of the Clopper–Pearson interval, in (0, 1).
    **options : further keyword arguments of the check.

    Returns
    -------
    Calibration
    """
    runs = check_positive_int("runs", runs)
    alpha = check_probability("alpha", alpha)
    confidence = check_probability("confidence", confidence)
    if alpha == 0 or confidence == 0:
        raise ValueError("alpha and confidence must be in (0, 1)")
    first_seed = check_int("first_seed", first_seed, min_value=0)
    if not callable(check) or not callable(make_subject):
        raise TypeError("check and make_subject must be callable")
    failures = 0
    for seed in range(first_seed, first_seed + runs):
        subject = make_subject(seed)
        args = subject if isinstance(subject, tuple) else (subject,)
        try:
            check(*args, seed=seed, alpha=alpha, **options)
        except PropertyViolation:
            failures += 1
    low, high = clopper_pearson(failures, runs, confidence)
    name = getattr(check, "__name__", type(check).__name__)
    return Calibration(name, runs, failures, alpha, confidence, low, high)


def clopper_pearson(failures: int, runs: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided confidence interval on a binomial rate."""
    tail = (1 - confidence) / 2
    low = 0.0 if failures == 0 else float(stats.beta.ppf(tail, failures, runs - failures + 1))
    high = 1.0 if failures == runs else float(stats.beta.isf(tail, failures + 1, runs - failures))
    return low, (high if math.isfinite(high) else 1.0)
