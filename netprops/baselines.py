"""Convergence baselines: a versioned JSON store, the gate, and migration between environments.

A baseline holds, for one scenario on one device kind, the metrics of K seeded
training runs plus the provenance of the environment that produced them. The
gate (:func:`compare`) runs m fresh seeds and tests each gated metric with
:func:`netprops.gate.gate_metric` (an exact rank test of fresh against recorded
runs, plus a chance-level floor). Within one environment
its false-alarm rate is stated; across environments (another torch, another
thread count) it is not, so a changed environment is never compared silently:
:func:`migrate` records K seeds in the new environment, tests old vs new for
equivalence and writes the new baseline with the provenance of both.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .devices import resolve_device, tf32_enabled
from .errors import check_int, check_probability, check_seeds
from .gate import (
    EQUIVALENCE_ALPHA,
    GATE_ALPHA,
    EquivalenceResult,
    GateResult,
    detectable_drop,
    equivalence_test,
    gate_metric,
    min_recorded_runs,
    simulate_gate,
)

__all__ = [
    "EQUIVALENCE_MARGINS",
    "GATE_TEST",
    "SCHEMA_VERSION",
    "VERDICT_COLUMNS",
    "Baseline",
    "BaselineError",
    "BaselineExistsError",
    "Migration",
    "Verdict",
    "baseline_path",
    "compare",
    "current_provenance",
    "detectable_drops",
    "environment_changes",
    "format_what_if_table",
    "migrate",
    "read_baseline",
    "record",
    "simulated_calibration",
    "verdicts_markdown",
    "what_if_verdicts",
    "write_baseline",
]

SCHEMA_VERSION = 2

#: Provenance keys whose change makes a stored baseline incomparable.
ENVIRONMENT_KEYS = (
    "torch",
    "device_kind",
    "device_name",
    "dtype",
    "threads",
    "tf32",
    "deterministic",
)

#: The gate's test for every gated metric: the exact Mann-Whitney test, whose false-alarm rate
#: holds for any distribution (see netprops.gate and docs/methods.md §5.3).
GATE_TEST = "rank"

#: Equivalence margins of :func:`migrate`, per gated metric: a new environment is
#: equivalent when new - old is shown to lie within ±margin. Accuracy: 1 point (half
#: the gate's 2-point design goal). Mean log training loss: 0.05, i.e. training losses
#: within about 5 % (e^0.05 = 1.051) of the old ones on average.
EQUIVALENCE_MARGINS: Mapping[str, float] = {"final_accuracy": 0.01, "auc_log_loss": 0.05}


class BaselineError(ValueError):
    """A baseline file is missing, corrupt, or of an unknown schema."""


class BaselineExistsError(FileExistsError):
    """Refused to overwrite an existing baseline without an explicit update."""


@dataclass(frozen=True)
class Baseline:
    """The recorded metrics of one scenario on one device kind.

    ``metrics`` maps a metric name to one value per seed (same order as ``seeds``);
    ``None`` marks a run that never reached a target (steps-to-target).
    ``previous`` is set by :func:`migrate`: the provenance, seeds and metrics of
    the baseline this one replaced, and the equivalence tests between the two.
    """

    scenario: str
    device_kind: str
    seeds: tuple[int, ...]
    metrics: Mapping[str, tuple[float | None, ...]]
    config: Mapping[str, Any]
    provenance: Mapping[str, Any]
    previous: Mapping[str, Any] | None = None
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["metrics"] = {k: list(v) for k, v in self.metrics.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Baseline:
        """Validate and build a baseline; :class:`BaselineError` naming ``source`` otherwise."""
        if not isinstance(data, Mapping):
            raise BaselineError(f"{source}: expected a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if isinstance(schema, bool) or schema != SCHEMA_VERSION:
            raise BaselineError(
                f"{source}: unknown baseline schema {schema!r} (this netprops reads schema "
                f"{SCHEMA_VERSION}); re-record it with `netprops baselines record --update`"
            )
        missing = {"scenario", "device_kind", "seeds", "metrics", "config", "provenance"} - set(
            data
        )
        if missing:
            raise BaselineError(f"{source}: missing fields {sorted(missing)}")

        def bad(field_name: str, allowed: str) -> BaselineError:
            value = data[field_name]
            return BaselineError(
                f"{source}: field {field_name!r} must be {allowed}, got {value!r:.80}"
            )

        for name in ("scenario", "device_kind"):
            if not isinstance(data[name], str) or not data[name]:
                raise bad(name, "a non-empty string")
        for name in ("config", "provenance"):
            if not isinstance(data[name], Mapping):
                raise bad(name, "a JSON object")
        previous = data.get("previous")
        if previous is not None and not isinstance(previous, Mapping):
            raise bad("previous", "a JSON object or null")
        raw_seeds = data["seeds"]
        if (
            not isinstance(raw_seeds, list)
            or len(raw_seeds) < 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw_seeds)
        ):
            raise bad("seeds", "a list of at least 2 integer seeds")
        seeds = tuple(raw_seeds)
        if not isinstance(data["metrics"], Mapping):
            raise bad("metrics", "a JSON object of metric name -> one value per seed")
        metrics = {}
        for name, values in data["metrics"].items():
            if not isinstance(values, list) or len(values) != len(seeds):
                raise BaselineError(
                    f"{source}: metric {name!r} must list one value per seed ({len(seeds)}), "
                    f"got {values!r:.80}"
                )
            if not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in values
            ):
                raise BaselineError(
                    f"{source}: metric {name!r} must hold numbers or null, got {values!r:.80}"
                )
            metrics[name] = tuple(None if v is None else float(v) for v in values)
        for name in _gated_metrics():
            finite = [v for v in metrics.get(name, ()) if v is not None and math.isfinite(v)]
            if len(finite) != len(seeds):
                raise BaselineError(
                    f"{source}: gated metric {name!r} must hold a finite value for every seed, "
                    f"got {list(metrics.get(name, ()))!r:.120}"
                )
        return cls(
            scenario=data["scenario"],
            device_kind=data["device_kind"],
            seeds=seeds,
            metrics=metrics,
            config=dict(data["config"]),
            provenance=dict(data["provenance"]),
            previous=None if previous is None else dict(previous),
        )


def _gated_metrics() -> tuple[str, ...]:
    from .scenarios import GATED_METRICS

    return tuple(GATED_METRICS)


def baseline_path(
    scenario: str, device_kind: str, root: str | os.PathLike[str] = "baselines"
) -> Path:
    """``<root>/<scenario>.<device_kind>.json``."""
    return Path(root) / f"{scenario}.{device_kind}.json"


def read_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Load a baseline; :class:`BaselineError` for a missing, corrupt or unknown-schema file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"{path}: no baseline recorded; record it with `netprops baselines record`"
        ) from None
    except UnicodeDecodeError as exc:
        raise BaselineError(
            f"{path}: corrupt baseline file (not UTF-8: {exc}); it was left as it is"
        ) from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the baseline ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: corrupt baseline file ({exc}); it was left as it is"
        ) from None
    return Baseline.from_dict(data, source=str(path))


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


#: Permissions of new baseline files (mkstemp's 0600 would survive the rename).
_FILE_MODE = _file_mode()


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Serialize netprops writers of one baseline folder (flock on the folder; POSIX only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the link below still refuses overwrites
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _exists_error(path: Path) -> BaselineExistsError:
    return BaselineExistsError(
        f"{path} exists; pass overwrite=True (CLI: `netprops baselines record --update`; "
        "pytest: --netprops-update-baselines) to replace it"
    )


def _check_replaceable(path: Path) -> None:
    """Refuse to replace a file we cannot read (it may be the only copy of a recording);
    an intact file of an older schema is replaceable (re-recording is how it is upgraded)."""
    try:
        read_baseline(path)
    except BaselineError:
        try:
            schema = json.loads(path.read_text(encoding="utf-8")).get("schema")
        except (OSError, ValueError, AttributeError):
            schema = None
        if not (
            isinstance(schema, int) and not isinstance(schema, bool) and schema < SCHEMA_VERSION
        ):
            raise


def write_baseline(
    baseline: Baseline, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``baseline`` atomically (temporary file in the same folder, then link or rename).

    Readers never see a torn file. Concurrent writers (pytest-xdist workers)
    are serialized by a lock on the folder (POSIX); without ``overwrite`` the
    file is published with ``os.link``, which fails if another writer created
    it first, so exactly one of several concurrent first recordings wins and
    the others raise :class:`BaselineExistsError`.

    Raises
    ------
    BaselineExistsError
        when ``path`` exists and ``overwrite`` is False.
    BaselineError
        when ``overwrite`` is True but the existing file is corrupt or of a newer or
        unknown schema (move it away by hand: it may be the only copy of a recording);
        an intact file of an older schema is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(baseline.to_dict(), indent=2, sort_keys=True) + "\n"
    with _folder_lock(path.parent):
        if path.exists():
            if not overwrite:
                raise _exists_error(path)
            _check_replaceable(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                if hasattr(os, "fchmod"):
                    os.fchmod(handle.fileno(), _FILE_MODE)
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise _exists_error(path) from None
                except OSError:  # a filesystem without hard links: the lock guards the check
                    os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def current_provenance(
    device: str | torch.device, dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """What the environment is: versions, device, dtype, threads, TF32/determinism flags, date, commit."""
    import torchvision

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device_kind": device.type,
        "device_name": name,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "tf32": tf32_enabled() if device.type == "cuda" else False,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }


def environment_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences on the keys that make results incomparable."""
    return [
        f"{key}: baseline {stored.get(key)!r}, now {current.get(key)!r}"
        for key in ENVIRONMENT_KEYS
        if stored.get(key) != current.get(key)
    ]


# --------------------------------------------------------------------------- record / compare


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one scenario.

    ``passed`` is False for a regression. ``environment_changed`` is True when
    the stored baseline came from another environment or another definition of
    the scenario (``definition_changed``); ``passed`` is then None (nothing was
    compared) unless the comparison was asked for across environments
    (``cross_environment``), whose verdict is informative only: the gate's
    false-alarm rate holds within one environment. ``diagnosis`` is what the live
    monitor saw in the fresh runs (:func:`netprops.monitor.diagnose`; printed in
    ``message`` when the gate fails), empty when nothing was run.
    """

    scenario: str
    passed: bool | None
    environment_changed: bool
    message: str
    gates: tuple[GateResult, ...] = ()
    fresh: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    path: str = ""
    changes: tuple[str, ...] = ()
    definition_changed: bool = False
    cross_environment: bool = False
    diagnosis: str = ""

    def __str__(self) -> str:
        return self.message

    @property
    def outcome(self) -> str:
        """``passed``, ``REGRESSION`` or ``not compared`` (``(informative)`` across environments)."""
        if self.passed is None:
            return "not compared"
        text = "passed" if self.passed else "REGRESSION"
        return f"{text} (informative)" if self.cross_environment else text


#: Columns of :func:`verdicts_markdown`.
VERDICT_COLUMNS = (
    "scenario",
    "verdict",
    "metric",
    "fresh mean",
    "baseline",
    "detectable drop",
    "p (rank test)",
    "what the monitor saw",
)


def verdicts_markdown(verdicts: Sequence[Verdict]) -> str:
    """A Markdown table of gate verdicts, one row per gated metric (one for a scenario that
    was not compared), for a CI step summary (:func:`netprops.plugin.reporting.append_step_summary`)."""
    from .plugin.reporting import markdown_table

    rows = []
    for verdict in verdicts:
        seen = verdict.diagnosis.splitlines()[0] if verdict.diagnosis else ""
        if not verdict.gates:
            reason = verdict.message.splitlines()[0]
            rows.append((verdict.scenario, verdict.outcome, "-", "-", "-", "-", "-", reason))
        for g in verdict.gates:
            p_value = "-" if g.p_value is None else f"{g.p_value:.3g} (fails below {g.bound:.3g})"
            rows.append(
                (
                    verdict.scenario,
                    verdict.outcome,
                    g.metric,
                    f"{g.fresh_mean:.4g}",
                    f"{g.baseline_mean:.4g} ± {g.baseline_sd:.2g}",
                    f"{g.detectable_drop:.3g}",
                    p_value,
                    seen,
                )
            )
    return markdown_table(VERDICT_COLUMNS, rows)


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_int("threads", threads, min_value=1))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_many(
    scenario: Any,
    seeds: Sequence[int],
    device: str,
    data: Any,
    reports: dict[str, Any] | None = None,
) -> dict[str, list[float | None]]:
    """Metric name → one value per seed. With ``reports`` (a dict to fill), every run is
    watched by the live monitor (every :data:`GATE_MONITOR_EVERY`-th step) and ``reports["seed S"]`` gets
    what it saw."""
    from .scenarios import run_scenario

    metrics: dict[str, list[float | None]] = {}
    for seed in seeds:
        monitor = None if reports is None else _gate_monitor()
        result = run_scenario(scenario, seed, device=device, data=data, monitor=monitor)
        if reports is not None:
            reports[f"seed {seed}"] = result.history.monitor
        for name, value in result.metrics.items():
            metrics.setdefault(name, []).append(value)
    return metrics


#: How often the live monitor checks the fresh runs of :func:`compare` (every 50th step:
#: about 4 % of a training's time, docs/methods.md §Live monitor).
GATE_MONITOR_EVERY = 50


def _gate_monitor() -> Any:
    from .monitor import Monitor

    return Monitor(every=GATE_MONITOR_EVERY)


def _diagnosis(reports: dict[str, Any]) -> str:
    from .monitor import diagnose

    return diagnose(reports)


def _scenario(scenario: Any) -> Any:
    from .scenarios import Scenario, get

    if isinstance(scenario, str):
        return get(scenario)
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a name or a Scenario, got {type(scenario).__name__}")
    return scenario


def _floors(scenario: Any) -> dict[str, float]:
    """Per gated metric, the value at or beyond which a fresh mean fails outright."""
    return {"final_accuracy": scenario.chance_floor}


def _check_learns(
    scenario: Any,
    seeds: Sequence[int],
    metrics: Mapping[str, Sequence[float | None]],
    where: str,
) -> None:
    """Refuse a recording whose runs reach a floor: the gate would fail its own runs."""
    for name, floor in _floors(scenario).items():
        hits = [
            (seed, v)
            for seed, v in zip(seeds, metrics.get(name, ()), strict=False)
            if v is not None and v <= floor
        ]
        if hits:
            raise BaselineError(
                f"{where}: {len(hits)} recorded run(s) of {scenario.name} have {name} at or "
                f"below the scenario's chance floor {floor:g} (seed, value: {hits[:5]}); a "
                "scenario must learn in every seed (train longer, or change its configuration)"
            )


def _check_enough_runs(scenario: Any, seeds: Sequence[int], alpha: float = GATE_ALPHA) -> None:
    """Refuse to record fewer runs than the gate's rank test needs for this scenario's m."""
    from .scenarios import GATED_METRICS

    m = len(scenario.fresh_seeds)
    needed = min_recorded_runs(m, alpha / len(GATED_METRICS))
    if len(seeds) < needed:
        raise ValueError(
            f"seeds must hold at least {needed} seeds for {scenario.name}: with fewer, the gate's "
            f"rank test of its {m} fresh runs cannot reach alpha={alpha / len(GATED_METRICS):g}; "
            f"got {len(seeds)}"
        )


def record(
    scenario: Any,
    *,
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    root: str | os.PathLike[str] = "baselines",
    overwrite: bool = False,
    threads: int | None = 1,
    data: Any = None,
) -> Path:
    """Run ``scenario`` (a name or a Scenario) for every baseline seed and store the result.

    ``threads`` fixes torch's CPU thread count during the runs (restored after);
    it is part of the provenance. Returns the written path.

    Raises
    ------
    ValueError
        fewer seeds than the gate's rank test needs (:func:`netprops.gate.min_recorded_runs`).
    BaselineExistsError
        when a baseline exists and ``overwrite`` is False.
    BaselineError
        when a gated metric is not finite in some run, or a run's accuracy is at
        or below the scenario's chance floor (nothing is written).
    """
    scenario = _scenario(scenario)
    seeds = scenario.baseline_seeds if seeds is None else check_seeds("seeds", seeds, min_count=2)
    _check_enough_runs(scenario, seeds)
    scenario = (
        scenario.replace(baseline_seeds=seeds) if seeds != scenario.baseline_seeds else scenario
    )
    kind = resolve_device(device).type
    path = baseline_path(scenario.name, kind, root)
    if path.exists():  # fail before the trainings, not after them
        if not overwrite:
            raise _exists_error(path)
        _check_replaceable(path)
    with _threads(threads):
        metrics = _run_many(scenario, seeds, device, data)
        provenance = current_provenance(device)
    baseline = Baseline(
        scenario=scenario.name,
        device_kind=kind,
        seeds=seeds,
        metrics={k: tuple(v) for k, v in metrics.items()},
        config=scenario.to_dict(),
        provenance=provenance,
    )
    # the checks a reader applies, before anything is written (e.g. a NaN accuracy)
    Baseline.from_dict(baseline.to_dict(), source=f"new recording for {path}")
    _check_learns(scenario, seeds, metrics, f"new recording for {path}")
    return write_baseline(baseline, path, overwrite=overwrite)


def _same_definition(stored: Baseline, scenario: Any) -> bool:
    """The stored config equals ``scenario``'s, seeds aside (through JSON, as it was stored).

    The fresh seeds are the gate's budget, not part of what was recorded.
    """
    ignore = ("baseline_seeds", "fresh_seeds")
    old = {k: v for k, v in stored.config.items() if k not in ignore}
    new = {k: v for k, v in json.loads(json.dumps(scenario.to_dict())).items() if k not in ignore}
    return old == new


def _fresh_count(stored: Baseline) -> int:
    """m: the fresh seeds of the catalog's scenario of that name, else of the stored config."""
    from .scenarios import list_scenarios

    if stored.scenario in list_scenarios():
        return len(_scenario(stored.scenario).fresh_seeds)
    return len(stored.config.get("fresh_seeds", ())) or 3


def detectable_drops(
    stored: Baseline, m: int | None = None, *, alpha: float = GATE_ALPHA
) -> dict[str, tuple[str, float]]:
    """Per gated metric of ``stored``: (the gate's test, its detectable drop) for m fresh runs.

    ``m`` defaults to the number of fresh seeds the gate runs for this scenario;
    ``alpha`` is the scenario's, split over the gated metrics as :func:`compare` does.
    The drop is simulated on the recorded distribution (:func:`netprops.gate.detectable_drop`).
    """
    from .scenarios import GATED_METRICS

    m = _fresh_count(stored) if m is None else check_int("m", m, min_value=1)
    per_metric = alpha / len(GATED_METRICS)
    return {
        name: (
            GATE_TEST,
            detectable_drop(
                [v for v in stored.metrics[name] if v is not None],
                m,
                alpha=per_metric,
                test=GATE_TEST,
                higher_is_better=higher,
            ),
        )
        for name, higher in GATED_METRICS.items()
    }


def simulated_calibration(
    stored: Baseline,
    *,
    trials: int = 200_000,
    alpha: float = GATE_ALPHA,
    seed: int = 0,
    accuracy_drop: float = 0.02,
) -> dict[str, dict[str, float]]:
    """The gate simulated on ``stored``'s recorded distributions, per gated metric.

    Keys per metric: ``false_alarm`` (fraction of ``trials`` gate runs that fail
    with no change), ``nominal`` (its alpha), ``power_at_drop`` (fraction caught
    when the mean worsens by the detectable drop), and for the accuracy
    ``power_at_2_points`` (worsened by ``accuracy_drop``). See
    :func:`netprops.gate.simulate_gate`; the powers use other draws (``seed + 1``)
    than the search that found the detectable drop, so they check it.
    """
    from .scenarios import GATED_METRICS

    m = _fresh_count(stored)
    per_metric = alpha / len(GATED_METRICS)
    out: dict[str, dict[str, float]] = {}
    for metric, (test, drop) in detectable_drops(stored, m, alpha=alpha).items():
        rate = functools.partial(
            simulate_gate,
            [v for v in stored.metrics[metric] if v is not None],
            m,
            alpha=per_metric,
            higher_is_better=GATED_METRICS[metric],
            test=test,
        )
        power_trials = max(trials // 10, 1)
        row = {
            "false_alarm": rate(shift=0.0, trials=trials, seed=seed),
            "nominal": per_metric,
            "power_at_drop": rate(shift=drop, trials=power_trials, seed=seed + 1),
        }
        if metric == "final_accuracy":
            row["power_at_2_points"] = rate(shift=accuracy_drop, trials=power_trials, seed=seed + 1)
        out[metric] = row
    return out


def compare(
    scenario: Any,
    *,
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    root: str | os.PathLike[str] = "baselines",
    alpha: float = GATE_ALPHA,
    threads: int | None = 1,
    data: Any = None,
    across_environments: bool = False,
    **overrides: Any,
) -> Verdict:
    """Run fresh seeds of ``scenario`` and gate them against its stored baseline.

    ``overrides`` replace scenario fields for a what-if run (``lr=5e-4``): the
    stored baseline is still the reference, so the verdict answers "would this
    change regress convergence?". Each gated metric (final test accuracy,
    higher is better; area under the log-loss curve, lower is better) is tested
    at ``alpha / 2`` with :func:`netprops.gate.gate_metric` (the exact rank test,
    :data:`GATE_TEST`), so the scenario's false-alarm probability is at most ``alpha``;
    a fresh mean accuracy at or below the scenario's ``chance_floor`` fails
    whatever the baseline spread. When the environment differs from the stored
    provenance nothing is compared unless ``across_environments`` is True.

    Raises
    ------
    BaselineError
        when no readable baseline is stored.
    """
    from .scenarios import GATED_METRICS

    base_scenario = _scenario(scenario)
    what_if = base_scenario.replace(**overrides) if overrides else base_scenario
    kind = resolve_device(device).type
    path = baseline_path(base_scenario.name, kind, root)
    stored = read_baseline(path)
    seeds = what_if.fresh_seeds if seeds is None else check_seeds("seeds", seeds)
    reused = sorted(set(seeds) & set(stored.seeds))
    if reused:
        raise ValueError(
            f"fresh seeds must differ from the {len(stored.seeds)} recorded ones "
            f"(the gate would compare runs with themselves); both hold {reused}"
        )
    name = base_scenario.name
    rerecord = f"netprops baselines record {name} --device {kind} --update"
    with _threads(threads):
        changes = environment_changes(stored.provenance, current_provenance(device))
    if not _same_definition(stored, base_scenario):
        return Verdict(
            name,
            None,
            True,
            f"{name}: the scenario's definition differs from the recorded one — re-record "
            f"({rerecord})",
            path=str(path),
            definition_changed=True,
        )
    if changes and not across_environments:
        return Verdict(
            name,
            None,
            True,
            f"{name}: environment changed — not compared; run `netprops baselines migrate "
            f"{name} --device {kind}` to compare the environments:\n  " + "\n  ".join(changes),
            path=str(path),
            changes=tuple(changes),
        )
    reports: dict[str, Any] = {}
    with _threads(threads):
        fresh = _run_many(what_if, seeds, device, data, reports)
    floors = _floors(base_scenario)
    gates = tuple(
        gate_metric(
            metric,
            [v for v in stored.metrics[metric] if v is not None],
            [v for v in fresh[metric] if v is not None],
            alpha=alpha / len(GATED_METRICS),
            higher_is_better=higher,
            floor=floors.get(metric),
            test=GATE_TEST,
        )
        for metric, higher in GATED_METRICS.items()
    )
    passed = all(g.passed for g in gates)
    label = name + (f" with {overrides}" if overrides else "")
    head = (
        f"{label}: {'passed' if passed else 'CONVERGENCE REGRESSION'} ({len(seeds)} fresh seeds "
        f"vs {len(stored.seeds)} stored, alpha {alpha:g})"
    )
    lines = [head, *(f"  {g}" for g in gates)]
    if changes:
        lines.insert(
            1,
            "  CROSS-ENVIRONMENT comparison (the false-alarm rate holds only within one "
            "environment): " + "; ".join(changes),
        )
    diagnosis = _diagnosis(reports)
    if not passed:
        lines.append("  what the monitor saw:")
        lines += [f"    {line}" for line in diagnosis.splitlines()]
        lines.append(f"  baseline: {path}; if the change is intended, re-record: {rerecord}")
    return Verdict(
        name,
        passed,
        bool(changes),
        "\n".join(lines),
        gates,
        {k: tuple(v) for k, v in fresh.items()},
        str(path),
        changes=tuple(changes),
        cross_environment=bool(changes),
        diagnosis=diagnosis,
    )


# --------------------------------------------------------------------------- migrate


@dataclass(frozen=True)
class Migration:
    """The outcome of :func:`migrate` for one scenario.

    ``equivalent``: every gated metric was shown equivalent (within its
    :data:`EQUIVALENCE_MARGINS` margin). ``written``: the new baseline replaced
    the old one (equivalent, or ``accept``). ``changed``: the metrics whose
    verdict is ``"changed"`` (a difference beyond noise).
    """

    scenario: str
    equivalent: bool
    written: bool
    results: tuple[EquivalenceResult, ...]
    environment_changes: tuple[str, ...]
    path: str
    message: str

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(r.metric for r in self.results if r.verdict == "changed")

    def __str__(self) -> str:
        return self.message


def migrate(
    scenario: Any,
    *,
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    root: str | os.PathLike[str] = "baselines",
    threads: int | None = 1,
    data: Any = None,
    accept: bool = False,
    alpha: float = EQUIVALENCE_ALPHA,
) -> Migration:
    """Re-record ``scenario`` in this environment and test it against the stored baseline.

    Runs ``seeds`` (default: the stored ones, K runs), then for every gated
    metric an equivalence test (:func:`netprops.gate.equivalence_test`, margin
    from :data:`EQUIVALENCE_MARGINS`, each one-sided test at ``alpha``). The new
    baseline, whose ``previous`` field holds the old provenance, seeds, metrics
    and the test results, replaces the old file when every metric is
    equivalent, or when ``accept`` is True (an intended change); otherwise the
    old file is left as it is.

    Raises
    ------
    BaselineError
        no readable baseline, a scenario definition that differs from the
        recorded one (record instead), or a new run at or below the chance floor.
    """
    from .scenarios import GATED_METRICS

    scenario = _scenario(scenario)
    check_probability("alpha", alpha)
    kind = resolve_device(device).type
    path = baseline_path(scenario.name, kind, root)
    stored = read_baseline(path)
    if not _same_definition(stored, scenario):
        raise BaselineError(
            f"{path}: the scenario's definition differs from the recorded one; migrate compares "
            f"environments, not definitions: re-record with `netprops baselines record "
            f"{scenario.name} --device {kind} --update`"
        )
    seeds = stored.seeds if seeds is None else check_seeds("seeds", seeds, min_count=2)
    _check_enough_runs(scenario, seeds)
    reused = sorted(set(seeds) & set(scenario.fresh_seeds))
    if reused:
        raise ValueError(
            f"seeds must be disjoint from the scenario's fresh seeds (the gate would compare "
            f"runs with themselves), both hold {reused}"
        )
    with _threads(threads):
        provenance = current_provenance(device)
        changes = environment_changes(stored.provenance, provenance)
        metrics = _run_many(scenario, seeds, device, data)
    source = f"new recording for {path}"
    _check_learns(scenario, seeds, metrics, source)
    new_values = {k: tuple(v) for k, v in metrics.items()}
    results = tuple(
        equivalence_test(
            metric,
            [v for v in stored.metrics[metric] if v is not None],
            [v for v in new_values[metric] if v is not None],
            margin=EQUIVALENCE_MARGINS[metric],
            alpha=alpha,
        )
        for metric in GATED_METRICS
    )
    new = Baseline(
        scenario=scenario.name,
        device_kind=kind,
        seeds=tuple(seeds),
        metrics=new_values,
        config={**stored.config, "baseline_seeds": list(seeds)},
        provenance=provenance,
        previous={
            "provenance": dict(stored.provenance),
            "seeds": list(stored.seeds),
            "metrics": {k: list(v) for k, v in stored.metrics.items()},
            "equivalence": [asdict(r) for r in results],
        },
    )
    Baseline.from_dict(new.to_dict(), source=source)
    equivalent = all(r.verdict == "equivalent" for r in results)
    written = equivalent or accept
    if written:
        write_baseline(new, path, overwrite=True)
    if equivalent:
        status = "equivalent"
    elif any(r.verdict == "changed" for r in results):
        status = "CHANGED BEYOND NOISE"
    else:
        status = "NOT SHOWN EQUIVALENT (inconclusive)"
    env = "; ".join(changes) if changes else "environment unchanged"
    lines = [
        f"{scenario.name}: {status} ({len(seeds)} new runs vs {len(stored.seeds)} stored; {env})",
        *(f"  {r}" for r in results),
    ]
    if written:
        lines.append(f"  wrote {path} (the old provenance and runs are kept under 'previous')")
    else:
        lines.append(
            f"  {path} left as it is; if the change is intended: netprops baselines migrate "
            f"{scenario.name} --device {kind} --accept"
        )
    return Migration(
        scenario.name, equivalent, written, results, tuple(changes), str(path), "\n".join(lines)
    )


# --------------------------------------------------------------------------- what-ifs


def what_if_verdicts(
    scenario: Any,
    *,
    device: str = "cpu",
    root: str | os.PathLike[str] = "baselines",
    threads: int | None = 1,
    data: Any = None,
) -> dict[str, Verdict]:
    """The gate's verdict on each of :func:`netprops.scenarios.what_ifs` for ``scenario``."""
    from .scenarios import what_ifs

    scenario = _scenario(scenario)
    return {
        label: compare(scenario, device=device, root=root, threads=threads, data=data, **changes)
        for label, changes in what_ifs(scenario).items()
    }


def format_what_if_table(verdicts: Mapping[str, Mapping[str, Verdict]]) -> str:
    """A Markdown table: one row per scenario, one column per what-if, "caught" or "missed".

    A cell also names the metric that caught it (``acc``: accuracy, ``loss``:
    log-loss area, ``floor``: the chance floor); a scenario whose baseline was
    not comparable shows "n/c".
    """
    short = {"final_accuracy": "acc", "auc_log_loss": "loss"}
    labels = list(dict.fromkeys(label for row in verdicts.values() for label in row))
    lines = [
        "| scenario | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, row in verdicts.items():
        cells = []
        for label in labels:
            verdict = row.get(label)
            if verdict is None or verdict.passed is None:
                cells.append("n/c")
            elif verdict.passed:
                cells.append("missed")
            else:
                why = [short.get(g.metric, g.metric) for g in verdict.gates if g.beyond_bound]
                if any(g.floor_hit for g in verdict.gates):
                    why.append("floor")
                cells.append("caught" + (f" ({', '.join(why)})" if why else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
