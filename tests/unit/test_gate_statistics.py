"""The gate's statistics: prediction bound, rank test, floor, detectable drop, simulation, TOST."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from netprops.gate import (
    GATE_ALPHA,
    detectable_drop,
    equivalence_test,
    gate_metric,
    prediction_gate,
    rank_gate,
    simulate_gate,
)

#: depth-depth8's recorded accuracies before the catalog was redesigned: 4 of 10 seeds at chance.
BIMODAL = [0.586, 0.558, 0.553, 0.537, 0.159, 0.09, 0.626, 0.591, 0.099, 0.213]


def _binomial_band(trials, p, tail=1e-9):
    return stats.binom.ppf(tail, trials, p), stats.binom.isf(tail, trials, p)


def _unit_sample(k, seed=0):
    """k values with mean exactly 0 and sd exactly 1 (so a detectable drop is in sds)."""
    x = np.random.default_rng(seed).normal(size=k)
    return (x - x.mean()) / x.std(ddof=1)


def test_gate_bound_is_the_t_prediction_bound():
    base = [0.85, 0.86, 0.84, 0.855, 0.845, 0.85, 0.862, 0.838, 0.851, 0.849]
    result = prediction_gate("acc", base, [0.85, 0.85, 0.85], alpha=1e-3)
    k, m = len(base), 3
    expected = np.mean(base) - stats.t.ppf(1 - 1e-3, k - 1) * np.std(base, ddof=1) * np.sqrt(
        1 / m + 1 / k
    )
    assert result.bound == pytest.approx(expected, rel=1e-12)
    assert result.passed
    lower = prediction_gate("loss", base, [0.95, 0.95, 0.95], higher_is_better=False)
    assert not lower.passed
    assert "REGRESSION" in str(lower)


def test_gate_false_alarm_rate_matches_alpha():
    """Same distribution for baseline and fresh runs: the gate fires with probability alpha."""
    rng = np.random.default_rng(0)
    trials, alpha = 4_000, 0.05
    fired = sum(
        not prediction_gate("x", rng.normal(size=10), rng.normal(size=3), alpha=alpha).passed
        for _ in range(trials)
    )
    low, high = _binomial_band(trials, alpha)
    assert low <= fired <= high


def test_gate_power_against_a_four_sigma_regression():
    """K=10, m=3, alpha=1e-3 catches a 4σ regression ~91-95% of the time."""
    rng = np.random.default_rng(1)
    trials = 1000
    caught = sum(
        not prediction_gate("x", rng.normal(size=10), rng.normal(-4.0, size=3)).passed
        for _ in range(trials)
    )
    assert 0.88 <= caught / trials <= 0.97


def test_gate_validation():
    with pytest.raises(ValueError, match="len\\(baseline\\) must be an int >= 2"):
        prediction_gate("x", [1.0], [1.0])
    with pytest.raises(ValueError, match="len\\(fresh\\) must be an int >= 1"):
        prediction_gate("x", [1.0, 2.0], [])
    with pytest.raises(ValueError, match="finite numbers"):
        prediction_gate("x", [1.0, math.nan], [1.0])
    with pytest.raises(ValueError, match="test must be one of"):
        gate_metric("x", [1.0, 2.0, 3.0], [1.0], test="welch")
    with pytest.raises(ValueError, match="test must be one of"):
        simulate_gate([1.0, 2.0, 3.0], 3, test="welch")


def test_floor_fails_whatever_the_spread():
    # a baseline so noisy that the prediction bound lies below chance
    base = [0.9, 0.1 + 1e-3, 0.5, 0.3, 0.7, 0.95, 0.2, 0.85]
    without = prediction_gate("acc", base, [0.11, 0.1, 0.12])
    assert without.passed, "the bound alone cannot fail a network at chance here"
    with_floor = prediction_gate("acc", base, [0.11, 0.1, 0.12], floor=0.2)
    assert not with_floor.passed
    assert with_floor.floor_hit
    assert "floor 0.2 (HIT)" in str(with_floor)
    assert prediction_gate("acc", base, [0.6, 0.6, 0.6], floor=0.2).passed
    loss = prediction_gate("loss", [1.0, 2.0, 3.0], [2.5], higher_is_better=False, floor=2.3)
    assert loss.floor_hit and not loss.passed


def test_a_bimodal_recording_leaves_only_the_floor_to_catch_a_dead_network():
    """Why every recorded run must learn: with 4 of 10 seeds at chance, no test can see a dead
    network (the normal bound lies below chance, the rank test finds it like a failed seed)."""
    dead = [0.1, 0.1, 0.1]
    bound = prediction_gate("acc", BIMODAL, dead, alpha=5e-4)
    assert bound.bound < 0.1 and bound.passed
    assert rank_gate("acc", BIMODAL * 3, dead, alpha=5e-4).passed
    assert not rank_gate("acc", BIMODAL * 3, dead, alpha=5e-4, floor=0.2).passed


def test_the_normal_bound_overshoots_alpha_on_a_heavy_tailed_metric():
    """Heavy tails a 30-value normality screen cannot see: the bound fires too often, ranks do not."""
    rng = np.random.default_rng(12)
    heavy = rng.standard_t(3, size=200_000)
    assert stats.shapiro(heavy[:30]).pvalue > 0.01
    trials, alpha = 200_000, 5e-4
    bound = simulate_gate(heavy, 3, alpha=alpha, k=30, test="prediction", trials=trials, seed=13)
    rank = simulate_gate(heavy, 3, alpha=alpha, k=30, test="rank", trials=trials, seed=13)
    high = _binomial_band(trials, alpha)[1]
    assert bound * trials > high, f"bound {bound:.2e}"
    assert rank * trials <= high, f"rank {rank:.2e}"


def test_rank_gate_is_the_exact_mann_whitney_test():
    base = list(np.random.default_rng(2).normal(size=30))
    fresh = [-5.0, -4.0, -3.5]
    result = rank_gate("x", base, fresh, alpha=5e-4)
    expected = stats.mannwhitneyu(fresh, base, alternative="less", method="exact").pvalue
    assert result.p_value == pytest.approx(expected)
    assert result.p_value == pytest.approx(1 / math.comb(33, 3))  # all three below all 30
    assert not result.passed
    assert "rank test" in str(result)
    assert rank_gate("x", base, [0.1, -0.2, 0.3], alpha=5e-4).passed
    higher = rank_gate("x", base, [5.0, 4.0, 3.5], alpha=5e-4, higher_is_better=False)
    assert not higher.passed


def test_rank_gate_refuses_sizes_that_cannot_reach_alpha():
    with pytest.raises(ValueError, match=r"cannot reach alpha=0.0005 .* 1/C\(13, 3\)"):
        rank_gate("x", list(range(10)), [0.0, 1.0, 2.0], alpha=5e-4)


def test_rank_gate_holds_alpha_on_a_bimodal_metric_where_the_bound_does_not_apply():
    """On a 60/40 mixture of two clusters the exact rank test keeps its false-alarm rate."""
    trials, alpha = 100_000, 5e-4
    rate = simulate_gate(BIMODAL, 3, alpha=alpha, test="rank", k=30, trials=trials, seed=3)
    assert rate * trials <= _binomial_band(trials, alpha)[1]


def test_detectable_drop_is_the_90_percent_power_point_under_normality():
    base = _unit_sample(30)
    drop = detectable_drop(base, 3, alpha=GATE_ALPHA / 2, test="prediction")
    assert 2.9 < drop < 3.3  # in sds: (t + z) * sqrt(1/3 + 1/30) with K - 1 = 29 df
    normal = _unit_sample(200_000, seed=4)  # a smoothed bootstrap of this is N(0, 1)
    trials = 20_000
    caught = simulate_gate(
        normal, 3, alpha=GATE_ALPHA / 2, shift=drop, k=30, test="prediction", trials=trials, seed=5
    )
    low, high = _binomial_band(trials, 0.9)
    assert low / trials <= caught <= high / trials
    assert detectable_drop([0.5, 0.5, 0.5], 3) == 0.0
    scaled = detectable_drop(base * 0.01, 3, alpha=GATE_ALPHA / 2, test="prediction")
    assert scaled == pytest.approx(drop * 0.01)


def test_detectable_drop_of_the_rank_test_is_found_by_simulation():
    base = _unit_sample(30, seed=6)
    rank = detectable_drop(base, 3, alpha=GATE_ALPHA / 2)
    bound = detectable_drop(base, 3, alpha=GATE_ALPHA / 2, test="prediction")
    assert bound < rank < 1.4 * bound  # less powerful on normal data, same order
    assert detectable_drop(base, 4, alpha=GATE_ALPHA / 2) < rank
    power = simulate_gate(
        base, 3, alpha=GATE_ALPHA / 2, shift=rank, test="rank", trials=20_000, seed=7
    )
    assert 0.87 <= power <= 0.93
    assert detectable_drop(list(range(10)), 3, test="rank") == math.inf


def test_simulated_false_alarm_rate_of_the_bound_on_normal_data_is_alpha():
    trials, alpha = 400_000, 5e-4
    rate = simulate_gate(
        _unit_sample(200_000), 3, alpha=alpha, k=30, test="prediction", trials=trials, seed=8
    )
    low, high = _binomial_band(trials, alpha)
    assert low <= rate * trials <= high


def test_simulated_false_alarm_rate_of_the_rank_test_is_its_exact_size():
    trials, alpha = 400_000, 5e-4
    size = 2 / math.comb(33, 3)  # P(U <= 1): the largest attainable level below alpha
    rate = simulate_gate(_unit_sample(200_000), 3, alpha=alpha, k=30, trials=trials, seed=14)
    low, high = _binomial_band(trials, size)
    assert low <= rate * trials <= high


def test_gate_metric_runs_the_rank_test_and_states_the_detectable_drop():
    normal = list(np.random.default_rng(9).normal(0.85, 0.005, size=30))
    result = gate_metric("acc", normal, [0.85, 0.851, 0.849], alpha=5e-4)
    assert result.test == "rank" and result.passed
    assert result.detectable_drop == pytest.approx(detectable_drop(normal, 3, alpha=5e-4))
    assert "detectable drop" in str(result)
    bound = gate_metric("acc", normal, [0.85, 0.851, 0.849], alpha=5e-4, test="prediction")
    assert bound.test == "prediction"
    assert bound.detectable_drop < result.detectable_drop
    dead = gate_metric("acc", BIMODAL * 3, [0.1, 0.1, 0.1], alpha=5e-4, floor=0.2)
    assert not dead.passed and dead.floor_hit


def test_equivalence_test_verdicts():
    rng = np.random.default_rng(10)
    old = rng.normal(0.85, 0.004, size=30)
    same = rng.normal(0.85, 0.004, size=30)
    result = equivalence_test("acc", old, same, margin=0.01)
    assert result.verdict == "equivalent"
    assert -0.01 < result.interval[0] < result.interval[1] < 0.01
    assert "EQUIVALENT" in str(result)
    slower = equivalence_test("acc", old, same - 0.03, margin=0.01)
    assert slower.verdict == "changed"
    assert slower.difference == pytest.approx(same.mean() - 0.03 - old.mean())
    noisy = equivalence_test("acc", [0.8, 0.9], [0.7, 0.95], margin=0.01)
    assert noisy.verdict == "inconclusive"
    with pytest.raises(ValueError, match="margin must be"):
        equivalence_test("acc", old, same, margin=0)


def test_equivalence_test_size_at_the_margin():
    """A true difference exactly at the margin is declared equivalent with probability <= alpha."""
    rng = np.random.default_rng(11)
    trials = 400
    declared = sum(
        equivalence_test(
            "x", rng.normal(0, 1, 30), rng.normal(0.5, 1, 30), margin=0.5, alpha=0.05
        ).verdict
        == "equivalent"
        for _ in range(trials)
    )
    assert declared <= stats.binom.isf(1e-9, trials, 0.05)


def test_detectable_drop_follows_the_metric_direction_on_a_skewed_distribution():
    skewed = np.random.default_rng(15).exponential(size=30)
    rise = detectable_drop(skewed, 3, alpha=5e-4, higher_is_better=False)
    mirrored = detectable_drop(-skewed, 3, alpha=5e-4, higher_is_better=True)
    assert rise == pytest.approx(mirrored, rel=0.05)
    drop = detectable_drop(skewed, 3, alpha=5e-4, higher_is_better=True)
    assert rise > 1.02 * drop  # a long right tail: a rise is harder to see than a drop
