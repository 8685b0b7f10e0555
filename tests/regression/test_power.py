"""The gate's power and its false-alarm behaviour, on a cheap real-data scenario.

An unchanged scenario passes 20 gate runs, each with its own fresh seeds; injected
regressions (a halved learning rate, a broken init) are caught.
"""

from __future__ import annotations

import pytest

from netprops import baselines
from netprops.scenarios import Scenario

pytestmark = pytest.mark.convergence

PROBE = Scenario(
    name="power-probe",
    group="power",
    description="784-256-10 ReLU MLP, 40 Adam steps",
    model="mlp-784-256-10",
    steps=40,
    batch_size=32,
    lr=1e-3,
    eval_every=40,
    test_subset=1000,
    baseline_seeds=tuple(range(10)),
)


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory, fashion_cpu):
    root = tmp_path_factory.mktemp("baselines")
    baselines.record(PROBE, root=root, data=fashion_cpu)
    return root


def test_unchanged_scenario_passes_twenty_gate_runs(probe_root, fashion_cpu):
    verdicts = [
        baselines.compare(
            PROBE, root=probe_root, data=fashion_cpu, seeds=(100 + 3 * i, 101 + 3 * i, 102 + 3 * i)
        )
        for i in range(20)
    ]
    failed = [v.message for v in verdicts if not v.passed]
    assert not failed, "\n".join(failed)
    assert not any(v.environment_changed for v in verdicts)


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"lr": 5e-4}, "halved learning rate"),
        ({"init": "normal", "init_params": {"std": 1.0}}, "N(0, 1) init"),
    ],
)
def test_injected_regression_is_caught(probe_root, fashion_cpu, overrides, what):
    verdict = baselines.compare(PROBE, root=probe_root, data=fashion_cpu, **overrides)
    assert verdict.passed is False, f"{what} was not caught:\n{verdict.message}"
    assert "CONVERGENCE REGRESSION" in verdict.message
    assert "re-record" in verdict.message


def test_what_if_run_reports_the_overrides(probe_root, fashion_cpu):
    verdict = baselines.compare(PROBE, root=probe_root, data=fashion_cpu, seeds=(7000,), steps=40)
    assert "with {'steps': 40}" in verdict.message


def test_changed_definition_asks_for_a_rerecord(probe_root, fashion_cpu):
    changed = PROBE.replace(steps=41)
    verdict = baselines.compare(changed, root=probe_root, data=fashion_cpu)
    assert verdict.environment_changed
    assert verdict.passed is None
    assert "environment changed — re-record" in verdict.message
