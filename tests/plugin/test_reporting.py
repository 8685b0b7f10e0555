"""Results CI systems can read: JUnit XML properties, the JSON ledger, GitHub step summaries."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest
import torch

import netprops.checks.normalization
import netprops.checks.variance
import netprops.spec  # noqa: F401  (loaded out here: pytester drops modules first imported inside)
from netprops.plugin.reporting import (
    append_step_summary,
    markdown_table,
    record_result,
    write_json,
)

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="these runs check the behaviour on a machine without CUDA"
)


class Node:
    def __init__(self) -> None:
        self.user_properties: list[tuple[str, object]] = []


def test_record_result_adds_prefixed_plain_properties():
    node = Node()
    record_result(
        node,
        property="convergence gate",
        device="cpu",
        statistic=torch.tensor(0.5).item(),
        bound=(0.25, 0.75),
        alpha=1e-3,
        seed=3,
        replay="netprops baselines compare init",
        verified=True,
        scenario="init",
        steps=None,  # None: left out
    )
    assert node.user_properties == [
        ("netprops_property", "convergence gate"),
        ("netprops_device", "cpu"),
        ("netprops_statistic", 0.5),
        ("netprops_bound", [0.25, 0.75]),
        ("netprops_alpha", 1e-3),
        ("netprops_seed", 3),
        ("netprops_replay", "netprops baselines compare init"),
        ("netprops_verified", True),
        ("netprops_scenario", "init"),
    ]
    with pytest.raises(ValueError, match="lower-case identifiers, got 'Steps'"):
        record_result(node, Steps=3)


def test_markdown_table_escapes_pipes_and_newlines():
    assert markdown_table(["a", "b"], [(1, "x|y"), ("two\nlines", "")]) == (
        "| a | b |\n|---|---|\n| 1 | x\\|y |\n| two lines |  |\n"
    )


def test_append_step_summary_only_on_github_actions(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    assert append_step_summary("| a |", {"GITHUB_STEP_SUMMARY": str(summary)}) is True
    assert summary.read_text() == "earlier step\n| a |\n"
    assert append_step_summary("| a |", {}) is False
    assert append_step_summary("| a |", {"GITHUB_STEP_SUMMARY": ""}) is False


def test_write_json_is_atomic_and_creates_folders(tmp_path):
    path = write_json(tmp_path / "out" / "ledger.json", {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    write_json(path, {"b": 1})
    assert json.loads(path.read_text()) == {"b": 1}
    assert os.listdir(path.parent) == ["ledger.json"]  # no temporary file left behind


PROJECT = """
import torch
from torch import nn

import netprops


class Doubles(nn.Module):  # batch independent, but not normalized
    def forward(self, x):
        return 2 * x


def mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


test_doubles = netprops.spec(
    Doubles,
    inputs=(6, 8),
    properties=["batch_independent", "normalized"],
    dtypes=(torch.float64,),
    options={"normalized": {"eps": 1e-5}},
)
test_mlp = netprops.spec(
    mlp, inputs=(32, 4), properties=["model_variance"], dtypes=(torch.float64,),
    options={"model_variance": {"band": (0.01, 100.0)}},
)
"""


def test_junit_xml_json_ledger_and_step_summary(pytester: pytest.Pytester, monkeypatch):
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_layers=PROJECT)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--junitxml=junit.xml", "--netprops-report=out/ledger.json"
    )
    result.assert_outcomes(passed=2, failed=1)

    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    passed = cases["Doubles-batch_independent-cpu-float64"]
    assert passed["netprops_property"] == "batch_independent"
    assert passed["netprops_device"] == "cpu"
    assert passed["netprops_bound"].startswith("<=")
    assert {"netprops_statistic", "netprops_alpha", "netprops_seed"} <= set(passed)
    assert passed["netprops_replay"] == (
        "pytest test_layers.py::test_doubles::Doubles-batch_independent-cpu-float64"
    )
    assert passed["netprops_reproduce"].startswith("spec.check('batch_independent'")
    failed = cases["Doubles-normalized-cpu-float64"]
    assert float(failed["netprops_statistic"]) > 0
    assert failed["netprops_seed"] == "0"
    assert {"netprops_bound", "netprops_alpha", "netprops_replay"} <= set(failed)
    assert cases["mlp-model_variance-cpu-float64"]["netprops_verified"] == "False"

    ledger = json.loads((pytester.path / "out" / "ledger.json").read_text())
    assert ledger["summary"] == {
        "batch_independent": {"cpu": {"passed": 1}},
        "normalized": {"cpu": {"failed": 1}},
        "model_variance": {"cpu": {"heuristic": 1}},
    }
    assert ledger["environment"]["devices"] == ["cpu"]
    assert [t["outcome"] for t in ledger["tests"]] == ["passed", "failed", "heuristic"]

    markdown = summary.read_text()
    assert markdown.startswith("### netprops ledger\n")
    assert "| model_variance | 1 heuristic |" in markdown
    assert "check registered as heuristic (verified=False)" in markdown
    assert "`test_layers.py::test_doubles::Doubles-normalized-cpu-float64`" in markdown
