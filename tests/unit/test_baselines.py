"""Baseline store (atomic, versioned, never silently overwritten) and the prediction-bound gate."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from scipy import stats

from netprops.baselines import (
    SCHEMA_VERSION,
    Baseline,
    BaselineError,
    BaselineExistsError,
    baseline_path,
    current_provenance,
    environment_changes,
    prediction_gate,
    read_baseline,
    write_baseline,
)


def _baseline(scenario="s", values=(0.8, 0.81, 0.82)) -> Baseline:
    return Baseline(
        scenario=scenario,
        device_kind="cpu",
        seeds=tuple(range(len(values))),
        metrics={
            "final_accuracy": tuple(values),
            "steps_to_target": (10.0,) + (None,) * (len(values) - 1),
        },
        config={"model": "mlp-784-256-10", "lr": 1e-3},
        provenance=current_provenance("cpu"),
    )


def test_round_trip(tmp_path):
    path = write_baseline(_baseline(), baseline_path("s", "cpu", tmp_path))
    assert path.name == "s.cpu.json"
    loaded = read_baseline(path)
    assert loaded == _baseline() or loaded.to_dict() == {
        **_baseline().to_dict(),
        "provenance": loaded.provenance,
    }
    assert loaded.metrics["steps_to_target"][1] is None
    assert json.loads(path.read_text())["schema"] == SCHEMA_VERSION


def test_never_overwritten_silently(tmp_path):
    path = write_baseline(_baseline(values=(0.1, 0.2)), tmp_path / "s.cpu.json")
    with pytest.raises(BaselineExistsError, match="exists; pass overwrite=True"):
        write_baseline(_baseline(), path)
    assert read_baseline(path).metrics["final_accuracy"] == (0.1, 0.2)
    write_baseline(_baseline(), path, overwrite=True)
    assert read_baseline(path).metrics["final_accuracy"] == (0.8, 0.81, 0.82)


def test_corrupt_file_is_a_clear_error_and_is_kept(tmp_path):
    path = tmp_path / "s.cpu.json"
    path.write_text('{"schema": 1, "scen')
    with pytest.raises(BaselineError, match="corrupt baseline file"):
        read_baseline(path)
    with pytest.raises(BaselineError, match="corrupt"):
        write_baseline(_baseline(), path, overwrite=True)
    assert path.read_text() == '{"schema": 1, "scen'


def test_unknown_schema_and_missing_fields(tmp_path):
    path = tmp_path / "s.cpu.json"
    path.write_text(json.dumps({"schema": 99}))
    with pytest.raises(BaselineError, match="unknown baseline schema 99"):
        read_baseline(path)
    path.write_text(json.dumps({"schema": SCHEMA_VERSION, "scenario": "s"}))
    with pytest.raises(BaselineError, match="missing fields"):
        read_baseline(path)
    with pytest.raises(BaselineError, match="no baseline recorded"):
        read_baseline(tmp_path / "absent.cpu.json")


def test_metric_length_must_match_seeds(tmp_path):
    data = _baseline().to_dict()
    data["metrics"]["final_accuracy"] = [0.1]
    path = tmp_path / "s.cpu.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="has 1 values for 3 seeds"):
        read_baseline(path)


def test_concurrent_writers_leave_a_complete_file(tmp_path):
    path = tmp_path / "s.cpu.json"
    write_baseline(_baseline(), path)
    errors = []

    def writer(i):
        try:
            for _ in range(20):
                write_baseline(_baseline(values=(i, i + 1.0)), path, overwrite=True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    values = read_baseline(path).metrics["final_accuracy"]
    assert values[1] == values[0] + 1
    assert not list(tmp_path.glob("*.tmp"))


def test_environment_changes_name_the_key():
    stored = current_provenance("cpu")
    assert environment_changes(stored, current_provenance("cpu")) == []
    changed = environment_changes(stored, {**stored, "torch": "0.0.1"})
    assert changed == [f"torch: baseline {stored['torch']!r}, now '0.0.1'"]


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
    low, high = stats.binom.ppf(1e-9, trials, alpha), stats.binom.isf(1e-9, trials, alpha)
    assert low <= fired <= high


def test_gate_power_against_a_four_sigma_regression():
    """METHODS.md §4: K=10, m=3, alpha=1e-3 catches a 4σ regression ~91-95% of the time."""
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
