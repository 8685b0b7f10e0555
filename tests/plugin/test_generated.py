"""Spec-generated tests, the ledger and the reproducibility switches, on a throw-away project."""

from __future__ import annotations

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
import netprops.plugin
from netprops.spec import registered_specs

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="these runs check the behaviour on a machine without CUDA"
)

# The README example: a user-written LayerNorm, a broken one, and a probe that
# asserts the plugin's reproducibility switches from inside a generated test.
CONFTEST = """
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
        assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.get_num_threads() == 1
        return 2 * x


@pytest.fixture(autouse=True)
def tf32_on():  # the plugin must switch it off inside generated tests
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


netprops.spec(
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
netprops.spec(Probe, inputs=(3, 2), properties=["train_eval_contract"], dtypes=(torch.float64,))
"""

TEST_MORE = """
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


def test_plain(device):
    assert device in ("cpu", "cuda")
"""

ARGS = ("-p", "no:cacheprovider", "--netprops-threads", "1", "-rs")
CUDA_REASON = "CUDA is not available on this machine*"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_more=TEST_MORE)
    return pytester


def ledger(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "netprops ledger" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1 : end]


def test_generated_ids_outcomes_failure_and_ledger(project: pytest.Pytester):
    threads = torch.get_num_threads()
    result = project.runpytest_inprocess(*ARGS, "-v", "--netprops-seed", "5")
    result.assert_outcomes(passed=13, failed=1, skipped=4)
    result.stdout.re_match_lines([r"netprops \S+: devices=\['cpu'\], .*threads=1, .*seed=5 "])
    result.stdout.fnmatch_lines_random(
        [
            "conftest.py::test_netprops[[]MyLayerNorm-batch_independent-cpu-float32[]] PASSED*",
            "conftest.py::test_netprops[[]MyLayerNorm-batch_independent-cpu-float64[]] PASSED*",
            "conftest.py::test_netprops[[]MyLayerNorm-normalized-cpu-float32[]] PASSED*",
            "conftest.py::test_netprops[[]MyLayerNorm-gradcheck-cpu-float64[]] PASSED*",
            "conftest.py::test_netprops[[]MyLayerNorm-device_parity-cuda-float32[]] SKIPPED*",
            "conftest.py::test_netprops[[]MyLayerNorm-expectation_equal-cpu-float64[]] SKIPPED*",
            "conftest.py::test_netprops[[]BatchStatNorm-batch_independent-cpu-float32[]] FAILED*",
            "conftest.py::test_netprops[[]Probe-train_eval_contract-cpu-float64[]] PASSED*",
            "test_more.py::test_netprops[[]Dropout50-drop_rate-cpu-float32[]] PASSED*",
            "test_more.py::test_plain[[]cpu[]] PASSED*",
            # the failure: the check's report, then the spec and how to replay it
            "E   netprops.errors.PropertyViolation: check_batch_independent: output row *",
            "*spec:      BatchStatNorm, declared at *conftest.py:*",
            "*case:      batch_independent on cpu, torch.float32, seed 5",
            f"SKIPPED [[]2[]] *{CUDA_REASON}",
            "SKIPPED [[]2[]] *not applicable to MyLayerNorm: deterministic layer",
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
        "(run with --device cuda on a GPU host)",
        "      device_parity (2)",
    ]
    # the inner session restored what it switched, and its specs went with it
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert registered_specs() == ()


def test_xdist_gives_the_same_outcomes_and_ledger(project: pytest.Pytester):
    single = project.runpytest_inprocess(*ARGS)
    workers = project.runpytest_inprocess(*ARGS, "-n", "2")  # the workers are subprocesses
    workers.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert workers.parseoutcomes() == single.parseoutcomes()
    workers.assert_outcomes(passed=13, failed=1, skipped=4)
    assert ledger(workers) == ledger(single)
    assert workers.ret == single.ret == pytest.ExitCode.TESTS_FAILED


def test_device_all_without_cuda_skips_every_cuda_case_and_passes(project: pytest.Pytester):
    result = project.runpytest_inprocess(*ARGS, "--device", "all", "-k", "not BatchStatNorm")
    assert result.ret == pytest.ExitCode.OK
    # cpu: 13 passed, 2 n/a; cuda: 15 skipped (CUDA not available, device_parity included), 2 n/a
    result.assert_outcomes(passed=13, skipped=19, deselected=2)
    table = ledger(result)
    assert re.fullmatch(r"batch_independent +2 passed +2 skipped", table[1])
    assert re.fullmatch(r"expectation_equal +2 n/a +2 n/a", table[4])
    assert "nothing was verified on CUDA" not in result.stdout.str()
    assert any(re.fullmatch(r"  15 skipped on cuda: CUDA is not available.*", t) for t in table)


BUSY_GPU = """

def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None:
        pytest.skip("simulated: every cuda test skipped")
"""


def test_a_cuda_run_where_everything_was_skipped_fails(project: pytest.Pytester, monkeypatch):
    # Pretend CUDA is there; the project's own hook then skips every cuda test.
    monkeypatch.setattr(netprops.plugin, "_cuda_available", lambda: True)
    project.makeconftest(CONFTEST + BUSY_GPU)
    result = project.runpytest_inprocess(*ARGS, "--device", "cuda", "-k", "MyLayerNorm or plain")
    result.assert_outcomes(skipped=14, deselected=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "netprops: CUDA was selected and is available, but all 14 tests on cuda were skipped "
            "or not applicable (12× simulated: every cuda test skipped; 2× not applicable to "
            "MyLayerNorm: deterministic layer): nothing was verified on CUDA",
        ]
    )


def test_unknown_property_in_a_conftest_stops_the_run_with_the_valid_names(
    pytester: pytest.Pytester,
):
    pytester.makeconftest(
        "import netprops\nfrom torch import nn\n"
        "netprops.spec(nn.LayerNorm, inputs=(2, 3), properties=['normalised'])\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ValueError: properties[[]0[]] must be one of 'batch_independent', *'normalized', *"]
    )


def test_node_id_arguments_run_only_those_tests(project: pytest.Pytester):
    result = project.runpytest_inprocess(*ARGS, "test_more.py::test_plain")
    result.assert_outcomes(passed=1)


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
