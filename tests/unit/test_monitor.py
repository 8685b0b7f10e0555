"""netprops.monitor: the live training monitor, run through netprops.train.train."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import netprops
from netprops.data import Data, synthetic_dataset
from netprops.monitor import (
    CHECKS,
    Monitor,
    MonitorLimits,
    MonitorReport,
    Observation,
    Violation,
    active_monitor,
    diagnose,
    monitoring,
)
from netprops.train import History, train

SHAPE = (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> Data:
    return synthetic_dataset(n_train=640, n_test=64, image_shape=SHAPE, seed=0)


def mlp(seed: int = 0, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """64 → 64 → 64 → 10; modules 2 and 4 are the activations."""
    with netprops.seeded_global_rng(seed):
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 64),
            activation(),
            nn.Linear(64, 64),
            activation(),
            nn.Linear(64, 10),
        )


def cnn(seed: int = 0) -> nn.Sequential:
    with netprops.seeded_global_rng(seed):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )


def run(model: nn.Module, data: Data, *, steps: int = 60, every: int = 10, **kwargs) -> History:
    kwargs.setdefault("batch_size", 64)
    return train(model, data, steps=steps, monitor=Monitor(every=every), **kwargs)


class Detached(nn.Module):
    """A layer whose output is cut from the graph: its parameters never get a gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).detach()


class NaNFrom(nn.Module):
    """Identity until its ``start``-th training call, then NaN in every output."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        return x * math.nan if self.training and self.calls > self.start else x


class ShiftFrom(nn.Module):
    """Adds ``shift`` from its ``start``-th training call on (a bias that jumps)."""

    def __init__(self, start: int, shift: float) -> None:
        super().__init__()
        self.start, self.shift, self.calls = start, shift, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        return x + self.shift if self.training and self.calls > self.start else x


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


# --------------------------------------------------------------------------- healthy runs
@pytest.mark.parametrize("build", [mlp, cnn], ids=["mlp", "cnn"])
def test_a_healthy_model_gets_no_violation(tiny, device, build):
    history = run(build(), tiny, device=device)
    report = history.monitor
    assert report.ok, str(report)
    assert report.steps == (0, 10, 20, 30, 40, 50)
    for check in ("finite", "gradients_flow", "params_update", "update_ratio", "dead_units"):
        assert len(report.series[check]) == 6, check
    assert report.skipped == {"saturation": "the forward calls no tanh or sigmoid module"}
    assert "no violation in 6 checked steps" in report.summary()


def test_a_healthy_tanh_model_is_measured_for_saturation(tiny):
    report = run(mlp(activation=nn.Tanh), tiny).monitor
    assert report.ok, str(report)
    assert [o.step for o in report.series["saturation"]] == [0, 10, 20, 30, 40, 50]
    assert all(o.statistic < 0.5 for o in report.series["saturation"])
    assert "dead_units" in report.skipped


def test_monitoring_does_not_change_the_training(tiny, device):
    plain = train(mlp(), tiny, steps=40, batch_size=64, device=device, seed=3)
    watched = train(
        mlp(), tiny, steps=40, batch_size=64, device=device, seed=3, monitor=Monitor(every=1)
    )
    assert watched.train_loss == plain.train_loss
    assert watched.test_accuracy == plain.test_accuracy
    assert plain.monitor is None and len(watched.monitor.steps) == 40


def test_hooks_are_attached_on_checked_steps_only(tiny):
    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hooked_calls: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                self.hooked_calls.append(bool(self._forward_hooks))
            return x

    spy = Spy()
    model = mlp()
    model.insert(1, spy)
    run(model, tiny, steps=25, every=10)
    assert [i for i, hooked in enumerate(spy.hooked_calls) if hooked] == [0, 10, 20]
    assert no_hooks_left(model)


def test_hooks_are_removed_when_a_step_raises(tiny):
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    model = mlp()
    model.append(Boom())
    with pytest.raises(RuntimeError, match="boom"):
        run(model, tiny)
    assert no_hooks_left(model)


# --------------------------------------------------------------------------- broken runs
def test_a_detached_layer_is_diagnosed_at_step_0(tiny):
    model = mlp()
    model[1] = Detached(model[1])
    report = run(model, tiny).monitor
    flow = report.violation("gradients_flow")
    assert (flow.step, flow.previous_step, flow.layer) == (0, None, "1.inner.weight")
    assert set(flow.layers) == {"1.inner.weight", "1.inner.bias"}  # only the detached layer
    assert "no gradient" in flow.message
    update = report.violation("params_update")
    assert update.step == 0 and update.layer == "1.inner.weight"
    assert "no gradient reached it" in update.message
    assert report.violation("finite") is None and report.violation("dead_units") is None
    assert "1.inner.weight" in report.summary() and "from step 0" in report.summary()


def test_a_tiny_learning_rate_is_a_stalled_update_ratio(tiny):
    report = run(mlp(), tiny, lr=1e-8).monitor
    stalled = report.violation("update_ratio")
    assert stalled.step == 0 and stalled.layer.endswith(".weight")
    assert stalled.statistic < 1e-6 and stalled.bound == (1e-6, 1.0)
    assert "stalled" in stalled.message
    # every weight of every checked step is stalled, and nothing else is wrong
    assert all(not o.ok for o in report.series["update_ratio"])
    assert [v.check for v in report.violations] == ["update_ratio"]
    healthy = run(mlp(), tiny).monitor.series["update_ratio"]
    assert min(o.statistic for o in healthy) > 1e3 * stalled.statistic


def test_a_nan_producing_layer_is_named_at_the_step_it_starts(tiny):
    model = mlp()
    model.insert(4, NaNFrom(start=20))  # after the second ReLU, from step 20 on
    report = run(model, tiny, steps=40).monitor
    finite = report.violation("finite")
    assert (finite.step, finite.previous_step, finite.layer) == (20, 10, "4")
    assert "NaNFrom" in finite.message and "from finite inputs" in finite.message
    assert report.violations[0] is finite  # the first reported cause is the NaN itself


def test_a_nan_made_between_checked_steps_names_the_parameters_it_reached(tiny):
    model = mlp()
    model.insert(4, NaNFrom(start=15))
    report = run(model, tiny, steps=40).monitor
    finite = report.violation("finite")
    assert (finite.step, finite.previous_step) == (20, 10)
    assert finite.layer.endswith(("weight", "bias"))
    assert "by an update after step 10" in finite.message


def test_dead_relus_from_a_negative_bias_are_diagnosed(tiny):
    model = mlp()
    with torch.no_grad():
        model[3].bias.fill_(-3.0)
    report = run(model, tiny).monitor
    dead = report.violation("dead_units")
    assert (dead.step, dead.layer) == (0, "4")
    assert dead.statistic > 0.5 and dead.bound == 0.5
    assert "ReLU units dead on the whole batch" in dead.message
    assert report.violation("gradients_flow") is not None  # nothing flows back through them


def test_relus_that_die_mid_training_are_reported_from_that_step(tiny):
    model = mlp()
    model.insert(4, ShiftFrom(start=40, shift=-100.0))  # before the second ReLU
    report = run(model, tiny).monitor
    dead = report.violation("dead_units")
    assert (dead.step, dead.previous_step, dead.layer) == (40, 30, "5")
    assert dead.statistic == 1.0
    assert "from step 40, fine at step 30" in str(dead)
    assert "still 100 % at step 50" in report.summary()


def test_saturated_tanh_and_a_huge_output_init(tiny):
    model = mlp(activation=nn.Tanh)
    with torch.no_grad():
        model[1].weight.mul_(30.0)
        model[5].weight.mul_(100.0)
    report = run(model, tiny, steps=20).monitor
    saturated = report.violation("saturation")
    assert saturated.step == 0 and saturated.layer == "2" and saturated.statistic > 0.5
    initial = report.violation("initial_loss")
    assert initial.step == 0 and initial.statistic > 4.0
    assert [o.step for o in report.series["initial_loss"]] == [0]  # step 0 only


def test_a_frozen_batchnorm_whose_statistics_move_is_flagged(tiny):
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
        )
    for p in model[2].parameters():
        p.requires_grad_(False)
    report = run(model, tiny, steps=10).monitor
    moved = report.violation("params_update")
    assert moved.step == 0 and moved.layer == "2.running_mean"
    assert "frozen or in eval mode" in moved.message


def test_small_batches_skip_dead_units_with_the_reason(tiny):
    report = run(mlp(), tiny, steps=10, batch_size=4).monitor
    assert "dead_units" not in report.series or not report.series["dead_units"]
    assert "fewer than min_entries=32" in report.skipped["dead_units"]
    relaxed = train(
        mlp(), tiny, steps=10, batch_size=4, monitor=Monitor(every=5, limits={"min_entries": 4})
    ).monitor
    assert len(relaxed.series["dead_units"]) == 2 and "dead_units" not in relaxed.skipped


def test_a_subset_of_checks(tiny):
    report = train(
        mlp(), tiny, steps=5, monitor=Monitor(every=2, checks=["dead_units", "finite"])
    ).monitor
    assert report.checks == ("finite", "dead_units")
    assert set(report.series) == {"finite", "dead_units"}
    assert report.steps == (0, 2, 4)


# --------------------------------------------------------------------------- report
def broken_report(tiny) -> MonitorReport:
    model = mlp()
    with torch.no_grad():
        model[3].bias.fill_(-3.0)
    return run(model, tiny, steps=30).monitor


def test_report_round_trips_through_json(tiny):
    report = broken_report(tiny)
    again = MonitorReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert isinstance(again.limits.update_ratio, tuple)
    assert isinstance(again.series["update_ratio"][0].bound, tuple)
    with pytest.raises(ValueError, match=r"netprops\.monitor"):
        MonitorReport.from_dict({"format": "other", "version": 1})


def test_history_keeps_the_report(tiny):
    history = run(mlp(), tiny, steps=12)
    assert History.from_json(history.to_json()) == history
    assert "monitor: no violation" in str(history)


def test_report_str_lists_every_check(tiny):
    text = str(broken_report(tiny))
    assert text.startswith("MonitorReport: 3 checked steps (every 10, steps 0–20)")
    assert "VIOLATED dead_units: 4: " in text
    assert "saturation: not measured (the forward calls no tanh or sigmoid module)" in text
    for check in CHECKS:
        assert check in text


def test_observation_ok_against_both_kinds_of_bound():
    assert Observation(0, "a", 0.5, 0.5).ok and not Observation(0, "a", 0.6, 0.5).ok
    assert Observation(0, "w", 1e-3, (1e-6, 1.0)).ok
    assert not Observation(0, "w", 1e-7, (1e-6, 1.0)).ok
    assert not Observation(0, "w", math.nan, (1e-6, 1.0)).ok
    assert not Observation(0, "w", math.nan, 0.0).ok


def test_diagnose(tiny):
    bad = broken_report(tiny)
    good = run(mlp(), tiny, steps=20).monitor
    text = diagnose({"seed 1000": bad, "seed 1001": good, "seed 1002": None})
    lines = text.splitlines()
    assert lines[0].startswith("seed 1000: monitor (3 checked steps, every 10): ")
    assert "dead_units: 4: " in lines[0]
    assert lines[1].startswith("seed 1001: monitor: no violation in 2 checked steps")
    assert lines[2] == "seed 1002: no monitor"
    assert diagnose([good, good]) == "monitor: no violation in 2 run(s) (4 checked steps)"
    assert diagnose([bad]).startswith("run 0: monitor (")
    with pytest.raises(TypeError, match="reports"):
        diagnose("nope")
    with pytest.raises(TypeError, match=r"reports\['x'\]"):
        diagnose({"x": "not a report"})


def test_violation_str_says_where_and_since_when():
    v = Violation("dead_units", 40, 30, "hidden2.act", 0.61, 0.5, "61 % of 100 ReLU units dead")
    assert (
        str(v)
        == "dead_units: hidden2.act: 61 % of 100 ReLU units dead from step 40, fine at step 30"
    )


def test_a_training_loop_of_ones_own_can_drive_a_session():
    model = mlp()
    model[3] = Detached(model[3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    session = Monitor(every=2).start(model)
    g = netprops.make_generator(0)
    for step in range(5):
        x = torch.randn(64, 1, 8, 8, generator=g)
        y = torch.randint(0, 10, (64,), generator=g)
        probe = session.probe(step)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if probe is not None:
            probe.after_forward(logits, loss)
        opt.zero_grad()
        loss.backward()
        if probe is not None:
            probe.after_backward()
        opt.step()
        if probe is not None:
            probe.after_step()
    report = session.report()
    assert report.steps == (0, 2, 4)
    flow = report.violation("gradients_flow")
    assert flow.step == 0 and set(flow.layers) == {
        "1.weight",
        "1.bias",
        "3.inner.weight",
        "3.inner.bias",
    }  # the detached layer and everything before it
    assert no_hooks_left(model)


# --------------------------------------------------------------------------- monitoring()
def test_monitoring_block_monitors_trainings_without_a_monitor(tiny):
    assert active_monitor() is None
    block = Monitor(every=5)
    with monitoring(block) as m:
        assert m is block and active_monitor() is block
        inside = train(mlp(), tiny, steps=10)
        explicit = train(mlp(), tiny, steps=10, monitor=Monitor(every=3))
    assert active_monitor() is None
    outside = train(mlp(), tiny, steps=10)
    assert inside.monitor.steps == (0, 5)
    assert explicit.monitor.steps == (0, 3, 6, 9)
    assert outside.monitor is None


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"every": 0}, ValueError, "every"),
        ({"every": 2.5}, TypeError, "every"),
        ({"checks": "finite"}, TypeError, "checks must be a collection"),
        ({"checks": ["finite", "nonsense"]}, ValueError, "checks item must be one of"),
        ({"checks": []}, ValueError, "at least one"),
        ({"limits": {"dead": 0.5}}, ValueError, r"unknown names \['dead'\]"),
        ({"limits": {"dead_fraction": 1.5}}, ValueError, "dead_fraction"),
        ({"limits": {"dead_fraction": 0}}, ValueError, "dead_fraction"),
        ({"limits": {"min_entries": 0}}, ValueError, "min_entries"),
        ({"limits": {"update_ratio": (1.0, 0.1)}}, ValueError, "low < high"),
        ({"limits": {"update_ratio": 0.1}}, TypeError, "update_ratio must be a"),
        ({"limits": {"initial_loss": 0.5}}, ValueError, "initial_loss must be >= 1"),
        ({"limits": 3}, TypeError, "limits"),
    ],
)
def test_monitor_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Monitor(**kwargs)


def test_limits_and_reports_are_frozen():
    limits = MonitorLimits()
    with pytest.raises(AttributeError):
        limits.dead_fraction = 0.9  # type: ignore[misc]
    assert Monitor(limits={"dead_fraction": 0.7}).limits == MonitorLimits(dead_fraction=0.7)
    with pytest.raises(ValueError, match="check must be one of"):
        MonitorReport(1, ("finite",), limits, (), {}).violation("nonsense")
