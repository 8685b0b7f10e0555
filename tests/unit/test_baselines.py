"""Baseline store (atomic, versioned, never silently overwritten), record/compare/migrate, what-ifs."""

from __future__ import annotations

import json
import math
import os
import stat
import threading

import numpy as np
import pytest

from netprops import baselines
from netprops.baselines import (
    SCHEMA_VERSION,
    Baseline,
    BaselineError,
    BaselineExistsError,
    baseline_path,
    current_provenance,
    environment_changes,
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
    def fake_runs(scenario, seeds, device, data, reports=None):
        return {
            "final_accuracy": [math.nan] + [0.5] * (len(seeds) - 1),
            "auc_log_loss": [1.0] * len(seeds),
        }

    monkeypatch.setattr(baselines, "_run_many", fake_runs)
    with pytest.raises(BaselineError, match="gated metric 'final_accuracy' must hold a finite"):
        baselines.record("arch-mlp", root=tmp_path)
    assert not list(tmp_path.iterdir())


def _fake_runs(scenario, seeds, device, data, reports=None):
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


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ({"init_scale": 0}, ValueError, "init_scale must be"),
        ({"init_scale": "2"}, TypeError, "init_scale must be a real number"),
        ({"frozen": 0}, TypeError, "frozen must be a sequence of weight-layer indexes"),
        ({"frozen": "0"}, TypeError, "frozen must be a sequence"),
        ({"frozen": [0, 0]}, ValueError, "frozen must list distinct layer indexes"),
        ({"frozen": [1.5]}, TypeError, r"frozen\[0\] must be an int"),
        ({"downsample": 0}, ValueError, "downsample must be an int >= 1"),
        ({"label_noise": 1.0}, ValueError, "label_noise must be"),
        ({"label_noise": -0.1}, ValueError, "label_noise must be"),
        ({"cooldown": 1.0}, ValueError, "cooldown must be"),
        ({"cooldown_factor": 0}, ValueError, r"cooldown_factor must be in \(0, 1\]"),
        ({"working": "yes"}, TypeError, "working must be bool"),
        ({"chance_floor": 1.0}, ValueError, "chance_floor must be"),
    ],
)
def test_what_if_fields_are_validated_at_once(override, error, match):
    with pytest.raises(error, match=match):
        get_scenario("arch-mlp").replace(**override)


def test_every_standard_what_if_is_a_valid_override_of_every_scenario():
    from netprops.scenarios import list_scenarios, what_ifs

    for name in list_scenarios():
        scenario = get_scenario(name)
        changes = what_ifs(name)
        assert list(changes) == [
            "lr ÷ 2",
            "lr × 1e-5 (dead)",
            "init std × 2",
            "first layer frozen",
            "20 % labels shuffled",
        ]
        assert changes["lr × 1e-5 (dead)"]["lr"] == pytest.approx(scenario.lr * 1e-5)
        for overrides in changes.values():
            assert scenario.replace(**overrides) != scenario


def _normal_runs(shift=0.0, acc=0.85):
    """Fake runs: per seed, accuracy ~ N(acc - shift, 0.004²), log-loss area ~ N(-0.8 + 5·shift, 0.01²)."""

    def fake(scenario, seeds, device, data, reports=None):
        rngs = [np.random.default_rng(s) for s in seeds]
        draws = [(r.standard_normal(), r.standard_normal()) for r in rngs]
        return {
            "final_accuracy": [acc - shift + 0.004 * a for a, _ in draws],
            "auc_log_loss": [-0.8 + 5 * shift + 0.01 * b for _, b in draws],
        }

    return fake


def _age_provenance(path, **changes):
    data = json.loads(path.read_text())
    data["provenance"].update(changes)
    path.write_text(json.dumps(data))


def test_record_refuses_runs_at_the_chance_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs(acc=0.15))
    with pytest.raises(BaselineError, match=r"at or\s+below the scenario's chance floor 0.2"):
        baselines.record("arch-mlp", root=tmp_path)
    assert not list(tmp_path.iterdir())


def test_compare_fails_a_network_at_chance_through_the_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    monkeypatch.setattr(baselines, "_run_many", _normal_runs(acc=0.1))
    verdict = baselines.compare("arch-mlp", root=tmp_path)
    assert verdict.passed is False
    accuracy = next(g for g in verdict.gates if g.metric == "final_accuracy")
    assert accuracy.floor_hit
    assert "floor 0.2 (HIT)" in verdict.message
    assert "detectable drop" in verdict.message


def test_compare_passes_the_same_distribution_and_catches_a_shift(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    assert baselines.compare("arch-mlp", root=tmp_path).passed
    monkeypatch.setattr(baselines, "_run_many", _normal_runs(shift=0.02))
    verdict = baselines.compare("arch-mlp", root=tmp_path)
    assert verdict.passed is False
    assert "CONVERGENCE REGRESSION" in verdict.message


def test_environment_change_is_not_compared_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    path = baselines.record("arch-mlp", root=tmp_path)
    _age_provenance(path, torch="0.0.0-old")
    verdict = baselines.compare("arch-mlp", root=tmp_path)
    assert verdict.environment_changed and verdict.passed is None
    assert not verdict.definition_changed
    assert "environment changed — not compared" in verdict.message
    assert "netprops baselines migrate arch-mlp" in verdict.message
    assert verdict.changes == (f"torch: baseline '0.0.0-old', now {torch_version()!r}",)
    across = baselines.compare("arch-mlp", root=tmp_path, across_environments=True)
    assert across.passed is True and across.cross_environment
    assert "CROSS-ENVIRONMENT comparison" in across.message


def torch_version():
    import torch

    return torch.__version__


def test_changed_definition_asks_for_a_rerecord(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    verdict = baselines.compare(get_scenario("arch-mlp").replace(steps=41), root=tmp_path)
    assert verdict.definition_changed and verdict.passed is None
    assert "definition differs from the recorded one — re-record" in verdict.message
    with pytest.raises(BaselineError, match="migrate compares environments, not definitions"):
        baselines.migrate(get_scenario("arch-mlp").replace(steps=41), root=tmp_path)


def test_migrate_writes_an_equivalent_environment_with_both_provenances(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    path = baselines.record("arch-mlp", root=tmp_path)
    _age_provenance(path, torch="0.0.0-old")
    old = read_baseline(path)
    migration = baselines.migrate("arch-mlp", root=tmp_path, seeds=tuple(range(100, 130)))
    assert migration.equivalent and migration.written
    assert [r.verdict for r in migration.results] == ["equivalent", "equivalent"]
    assert migration.environment_changes[0].startswith("torch: baseline '0.0.0-old'")
    new = read_baseline(path)
    assert new.provenance["torch"] == torch_version()
    assert new.previous["provenance"]["torch"] == "0.0.0-old"
    assert new.previous["metrics"]["final_accuracy"] == list(old.metrics["final_accuracy"])
    assert new.seeds == tuple(range(100, 130))
    assert [e["verdict"] for e in new.previous["equivalence"]] == ["equivalent", "equivalent"]
    assert baselines.compare("arch-mlp", root=tmp_path).passed  # comparable again


def test_migrate_reports_a_change_and_keeps_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    path = baselines.record("arch-mlp", root=tmp_path)
    _age_provenance(path, torch="0.0.0-old")
    before = path.read_text()
    monkeypatch.setattr(baselines, "_run_many", _normal_runs(shift=0.02))
    migration = baselines.migrate("arch-mlp", root=tmp_path, seeds=tuple(range(100, 130)))
    assert not migration.equivalent and not migration.written
    assert migration.changed == ("final_accuracy", "auc_log_loss")
    assert "CHANGED BEYOND NOISE" in migration.message
    assert "--accept" in migration.message
    assert path.read_text() == before
    accepted = baselines.migrate(
        "arch-mlp", root=tmp_path, seeds=tuple(range(100, 130)), accept=True
    )
    assert accepted.written and not accepted.equivalent
    assert read_baseline(path).previous["provenance"]["torch"] == "0.0.0-old"


def test_migrate_validates_its_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    with pytest.raises(ValueError, match=r"disjoint from the scenario's fresh seeds.*\[1000\]"):
        baselines.migrate("arch-mlp", root=tmp_path, seeds=(*range(1, 30), 1000))
    with pytest.raises(BaselineError, match="no baseline recorded"):
        baselines.migrate("arch-cnn", root=tmp_path)


def test_detectable_drops_follow_the_stored_spread(tmp_path, monkeypatch):
    from netprops.gate import GATE_ALPHA, detectable_drop

    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    stored = read_baseline(baselines.record("arch-mlp", root=tmp_path))
    drops = baselines.detectable_drops(stored)
    test, drop = drops["final_accuracy"]
    assert test == "rank"
    values = stored.metrics["final_accuracy"]
    assert drop == pytest.approx(detectable_drop(values, 3, alpha=GATE_ALPHA / 2))
    assert 0.010 < drop < 0.022  # about 3.8 sds of 0.004
    assert baselines.detectable_drops(stored, m=12)["final_accuracy"][1] < drop


def test_what_if_table_names_what_caught_each_change(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    unchanged = baselines.compare("arch-mlp", root=tmp_path)
    monkeypatch.setattr(baselines, "_run_many", _normal_runs(acc=0.1))
    dead = baselines.compare("arch-mlp", root=tmp_path, lr=1e-8)
    changed = baselines.Verdict("arch-cnn", None, True, "environment changed")
    table = baselines.format_what_if_table(
        {"arch-mlp": {"lr ÷ 2": unchanged, "dead": dead}, "arch-cnn": {"lr ÷ 2": changed}}
    )
    assert table.splitlines() == [
        "| scenario | lr ÷ 2 | dead |",
        "|---|---|---|",
        "| arch-mlp | missed | caught (acc, floor) |",
        "| arch-cnn | n/c | n/c |",
    ]


def test_an_intact_file_of_an_older_schema_is_replaced_on_update(tmp_path):
    path = tmp_path / "s.cpu.json"
    path.write_text(json.dumps({**_baseline().to_dict(), "schema": SCHEMA_VERSION - 1}))
    with pytest.raises(
        BaselineError, match="re-record it with `netprops baselines record --update`"
    ):
        read_baseline(path)
    with pytest.raises(BaselineExistsError):
        write_baseline(_baseline(), path)
    write_baseline(_baseline(), path, overwrite=True)
    assert read_baseline(path).schema == SCHEMA_VERSION
    path.write_text(json.dumps({**_baseline().to_dict(), "schema": SCHEMA_VERSION + 1}))
    with pytest.raises(BaselineError, match="unknown baseline schema"):
        write_baseline(_baseline(), path, overwrite=True)


def test_simulated_calibration_of_a_normal_recording(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    stored = read_baseline(baselines.record("arch-mlp", root=tmp_path))
    table = baselines.simulated_calibration(stored, trials=20_000, seed=1)
    assert set(table) == {"final_accuracy", "auc_log_loss"}
    accuracy = table["final_accuracy"]
    assert accuracy["nominal"] == pytest.approx(5e-4)
    assert accuracy["false_alarm"] <= 0.003  # ~5e-4 expected: 10 of 20,000
    assert 0.85 <= accuracy["power_at_drop"] <= 0.95
    assert accuracy["power_at_2_points"] > 0.99  # 2 points is 5 recorded sds
    assert "power_at_2_points" not in table["auc_log_loss"]


def test_record_refuses_fewer_runs_than_the_rank_test_needs(tmp_path, monkeypatch):
    from netprops.gate import min_recorded_runs

    assert min_recorded_runs(3, 5e-4) == 21
    assert min_recorded_runs(4, 5e-4) == 13
    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    with pytest.raises(ValueError, match="seeds must hold at least 21 seeds for arch-mlp"):
        baselines.record("arch-mlp", root=tmp_path, seeds=tuple(range(20)))
    assert not list(tmp_path.iterdir())
    baselines.record("arch-mlp", root=tmp_path, seeds=tuple(range(21)))
    with pytest.raises(ValueError, match="at least 21 seeds"):
        baselines.migrate("arch-mlp", root=tmp_path, seeds=tuple(range(100, 110)))


def test_a_failing_verdict_says_what_the_monitor_saw_and_tabulates_for_ci(tmp_path, monkeypatch):
    from netprops.monitor import MonitorLimits, MonitorReport, Observation, Violation

    def stalled(scenario, seeds, device, data, reports=None):
        runs = _normal_runs(acc=0.1)(scenario, seeds, device, data)
        for seed in seeds:
            obs = Observation(step=0, layer="fc.weight", statistic=1e-8, bound=(1e-6, 1.0))
            reports[f"seed {seed}"] = MonitorReport(
                every=50,
                checks=("update_ratio",),
                limits=MonitorLimits(),
                steps=(0,),
                series={"update_ratio": (obs,)},
                violations=(
                    Violation("update_ratio", 0, None, "fc.weight", 1e-8, (1e-6, 1.0), "stalled"),
                ),
            )
        return runs

    monkeypatch.setattr(baselines, "_run_many", _normal_runs())
    baselines.record("arch-mlp", root=tmp_path)
    monkeypatch.setattr(baselines, "_run_many", stalled)
    verdict = baselines.compare("arch-mlp", root=tmp_path)
    assert verdict.passed is False
    assert "what the monitor saw:" in verdict.message
    assert verdict.diagnosis.count("update_ratio") == len(verdict.fresh["final_accuracy"])
    table = baselines.verdicts_markdown([verdict]).splitlines()
    assert table[0] == "| " + " | ".join(baselines.VERDICT_COLUMNS) + " |"
    assert len(table) == 2 + len(verdict.gates)
    assert all("| REGRESSION |" in row and "update_ratio" in row for row in table[2:])
