"""A live training monitor: the training-dynamics checks, every k steps of a running training.

``train(model, data, steps=..., monitor=Monitor(every=50))`` runs the checks of
:data:`CHECKS` on steps 0, k, 2k, ... of the live training and stores a
:class:`MonitorReport` in ``History.monitor``: for each check the first
violation (step, layer, statistic, bound, in words) and a compact time series
(one :class:`Observation` per checked step: its worst layer). On a checked step
forward hooks are attached for that step's forward pass only and removed right
after; the other steps run exactly as without a monitor, and a monitored run
trains exactly as an unmonitored one (the hooks and snapshots only read).

The limits (:class:`MonitorLimits`) are plain, stated thresholds, not the
initialization nulls of :mod:`netprops.checks.dynamics` (those describe a fresh
model only): docs/methods.md §Live monitor states each one and why.

Trainings started by code that takes no monitor argument (a scenario of the
convergence gate, a study) are monitored with ``with monitoring(monitor): ...``.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import (
    check_choice,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_type,
)

if TYPE_CHECKING:
    from .checks.dynamics import LayerActivity

__all__ = [
    "CHECKS",
    "DEFAULT_CHECKS",
    "Monitor",
    "MonitorLimits",
    "MonitorReport",
    "MonitorSession",
    "Observation",
    "Violation",
    "active_monitor",
    "diagnose",
    "monitoring",
]

#: Every check the monitor can run, in report order.
CHECKS: tuple[str, ...] = (
    "finite",
    "gradients_flow",
    "params_update",
    "update_ratio",
    "dead_units",
    "saturation",
    "initial_loss",
)
#: What a :class:`Monitor` runs by default (all of them).
DEFAULT_CHECKS: tuple[str, ...] = CHECKS

_REPORT_FORMAT = "netprops.monitor"
_REPORT_VERSION = 1


def _fraction(name: str, value: Any) -> float:
    value = check_probability(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")
    return value


@dataclass(frozen=True)
class MonitorLimits:
    """The stated thresholds of the monitor (docs/methods.md §Live monitor).

    Attributes
    ----------
    dead_fraction : float
        A ReLU layer is flagged when more than this fraction of its units are dead
        (pre-activation <= 0 on every value of the batch). Default 0.5.
    min_entries : int
        Dead units are judged only on layers whose units see at least this many
        values in the batch (examples × positions): on 4 values a live unit is
        often negative on all of them. Default 32.
    saturated_fraction : float
        A tanh/sigmoid layer is flagged when more than this fraction of its
        pre-activations is saturated. Default 0.5.
    saturation_threshold : float
        A pre-activation is saturated where the activation's derivative is below
        this fraction of its maximum (|z| > 2.99 for tanh, 5.99 for the sigmoid at 1 %).
    update_ratio : (float, float)
        Accepted range of ``‖Δw‖/‖w‖`` of one step, for every weight with >= 2 dims.
        Default (1e-6, 1.0): below, the weight would need a million steps to move
        by its own size; above, one step replaces it.
    initial_loss : float
        At step 0, the loss expected under uniform labels (exact, from the logits)
        may be at most this many times ln C. Default 4.
    """

    dead_fraction: float = 0.5
    min_entries: int = 32
    saturated_fraction: float = 0.5
    saturation_threshold: float = 0.01
    update_ratio: tuple[float, float] = (1e-6, 1.0)
    initial_loss: float = 4.0

    def __post_init__(self) -> None:
        _fraction("dead_fraction", self.dead_fraction)
        check_positive_int("min_entries", self.min_entries)
        _fraction("saturated_fraction", self.saturated_fraction)
        _fraction("saturation_threshold", self.saturation_threshold)
        band = self.update_ratio
        if not (isinstance(band, (tuple, list)) and len(band) == 2):
            raise TypeError(f"update_ratio must be a (low, high) pair, got {band!r}")
        low = check_positive_float("update_ratio[0]", band[0], allow_zero=True)
        high = check_positive_float("update_ratio[1]", band[1])
        if not low < high:
            raise ValueError(f"update_ratio must have low < high, got {band!r}")
        object.__setattr__(self, "update_ratio", (low, high))
        check_positive_float("initial_loss", self.initial_loss)
        if self.initial_loss < 1:
            raise ValueError(
                f"initial_loss must be >= 1 (a multiple of ln C, which the loss at init never "
                f"falls below), got {self.initial_loss!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MonitorLimits:
        """Limits with the fields in ``values`` replaced; unknown names raise ValueError."""
        check_type("limits", values, Mapping)
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"limits has unknown names {unknown}; allowed: {', '.join(names)}")
        return cls(**values)


Bound = float | tuple[float, float]


@dataclass(frozen=True)
class Observation:
    """One checked step of one check: its worst layer and how it stood against the limit.

    ``statistic`` is a count of offending tensors (``finite``, ``gradients_flow``,
    ``params_update``; bound 0), a fraction (``dead_units``, ``saturation``), a ratio
    ``‖Δw‖/‖w‖`` (``update_ratio``, bound ``(low, high)``) or a multiple of ln C
    (``initial_loss``). ``layer`` is "" when nothing offends.
    """

    step: int
    layer: str
    statistic: float
    bound: Bound

    @property
    def ok(self) -> bool:
        """Whether the statistic is within its bound (NaN is not)."""
        if isinstance(self.bound, tuple):
            return self.bound[0] <= self.statistic <= self.bound[1]
        return self.statistic <= self.bound


@dataclass(frozen=True)
class Violation:
    """The first checked step at which a check failed.

    ``previous_step`` is the checked step before it (where the check held), or None
    when it failed on the first checked step: whatever went wrong happened in between.
    ``message`` says what, in words; ``layers`` names every offending layer that step.
    """

    check: str
    step: int
    previous_step: int | None
    layer: str
    statistic: float
    bound: Bound
    message: str
    layers: tuple[str, ...] = ()

    def __str__(self) -> str:
        since = "" if self.previous_step is None else f", fine at step {self.previous_step}"
        where = f"{self.layer}: " if self.layer else ""
        return f"{self.check}: {where}{self.message} from step {self.step}{since}"


def _bound_from_json(value: Any) -> Bound:
    return (float(value[0]), float(value[1])) if isinstance(value, list) else float(value)


def _percent(x: float) -> str:
    return f"{100 * x:.0f} %" if x >= 0.01 else f"{100 * x:.2g} %"


@dataclass(frozen=True)
class MonitorReport:
    """What the monitor saw in one training.

    Attributes
    ----------
    every : int
        Checked every this many steps (steps 0, every, 2·every, ...).
    checks : tuple of str
        The checks run.
    limits : MonitorLimits
    steps : tuple of int
        The checked steps.
    series : mapping of str to tuple of Observation
        Per check, one observation per checked step where it could be measured.
    violations : tuple of Violation
        The first violation of each check that failed, in step order.
    skipped : mapping of str to str
        Checks that were never measured, and why (e.g. no ReLU in the model).
    """

    every: int
    checks: tuple[str, ...]
    limits: MonitorLimits
    steps: tuple[int, ...]
    series: Mapping[str, tuple[Observation, ...]]
    violations: tuple[Violation, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check was violated."""
        return not self.violations

    def violation(self, check: str) -> Violation | None:
        """The first violation of ``check``, or None."""
        check_choice("check", check, CHECKS)
        return next((v for v in self.violations if v.check == check), None)

    def outcome(self, violation: Violation) -> str:
        """How a violation ended: ``"still violated at step S"`` (the last checked step),
        ``"recovered by step S"`` (the first later step that passed), or "" when it was
        found on the last step its check measured."""
        later = [o for o in self.series.get(violation.check, ()) if o.step > violation.step]
        if not later:
            return ""
        if later[-1].ok:
            return f"recovered by step {next(o.step for o in later if o.ok)}"
        return f"still violated at step {later[-1].step}"

    def _persistence(self, v: Violation) -> str:
        later = [o for o in self.series.get(v.check, ()) if o.step > v.step]
        if not later:
            return ""
        last = later[-1]
        if last.ok:
            return f" ({self.outcome(v)})"
        value = (
            _percent(last.statistic)
            if v.check in ("dead_units", "saturation")
            else f"{last.statistic:.3g}"
        )
        return f" (still {value} at step {last.step})"

    def summary(self) -> str:
        """One line: every first violation with its layer and step, or that there was none."""
        span = f"{len(self.steps)} checked step{'s' if len(self.steps) != 1 else ''}"
        if not self.violations:
            return f"monitor: no violation in {span} (every {self.every})"
        found = "; ".join(f"{v}{self._persistence(v)}" for v in self.violations)
        return f"monitor ({span}, every {self.every}): {found}"

    def __str__(self) -> str:
        first, last = (self.steps[0], self.steps[-1]) if self.steps else (0, 0)
        lines = [
            f"MonitorReport: {len(self.steps)} checked steps (every {self.every}, steps "
            f"{first}–{last}), {len(self.violations)} check(s) violated"
        ]
        for check in self.checks:
            v = self.violation(check)
            if v is not None:
                lines.append(f"  VIOLATED {v}{self._persistence(v)}")
            elif check in self.skipped:
                lines.append(f"  {check}: not measured ({self.skipped[check]})")
            else:
                obs = self.series.get(check, ())
                worst = max(obs, key=_severity, default=None)
                if worst is None:
                    lines.append(f"  {check}: ok")
                else:
                    lines.append(
                        f"  {check}: ok (worst {worst.statistic:.3g} at step {worst.step}"
                        + (f", {worst.layer}" if worst.layer else "")
                        + f"; bound {_format_bound(worst.bound)})"
                    )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists), tagged with a format name and version."""
        return {
            "format": _REPORT_FORMAT,
            "version": _REPORT_VERSION,
            "every": self.every,
            "checks": list(self.checks),
            "limits": {**asdict(self.limits), "update_ratio": list(self.limits.update_ratio)},
            "steps": list(self.steps),
            "series": {
                check: [[o.step, o.layer, o.statistic, _bound_to_json(o.bound)] for o in obs]
                for check, obs in self.series.items()
            },
            "violations": [
                {**asdict(v), "bound": _bound_to_json(v.bound), "layers": list(v.layers)}
                for v in self.violations
            ],
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> MonitorReport:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            if the payload is not a monitor report of a version this code reads.
        """
        check_type("payload", payload, Mapping)
        if payload.get("format") != _REPORT_FORMAT or payload.get("version") != _REPORT_VERSION:
            raise ValueError(
                f"payload must be a {_REPORT_FORMAT!r} of version {_REPORT_VERSION}, got "
                f"format={payload.get('format')!r}, version={payload.get('version')!r}"
            )
        limits = dict(payload["limits"])
        limits["update_ratio"] = tuple(limits["update_ratio"])
        return cls(
            every=int(payload["every"]),
            checks=tuple(payload["checks"]),
            limits=MonitorLimits(**limits),
            steps=tuple(payload["steps"]),
            series={
                check: tuple(
                    Observation(int(s), str(layer), float(stat), _bound_from_json(b))
                    for s, layer, stat, b in rows
                )
                for check, rows in payload["series"].items()
            },
            violations=tuple(
                Violation(
                    **{
                        **v,
                        "bound": _bound_from_json(v["bound"]),
                        "statistic": float(v["statistic"]),
                        "layers": tuple(v["layers"]),
                    }
                )
                for v in payload["violations"]
            ),
            skipped=dict(payload["skipped"]),
        )


def _bound_to_json(bound: Bound) -> Any:
    return list(bound) if isinstance(bound, tuple) else bound


def _format_bound(bound: Bound) -> str:
    from .checks.results import format_bound

    return format_bound(bound)


def _decades_out(value: float, band: tuple[float, float]) -> float:
    """Signed distance of ``value`` from ``band`` in powers of ten (> 0 outside, inf for 0 or NaN)."""
    low, high = band
    if not value > 0:
        return math.inf
    return max(math.log10(low / value) if low > 0 else -math.inf, math.log10(value / high))


def _severity(obs: Observation) -> float:
    """How close an observation is to (or how far beyond) its bound: larger is worse."""
    if isinstance(obs.bound, tuple):
        return _decades_out(obs.statistic, obs.bound)
    return obs.statistic - obs.bound if not math.isnan(obs.statistic) else math.inf


@dataclass(frozen=True)
class Monitor:
    """Which checks to run on a live training, how often, and against which limits.

    Parameters
    ----------
    every : int
        Check steps 0, every, 2·every, ... (step s is the optimizer step taken after s
        updates). Default 50.
    checks : sequence of str
        Names from :data:`CHECKS` (default all):

        * ``finite`` — parameters, every module's output, the loss and the gradients
          are finite; names the module that made a non-finite value from finite inputs
          (or the parameter already non-finite);
        * ``gradients_flow`` — every trainable parameter gets a finite, non-zero gradient;
        * ``params_update`` — the step moves every trainable parameter, no frozen one,
          and no buffer of a frozen module;
        * ``update_ratio`` — ``‖Δw‖/‖w‖`` of every weight lies in ``limits.update_ratio``;
        * ``dead_units`` — no ReLU layer has more than ``limits.dead_fraction`` of its
          units dead on the whole batch;
        * ``saturation`` — no tanh/sigmoid layer has more than
          ``limits.saturated_fraction`` of its pre-activations saturated;
        * ``initial_loss`` — on step 0 only, the loss expected under uniform labels is at
          most ``limits.initial_loss`` × ln C.
    limits : MonitorLimits or mapping, optional
        A mapping replaces the named fields of the default :class:`MonitorLimits`.

    Raises
    ------
    TypeError, ValueError
        for a bad argument (the message names it, its value and what is allowed).

    Examples
    --------
    >>> history = train(model, data, steps=500, monitor=Monitor(every=50))  # doctest: +SKIP
    >>> print(history.monitor.summary())  # doctest: +SKIP
    monitor (10 checked steps, every 50): dead_units: hidden2.act: 61 % of 100 ReLU ...
    """

    every: int = 50
    checks: tuple[str, ...] = DEFAULT_CHECKS
    limits: MonitorLimits = field(default_factory=MonitorLimits)

    def __post_init__(self) -> None:
        check_positive_int("every", self.every)
        checks = self.checks
        if isinstance(checks, str):
            raise TypeError(
                f"checks must be a collection of names from {CHECKS}, got the string {checks!r}"
            )
        check_type("checks", checks, (tuple, list, set, frozenset))
        chosen = {check_choice("checks item", c, CHECKS) for c in checks}
        if not chosen:
            raise ValueError(f"checks must name at least one of {CHECKS}, got {checks!r}")
        object.__setattr__(self, "checks", tuple(c for c in CHECKS if c in chosen))
        if isinstance(self.limits, Mapping):
            object.__setattr__(self, "limits", MonitorLimits.from_mapping(self.limits))
        check_type("limits", self.limits, MonitorLimits)

    def start(self, model: nn.Module) -> MonitorSession:
        """A session watching ``model``'s training (what :func:`netprops.train.train` calls)."""
        check_type("model", model, nn.Module)
        return MonitorSession(self, model)


class MonitorSession:
    """The state of one monitored training; :func:`netprops.train.train` drives it, and so
    can a training loop of your own.

    Per step: ``probe = session.probe(step)`` before the forward pass (None unless the step
    is checked; its hooks are attached now), and on a probe ``after_forward(logits, loss)``
    once the loss is computed, ``after_backward()`` once the gradients are in ``.grad``,
    ``after_step()`` once the optimizer stepped. ``close()`` removes the hooks of a step
    that raised; :meth:`report` builds the :class:`MonitorReport`.

    Examples
    --------
    >>> session = Monitor(every=50).start(model)  # doctest: +SKIP
    >>> for step, (x, y) in enumerate(batches):  # doctest: +SKIP
    ...     probe = session.probe(step)
    ...     logits = model(x)
    ...     loss = F.cross_entropy(logits, y)
    ...     if probe: probe.after_forward(logits, loss)
    ...     opt.zero_grad(); loss.backward()
    ...     if probe: probe.after_backward()
    ...     opt.step()
    ...     if probe: probe.after_step()
    >>> print(session.report())  # doctest: +SKIP
    """

    def __init__(self, monitor: Monitor, model: nn.Module) -> None:
        # Imported here: a training without a monitor never loads the checks (and scipy).
        from .checks import dynamics

        self.monitor = monitor
        self.model = model
        self._dynamics = dynamics
        self._steps: list[int] = []
        self._series: dict[str, list[Observation]] = {c: [] for c in monitor.checks}
        self._violations: dict[str, Violation] = {}
        self._measured: set[str] = set()
        self._skipped: dict[str, str] = {}
        self._open: _Probe | None = None
        self._ratio_excluded: set[str] | None = None  # see _Probe._update_ratios

    def probe(self, step: int) -> _Probe | None:
        """Start checking ``step`` if it is due (hooks attached now); None otherwise."""
        if step % self.monitor.every:
            return None
        self.close()
        self._open = _Probe(self, step)
        return self._open

    def close(self) -> None:
        """Remove the hooks of a probe that did not finish (its step raised)."""
        if self._open is not None:
            self._open.detach()
            self._open = None

    def record(self, check: str, obs: Observation, violation: Violation | None) -> None:
        self._measured.add(check)
        self._skipped.pop(check, None)
        self._series[check].append(obs)
        if violation is not None and check not in self._violations:
            self._violations[check] = violation

    def skip(self, check: str, why: str) -> None:
        if check not in self._measured:
            self._skipped[check] = why

    @property
    def previous_step(self) -> int | None:
        return self._steps[-2] if len(self._steps) > 1 else None

    def report(self) -> MonitorReport:
        """What was seen so far."""
        self.close()
        m = self.monitor
        return MonitorReport(
            every=m.every,
            checks=m.checks,
            limits=m.limits,
            steps=tuple(self._steps),
            series={c: tuple(obs) for c, obs in self._series.items()},
            violations=tuple(
                sorted(self._violations.values(), key=lambda v: (v.step, CHECKS.index(v.check)))
            ),
            skipped=dict(self._skipped),
        )


class _Probe:
    """One checked step: snapshots and hooks taken at the start, results recorded as it goes."""

    def __init__(self, session: MonitorSession, step: int) -> None:
        self.session = session
        self.step = step
        self.checks = set(session.monitor.checks)
        self.limits = session.monitor.limits
        model = session.model
        dyn = session._dynamics
        session._steps.append(step)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.snapshot = (
            dyn.ParameterSnapshot(model)
            if self.checks & {"params_update", "update_ratio"}
            else None
        )
        self.bad_params: list[str] = []
        if self.checks & {"finite", "params_update"}:
            self.bad_params = _non_finite_names(self.named)
        self.tracer = dyn.NonFiniteTracer(model) if "finite" in self.checks else None
        wants_activity = self.checks & {"dead_units", "saturation"}
        self.recorder = (
            dyn.ActivationRecorder(model, threshold=self.limits.saturation_threshold)
            if wants_activity
            else None
        )
        self.attached = [h for h in (self.tracer, self.recorder) if h is not None]
        for hooks in self.attached:
            hooks.__enter__()
        self.grad_state: dict[str, str] = {}
        self.offenders: dict[str, str] = {}  # of ``finite``, completed after the backward pass

    def detach(self) -> None:
        for hooks in reversed(self.attached):
            hooks.__exit__(None, None, None)
        self.attached = []

    def _record(
        self,
        check: str,
        layer: str,
        statistic: float,
        bound: Bound,
        message: str,
        layers: Mapping[str, Any] | Sequence[str] = (),
    ) -> None:
        obs = Observation(self.step, layer, float(statistic), bound)
        violation = None
        if not obs.ok:
            violation = Violation(
                check,
                self.step,
                self.session.previous_step,
                layer,
                float(statistic),
                bound,
                message,
                tuple(layers),
            )
        self.session.record(check, obs, violation)

    def _count(self, check: str, offenders: Mapping[str, str]) -> None:
        """Record a check whose statistic is the number of offending tensors (bound 0)."""
        if not offenders:
            self._record(check, "", 0.0, 0.0, "")
            return
        first, why = next(iter(offenders.items()))
        others = list(offenders)[1:]
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            why += f" (and {len(others)} more: {shown})"
        self._record(check, first, float(len(offenders)), 0.0, why, offenders)

    # ------------------------------------------------------------------ forward
    def after_forward(self, logits: torch.Tensor, loss: torch.Tensor) -> None:
        """The forward pass is done: remove the hooks, judge ``finite``, ``dead_units``,
        ``saturation`` and (on step 0) ``initial_loss``."""
        self.detach()
        if "finite" in self.checks:
            self._finite_forward(loss)
        if self.recorder is not None:
            self._activity(self.recorder.layers)
        if "initial_loss" in self.checks:
            self._initial_loss(logits)

    def _finite_forward(self, loss: torch.Tensor) -> None:
        prev = self.session.previous_step
        made = "before training" if prev is None else f"by an update after step {prev}"
        for name in self.bad_params:
            self.offenders[name] = f"parameter holds non-finite values (made {made})"
        tracer = self.tracer
        origin = tracer.origin or tracer.first if tracer is not None else None
        if origin is not None:
            self.offenders.setdefault(origin.name or "<root>", str(origin))
        value = float(loss.detach())
        if not math.isfinite(value):
            self.offenders.setdefault("loss", f"the loss is {value}")

    def _activity(self, layers: Sequence[LayerActivity]) -> None:
        lim = self.limits
        if "dead_units" in self.checks:
            relus = [a for a in layers if a.kind == "relu"]
            judged = [a for a in relus if a.entries >= lim.min_entries]
            if not relus:
                self.session.skip("dead_units", "the forward calls no ReLU-family module")
            elif not judged:
                self.session.skip(
                    "dead_units",
                    f"each unit sees {max(a.entries for a in relus)} value(s) per batch, fewer "
                    f"than min_entries={lim.min_entries}",
                )
            else:
                bad = {
                    a.name: f"{_percent(a.dead_fraction)} of {a.units} ReLU units dead on the "
                    f"whole batch ({a.entries} values each; limit {_percent(lim.dead_fraction)})"
                    for a in judged
                    if a.dead_fraction > lim.dead_fraction
                }
                worst = max(judged, key=lambda a: a.dead_fraction)
                self._record(
                    "dead_units",
                    worst.name,
                    worst.dead_fraction,
                    lim.dead_fraction,
                    bad.get(worst.name, ""),
                    bad,
                )
        if "saturation" in self.checks:
            squash = [a for a in layers if a.kind in ("tanh", "sigmoid")]
            if not squash:
                self.session.skip("saturation", "the forward calls no tanh or sigmoid module")
                return
            z_limit = self.session._dynamics.saturation_limit
            bad = {
                a.name: f"{_percent(a.saturated)} of {a.kind} pre-activations saturated "
                f"(|z| > {z_limit(a.kind, lim.saturation_threshold):.3g}; limit "
                f"{_percent(lim.saturated_fraction)})"
                for a in squash
                if a.saturated > lim.saturated_fraction
            }
            worst = max(squash, key=lambda a: a.saturated)
            self._record(
                "saturation",
                worst.name,
                worst.saturated,
                lim.saturated_fraction,
                bad.get(worst.name, ""),
                bad,
            )

    def _initial_loss(self, logits: torch.Tensor) -> None:
        if self.step != 0:
            return
        classes = logits.shape[1] if logits.dim() == 2 else 0
        if classes < 2:
            self.session.skip(
                "initial_loss", f"the output {tuple(logits.shape)} is not (N, C) logits"
            )
            return
        expected = self.session._dynamics.expected_uniform_loss(logits.detach())
        ratio = expected / math.log(classes)
        limit = self.limits.initial_loss
        why = (
            "logits far too spread (layers initialized too large?)"
            if math.isfinite(expected)
            else "the logits are not finite"
        )
        self._record(
            "initial_loss",
            "output",
            ratio,
            limit,
            f"loss at step 0 under uniform labels {expected:.4g} = {ratio:.3g} × ln "
            f"{classes} (limit {limit:g} × ln C): {why}",
        )

    # ------------------------------------------------------------------ backward
    def after_backward(self) -> None:
        """Gradients are in ``.grad``: judge ``gradients_flow`` and finish ``finite``."""
        grads = [(n, p.grad) for n, p in self.named if p.grad is not None]
        norms = dict(zip((n for n, _ in grads), _norms([g for _, g in grads]), strict=True))
        if "gradients_flow" in self.checks:
            # The exact verdict (gradient_problems) is computed only when the norms leave
            # room for a problem: a finite non-zero norm proves a finite non-zero gradient.
            healthy = len(norms) == len(self.named) and all(
                0 < v < math.inf for v in norms.values()
            )
            problems = (
                {} if healthy else self.session._dynamics.gradient_problems(self.session.model)
            )
            self._count("gradients_flow", problems)
        if "finite" in self.checks:
            suspects = [(n, g) for n, g in grads if not math.isfinite(norms[n])]
            for name in _non_finite_names(suspects):
                self.offenders.setdefault(f"{name} (gradient)", "non-finite gradient")
            self._count("finite", self.offenders)
        if "params_update" in self.checks:
            for name, p in self.named:
                g = p.grad
                self.grad_state[name] = (
                    "none"
                    if g is None
                    else "zero"
                    if norms[name] == 0 and not bool((g != 0).any())
                    else "ok"
                )

    # ------------------------------------------------------------------ step
    def after_step(self) -> None:
        """The optimizer stepped: judge ``params_update`` and ``update_ratio``."""
        model = self.session.model
        if self.snapshot is not None:
            before = [self.snapshot.parameters[n] for n, _ in self.named]
            now = [p for _, p in self.named]
            # ‖Δp‖ and ‖p_before‖ of every trainable parameter: one fused pass, one read-back.
            norms = _norms([*_differences(now, before), *before])
            self.moved = dict(zip((n for n, _ in self.named), norms[: len(now)], strict=True))
            self.size = dict(zip((n for n, _ in self.named), norms[len(now) :], strict=True))
        if "params_update" in self.checks:
            self._params_update(model)
        if "update_ratio" in self.checks:
            ratios = self._update_ratios(model)
            band = self.limits.update_ratio
            if not ratios:
                self.session.skip("update_ratio", "no trainable non-zero weight with >= 2 dims")
            else:
                worst = max(ratios, key=lambda n: _decades_out(ratios[n], band))
                bad = {n: r for n, r in ratios.items() if not band[0] <= r <= band[1]}
                rho = ratios[worst]
                kind = (
                    "non-finite" if math.isnan(rho) else "stalled" if rho < band[0] else "unstable"
                )
                self._record(
                    "update_ratio",
                    worst,
                    rho,
                    band,
                    f"{kind}: one step moved the weight by ‖Δw‖/‖w‖ = {rho:.3g}, outside "
                    f"[{band[0]:g}, {band[1]:g}]",
                    bad,
                )
        self.session._open = None

    def _update_ratios(self, model: nn.Module) -> dict[str, float]:
        """``‖Δw‖/‖w‖`` per weight, as :meth:`ParameterSnapshot.update_ratios` measures it.

        The first checked step takes that method's exact (float64) values and remembers
        which non-zero weights of >= 2 dims it leaves out (embedding tables); later steps
        divide the fused norms of :meth:`after_step` instead (float32 rounding, a
        fraction of the cost).
        """
        session = self.session
        candidates = [n for n, p in self.named if p.dim() >= 2]
        if session._ratio_excluded is None:
            exact = self.snapshot.update_ratios(model)
            session._ratio_excluded = {n for n in candidates if self.size[n] > 0 and n not in exact}
            return exact
        return {
            n: self.moved[n] / self.size[n]
            for n in candidates
            if n not in session._ratio_excluded and self.size[n] > 0
        }

    def _params_update(self, model: nn.Module) -> None:
        reasons = {
            "none": "did not change: no gradient reached it (detached, unused or cut from the loss)",
            "zero": "did not change: its gradient is zero in every entry",
            "ok": "did not change although its gradient is not zero (a step below float "
            "rounding, or a parameter the optimizer does not hold)",
        }
        offenders: dict[str, str] = {}
        trainable = {n for n, _ in self.named}
        before = self.snapshot.parameters
        frozen = [(n, p) for n, p in model.named_parameters() if n not in trainable]
        # Exact changes (parameter_changes) only when the screen leaves room for an offender:
        # a non-zero difference norm proves a trainable parameter moved, equality that a
        # frozen one did not.
        screened = all(0 < v < math.inf for v in self.moved.values()) and all(
            torch.equal(p.detach(), before[n]) for n, p in frozen
        )
        changes = {} if screened else self.snapshot.parameter_changes(model)
        for name, change in changes.items():
            if name in trainable and change == 0:
                offenders[name] = (
                    "stuck at non-finite values"
                    if name in self.bad_params
                    else reasons[self.grad_state.get(name, "ok")]
                )
            elif name not in trainable and change != 0:
                offenders[name] = f"changed by up to {change:.3g} although requires_grad=False"
        may_move = self.session._dynamics.buffers_may_move(model)
        resting = {
            n: b for n, b in model.named_buffers() if not may_move.get(n.rpartition(".")[0], True)
        }
        if all(torch.equal(b, self.snapshot.buffers[n]) for n, b in resting.items()):
            resting = {}
        for name, change in (self.snapshot.buffer_changes(model) if resting else {}).items():
            owner = name.rpartition(".")[0]
            if change != 0 and name in resting:
                offenders[name] = (
                    f"buffer changed by up to {change:.3g} although its module "
                    f"{owner or '<root>'} is frozen or in eval mode"
                )
        self._count("params_update", offenders)


def _same_kind(tensors: Sequence[torch.Tensor]) -> bool:
    first = tensors[0]
    return all(
        t.layout == torch.strided and t.dtype == first.dtype and t.device == first.device
        for t in tensors
    )


def _norms(tensors: Sequence[torch.Tensor]) -> list[float]:
    """L2 norm of each tensor, with one fused kernel and one read-back when they allow it."""
    if not tensors:
        return []
    tensors = [t.detach() for t in tensors]
    if _same_kind(tensors):
        return torch.stack(torch._foreach_norm(tensors)).tolist()
    return [float(torch.linalg.vector_norm(t.to_dense().double())) for t in tensors]


def _differences(now: Sequence[torch.Tensor], then: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    now = [t.detach() for t in now]
    if now and _same_kind([*now, *then]):
        return list(torch._foreach_sub(now, list(then)))
    return [a - b for a, b in zip(now, then, strict=True)]


def _non_finite_names(named: Sequence[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the tensors holding a NaN or an infinity (screened by their norms)."""
    norms = _norms([t for _, t in named])
    return [
        n
        for (n, t), v in zip(named, norms, strict=True)
        if not math.isfinite(v) and not bool(torch.isfinite(t.detach()).all())
    ]


_ACTIVE: contextvars.ContextVar[Monitor | None] = contextvars.ContextVar(
    "netprops_monitor", default=None
)


@contextmanager
def monitoring(monitor: Monitor) -> Iterator[Monitor]:
    """Monitor every :func:`netprops.train.train` call in the block that is given no monitor.

    For trainings started by code that takes no monitor argument, e.g.
    ``with monitoring(Monitor(every=25)): run_scenario("arch-cnn", 0)``; each run's
    report is in its ``History.monitor``. Scoped to the block (and to the current
    thread or task); an explicit ``train(..., monitor=...)`` takes precedence.
    """
    check_type("monitor", monitor, Monitor)
    token = _ACTIVE.set(monitor)
    try:
        yield monitor
    finally:
        _ACTIVE.reset(token)


def active_monitor() -> Monitor | None:
    """The monitor of the innermost :func:`monitoring` block, or None."""
    return _ACTIVE.get()


def diagnose(reports: Mapping[Any, MonitorReport | None] | Sequence[MonitorReport | None]) -> str:
    """What the monitor saw in several runs (e.g. the fresh seeds of a flagged scenario).

    ``reports``: a mapping label → report (e.g. ``{"seed 1000": history.monitor}``) or
    a sequence (labelled ``run 0``, ``run 1``, ...). Returns one line per run with
    its :meth:`MonitorReport.summary` ("no monitor" for None), or a single line
    when every run saw nothing.
    """
    if isinstance(reports, Mapping):
        items = [(str(k), r) for k, r in reports.items()]
    else:
        check_type("reports", reports, (list, tuple))
        items = [(f"run {i}", r) for i, r in enumerate(reports)]
    for label, r in items:
        if r is not None:
            check_type(f"reports[{label!r}]", r, MonitorReport)
    if not items:
        return "monitor: no runs"
    monitored = [r for _, r in items if r is not None]
    if monitored and len(monitored) == len(items) and all(r.ok for r in monitored):
        steps = sum(len(r.steps) for r in monitored)
        return f"monitor: no violation in {len(items)} run(s) ({steps} checked steps)"
    return "\n".join(f"{label}: {'no monitor' if r is None else r.summary()}" for label, r in items)
