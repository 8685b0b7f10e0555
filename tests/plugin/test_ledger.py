"""The ledger: what a report counts as, the table, its JSON and Markdown forms, and the
"nothing verified on CUDA" verdict."""

from __future__ import annotations

import pytest

from netprops.plugin.ledger import (
    OTHER_ROW,
    LedgerEntry,
    LedgerPlugin,
    ledger_entry,
    ledger_lines,
    ledger_markdown,
    ledger_record,
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
        (
            report(props=[*CASE, ("netprops_verified", False)]),
            LedgerEntry("batch_independent", "cuda", "heuristic"),
        ),
        (
            report(outcome="failed", props=[*CASE, ("netprops_verified", False)]),
            LedgerEntry("batch_independent", "cuda", "failed"),
        ),
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
        (entries("heuristic", "skipped"), True, True),  # a heuristic pass verifies nothing
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
        assert f"all {n} tests on cuda were skipped, not applicable or heuristic" in verdict
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
        LedgerEntry("model_variance", "cpu", "heuristic"),
    ]
    assert ledger_lines(ledger) == [
        "property        cpu                        cuda",
        "gradcheck       1 error, 1 xfailed, 1 n/a  -",
        "model_variance  1 heuristic                -",
        "normalized      1 passed, 1 failed         1 skipped",
        "other tests     -                          1 skipped",
        "not verified:",
        "  1 heuristic on cpu: check registered as heuristic (verified=False)",
        "      model_variance (1)",
        "  1 n/a on cpu: not applicable to X: integer input",
        "      gradcheck (1)",
        "  2 skipped on cuda: no GPU",
        "      normalized (1), other tests (1)",
    ]


ENV = {"netprops": "0.1.0", "devices": ["cpu", "cuda"], "seed": 0}


def test_ledger_record_is_the_json_of_every_test():
    ledger = [
        LedgerEntry(
            "normalized", "cpu", "passed", "", "t.py::a::X-normalized-cpu", {"alpha": 1e-9}
        ),
        LedgerEntry("normalized", "cpu", "failed", "", "t.py::a::X-normalized-cpu2", {"seed": 3}),
        LedgerEntry("normalized", "cuda", "skipped", "no GPU", "t.py::a::X-normalized-cuda"),
    ]
    record = ledger_record(ledger, ENV, verdict=None)
    assert record["environment"] == ENV
    assert record["summary"] == {
        "normalized": {"cpu": {"passed": 1, "failed": 1}, "cuda": {"skipped": 1}}
    }
    assert record["tests"][0] == {
        "nodeid": "t.py::a::X-normalized-cpu",
        "property": "normalized",
        "device": "cpu",
        "outcome": "passed",
        "reason": "",
        "alpha": 1e-9,
    }
    assert [t["nodeid"] for t in record["tests"]] == sorted(e.nodeid for e in ledger)


def test_ledger_markdown_says_what_was_verified_where_and_what_was_skipped_and_why():
    ledger = [
        LedgerEntry("normalized", "cpu", "passed"),
        LedgerEntry("normalized", "cuda", "skipped", "no | GPU"),
        LedgerEntry(
            "drop_rate",
            "cpu",
            "failed",
            "",
            "t.py::d::D-drop_rate-cpu-float32",
            {"statistic": 9.5, "bound": "<= 3", "alpha": 1e-9, "seed": 0, "replay": "pytest x"},
        ),
    ]
    text = ledger_markdown(ledger, ENV, verdict="netprops: nothing was verified on CUDA")
    assert text.startswith("### netprops ledger\n")
    assert "| property | cpu | cuda |\n|---|---|---|\n" in text
    assert "| drop_rate | 1 failed | - |" in text
    assert "| normalized | 1 passed | 1 skipped |" in text
    assert "| 1 skipped | cuda | no \\| GPU | normalized (1) |" in text
    assert "| `t.py::d::D-drop_rate-cpu-float32` | 9.5 | <= 3 | 1e-09 | 0 | `pytest x` |" in text
    assert text.rstrip().endswith("**netprops: nothing was verified on CUDA**")
