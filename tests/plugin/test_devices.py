"""The plugin's device option, fixture and marker, run on throw-away projects."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="these runs check the behaviour on a machine without CUDA"
)

DEVICE_TEST = """
import pytest

def test_on(netprops_device):
    assert netprops_device in ("cpu", "cuda")

@pytest.mark.netprops_device("cuda")
def test_needs_gpu():
    raise AssertionError("must not run without CUDA")
"""


def test_default_runs_cpu_and_skips_cuda_marked_tests_with_reason(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("-rs", "-v")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*test_on?cpu? PASSED*", "SKIPPED [[]1[]] *.py:*: CUDA is not available*"]
    )


def test_device_all_without_cuda_skips_cuda_params_with_reason(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--netprops-device", "all", "-rs", "-v")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*test_on?cuda? SKIPPED*"])


def test_device_cuda_without_cuda_fails_loudly(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--netprops-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--netprops-device cuda was requested but CUDA is not available*"]
    )


def test_unknown_device_is_rejected(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--netprops-device", "tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'tpu'*"])


def test_the_plugin_registers_only_its_own_markers(pytester: pytest.Pytester):
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.netprops: *", "@pytest.mark.netprops_device(kind): *"]
    )
    for other in ("slow", "convergence", "cuda"):  # this repository's own
        assert f"@pytest.mark.{other}:" not in result.stdout.str()


def test_header_names_devices_and_profile_when_netprops_is_used(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    quiet = pytester.runpytest_inprocess()
    assert "netprops 0." not in quiet.stdout.str()  # a run that does not use netprops
    result = pytester.runpytest_inprocess("--netprops-seed", "3")
    result.stdout.re_match_lines(
        [r"netprops \S+: devices=\['cpu'\], torch .*hypothesis profile=\w+.*seed=3"]
    )


def test_device_is_a_real_fixture_that_wider_fixtures_can_use(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        def model(netprops_device):
            return ("model", netprops_device)

        def test_module_scoped_dependency(model):
            assert model[1] in ("cpu", "cuda")

        @pytest.mark.parametrize("netprops_device", ["meta"])
        def test_own_parametrization_wins(netprops_device):
            assert netprops_device == "meta"
        """
    )
    result = pytester.runpytest_inprocess("--netprops-device", "all", "-v")
    result.assert_outcomes(passed=2, skipped=1)


def test_a_project_with_its_own_device_option_and_fixture_runs(pytester: pytest.Pytester):
    """Hardware and ML suites often define --device; the plugin must not take the name."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--device", default="mine")

        @pytest.fixture
        def device(request):
            return request.config.getoption("device")
        """
    )
    pytester.makepyfile("def test_mine(device):\n    assert device == 'npu'\n")
    result = pytester.runpytest_inprocess("--device", "npu", "--netprops-device", "all")
    result.assert_outcomes(passed=1)


def test_an_alias_option_can_share_the_device_destination(pytester: pytest.Pytester):
    """What this repository's conftest does: --device as a short --netprops-device."""
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--device", dest="netprops_device", choices=("cpu", "cuda", "all"))
        """
    )
    pytester.makepyfile("def test_on(netprops_device):\n    pass\n")
    result = pytester.runpytest_inprocess("--device", "all", "-v")
    result.assert_outcomes(passed=1, skipped=1)
