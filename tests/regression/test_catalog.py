"""The recorded catalog does what the gate's design needs (read from baselines/, no training).

Working scenarios learn clearly in every recorded seed; every recorded run lies above its
scenario's chance floor (so the floor never fails an unchanged scenario); the gate catches a
2-point accuracy drop with 90 % power in every working scenario; and, simulated on each
recorded distribution (a smoothed bootstrap of the K stored runs), the gate's false-alarm
rate stays near its alpha and its power at 2 points holds (20,000 and 10,000 simulated runs). The full calibration table is
in docs/methods.md §5.5 (`netprops baselines show` prints the detectable drops).
"""

from __future__ import annotations

import pytest
from scipy import stats

from netprops import baselines
from netprops.gate import GATE_ALPHA, GATE_POWER, simulate_gate
from netprops.scenarios import GATED_METRICS, get, list_scenarios

pytestmark = pytest.mark.convergence

WORKING = [n for n in list_scenarios() if get(n).working]

#: Design goals (issue: "every scenario learns, a 2-point accuracy drop is caught").
MIN_MEAN_ACCURACY = 0.75
CHANCE = 0.1
MIN_ABOVE_CHANCE = 0.1
MAX_DETECTABLE_DROP = 0.02


def _accuracies(stored, name):
    return [v for v in stored(name).metrics["final_accuracy"] if v is not None]


@pytest.mark.parametrize("name", WORKING)
def test_working_scenario_learns_clearly_in_every_seed(stored, name):
    acc = _accuracies(stored, name)
    assert sum(acc) / len(acc) >= MIN_MEAN_ACCURACY, f"{name}: mean accuracy {acc}"
    worst = min(acc)
    assert worst > CHANCE + MIN_ABOVE_CHANCE, f"{name}: a seed within 10 points of chance: {acc}"


@pytest.mark.parametrize("name", list_scenarios())
def test_every_recorded_run_is_above_the_chance_floor(stored, name):
    floor = get(name).chance_floor
    assert min(_accuracies(stored, name)) > floor + 0.05, (
        f"{name}: a recorded run lies within 5 points of the floor {floor}"
    )


@pytest.mark.parametrize("name", WORKING)
def test_a_two_point_accuracy_drop_is_detectable(stored, name):
    test, drop = baselines.detectable_drops(stored(name))["final_accuracy"]
    assert drop <= MAX_DETECTABLE_DROP, (
        f"{name}: the gate ({test} test, {len(get(name).fresh_seeds)} fresh seeds) detects a "
        f"drop of {drop:.4f} with {GATE_POWER:.0%} power, more than {MAX_DETECTABLE_DROP}"
    )


@pytest.mark.parametrize("metric", list(GATED_METRICS))
@pytest.mark.parametrize("name", list_scenarios())
def test_simulated_false_alarm_rate_is_near_alpha(stored, name, metric):
    values = [v for v in stored(name).metrics[metric] if v is not None]
    alpha = GATE_ALPHA / len(GATED_METRICS)
    trials = 20_000
    rate = simulate_gate(
        values,
        len(get(name).fresh_seeds),
        alpha=alpha,
        higher_is_better=GATED_METRICS[metric],
        test=baselines.GATE_TEST,
        trials=trials,
        seed=0,
    )
    # at most twice the nominal rate (the rank test's exact size is below it; a bug in the
    # gate or its simulation, or a test that assumes a shape, would exceed it)
    limit = stats.binom.isf(1e-6, trials, 2 * alpha) / trials
    assert rate <= limit, (
        f"{name} {metric}: simulated false-alarm rate {rate:.2e} "
        f"on the recorded distribution, nominal {alpha:.1e}"
    )


@pytest.mark.parametrize("name", WORKING)
def test_simulated_power_against_a_two_point_drop(stored, name):
    values = _accuracies(stored, name)
    trials = 10_000
    power = simulate_gate(
        values,
        len(get(name).fresh_seeds),
        alpha=GATE_ALPHA / len(GATED_METRICS),
        shift=MAX_DETECTABLE_DROP,
        test=baselines.GATE_TEST,
        trials=trials,
        seed=1,
    )
    assert power >= GATE_POWER - 0.01, f"{name}: simulated power {power:.3f} at a 2-point drop"
