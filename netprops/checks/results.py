"""Result objects returned by checks, and the one way a check reports a violation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import PropertyViolation

__all__ = ["CheckResult", "format_bound", "violation"]


def format_bound(bound: float | tuple[float, float] | None) -> str:
    """Render a bound as ``<= x`` or ``[lo, hi]``."""
    if bound is None:
        return "n/a"
    if isinstance(bound, tuple):
        return f"[{bound[0]:.6g}, {bound[1]:.6g}]"
    return f"<= {bound:.6g}"


@dataclass(frozen=True)
class CheckResult:
    """What a passing check measured.

    Attributes
    ----------
    check : name of the check function.
    statistic : the headline statistic (e.g. ``T/D`` of a χ² test, ``max |Z|``).
    bound : the acceptance region for ``statistic``: an upper bound or a ``(low, high)`` interval.
    seed : the seed every random draw of the check came from (None for deterministic checks).
    alpha : false-failure probability of the statistical test for a correct module (0 for exact checks).
    details : further numbers (per-layer statistics, sample sizes, ...).
    reproduce : a one-line Python call that replays the check.
    """

    check: str
    statistic: float
    bound: float | tuple[float, float] | None
    seed: int | None = None
    alpha: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    reproduce: str = ""

    def __str__(self) -> str:
        lines = [
            f"{self.check}: passed (statistic {self.statistic:.6g}, bound {format_bound(self.bound)}, "
            f"seed {self.seed}, alpha {self.alpha:.3g})"
        ]
        lines += [f"  {key}: {value}" for key, value in self.details.items()]
        return "\n".join(lines)


def violation(
    check: str,
    what: str,
    *,
    statistic: float,
    bound: float | tuple[float, float] | None,
    seed: int | None,
    reproduce: str,
    alpha: float = 0.0,
    details: Mapping[str, Any] | None = None,
) -> NoReturn:
    """Raise :class:`PropertyViolation` with a report: what is wrong, by how much, how to replay."""
    __tracebackhide__ = True
    lines = [
        f"{check}: {what}",
        f"  statistic: {statistic:.6g}",
        f"  bound:     {format_bound(bound)}",
        f"  seed:      {seed}",
        f"  alpha:     {alpha:.3g} (probability that a correct module fails this check)",
    ]
    lines += [f"  {key}: {value}" for key, value in (details or {}).items()]
    lines.append(f"  reproduce: {reproduce}")
    raise PropertyViolation("\n".join(lines))
