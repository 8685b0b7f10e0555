"""Spec declarations collected as tests, the ledger and the reproducibility switches,
on throw-away projects."""

from __future__ import annotations

import json
import re

import pytest
import torch

# pytester's in-process runs drop the modules first imported inside them, and numpy's and
# scipy's extensions cannot be imported twice: load every check the runs use out here.
import netprops.checks.contract
import netprops.checks.gradients
import netprops.checks.normalization
import netprops.checks.parity
import netprops.checks.stochastic
import netprops.plugin.devices
import netprops.spec

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="these runs check the behaviour on a machine without CUDA"
)

# A user-written LayerNorm bound to a test name, a broken one declared by a plain call,
# and a probe that asserts the reproducibility switches from inside a generated test.
TEST_LAYERS = """
import os

import pytest
import torch
from torch import nn

import netprops


class MyLayerNorm(nn.Module):
    def __init__(self, dim=8, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.normalized_shape = (dim,)
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class BatchStatNorm(MyLayerNorm):
    def forward(self, x):  # bug: statistics over the batch, not the features
        mean = x.mean(0, keepdim=True)
        var = x.var(0, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class Probe(nn.Module):
    def forward(self, x):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.get_num_threads() == 1
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        return 2 * x


@pytest.fixture(autouse=True)
def tf32_on():  # the project's own autouse fixture applies; the plugin switches TF32 off inside
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


test_my_layer_norm = netprops.spec(
    MyLayerNorm,
    inputs=(6, 8),
    properties=[
        "batch_independent",
        "normalized",
        "shift_invariant",
        "train_eval_contract",
        "gradcheck",
        "device_parity",
    ],
    not_applicable={"expectation_equal": "deterministic layer"},
)
netprops.spec(BatchStatNorm, inputs=(6, 8), properties=["batch_independent"], dtypes=(torch.float32,))
test_probe = netprops.spec(Probe, inputs=(3, 2), properties=["train_eval_contract"], dtypes=(torch.float64,))
"""

TEST_MORE = """
import os

import torch
from torch import nn

import netprops

netprops.spec(
    lambda: nn.Dropout(0.5),
    name="Dropout50",
    inputs=(4, 8),
    properties=["drop_rate", "train_eval_contract"],
    dtypes=(torch.float32,),
)


def test_plain(netprops_device):
    # outside generated tests nothing of theirs is switched on
    assert netprops_device in ("cpu", "cuda")
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
"""

ARGS = ("-p", "no:cacheprovider", "--netprops-threads", "1", "-rs")
CUDA_REASON = "CUDA is not available on this machine*"

LAYERS_IDS = [
    "test_my_layer_norm::MyLayerNorm-batch_independent-cpu-float32",
    "test_my_layer_norm::MyLayerNorm-batch_independent-cpu-float64",
    "test_my_layer_norm::MyLayerNorm-normalized-cpu-float32",
    "test_my_layer_norm::MyLayerNorm-gradcheck-cpu-float64",
    "test_my_layer_norm::MyLayerNorm-device_parity-cuda-float32",
    "test_my_layer_norm::MyLayerNorm-expectation_equal-cpu-float64",
    "test_netprops::BatchStatNorm-batch_independent-cpu-float32",
    "test_probe::Probe-train_eval_contract-cpu-float64",
]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_layers=TEST_LAYERS, test_more=TEST_MORE)
    return pytester


def ledger(result: pytest.RunResult) -> list[str]:
    """The ledger's table and reasons (the line naming the environment left out)."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "netprops ledger" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    assert lines[start + 1].startswith("netprops ")
    return [line for line in lines[start + 2 : end] if not line.startswith("netprops ledger ")]


def test_generated_ids_outcomes_failure_and_ledger(project: pytest.Pytester):
    threads = torch.get_num_threads()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    lines = (project.path / "test_layers.py").read_text().splitlines()
    declared = 1 + next(i for i, line in enumerate(lines) if line.startswith("netprops.spec(Batch"))
    result = project.runpytest_inprocess(*ARGS, "-v", "--netprops-seed", "5")
    result.assert_outcomes(passed=13, failed=1, skipped=4)
    result.stdout.re_match_lines([r"netprops \S+: devices=\['cpu'\], .*threads=1, .*seed=5 "])
    result.stdout.fnmatch_lines_random(
        [
            *(f"test_layers.py::{node} *" for node in LAYERS_IDS),
            "test_more.py::test_netprops::Dropout50-drop_rate-cpu-float32 PASSED*",
            "test_more.py::test_plain[[]cpu[]] PASSED*",
            "*::MyLayerNorm-device_parity-cuda-float32 SKIPPED*",
            "*::BatchStatNorm-batch_independent-cpu-float32 FAILED*",
            # the failure: the check's report, then the spec and how to replay it
            "E   netprops.errors.PropertyViolation: check_batch_independent: output row *",
            f"*spec:      BatchStatNorm, declared at *test_layers.py:{declared}",
            "*case:      batch_independent on cpu, torch.float32, seed 5",
            f"SKIPPED [[]2[]] test_layers.py: {CUDA_REASON}",
            "SKIPPED [[]2[]] test_layers.py: not applicable to MyLayerNorm: deterministic layer",
        ]
    )
    assert ledger(result) == [
        "property             cpu                 cuda",
        "batch_independent    2 passed, 1 failed  -",
        "device_parity        -                   2 skipped",
        "drop_rate            1 passed            -",
        "expectation_equal    2 n/a               -",
        "gradcheck            1 passed            -",
        "normalized           2 passed            -",
        "shift_invariant      2 passed            -",
        "train_eval_contract  4 passed            -",
        "other tests          1 passed            -",
        "not verified:",
        "  2 n/a on cpu: not applicable to MyLayerNorm: deterministic layer",
        "      expectation_equal (2)",
        "  2 skipped on cuda: CUDA is not available on this machine "
        "(run with --netprops-device cuda on a GPU host)",
        "      device_parity (2)",
    ]
    # the inner session restored what it switched
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cuda.matmul.allow_tf32 == tf32


def test_node_ids_select_exactly_their_tests(project: pytest.Pytester):
    one = "test_layers.py::test_my_layer_norm::MyLayerNorm-gradcheck-cpu-float64"
    result = project.runpytest_inprocess(*ARGS, "-v", one)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{one} PASSED*"])
    every_case = project.runpytest_inprocess(*ARGS, "test_layers.py::test_probe")
    every_case.assert_outcomes(passed=1)
    plain = project.runpytest_inprocess(*ARGS, "test_more.py::test_plain")
    plain.assert_outcomes(passed=1)


def test_k_and_m_select_generated_tests(project: pytest.Pytester):
    by_k = project.runpytest_inprocess(*ARGS, "-k", "MyLayerNorm and gradcheck")
    by_k.assert_outcomes(passed=1, deselected=17)
    by_m = project.runpytest_inprocess(*ARGS, "-m", "not netprops")
    by_m.assert_outcomes(passed=1, deselected=17)


def test_lf_reruns_the_failed_generated_test(project: pytest.Pytester):
    first = project.runpytest_inprocess("--netprops-threads", "1")
    first.assert_outcomes(passed=13, failed=1, skipped=4)
    again = project.runpytest_inprocess("--netprops-threads", "1", "--lf", "-v")
    again.assert_outcomes(failed=1, deselected=17)
    again.stdout.fnmatch_lines(
        ["test_layers.py::test_netprops::BatchStatNorm-batch_independent-cpu-float32 FAILED*"]
    )


def test_xdist_gives_the_same_outcomes_and_ledger(project: pytest.Pytester):
    single = project.runpytest_inprocess(*ARGS, "--netprops-report", "single.json")
    workers = project.runpytest_inprocess(*ARGS, "-n", "2", "--netprops-report", "workers.json")
    workers.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert workers.parseoutcomes() == single.parseoutcomes()
    workers.assert_outcomes(passed=13, failed=1, skipped=4)
    assert ledger(workers) == ledger(single)
    assert workers.ret == single.ret == pytest.ExitCode.TESTS_FAILED
    reports = [json.loads((project.path / f).read_text()) for f in ("single.json", "workers.json")]
    assert reports[0]["summary"] == reports[1]["summary"]
    outcomes = [
        [(t["nodeid"], t["outcome"], t.get("statistic")) for t in r["tests"]] for r in reports
    ]
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) == 18


def test_device_all_without_cuda_skips_every_cuda_case_and_passes(project: pytest.Pytester):
    result = project.runpytest_inprocess(
        *ARGS, "--netprops-device", "all", "-k", "not BatchStatNorm"
    )
    assert result.ret == pytest.ExitCode.OK
    # cpu: 13 passed, 2 n/a; cuda: 15 skipped (CUDA not available, device_parity included), 2 n/a
    result.assert_outcomes(passed=13, skipped=19, deselected=2)
    table = ledger(result)
    assert re.fullmatch(r"batch_independent +2 passed +2 skipped", table[1])
    assert re.fullmatch(r"expectation_equal +2 n/a +2 n/a", table[4])
    assert "nothing was verified on CUDA" not in result.stdout.str()
    assert any(re.fullmatch(r"  15 skipped on cuda: CUDA is not available.*", t) for t in table)


BUSY_GPU = """
import pytest


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("netprops_device")
    if marker is not None and marker.args == ("cuda",):
        pytest.skip("simulated: every cuda test skipped")
"""


def test_a_cuda_run_where_everything_was_skipped_fails(project: pytest.Pytester, monkeypatch):
    # Pretend CUDA is there; the project's own hook then skips every cuda test.
    monkeypatch.setattr(netprops.plugin.devices, "cuda_available", lambda: True)
    project.makeconftest(BUSY_GPU)
    result = project.runpytest_inprocess(
        *ARGS, "--netprops-device", "cuda", "-k", "MyLayerNorm or plain"
    )
    result.assert_outcomes(skipped=14, deselected=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "netprops: CUDA was selected and is available, but all 14 tests on cuda were "
            "skipped, not applicable or heuristic (12× simulated: every cuda test skipped; "
            "2× not applicable to MyLayerNorm: deterministic layer): nothing was verified on CUDA",
        ]
    )


def test_unknown_property_is_a_collection_error_with_the_valid_names(pytester: pytest.Pytester):
    pytester.makepyfile(
        "import netprops\nfrom torch import nn\n"
        "test_ln = netprops.spec(nn.LayerNorm, inputs=(2, 3), properties=['normalised'])\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*ValueError: properties[[]0[]] must be one of 'batch_independent', *'normalized', *"]
    )


def test_two_unbound_specs_with_one_name_are_a_collection_error(pytester: pytest.Pytester):
    pytester.makepyfile(
        "import netprops\nfrom torch import nn\n"
        "for p in (0.1, 0.5):\n"
        "    netprops.spec(lambda: nn.Dropout(p), name='D', inputs=(4, 3), properties=['drop_rate'])\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*two specs named 'D' in one module, declared at *:4 and *:4; pass name=*"]
    )


def test_a_declaration_in_a_conftest_warns_unless_a_test_module_binds_it(
    pytester: pytest.Pytester,
):
    pytester.makeconftest(
        "import netprops\nfrom torch import nn\n"
        "LAYER_NORM = netprops.spec(lambda: nn.LayerNorm(3), name='LN', inputs=(2, 3), properties=['gradcheck'])\n"
        "netprops.spec(nn.LayerNorm, name='Forgotten', inputs=(2, 3), properties=['gradcheck'])\n"
    )
    pytester.makepyfile("from conftest import LAYER_NORM as test_layer_norm\n")
    as_warning = (
        "-W",
        "default::pytest.PytestCollectionWarning",
    )  # this suite turns them to errors
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v", *as_warning)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_layer_norm::LN-gradcheck-cpu-float64 PASSED*",
            "*conftest.py:4: PytestCollectionWarning: netprops.spec 'Forgotten' is declared in "
            "conftest.py, which pytest does not collect: it makes no tests.*",
        ]
    )
    assert "'LN'" not in result.stdout.str()
    as_error = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "error")
    assert as_error.ret == pytest.ExitCode.USAGE_ERROR
    as_error.stderr.fnmatch_lines(["ERROR: *conftest.py:4: netprops.spec 'Forgotten' is declared*"])


@pytest.mark.parametrize(
    ("option", "value"), [("--netprops-threads", "0"), ("--netprops-seed", "-1")]
)
def test_bad_reproducibility_options_are_usage_errors(pytester: pytest.Pytester, option, value):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess(option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*argument {option}: must be an integer >= *, got '{value}'"])


def test_the_base_seed_is_a_fixture_too(pytester: pytest.Pytester):
    pytester.makepyfile("def test_seed(netprops_seed):\n    assert netprops_seed == 9\n")
    result = pytester.runpytest_inprocess("--netprops-seed", "9")
    result.assert_outcomes(passed=1)
