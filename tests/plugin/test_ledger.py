"""The ledger: what a report counts as, the table, and the "nothing ran on CUDA" verdict."""

from __future__ import annotations

import pytest

from netprops.plugin import (
    OTHER_ROW,
    LedgerEntry,
    LedgerPlugin,
    ledger_entry,
    ledger_lines,
    unverified_on_cuda,
)

CASE = [
    ("netprops_spec", "MyNorm"),
    ("netprops_property", "batch_independent"),
    ("netprops_device", "cuda"),
    ("netprops_dtype", "float32"),
]


def report(when="call", outcome="passed", props=CASE, longrepr=None, **extra):
    return pytest.TestReport(
        "conftest.py::test_netprops[MyNorm-batch_independent-cuda-float32]",
        ("conftest.py", 0, "test_netprops"),
        {},
        outcome,
        longrepr,
        when,
        user_properties=list(props),
        **extra,
    )


@pytest.mark.parametrize(
    ("rep", "expected"),
    [
        (report(), LedgerEntry("batch_independent", "cuda", "passed")),
        (report(outcome="failed"), LedgerEntry("batch_independent", "cuda", "failed")),
        (report("setup", "failed"), LedgerEntry("batch_independent", "cuda", "error")),
        (
            report("teardown", "failed"),
            LedgerEntry("batch_independent", "cuda", "error", "teardown failed"),
        ),
        (
            report("setup", "skipped", longrepr=("x.py", 3, "Skipped: CUDA is not available")),
            LedgerEntry("batch_independent", "cuda", "skipped", "CUDA is not available"),
        ),
        (
            report(
                "setup",
                "skipped",
                [*CASE, ("netprops_not_applicable", "not applicable to MyNorm: no")],
                longrepr=("x.py", 3, "Skipped: not applicable to MyNorm: no"),
            ),
            LedgerEntry("batch_independent", "cuda", "n/a", "not applicable to MyNorm: no"),
        ),
        (
            report(outcome="skipped", longrepr=("x.py", 3, "reason"), wasxfail=""),
            LedgerEntry("batch_independent", "cuda", "xfailed"),
        ),
        (report(props=[("netprops_device", "cpu")]), LedgerEntry(OTHER_ROW, "cpu", "passed")),
        (report("setup"), None),
        (report("teardown"), None),
        (report(props=[]), None),
    ],
)
def test_ledger_entry_of_a_report(rep, expected):
    assert ledger_entry(rep) == expected


def test_a_teardown_error_overrides_the_call_outcome(pytestconfig):
    ledger = LedgerPlugin(pytestconfig)
    ledger.pytest_runtest_logreport(report("setup"))
    ledger.pytest_runtest_logreport(report())
    ledger.pytest_runtest_logreport(report("teardown"))
    assert [e.outcome for e in ledger.entries.values()] == ["passed"]
    ledger.pytest_runtest_logreport(report("teardown", "failed"))
    assert list(ledger.entries.values()) == [
        LedgerEntry("batch_independent", "cuda", "error", "teardown failed")
    ]


def entries(*outcomes, device="cuda"):
    return [LedgerEntry("normalized", device, o, f"why {o}") for o in outcomes]


@pytest.mark.parametrize(
    ("ledger", "required", "fails"),
    [
        (entries("skipped", "n/a", "skipped"), True, True),
        (entries("skipped", "n/a", "skipped"), False, False),  # cuda not selected or absent
        (entries("skipped", "passed"), True, False),
        (entries("skipped", "failed"), True, False),  # it ran: the failure speaks for itself
        (entries("error"), True, False),
        (entries("xfailed", "skipped"), True, False),
        (entries("passed", "passed", device="cpu"), True, False),  # no test on cuda at all
        (entries("passed", device="cpu") + entries("skipped"), True, True),
        ([], True, False),
    ],
)
def test_unverified_on_cuda(ledger, required, fails):
    verdict = unverified_on_cuda(ledger, cuda_required=required)
    assert (verdict is not None) == fails
    if fails:
        n = sum(e.device == "cuda" for e in ledger)
        assert f"all {n} tests on cuda were skipped or not applicable" in verdict
        assert "why skipped" in verdict
        assert verdict.endswith("nothing was verified on CUDA")


def test_ledger_lines_count_per_property_and_device_and_group_the_reasons():
    ledger = [
        LedgerEntry("normalized", "cpu", "passed"),
        LedgerEntry("normalized", "cpu", "failed"),
        LedgerEntry("normalized", "cuda", "skipped", "no GPU"),
        LedgerEntry(OTHER_ROW, "cuda", "skipped", "no GPU"),
        LedgerEntry("gradcheck", "cpu", "n/a", "not applicable to X: integer input"),
        LedgerEntry("gradcheck", "cpu", "error"),
        LedgerEntry("gradcheck", "cpu", "xfailed"),
    ]
    assert ledger_lines(ledger) == [
        "property     cpu                        cuda",
        "gradcheck    1 error, 1 xfailed, 1 n/a  -",
        "normalized   1 passed, 1 failed         1 skipped",
        "other tests  -                          1 skipped",
        "not verified:",
        "  1 n/a on cpu: not applicable to X: integer input",
        "      gradcheck (1)",
        "  2 skipped on cuda: no GPU",
        "      normalized (1), other tests (1)",
    ]
