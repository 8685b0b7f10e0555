"""Baseline store (atomic, versioned, never silently overwritten) and the prediction-bound gate."""

from __future__ import annotations

import json
import math
import os
import stat
import threading

import numpy as np
import pytest
from scipy import stats

from netprops import baselines
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
from netprops.scenarios import get as get_scenario


def _baseline(scenario="s", values=(0.8, 0.81, 0.82)) -> Baseline:
    return Baseline(
        scenario=scenario,
        device_kind="cpu",
        seeds=tuple(range(len(values))),
        metrics={
            "final_accuracy": tuple(values),
            "auc_log_loss": tuple(1.0 - v for v in values),
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
    with pytest.raises(BaselineError, match=r"must list one value per seed \(3\)"):
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


def test_concurrent_first_recordings_leave_exactly_one_winner(tmp_path):
    # without overwrite, of several writers racing for a new file exactly one succeeds
    for trial in range(10):
        path = tmp_path / f"race{trial}.cpu.json"
        barrier = threading.Barrier(6)
        outcomes = []

        def writer(i, path=path, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                write_baseline(_baseline(values=(i, i + 1.0)), path)
                outcomes.append(("won", i))
            except BaselineExistsError:
                outcomes.append(("refused", i))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for outcome, i in outcomes if outcome == "won"]
        assert len(winners) == 1, outcomes
        assert read_baseline(path).metrics["final_accuracy"][0] == winners[0]
    assert not list(tmp_path.glob("*.tmp"))


def test_new_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = write_baseline(_baseline(), tmp_path / "s.cpu.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"metrics": [1, 2]}, "field 'metrics' must be a JSON object"),
        ({"seeds": 5}, "field 'seeds' must be a list of at least 2 integer seeds"),
        ({"seeds": [0.5, 1.5, 2.5]}, "field 'seeds' must be a list"),
        ({"config": "abc"}, "field 'config' must be a JSON object"),
        ({"provenance": None}, "field 'provenance' must be a JSON object"),
        ({"scenario": 3}, "field 'scenario' must be a non-empty string"),
        ({"schema": True}, "unknown baseline schema True"),
        ({"metrics": {"final_accuracy": [0.1, 0.2, 0.3]}}, "gated metric 'auc_log_loss'"),
        (
            {"metrics": {"final_accuracy": [0.1, "x", 0.3], "auc_log_loss": [1, 1, 1]}},
            "must hold numbers or null",
        ),
    ],
)
def test_structurally_bad_files_are_baseline_errors(tmp_path, edit, match):
    path = tmp_path / "s.cpu.json"
    path.write_text(json.dumps({**_baseline().to_dict(), **edit}))
    with pytest.raises(BaselineError, match=match):
        read_baseline(path)
    text = path.read_text()
    with pytest.raises(BaselineError):
        write_baseline(_baseline(), path, overwrite=True)
    assert path.read_text() == text  # never replaced


def test_unreadable_files_are_baseline_errors(tmp_path):
    path = tmp_path / "s.cpu.json"
    path.write_bytes(b"\xff\xfe{not utf-8")
    with pytest.raises(BaselineError, match="not UTF-8"):
        read_baseline(path)
    folder = tmp_path / "d.cpu.json"
    folder.mkdir()
    with pytest.raises(BaselineError, match="cannot read the baseline"):
        read_baseline(folder)


def test_a_nan_gated_metric_is_never_recorded(tmp_path, monkeypatch):
    def fake_runs(scenario, seeds, device, data):
        return {
            "final_accuracy": [math.nan] + [0.5] * (len(seeds) - 1),
            "auc_log_loss": [1.0] * len(seeds),
        }

    monkeypatch.setattr(baselines, "_run_many", fake_runs)
    with pytest.raises(BaselineError, match="gated metric 'final_accuracy' must hold a finite"):
        baselines.record("arch-mlp", root=tmp_path)
    assert not list(tmp_path.iterdir())


def _fake_runs(scenario, seeds, device, data):
    return {
        "final_accuracy": [0.7 + 0.001 * s % 7 for s in seeds],
        "auc_log_loss": [0.5 - 0.001 * (s % 5) for s in seeds],
    }


def test_tuple_valued_fields_still_compare_after_the_json_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _fake_runs)
    scenario = get_scenario("arch-mlp").replace(model_args={"hidden": (32, 16)})
    baselines.record(scenario, root=tmp_path)
    verdict = baselines.compare(scenario, root=tmp_path)
    assert not verdict.environment_changed, verdict.message


def test_compare_refuses_fresh_seeds_that_were_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _fake_runs)
    baselines.record("arch-mlp", root=tmp_path)
    with pytest.raises(ValueError, match=r"fresh seeds must differ .* both hold \[0, 1\]"):
        baselines.compare("arch-mlp", root=tmp_path, seeds=(0, 1, 1000))
    with pytest.raises(ValueError, match="at least 1 distinct seeds"):
        baselines.compare("arch-mlp", root=tmp_path, seeds=())


def test_record_checks_the_device_and_an_existing_file_before_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("trained before the checks")

    monkeypatch.setattr(baselines, "_run_many", no_training)
    with pytest.raises(ValueError, match="device must be one of"):
        baselines.record("arch-mlp", root=tmp_path, device="gpu")
    (tmp_path / "arch-mlp.cpu.json").write_text("{broken")
    with pytest.raises(BaselineError, match="corrupt"):
        baselines.record("arch-mlp", root=tmp_path, overwrite=True)


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ({"lr": "abc"}, TypeError, "lr must be a real number"),
        ({"fresh_seeds": 5}, TypeError, "fresh_seeds must be a sequence of ints"),
        ({"test_subset": 0}, ValueError, "test_subset must be an int >= 1"),
        ({"track_grad_norms": "no"}, TypeError, "track_grad_norms must be bool"),
        ({"fresh_seeds": [0, 1, 2]}, ValueError, "disjoint from baseline_seeds"),
        ({"target_accuracy": 0}, ValueError, r"target_accuracy must be in \(0, 1\]"),
        ({"model": "nope"}, ValueError, "model must be one of"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"baseline_seeds": [3]}, ValueError, "at least 2 distinct seeds"),
    ],
)
def test_scenario_fields_are_validated_at_once(override, error, match):
    with pytest.raises(error, match=match):
        get_scenario("arch-mlp").replace(**override)


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
