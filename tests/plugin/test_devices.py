"""The plugin's device option, fixture and cuda marker, run on throw-away projects."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="these runs check the behaviour on a machine without CUDA"
)

DEVICE_TEST = """
import pytest

def test_on(device):
    assert device in ("cpu", "cuda")

@pytest.mark.cuda
def test_needs_gpu():
    raise AssertionError("must not run without CUDA")
"""


def test_default_runs_cpu_and_skips_cuda_marked_tests_with_reason(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("-rs", "-v")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*test_on?cpu? PASSED*", "*CUDA is not available*"])


def test_device_all_without_cuda_skips_cuda_params_with_reason(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--device", "all", "-rs", "-v")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*test_on?cuda? SKIPPED*"])


def test_device_cuda_without_cuda_fails_loudly(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device cuda was requested but CUDA is not available*"])


def test_unknown_device_is_rejected(pytester: pytest.Pytester):
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest_inprocess("--device", "tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid choice: 'tpu'*"])


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        @pytest.mark.convergence
        @pytest.mark.benchmark
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest_inprocess("--strict-markers")
    result.assert_outcomes(passed=1)


def test_header_names_devices_and_profile(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess()
    result.stdout.re_match_lines(
        [r"netprops \S+: devices=\['cpu'\], torch .*hypothesis profile=\w+"]
    )


def test_device_is_a_real_fixture_that_wider_fixtures_can_use(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        def model(device):
            return ("model", device)

        def test_module_scoped_dependency(model):
            assert model[1] in ("cpu", "cuda")

        @pytest.mark.parametrize("device", ["meta"])
        def test_own_parametrization_wins(device):
            assert device == "meta"
        """
    )
    result = pytester.runpytest_inprocess("--device", "all", "-v")
    result.assert_outcomes(passed=2, skipped=1)


def test_a_project_fixture_named_device_is_left_alone(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def device():
            return "mine"
        """
    )
    pytester.makepyfile("def test_mine(device):\n    assert device == 'mine'\n")
    result = pytester.runpytest_inprocess("--device", "all")
    result.assert_outcomes(passed=1)
