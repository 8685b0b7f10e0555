"""The diagnostics section: what the live training monitor saw on every training of the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ...checks.results import format_bound
from ...monitor import Monitor
from ..results import Section, Table
from ..runs import Run
from .common import fmt

__all__ = ["diagnostics_section"]

_CANNOT_TRAIN = "cannot train"
_LISTED = 5  # scenarios named in a note; more are counted


def diagnostics_section(
    trained: Mapping[str, Mapping[str, Sequence[Run]]], monitor: Monitor
) -> Section:
    """The section for the runs of every study (study → scenario name → runs, one per seed)."""
    limits = monitor.limits
    run_rows = []
    violation_rows = []
    findings: dict[str, dict[str, list[int]]] = {}  # scenario -> finding -> seeds
    skipped: dict[tuple[str, str], list[str]] = {}  # (check, why) -> scenarios
    data_runs: list[dict[str, Any]] = []
    for study, by_scenario in trained.items():
        for name, runs in by_scenario.items():
            for run in runs:
                report = run.history.monitor if run.history is not None else None
                if report is None:
                    run_rows.append((study, name, run.seed, None, _CANNOT_TRAIN))
                    continue
                violated = ", ".join(v.check for v in report.violations) or "none"
                run_rows.append((study, name, run.seed, len(report.steps), violated))
                for v in report.violations:
                    violation_rows.append(
                        (
                            name,
                            run.seed,
                            v.check,
                            v.step,
                            v.layer or "—",
                            v.statistic,
                            format_bound(v.bound),
                            report.outcome(v) or "—",
                            v.message,
                        )
                    )
                    where = f"{v.check} in {v.layer or 'the model'} from step {v.step}"
                    findings.setdefault(name, {}).setdefault(where, []).append(run.seed)
                for check, why in report.skipped.items():
                    where = skipped.setdefault((check, why), [])
                    if name not in where:
                        where.append(name)
                data_runs.append(
                    {
                        "study": study,
                        "scenario": name,
                        "seed": run.seed,
                        "monitor": report.to_dict(),
                    }
                )
    tables = [
        Table(
            "diagnostics-runs",
            "Monitor verdict per training",
            ("study", "scenario", "seed", "checked steps", "checks violated"),
            ("s", "s", "d", "d", "s"),
            tuple(run_rows),
            note=f"Checked on steps 0, {monitor.every}, {2 * monitor.every}, … of each training.",
        )
    ]
    if violation_rows:
        tables.append(
            Table(
                "diagnostics-violations",
                "First violation of each check",
                (
                    "scenario",
                    "seed",
                    "check",
                    "from step",
                    "layer",
                    "statistic",
                    "bound",
                    "afterwards",
                    "what",
                ),
                ("s", "d", "s", "d", "s", ".3g", "s", "s", "s"),
                tuple(violation_rows),
                note="The first checked step at which each check failed in each run; the "
                "statistic is a fraction for dead units and saturation, ‖Δw‖/‖w‖ for the update "
                "ratio, a multiple of ln C for the initial loss and a count of offending tensors "
                "otherwise.",
            )
        )
    n_runs = sum(1 for row in run_rows if row[4] != _CANNOT_TRAIN)
    clean = sum(1 for row in run_rows if row[4] == "none")
    notes = [f"{clean} of {n_runs} monitored trainings showed no violation."]
    notes += [
        f"{name}: "
        + "; ".join(
            f"{where} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
            for where, seeds in found.items()
        )
        for name, found in findings.items()
    ]
    notes += [
        f"{check} not measured on "
        + (", ".join(where) if len(where) <= _LISTED else f"{len(where)} scenarios")
        + f": {why}."
        for (check, why), where in skipped.items()
    ]
    intro = (
        "Every training above ran under the live training monitor (netprops.monitor), which "
        f"checked steps 0, {monitor.every}, {2 * monitor.every}, … of the running training: "
        f"{', '.join(monitor.checks)}. The limits are plain stated thresholds "
        f"(docs/methods.md §Live monitor): more than {limits.dead_fraction:.0%} of a ReLU "
        f"layer's units dead on the whole batch (judged when each unit sees at least "
        f"{limits.min_entries} values), more than {limits.saturated_fraction:.0%} of a "
        "tanh/sigmoid layer's pre-activations saturated, a weight's ‖Δw‖/‖w‖ per step outside "
        f"[{fmt(limits.update_ratio, 'g')}], a loss at step 0 above "
        f"{limits.initial_loss:g} × ln C, and any non-finite value, missing or zero gradient, "
        "or trainable parameter that a step did not move. Monitoring only reads: these runs "
        "trained exactly as unmonitored ones."
    )
    return Section(
        "diagnostics",
        "Diagnostics: what the live training monitor saw",
        intro,
        tables=tables,
        notes=notes,
        data={
            "every": monitor.every,
            "checks": list(monitor.checks),
            "limits": asdict(limits),
            "runs": data_runs,
        },
    )
