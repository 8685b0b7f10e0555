"""Convergence baselines: a versioned JSON store and the statistical gate (METHODS.md §4).

A baseline holds, for one scenario on one device kind, the metrics of K seeded
training runs plus the provenance of the environment that produced them. The
gate compares m fresh runs (other seeds) with it through a one-sided prediction
bound; when the environment differs from the provenance it says so instead of
pretending the comparison means anything.
"""

from __future__ import annotations

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
from scipy import stats

from .devices import resolve_device, tf32_enabled
from .errors import check_int, check_probability, check_seeds

__all__ = [
    "GATE_ALPHA",
    "SCHEMA_VERSION",
    "Baseline",
    "BaselineError",
    "BaselineExistsError",
    "GateResult",
    "Verdict",
    "baseline_path",
    "compare",
    "current_provenance",
    "environment_changes",
    "prediction_gate",
    "read_baseline",
    "record",
    "write_baseline",
]

SCHEMA_VERSION = 1

#: False-alarm probability of the gate for one scenario, split evenly over its gated metrics.
#: With ~20 scenarios a fresh-seed set raises a false alarm with probability ~2%; since the
#: fresh seeds are fixed, an unchanged tree in an unchanged environment gives the same verdict
#: every run, so a pass never turns into a flake.
GATE_ALPHA = 1e-3

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


class BaselineError(ValueError):
    """A baseline file is missing, corrupt, or of an unknown schema."""


class BaselineExistsError(FileExistsError):
    """Refused to overwrite an existing baseline without an explicit update."""


@dataclass(frozen=True)
class Baseline:
    """The recorded metrics of one scenario on one device kind.

    ``metrics`` maps a metric name to one value per seed (same order as ``seeds``);
    ``None`` marks a run that never reached a target (steps-to-target).
    """

    scenario: str
    device_kind: str
    seeds: tuple[int, ...]
    metrics: Mapping[str, tuple[float | None, ...]]
    config: Mapping[str, Any]
    provenance: Mapping[str, Any]
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
                f"{SCHEMA_VERSION}); re-record it with `netprops baselines record`"
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
        when ``overwrite`` is True but the existing file is corrupt or of another
        schema (move it away by hand: it may be the only copy of a recording).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(baseline.to_dict(), indent=2, sort_keys=True) + "\n"
    with _folder_lock(path.parent):
        if path.exists():
            if not overwrite:
                raise _exists_error(path)
            read_baseline(path)  # refuse to replace a file we cannot read
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


@dataclass(frozen=True)
class GateResult:
    """One metric's one-sided prediction-bound test.

    Fails when the mean of the m fresh runs is worse than
    ``x̄ ∓ t_{1-α, K-1} · s · sqrt(1/m + 1/K) ∓ margin`` (sign by direction).
    """

    metric: str
    passed: bool
    fresh_mean: float
    baseline_mean: float
    baseline_sd: float
    bound: float
    alpha: float
    higher_is_better: bool
    fresh: tuple[float, ...] = field(default=())
    baseline_range: tuple[float, float] = (math.nan, math.nan)

    def __str__(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        status = "ok" if self.passed else "REGRESSION"
        return (
            f"{self.metric}: fresh mean {self.fresh_mean:.5g} (runs {', '.join(f'{v:.5g}' for v in self.fresh)}) "
            f"must be {op} {self.bound:.5g}; baseline {self.baseline_mean:.5g} ± {self.baseline_sd:.3g} "
            f"(range {self.baseline_range[0]:.5g}..{self.baseline_range[1]:.5g}), alpha {self.alpha:g} [{status}]"
        )


def prediction_gate(
    metric: str,
    baseline: Sequence[float],
    fresh: Sequence[float],
    *,
    alpha: float = GATE_ALPHA,
    higher_is_better: bool = True,
    margin: float = 0.0,
) -> GateResult:
    """One-sided prediction bound for the mean of ``fresh`` given ``baseline`` runs (METHODS.md §4).

    For K baseline values with mean x̄ and sd s, the mean of m new values from the
    same normal distribution stays above ``x̄ - t_{1-α,K-1}·s·sqrt(1/m + 1/K)`` with
    probability 1 - α (below the mirrored bound when lower is better). ``margin``
    widens the bound by a fixed practical tolerance.

    Raises
    ------
    ValueError
        fewer than 2 baseline values or no fresh values.
    """
    alpha = check_probability("alpha", alpha)
    base = np.asarray(baseline, dtype=np.float64)
    new = np.asarray(fresh, dtype=np.float64)
    k = check_int("len(baseline)", base.size, min_value=2)
    m = check_int("len(fresh)", new.size, min_value=1)
    mean, sd = float(base.mean()), float(base.std(ddof=1))
    half_width = float(stats.t.ppf(1 - alpha, k - 1)) * sd * math.sqrt(1 / m + 1 / k) + margin
    fresh_mean = float(new.mean())
    if higher_is_better:
        bound = mean - half_width
        passed = fresh_mean >= bound
    else:
        bound = mean + half_width
        passed = fresh_mean <= bound
    return GateResult(
        metric=metric,
        passed=passed,
        fresh_mean=fresh_mean,
        baseline_mean=mean,
        baseline_sd=sd,
        bound=bound,
        alpha=alpha,
        higher_is_better=higher_is_better,
        fresh=tuple(float(v) for v in new),
        baseline_range=(float(base.min()), float(base.max())),
    )


# --------------------------------------------------------------------------- record / compare


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one scenario.

    ``passed`` is False for a regression; ``environment_changed`` is True when the
    stored baseline came from another environment or another definition of the
    scenario, in which case ``passed`` is None: nothing was compared.
    """

    scenario: str
    passed: bool | None
    environment_changed: bool
    message: str
    gates: tuple[GateResult, ...] = ()
    fresh: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    path: str = ""

    def __str__(self) -> str:
        return self.message


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
    scenario: Any, seeds: Sequence[int], device: str, data: Any
) -> dict[str, list[float | None]]:
    from .scenarios import run_scenario

    metrics: dict[str, list[float | None]] = {}
    for seed in seeds:
        result = run_scenario(scenario, seed, device=device, data=data)
        for name, value in result.metrics.items():
            metrics.setdefault(name, []).append(value)
    return metrics


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
    BaselineExistsError
        when a baseline exists and ``overwrite`` is False.
    """
    from .scenarios import get

    scenario = get(scenario) if isinstance(scenario, str) else scenario
    seeds = scenario.baseline_seeds if seeds is None else check_seeds("seeds", seeds, min_count=2)
    kind = resolve_device(device).type
    path = baseline_path(scenario.name, kind, root)
    if path.exists():  # fail before the trainings, not after them
        if not overwrite:
            raise _exists_error(path)
        read_baseline(path)
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
    return write_baseline(baseline, path, overwrite=overwrite)


def compare(
    scenario: Any,
    *,
    device: str = "cpu",
    seeds: Sequence[int] | None = None,
    root: str | os.PathLike[str] = "baselines",
    alpha: float = GATE_ALPHA,
    threads: int | None = 1,
    data: Any = None,
    **overrides: Any,
) -> Verdict:
    """Run fresh seeds of ``scenario`` and gate them against its stored baseline.

    ``overrides`` replace scenario fields for a what-if run (``lr=5e-4``): the
    stored baseline is still the reference, so the verdict answers "would this
    change regress convergence?". Each gated metric (final test accuracy,
    higher is better; area under the log-loss curve, lower is better) is tested
    at ``alpha / 2`` with the one-sided prediction bound, so the scenario's
    false-alarm probability is ``alpha``.

    Raises
    ------
    BaselineError
        when no readable baseline is stored.
    """
    from .scenarios import GATED_METRICS, get

    base_scenario = get(scenario) if isinstance(scenario, str) else scenario
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
    rerecord = f"netprops baselines record {base_scenario.name} --device {kind} --update"
    with _threads(threads):
        changes = environment_changes(stored.provenance, current_provenance(device))
    # through JSON, as the stored config went (tuples become lists)
    if stored.config != json.loads(json.dumps(base_scenario.to_dict())):
        changes.append("the scenario's definition differs from the recorded one")
    if changes:
        return Verdict(
            base_scenario.name,
            None,
            True,
            f"{base_scenario.name}: environment changed — re-record ({rerecord}):\n  "
            + "\n  ".join(changes),
            path=str(path),
        )
    with _threads(threads):
        fresh = _run_many(what_if, seeds, device, data)
    gates = tuple(
        prediction_gate(
            name,
            [v for v in stored.metrics[name] if v is not None],
            [v for v in fresh[name] if v is not None],
            alpha=alpha / len(GATED_METRICS),
            higher_is_better=higher,
        )
        for name, higher in GATED_METRICS.items()
    )
    passed = all(g.passed for g in gates)
    label = base_scenario.name + (f" with {overrides}" if overrides else "")
    head = f"{label}: {'passed' if passed else 'CONVERGENCE REGRESSION'} ({len(seeds)} fresh seeds vs {len(stored.seeds)} stored, alpha {alpha:g})"
    lines = [head, *(f"  {g}" for g in gates)]
    if not passed:
        lines.append(f"  baseline: {path}; if the change is intended, re-record: {rerecord}")
    return Verdict(
        base_scenario.name,
        passed,
        False,
        "\n".join(lines),
        gates,
        {k: tuple(v) for k, v in fresh.items()},
        str(path),
    )
