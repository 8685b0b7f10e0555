"""The convergence gate: every catalog scenario against its stored CPU baseline.

A missing baseline is recorded and the test fails saying so (re-run to compare);
``--netprops-update-baselines`` re-records deliberately; a scenario whose definition
changed fails until it is re-recorded. Where the stored provenance differs from this
environment (another torch, thread count, ...) the gate's false-alarm rate does not
hold: under CI that fails (CI installs the pinned environment, see constraints.txt);
locally the fresh runs are still compared with the old baseline, a regression fails,
and otherwise the test is skipped with a reason the netprops ledger lists at the end
of the run ("convergence gate ... skipped: environment changed"), never a silent pass.
"""

from __future__ import annotations

import pytest

from netprops import baselines
from netprops.gate import GATE_ALPHA
from netprops.plugin import running_in_ci
from netprops.plugin.reporting import record_result
from netprops.scenarios import get, list_scenarios

pytestmark = pytest.mark.convergence


def _longest_first(names):
    """Convolutional scenarios first, then by steps × fresh seeds: under pytest-xdist the
    longest tests start first, so the workers finish together."""

    def cost(name):
        scenario = get(name)
        return (
            not scenario.model.startswith(("cnn", "resnet", "wrn")),
            -scenario.steps * len(scenario.fresh_seeds),
        )

    return sorted(names, key=cost)


def _record(node, verdict) -> None:
    """The verdict's numbers as JUnit XML properties (and the ledger's row)."""
    if not verdict.gates:
        return
    worst = min(verdict.gates, key=lambda g: g.p_value if g.p_value is not None else 1.0)
    record_result(
        node,
        property="convergence gate",
        device="cpu",
        statistic=worst.p_value,
        bound=worst.bound,
        alpha=GATE_ALPHA,
        replay=f"netprops baselines compare {verdict.scenario}",
        scenario=verdict.scenario,
        metric=worst.metric,
        fresh=list(worst.fresh),
        verdict=verdict.outcome,
        monitor=verdict.diagnosis,
    )


@pytest.mark.parametrize("name", _longest_first(list_scenarios()))
def test_scenario_does_not_regress(name, baselines_root, update_baselines, fashion_cpu, in_ledger):
    path = baselines.baseline_path(name, "cpu", baselines_root)
    if update_baselines or not path.exists():
        existed = path.exists()
        baselines.record(
            name, device="cpu", root=baselines_root, overwrite=existed, data=fashion_cpu
        )
        pytest.fail(
            f"{'re-recorded' if existed else 'no baseline was stored; recorded'} {path}: "
            "review and commit it, then re-run without --netprops-update-baselines"
        )
    verdict = baselines.compare(name, device="cpu", root=baselines_root, data=fashion_cpu)
    _record(in_ledger, verdict)
    if verdict.definition_changed:
        pytest.fail(verdict.message)
    if verdict.environment_changed:
        if running_in_ci():
            pytest.fail(verdict.message)
        across = baselines.compare(
            name, device="cpu", root=baselines_root, data=fashion_cpu, across_environments=True
        )
        assert across.passed, (
            f"{across.message}\n  the environment changed AND the fresh runs regress against "
            f"the old baseline: measure it with `netprops baselines migrate {name}`"
        )
        pytest.skip(
            f"environment changed ({'; '.join(verdict.changes)}): convergence only compared "
            "across environments, where the gate's false-alarm rate does not hold; run "
            "`netprops baselines migrate` to compare the environments"
        )
    assert verdict.passed, verdict.message
