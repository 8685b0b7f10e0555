"""The convergence gate: every catalog scenario against its stored CPU baseline.

A missing baseline is recorded and the test fails saying so (re-run to compare);
``--netprops-update-baselines`` re-records deliberately. Where the stored
provenance differs from this environment the verdict is "environment changed —
re-record" instead of a comparison of incomparable numbers: a skip locally, a failure
under CI (a CI image that changed torch must not leave the gate green unchecked).
"""

from __future__ import annotations

import pytest

from netprops import baselines
from netprops.plugin import running_in_ci
from netprops.scenarios import list_scenarios

pytestmark = pytest.mark.convergence


@pytest.mark.parametrize("name", list_scenarios())
def test_scenario_does_not_regress(name, baselines_root, update_baselines, fashion_cpu):
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
    if verdict.environment_changed:
        if running_in_ci():
            pytest.fail(verdict.message)
        pytest.skip(verdict.message)
    assert verdict.passed, verdict.message
