"""A torch upgrade is a comparison: ``migrate`` on real Fashion-MNIST, with a simulated
environment change (the stored provenance says another torch).

Unchanged behaviour is shown equivalent and re-recorded with both provenances; an injected
slowdown of convergence (the new "environment" trains at a quarter of the learning rate) is
reported as a change and leaves the old baseline in place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import netprops.scenarios
from netprops import baselines
from netprops.scenarios import Scenario

pytestmark = pytest.mark.convergence

PROBE = Scenario(
    name="migrate-probe",
    group="probe",
    description="784-128-64-10 ReLU MLP, He init, 100 Adam steps",
    model="mlp-784-128-64-10",
    init="he",
    steps=100,
    batch_size=64,
    baseline_seeds=tuple(range(13)),  # the fewest with which the gate's rank test works at m = 4
    fresh_seeds=(1000, 1001, 1002, 1003),
)
NEW_SEEDS = tuple(range(100, 113))
OLD_TORCH = "2.13.0-simulated"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, fashion_cpu):
    """PROBE recorded once, its provenance rewritten as if it came from another torch."""
    path = baselines.record(PROBE, root=tmp_path_factory.mktemp("old"), data=fashion_cpu)
    data = json.loads(path.read_text())
    data["provenance"]["torch"] = OLD_TORCH
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def old_environment(recorded, tmp_path):
    """A private copy of the recording (each test may rewrite it)."""
    return Path(shutil.copy(recorded, tmp_path / recorded.name))


def test_the_gate_does_not_compare_across_environments_silently(old_environment, fashion_cpu):
    verdict = baselines.compare(PROBE, root=old_environment.parent, data=fashion_cpu)
    assert verdict.environment_changed and verdict.passed is None
    assert f"torch: baseline '{OLD_TORCH}'" in verdict.message
    assert "netprops baselines migrate migrate-probe" in verdict.message


def test_unchanged_behaviour_is_equivalent_and_carries_both_provenances(
    old_environment, fashion_cpu
):
    migration = baselines.migrate(
        PROBE, root=old_environment.parent, seeds=NEW_SEEDS, data=fashion_cpu
    )
    assert migration.equivalent and migration.written, migration.message
    new = baselines.read_baseline(old_environment)
    assert new.previous["provenance"]["torch"] == OLD_TORCH
    assert new.provenance["torch"] != OLD_TORCH
    assert new.seeds == NEW_SEEDS
    verdict = baselines.compare(PROBE, root=old_environment.parent, data=fashion_cpu)
    assert verdict.passed, verdict.message


def test_a_slower_convergence_is_reported_and_not_written(
    old_environment, fashion_cpu, monkeypatch
):
    real_train = netprops.scenarios.train

    def slower(*args, lr, **kwargs):  # the "new environment": its optimizer steps 4x shorter
        return real_train(*args, lr=lr / 4, **kwargs)

    monkeypatch.setattr(netprops.scenarios, "train", slower)
    before = old_environment.read_text()
    migration = baselines.migrate(
        PROBE, root=old_environment.parent, seeds=NEW_SEEDS, data=fashion_cpu
    )
    assert not migration.equivalent and not migration.written
    assert "auc_log_loss" in migration.changed, migration.message
    assert "CHANGED BEYOND NOISE" in migration.message
    assert old_environment.read_text() == before
