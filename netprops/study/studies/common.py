"""Helpers shared by the studies: per-seed metrics, curves, wording of comparisons."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...scenarios import Scenario
from ..claims import compare_runs
from ..config import StudyConfig
from ..results import Claim
from ..runs import Run

__all__ = [
    "comparison_claim",
    "curves",
    "describe_test_set",
    "eval_every",
    "fmt",
    "geomean",
    "init_text",
    "metric",
    "model_text",
    "seeds_text",
]


def eval_every(steps: int, evals: int) -> int:
    """Evaluation period giving ``evals`` evenly spaced evaluations, the last at ``steps``."""
    return max(1, -(-steps // evals))


def curves(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The per-seed curves of ``runs`` (for the figures and results.json)."""
    out = []
    for r in runs:
        if r.history is None:
            continue
        h = r.history
        out.append(
            {
                "seed": r.seed,
                "train_loss": h.train_loss,
                "eval_steps": h.eval_steps,
                "test_accuracy": h.test_accuracy,
                "test_loss": h.test_loss,
                "train_accuracy": h.train_accuracy,
            }
        )
    return out


def metric(runs: Sequence[Run], key: str) -> list[float]:
    """``key`` of every run that trained (failed runs have no metrics), one per seed."""
    return [r.metrics[key] for r in runs if r.error is None]


def seeds_text(config: StudyConfig) -> str:
    """``"2 seeds (0, 1)"``."""
    n = len(config.seeds)
    return f"{n} seed{'s' if n > 1 else ''} ({', '.join(map(str, config.seeds))})"


def fmt(values: Iterable[float], spec: str = ".3g") -> str:
    """``values`` formatted with ``spec`` and joined by commas."""
    return ", ".join(format(v, spec) for v in values)


def geomean(values: Sequence[float]) -> float:
    """Geometric mean; NaN when empty or when a value is not positive."""
    if not values or any(not (v > 0) for v in values):
        return math.nan
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def comparison_claim(
    key: str,
    text: str,
    a: Sequence[float],
    b: Sequence[float],
    names: tuple[str, str],
    *,
    margin: float,
    what: str,
    higher_is_better: bool = True,
    spec: str = ".4f",
) -> Claim:
    """A :class:`Claim` "A is better than B" decided by :func:`compare_runs`, with its evidence."""
    c = compare_runs(a, b, margin=margin, higher_is_better=higher_is_better, what=what, names=names)
    p = "" if c.p_value is None else f", one-sided Welch p = {c.p_value:.3g}"

    def side(name: str, values: Sequence[float], m: float) -> str:
        each = f" (seeds: {fmt(values, spec)})" if len(values) > 1 else ""
        return f"{name} {format(m, spec)}{each}"

    evidence = (
        f"{what}: {side(names[0], a, c.mean_a)} vs {side(names[1], b, c.mean_b)}; advantage of "
        f"{names[0]} {format(c.diff, '+' + spec)} (margin {margin:g}){p}"
    )
    return Claim(key, text, c.rule, c.verdict, evidence, c.numbers())


def describe_test_set(runs: Mapping[str, list[Run]]) -> str:
    """``"1,000 images"``: the size(s) of the test sets the runs were evaluated on."""
    sizes = sorted({len(r.test) for rs in runs.values() for r in rs if r.test is not None})
    return " / ".join(f"{s:,} images" for s in sizes) if sizes else "none"


def model_text(scenario: Scenario) -> str:
    """``"cnn-depth8 (width=8)"``: the registry name and the scenario's overrides."""
    args = ", ".join(f"{k}={v}" for k, v in scenario.model_args.items() if v is not None)
    return scenario.model + (f" ({args})" if args else "")


def init_text(scenario: Scenario) -> str:
    """``"he initialization"``, with its parameters, or the model's own default."""
    if scenario.init is None:
        return "the model's own initialization"
    params = ", ".join(f"{k}={v}" for k, v in scenario.init_params.items())
    return f"{scenario.init} initialization" + (f" ({params})" if params else "")
