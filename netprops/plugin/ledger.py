"""The ledger: what was verified, on which device, and what was not and why.

Every test that carries ``netprops_property`` / ``netprops_device`` user
properties (spec-generated tests, tests on the ``netprops_device`` fixture or
marked ``netprops_device(kind)``, results attached with
:func:`~netprops.plugin.reporting.record_result`) is counted per property ×
device: passed, heuristic (passed a check registered with ``verified=False``:
not counted as verified), failed, error, xfailed, skipped, n/a. At the end of
the run the ledger is

* printed below the test summary (only when it counts something);
* written as JSON with ``--netprops-report PATH``;
* appended as Markdown to ``$GITHUB_STEP_SUMMARY`` when that is set (GitHub Actions);
* the judge of GPU runs: when CUDA was selected and is available, a run whose
  tests on cuda were all skipped, not applicable or heuristic fails.

Under pytest-xdist the controller builds the ledger from every worker's reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import devices
from .options import selected_devices
from .reporting import (
    PREFIX,
    append_step_summary,
    describe,
    environment,
    markdown_table,
    write_json,
)

__all__ = [
    "OTHER_ROW",
    "OUTCOMES",
    "RAN",
    "REPORT_SCHEMA",
    "LedgerEntry",
    "LedgerPlugin",
    "ledger_entry",
    "ledger_lines",
    "ledger_markdown",
    "ledger_record",
    "unverified_on_cuda",
]

#: Ledger row of tests that run on a device but check no declared property.
OTHER_ROW = "other tests"

#: Outcomes in the order the ledger lists them.
OUTCOMES = ("passed", "heuristic", "failed", "error", "xfailed", "skipped", "n/a")

#: Outcomes that verified something (or showed that it does not hold).
RAN = frozenset({"passed", "failed", "error", "xfailed"})

#: Version of the JSON written by ``--netprops-report``.
REPORT_SCHEMA = 1

_LEDGER = "netprops-ledger"
_REPORT = pytest.StashKey[Path]()


@dataclass(frozen=True)
class LedgerEntry:
    """The final outcome of one test, as the ledger counts it.

    ``nodeid`` and ``properties`` (the test's ``netprops_*`` fields, prefix
    removed) go into the JSON report; entries compare by row, device, outcome and reason.
    """

    row: str  # property name, or OTHER_ROW
    device: str
    outcome: str  # one of OUTCOMES
    reason: str = ""
    nodeid: str = field(default="", compare=False)
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3 else ""
    return str(text).removeprefix("Skipped: ")


def ledger_entry(report: pytest.TestReport) -> LedgerEntry | None:
    """The ledger's view of a test report (None for reports that do not decide the
    outcome, or for tests without a device)."""
    props = {
        key.removeprefix(PREFIX): value
        for key, value in report.user_properties
        if key.startswith(PREFIX)
    }
    device = props.get("device")
    if device is None:
        return None
    row = str(props.get("property", OTHER_ROW))

    def entry(outcome: str, reason: str = "") -> LedgerEntry:
        return LedgerEntry(row, str(device), outcome, reason, report.nodeid, props)

    if report.when == "teardown":
        return entry("error", "teardown failed") if report.failed else None
    if report.when == "setup" and report.passed:
        return None
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return entry("xfailed")
        if props.get("not_applicable") is not None:
            return entry("n/a", str(props["not_applicable"]))
        return entry("skipped", _skip_reason(report))
    if report.failed:
        return entry("failed" if report.when == "call" else "error")
    return entry("heuristic" if props.get("verified") is False else "passed")


def unverified_on_cuda(entries: Iterable[LedgerEntry], *, cuda_required: bool) -> str | None:
    """The reason to fail the run when CUDA was required but nothing was verified on it, else None.

    ``cuda_required``: CUDA was selected (``--netprops-device cuda`` or ``all``)
    and is available. The run then fails when it has tests on cuda and none of
    them ran a verifying check (all skipped, not applicable or heuristic): a GPU
    job that verified nothing must not pass.
    """
    if not cuda_required:
        return None
    cuda = [e for e in entries if e.device == "cuda"]
    if not cuda or any(e.outcome in RAN for e in cuda):
        return None
    reasons = Counter(e.reason or e.outcome for e in cuda)
    top = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(3))
    return (
        f"netprops: CUDA was selected and is available, but all {len(cuda)} tests on cuda "
        f"were skipped, not applicable or heuristic ({top}): nothing was verified on CUDA"
    )


def _format_counts(counts: Counter[str]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])


def _table(entries: list[LedgerEntry]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the property × device table of counts."""
    kinds = sorted({e.device for e in entries}, key=lambda d: (d != "cpu", d != "cuda", d))
    rows = sorted({e.row for e in entries}, key=lambda r: (r == OTHER_ROW, r))
    cells: dict[tuple[str, str], Counter[str]] = {}
    for e in entries:
        cells.setdefault((e.row, e.device), Counter())[e.outcome] += 1
    body = [[r, *(_format_counts(cells.get((r, d), Counter())) for d in kinds)] for r in rows]
    return ["property", *kinds], body


def _not_verified(entries: list[LedgerEntry]) -> list[tuple[str, str, str, str, int]]:
    """(outcome, reason, device, rows with counts, total) of every skip, n/a and heuristic."""
    groups: dict[tuple[str, str, str], Counter[str]] = {}
    for e in entries:
        if e.outcome in ("skipped", "n/a", "heuristic"):
            reason = e.reason or (
                "check registered as heuristic (verified=False)"
                if e.outcome == "heuristic"
                else "(no reason given)"
            )
            groups.setdefault((e.outcome, reason, e.device), Counter())[e.row] += 1
    return [
        (
            outcome,
            reason,
            device,
            ", ".join(f"{r} ({n})" for r, n in sorted(rows.items())),
            sum(rows.values()),
        )
        for (outcome, reason, device), rows in sorted(groups.items())
    ]


def ledger_lines(entries: Iterable[LedgerEntry]) -> list[str]:
    """The ledger table (property × device) and the reasons for what was not verified."""
    entries = list(entries)
    header, body = _table(entries)
    table = [header, *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    groups = _not_verified(entries)
    if groups:
        lines.append("not verified:")
        for outcome, reason, device, where, total in groups:
            lines.append(f"  {total} {outcome} on {device}: {reason}")
            lines.append(f"      {where}")
    return lines


def ledger_markdown(
    entries: Iterable[LedgerEntry], env: Mapping[str, Any], verdict: str | None = None
) -> str:
    """The ledger as GitHub-flavoured Markdown (for ``$GITHUB_STEP_SUMMARY``)."""
    entries = list(entries)
    parts = ["### netprops ledger\n", f"{describe(env)}\n", markdown_table(*_table(entries))]
    groups = _not_verified(entries)
    if groups:
        parts.append("**Not verified**\n")
        parts.append(
            markdown_table(
                ["outcome", "device", "reason", "tests"],
                [
                    (f"{total} {outcome}", device, reason, where)
                    for outcome, reason, device, where, total in groups
                ],
            )
        )
    failed = [e for e in entries if e.outcome in ("failed", "error")]
    if failed:
        parts.append("**Failed**\n")
        parts.append(
            markdown_table(
                ["test", "statistic", "bound", "alpha", "seed", "replay"],
                [
                    (
                        f"`{e.nodeid}`",
                        *(e.properties.get(k, "") for k in ("statistic", "bound", "alpha", "seed")),
                        f"`{e.properties['replay']}`" if "replay" in e.properties else "",
                    )
                    for e in failed
                ],
            )
        )
    if verdict is not None:
        parts.append(f"**{verdict}**\n")
    return "\n".join(parts)


def ledger_record(
    entries: Iterable[LedgerEntry], env: Mapping[str, Any], verdict: str | None = None
) -> dict[str, Any]:
    """The ledger as the JSON object ``--netprops-report`` writes."""
    entries = list(entries)
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for e in entries:
        cell = summary.setdefault(e.row, {}).setdefault(e.device, {})
        cell[e.outcome] = cell.get(e.outcome, 0) + 1
    tests = [
        {
            "nodeid": e.nodeid,
            "property": e.row,
            "device": e.device,
            "outcome": e.outcome,
            "reason": e.reason,
            **{k: v for k, v in e.properties.items() if k not in ("property", "device")},
        }
        for e in sorted(entries, key=lambda e: e.nodeid)
    ]
    return {
        "schema": REPORT_SCHEMA,
        "environment": dict(env),
        "verdict": verdict,
        "summary": summary,
        "tests": tests,
    }


class LedgerPlugin:
    """Collects the ledger from test reports and judges the run (one per session).

    With pytest-xdist the controller's instance sees every worker's reports; the
    workers' instances stay silent.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.entries: dict[str, LedgerEntry] = {}
        self.verdict: str | None = None

    @property
    def _is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = ledger_entry(report)
        if entry is None:
            return
        if report.when == "teardown" and report.nodeid in self.entries:
            old = self.entries[report.nodeid]
            entry = LedgerEntry(
                old.row, old.device, "error", "teardown failed", old.nodeid, old.properties
            )
        self.entries[report.nodeid] = entry

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._is_worker:  # the controller judges the whole run
            return
        required = "cuda" in selected_devices(self.config) and devices.cuda_available()
        self.verdict = unverified_on_cuda(self.entries.values(), cuda_required=required)
        if self.verdict is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        report = self.config.stash.get(_REPORT, None)
        if report is None and not self.entries:
            return
        env = environment(self.config)
        if report is not None:
            write_json(report, ledger_record(self.entries.values(), env, self.verdict))
        if self.entries:
            append_step_summary(ledger_markdown(self.entries.values(), env, self.verdict))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._is_worker or not self.entries:
            return
        terminalreporter.write_sep("=", "netprops ledger")
        terminalreporter.write_line(describe(environment(self.config)))
        for line in ledger_lines(self.entries.values()):
            terminalreporter.write_line(line)
        if self.verdict is not None:
            terminalreporter.write_line(self.verdict, red=True, bold=True)
        report = self.config.stash.get(_REPORT, None)
        if report is not None:
            terminalreporter.write_line(f"netprops ledger written to {report}")


def pytest_configure(config: pytest.Config) -> None:
    report = config.getoption("netprops_report")
    if report is not None:
        # resolved now: tests may change the working directory
        config.stash[_REPORT] = Path(report).resolve()
    config.pluginmanager.register(LedgerPlugin(config), _LEDGER)


def pytest_unconfigure(config: pytest.Config) -> None:
    ledger = config.pluginmanager.get_plugin(_LEDGER)
    if ledger is not None:
        config.pluginmanager.unregister(ledger)
