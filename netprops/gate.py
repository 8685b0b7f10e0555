"""The convergence gate's statistics for one metric of one scenario.

The gate compares m fresh runs with K recorded runs:

* ``"rank"`` (the gate's test): the exact one-sided Mann-Whitney U test of fresh
  vs recorded values. With nothing changed all K + m runs are exchangeable, so
  its false-alarm rate is at most α for any continuous distribution (skewed,
  heavy-tailed, bimodal);
* ``"prediction"``: the one-sided normal-theory prediction bound
  ``x̄ ∓ t_{1-α, K-1} · s · sqrt(1/m + 1/K)``, more powerful when the metric is
  normal, but not used by the gate: simulated on the recorded distributions its
  false-alarm rate reached several times α for heavy-tailed metrics that a
  normality screen of 30 values cannot tell from normal ones;
* a *floor*: a fresh mean at or beyond it (chance-level accuracy) fails
  whatever the spread of the recorded runs.

:func:`detectable_drop` states the power (the smallest worsening of the mean
caught with probability :data:`GATE_POWER`), :func:`simulate_gate` checks the
false-alarm rate and the power by simulation on a smoothed bootstrap of the
recorded values, and :func:`equivalence_test` (two one-sided Welch tests) is
what ``netprops baselines migrate`` uses to compare two environments.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from .errors import check_choice, check_int, check_positive_float, check_probability

__all__ = [
    "EQUIVALENCE_ALPHA",
    "GATE_ALPHA",
    "GATE_POWER",
    "GATE_TESTS",
    "EquivalenceResult",
    "GateResult",
    "detectable_drop",
    "equivalence_test",
    "gate_metric",
    "min_recorded_runs",
    "prediction_gate",
    "rank_gate",
    "simulate_gate",
]

#: False-alarm probability of the gate for one scenario, split evenly over its gated metrics.
#: With ~20 scenarios a fresh-seed set raises a false alarm with probability ~2%; since the
#: fresh seeds are fixed, an unchanged tree in an unchanged environment gives the same verdict
#: every run, so a pass never turns into a flake.
GATE_ALPHA = 1e-3

#: Power at which the detectable drop (minimum detectable effect) is stated.
GATE_POWER = 0.9

#: Level of each one-sided test of the equivalence test (TOST) that ``migrate`` runs.
EQUIVALENCE_ALPHA = 0.05

#: The tests, by name; the gate uses ``"rank"``.
GATE_TESTS = ("rank", "prediction")

_SEARCH_TRIALS = 10_000  # simulated gate runs per step of the rank test's power search


def _values(name: str, values: Sequence[float], min_count: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    check_int(f"len({name})", array.size, min_value=min_count)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a flat sequence of finite numbers, got {values!r:.80}")
    return array


@dataclass(frozen=True)
class GateResult:
    """One metric's verdict.

    ``test`` is ``"prediction"`` (``bound`` is the prediction bound) or
    ``"rank"`` (``bound`` is the largest p-value that fails, ``p_value`` the
    observed one). ``floor_hit`` is True when the fresh mean is at or beyond
    ``floor``; ``detectable_drop`` is the smallest worsening of the mean the
    test catches with probability :data:`GATE_POWER` (NaN when not computed).
    """

    metric: str
    passed: bool
    fresh_mean: float
    baseline_mean: float
    baseline_sd: float
    bound: float
    alpha: float
    higher_is_better: bool
    fresh: tuple[float, ...] = field(default=())
    baseline_range: tuple[float, float] = (math.nan, math.nan)
    test: str = "rank"
    p_value: float | None = None
    floor: float | None = None
    floor_hit: bool = False
    detectable_drop: float = math.nan

    @property
    def beyond_bound(self) -> bool:
        """True when the test itself (bound or rank test, floor aside) fails."""
        if self.test == "rank":
            return self.p_value is not None and self.p_value < self.bound
        if self.higher_is_better:
            return self.fresh_mean < self.bound
        return self.fresh_mean > self.bound

    def __str__(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        status = "ok" if self.passed else "REGRESSION"
        runs = ", ".join(f"{v:.5g}" for v in self.fresh)
        if self.test == "prediction":
            rule = f"must be {op} {self.bound:.5g} (prediction bound)"
        else:
            worse = "lower" if self.higher_is_better else "higher"
            rule = (
                f"rank test: P(fresh this much {worse}) = {self.p_value:.3g} must be >= "
                f"{self.bound:.3g}"
            )
        floor = ""
        if self.floor is not None:
            side = "above" if self.higher_is_better else "below"
            floor = f"; floor {self.floor:.5g} ({'HIT' if self.floor_hit else side})"
        return (
            f"{self.metric}: fresh mean {self.fresh_mean:.5g} (runs {runs}) {rule}{floor}; "
            f"baseline {self.baseline_mean:.5g} ± {self.baseline_sd:.3g} "
            f"(range {self.baseline_range[0]:.5g}..{self.baseline_range[1]:.5g}), "
            f"detectable drop {self.detectable_drop:.3g}, alpha {self.alpha:g} [{status}]"
        )


def _floor_hit(fresh_mean: float, floor: float | None, higher_is_better: bool) -> bool:
    if floor is None:
        return False
    return fresh_mean <= floor if higher_is_better else fresh_mean >= floor


def _gate_result(
    metric: str,
    base: np.ndarray,
    new: np.ndarray,
    *,
    within: bool,
    bound: float,
    alpha: float,
    higher_is_better: bool,
    test: str,
    floor: float | None,
    p_value: float | None = None,
) -> GateResult:
    """A :class:`GateResult` from the two samples and the test's own verdict ``within``;
    the fresh mean at or beyond ``floor`` fails whatever the test said."""
    fresh_mean = float(new.mean())
    hit = _floor_hit(fresh_mean, floor, higher_is_better)
    return GateResult(
        metric=metric,
        passed=within and not hit,
        fresh_mean=fresh_mean,
        baseline_mean=float(base.mean()),
        baseline_sd=float(base.std(ddof=1)),
        bound=bound,
        alpha=alpha,
        higher_is_better=higher_is_better,
        fresh=tuple(float(v) for v in new),
        baseline_range=(float(base.min()), float(base.max())),
        test=test,
        p_value=p_value,
        floor=floor,
        floor_hit=hit,
    )


def _t_factor(k: int, m: int, alpha: float) -> float:
    """``t_{1-α, K-1} · sqrt(1/m + 1/K)``: the prediction bound's distance from x̄ in sds."""
    return float(stats.t.ppf(1 - alpha, k - 1)) * math.sqrt(1 / m + 1 / k)


def prediction_gate(
    metric: str,
    baseline: Sequence[float],
    fresh: Sequence[float],
    *,
    alpha: float = GATE_ALPHA,
    higher_is_better: bool = True,
    margin: float = 0.0,
    floor: float | None = None,
) -> GateResult:
    """One-sided prediction bound for the mean of ``fresh`` given ``baseline`` runs.

    For K baseline values with mean x̄ and sd s, the mean of m new values from the
    same normal distribution stays above ``x̄ - t_{1-α,K-1}·s·sqrt(1/m + 1/K)`` with
    probability 1 - α (below the mirrored bound when lower is better). ``margin``
    widens the bound by a fixed practical tolerance; a fresh mean at or beyond
    ``floor`` fails regardless.

    Raises
    ------
    ValueError
        fewer than 2 baseline values, no fresh values, or a non-finite value.
    """
    alpha = check_probability("alpha", alpha)
    base = _values("baseline", baseline, 2)
    new = _values("fresh", fresh, 1)
    k, m = base.size, new.size
    mean, sd = float(base.mean()), float(base.std(ddof=1))
    half_width = _t_factor(k, m, alpha) * sd + margin
    fresh_mean = float(new.mean())
    bound = mean - half_width if higher_is_better else mean + half_width
    within = fresh_mean >= bound if higher_is_better else fresh_mean <= bound
    return _gate_result(
        metric,
        base,
        new,
        within=within,
        bound=bound,
        alpha=alpha,
        higher_is_better=higher_is_better,
        test="prediction",
        floor=floor,
    )


def min_recorded_runs(m: int, alpha: float = GATE_ALPHA / 2) -> int:
    """The fewest recorded runs K with which the rank test of ``m`` fresh runs can reach ``alpha``.

    The smallest K with ``1 / C(K+m, m) <= alpha`` (21 for m = 3, 13 for m = 4 at 5e-4).
    """
    m = check_int("m", m, min_value=1)
    alpha = check_probability("alpha", alpha)
    k = 2
    while 1 / math.comb(k + m, m) > alpha:
        k += 1
    return k


def _rank_p(fresh: np.ndarray, base: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Exact one-sided Mann-Whitney p-values of "fresh is worse", row by row."""
    alternative = "less" if higher_is_better else "greater"
    return np.asarray(
        stats.mannwhitneyu(fresh, base, axis=-1, alternative=alternative, method="exact").pvalue
    )


def rank_gate(
    metric: str,
    baseline: Sequence[float],
    fresh: Sequence[float],
    *,
    alpha: float = GATE_ALPHA,
    higher_is_better: bool = True,
    floor: float | None = None,
) -> GateResult:
    """Exact one-sided Mann-Whitney U test of ``fresh`` against ``baseline``.

    Fails when the probability, with fresh and baseline runs exchangeable, of
    the fresh runs ranking this low (this high when lower is better) is below
    ``alpha``, or when the fresh mean is at or beyond ``floor``. Valid for any
    continuous distribution (a bimodal metric included); the smallest
    attainable p-value is ``1 / C(K+m, m)``.

    Raises
    ------
    ValueError
        as :func:`prediction_gate`, or when no outcome could reach ``alpha``
        (``1 / C(K+m, m) > alpha``: record more seeds or run more fresh ones).
    """
    alpha = check_probability("alpha", alpha)
    base = _values("baseline", baseline, 2)
    new = _values("fresh", fresh, 1)
    k, m = base.size, new.size
    if 1 / math.comb(k + m, m) > alpha:
        raise ValueError(
            f"a rank test of {m} fresh against {k} recorded runs cannot reach alpha={alpha:g} "
            f"(smallest p-value 1/C({k + m}, {m}) = {1 / math.comb(k + m, m):.3g}); record more "
            "baseline seeds or run more fresh seeds"
        )
    p = float(_rank_p(new, base, higher_is_better))
    return _gate_result(
        metric,
        base,
        new,
        within=p >= alpha,
        bound=alpha,
        alpha=alpha,
        higher_is_better=higher_is_better,
        test="rank",
        floor=floor,
        p_value=p,
    )


def gate_metric(
    metric: str,
    baseline: Sequence[float],
    fresh: Sequence[float],
    *,
    alpha: float = GATE_ALPHA,
    higher_is_better: bool = True,
    floor: float | None = None,
    test: str = "rank",
) -> GateResult:
    """The gate for one metric (``test``: the exact rank test unless told), with its detectable drop.

    The result's ``detectable_drop`` is :func:`detectable_drop` for ``len(fresh)``
    fresh runs on the distribution of ``baseline``.
    """
    check_choice("test", test, GATE_TESTS)
    gate = prediction_gate if test == "prediction" else rank_gate
    result = gate(
        metric, baseline, fresh, alpha=alpha, higher_is_better=higher_is_better, floor=floor
    )
    drop = detectable_drop(
        baseline, len(result.fresh), alpha=alpha, test=test, higher_is_better=higher_is_better
    )
    return dataclasses.replace(result, detectable_drop=drop)


# --------------------------------------------------------------------------- power


def _smoothed_bootstrap(
    values: np.ndarray, size: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Draws from a kernel density estimate of ``values``, rescaled to their mean and sd.

    A resample plus Gaussian noise of Silverman's bandwidth, shrunk toward the
    mean so the draws have the sample's mean and unbiased variance: the recorded
    distribution's shape (skew, clusters) without its discreteness.
    """
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0.0:
        return np.full(size, mean)
    iqr = float(np.subtract(*np.percentile(values, [75, 25])))
    spread = min(sd, iqr / 1.349) if iqr > 0 else sd
    bandwidth = 0.9 * spread * values.size ** (-0.2)
    draws = rng.choice(values, size=size) + bandwidth * rng.standard_normal(size)
    scale = sd / math.sqrt(float(values.var()) + bandwidth**2)
    return mean + (draws - mean) * scale


@functools.lru_cache(maxsize=64)
def _rank_critical(k: int, m: int, alpha: float, higher_is_better: bool) -> float:
    """The largest U (fresh-above-recorded pairs; -1 if none) whose exact p-value is below alpha.

    Found with scipy's exact Mann-Whitney p-values on arranged samples: a fresh
    run above ``u`` of the recorded ones and the others below all of them has
    ``U = u``, so its p-value is ``P(U <= u)`` (mirrored when lower is better).
    """
    base = np.arange(k, dtype=np.float64)
    critical = -1.0
    for u in range(m * k + 1):
        fresh = np.full(m, -1.0)
        fresh[: u // k] = k  # above every recorded run
        if u % k:
            fresh[u // k] = u % k - 0.5
        if not higher_is_better:
            fresh, ref = -fresh, -base
        else:
            ref = base
        if float(_rank_p(fresh, ref, higher_is_better)) >= alpha:
            break
        critical = float(u)
    return critical


def _rejections(
    base: np.ndarray, fresh: np.ndarray, alpha: float, test: str, higher_is_better: bool
) -> np.ndarray:
    """Whether the gate fails each simulated (baseline row, fresh row) pair."""
    k, m = base.shape[-1], fresh.shape[-1]
    if test == "rank":
        sign = 1.0 if higher_is_better else -1.0
        above = (sign * fresh[..., :, None] > sign * base[..., None, :]).sum(axis=(-2, -1))
        return above <= _rank_critical(k, m, alpha, higher_is_better)
    half = _t_factor(k, m, alpha) * base.std(axis=-1, ddof=1)
    gap = fresh.mean(axis=-1) - base.mean(axis=-1)
    return gap < -half if higher_is_better else gap > half


def simulate_gate(
    baseline: Sequence[float],
    m: int,
    *,
    alpha: float = GATE_ALPHA,
    shift: float = 0.0,
    higher_is_better: bool = True,
    test: str = "rank",
    k: int | None = None,
    trials: int = 100_000,
    seed: int = 0,
) -> float:
    """Fraction of simulated gate runs that fail, on the recorded distribution.

    Each trial draws ``k`` (default ``len(baseline)``) recorded and ``m`` fresh
    values from a smoothed bootstrap of ``baseline`` (its shape, mean and sd),
    worsens the fresh ones by ``shift`` (subtracted when higher is better) and
    applies ``test``. ``shift=0`` estimates the false-alarm rate, ``shift > 0``
    the power against that drop. The floor is not simulated (it sits far below
    the recorded runs; see ``Scenario``).
    """
    base = _values("baseline", baseline, 2)
    m = check_int("m", m, min_value=1)
    k = base.size if k is None else check_int("k", k, min_value=2)
    trials = check_int("trials", trials, min_value=1)
    check_choice("test", test, GATE_TESTS)
    rng = np.random.default_rng(check_int("seed", seed, min_value=0))
    rejected = 0
    for start in range(0, trials, 20_000):  # bounded memory
        n = min(20_000, trials - start)
        sim_base = _smoothed_bootstrap(base, (n, k), rng)
        sim_fresh = _smoothed_bootstrap(base, (n, m), rng)
        sim_fresh = sim_fresh - shift if higher_is_better else sim_fresh + shift
        rejected += int(_rejections(sim_base, sim_fresh, alpha, test, higher_is_better).sum())
    return rejected / trials


def detectable_drop(
    baseline: Sequence[float],
    m: int,
    *,
    alpha: float = GATE_ALPHA,
    power: float = GATE_POWER,
    test: str = "rank",
    higher_is_better: bool = True,
    seed: int = 0,
) -> float:
    """The smallest worsening of the mean that ``test`` catches with probability ``power``.

    Worsening: a drop when ``higher_is_better``, a rise otherwise (the recorded
    distribution is not assumed symmetric).

    ``"rank"``: found by bisection on :func:`simulate_gate` (10,000 trials per
    step, the same draws at every step, ``seed``) on the recorded distribution.
    ``"prediction"``: exact under normality, from the noncentral t distribution
    of ``(x̄_fresh - x̄)/(s·sqrt(1/m + 1/K))`` with ``K - 1`` degrees of freedom.
    In the metric's units either way (0 when the recorded values are all
    equal; ``inf`` when the rank test cannot reach ``alpha`` at these sizes).
    """
    base = _values("baseline", baseline, 2)
    m = check_int("m", m, min_value=1)
    alpha = check_probability("alpha", alpha)
    power = check_probability("power", power)
    check_choice("test", test, GATE_TESTS)
    sd = float(base.std(ddof=1))
    if sd == 0.0:
        return 0.0
    k = base.size
    if test == "prediction":
        factor = math.sqrt(1 / m + 1 / k)
        critical = float(stats.t.ppf(1 - alpha, k - 1))

        def miss(delta: float) -> float:
            return float(stats.nct.cdf(-critical, k - 1, -delta / factor)) - power

        return optimize.brentq(miss, 0.0, 100.0, xtol=1e-6) * sd
    return _rank_drop(tuple(base.tolist()), m, alpha, power, higher_is_better, seed)


@functools.lru_cache(maxsize=256)
def _rank_drop(
    values: tuple[float, ...], m: int, alpha: float, power: float, higher: bool, seed: int
) -> float:
    """:func:`detectable_drop` of the rank test (cached: what-if runs ask again and again)."""
    base = np.asarray(values)
    k, sd = base.size, float(base.std(ddof=1))
    if 1 / math.comb(k + m, m) > alpha:
        return math.inf

    def caught(delta: float) -> float:
        return simulate_gate(
            base,
            m,
            alpha=alpha,
            shift=delta * sd,
            higher_is_better=higher,
            test="rank",
            trials=_SEARCH_TRIALS,
            seed=seed,
        )

    low, high = 0.0, 1.0
    while caught(high) < power:
        low, high = high, high * 2
        if high > 1e3:
            return math.inf
    for _ in range(7):  # the bracket is at most one doubling wide: 1/128 of it
        mid = (low + high) / 2
        low, high = (mid, high) if caught(mid) < power else (low, mid)
    return high * sd


# --------------------------------------------------------------------------- equivalence


@dataclass(frozen=True)
class EquivalenceResult:
    """Old vs new environment for one metric: two one-sided Welch tests (TOST).

    ``verdict``: ``"equivalent"`` (the difference is shown to lie within
    ``±margin``: both one-sided tests reject at ``alpha``), ``"changed"`` (not
    equivalent, and the two-sided Welch test finds a difference at ``2·alpha``),
    or ``"inconclusive"`` (neither: too few or too noisy runs to tell).
    ``interval`` is the ``1 - 2·alpha`` confidence interval of new - old.
    """

    metric: str
    old_mean: float
    old_sd: float
    new_mean: float
    new_sd: float
    difference: float
    interval: tuple[float, float]
    margin: float
    alpha: float
    p_equivalent: float
    p_different: float
    verdict: str

    def __str__(self) -> str:
        low, high = self.interval
        return (
            f"{self.metric}: old {self.old_mean:.5g} ± {self.old_sd:.3g}, new {self.new_mean:.5g} "
            f"± {self.new_sd:.3g}; new - old {self.difference:+.4g} "
            f"({100 * (1 - 2 * self.alpha):.0f}% CI {low:+.4g}..{high:+.4g}), margin ±{self.margin:g}: "
            f"{self.verdict.upper()} (TOST p {self.p_equivalent:.3g}, Welch p {self.p_different:.3g})"
        )


def equivalence_test(
    metric: str,
    old: Sequence[float],
    new: Sequence[float],
    *,
    margin: float,
    alpha: float = EQUIVALENCE_ALPHA,
) -> EquivalenceResult:
    """Is the mean of ``new`` within ``±margin`` of the mean of ``old``? (Welch TOST).

    Each one-sided test is ``scipy.stats.ttest_ind(..., equal_var=False)`` on
    values shifted by the margin; equivalence needs both to reject at
    ``alpha``. With 20 or more runs a side, the mean difference is close to
    normal whatever the metric's shape.

    Raises
    ------
    ValueError
        fewer than 2 values on a side, a non-finite value, or ``margin <= 0``.
    """
    a = _values("old", old, 2)
    b = _values("new", new, 2)
    margin = check_positive_float("margin", margin)
    alpha = check_probability("alpha", alpha)
    above = stats.ttest_ind(b + margin, a, equal_var=False, alternative="greater").pvalue
    below = stats.ttest_ind(b - margin, a, equal_var=False, alternative="less").pvalue
    welch = stats.ttest_ind(b, a, equal_var=False)
    p_equivalent = float(max(above, below))
    p_different = float(welch.pvalue)
    ci = welch.confidence_interval(confidence_level=1 - 2 * alpha)
    if p_equivalent < alpha:
        verdict = "equivalent"
    elif p_different < 2 * alpha:
        verdict = "changed"
    else:
        verdict = "inconclusive"
    return EquivalenceResult(
        metric=metric,
        old_mean=float(a.mean()),
        old_sd=float(a.std(ddof=1)),
        new_mean=float(b.mean()),
        new_sd=float(b.std(ddof=1)),
        difference=float(b.mean() - a.mean()),
        interval=(float(ci.low), float(ci.high)),
        margin=margin,
        alpha=alpha,
        p_equivalent=p_equivalent,
        p_different=p_different,
        verdict=verdict,
    )
