"""Errors, seeding, devices and tolerances: the helpers every other module relies on."""

from __future__ import annotations

import math

import pytest
import torch

import netprops
from netprops import errors
from netprops.seeding import derive_seed, make_generator, resolve_generator, seeded_global_rng


@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (lambda: errors.check_int("n", 1.5), TypeError, r"n must be an int, got 1\.5"),
        (lambda: errors.check_int("n", True), TypeError, r"n must be an int, got True"),
        (
            lambda: errors.check_positive_int("width", 0),
            ValueError,
            r"width must be an int >= 1, got 0",
        ),
        (
            lambda: errors.check_probability("p", 1.0),
            ValueError,
            r"p must be a probability in \[0, 1\), got 1\.0",
        ),
        (lambda: errors.check_probability("p", -0.1), ValueError, r"got -0\.1"),
        (
            lambda: errors.check_probability("p", "a"),
            TypeError,
            r"p must be a real number, got 'a'",
        ),
        (lambda: errors.check_probability("p", math.nan), ValueError, r"p must be finite"),
        (
            lambda: errors.check_positive_float("std", -1.0),
            ValueError,
            r"std must be a finite number > 0",
        ),
        (
            lambda: errors.check_choice("mode", "x", ("fan_in", "fan_out")),
            ValueError,
            r"'fan_in', 'fan_out'; got 'x'",
        ),
        (
            lambda: errors.check_float_tensor("x", torch.ones(2, dtype=torch.long)),
            TypeError,
            r"x must be a floating-point tensor",
        ),
        (
            lambda: errors.check_float_tensor("x", [1.0]),
            TypeError,
            r"x must be a torch.Tensor, got list",
        ),
        (
            lambda: errors.check_min_dims("weight", torch.ones(3), 2),
            ValueError,
            r"weight must have at least 2 dimensions, got shape \(3,\)",
        ),
        (
            lambda: errors.check_type("generator", 3, torch.Generator),
            TypeError,
            r"generator must be Generator",
        ),
    ],
)
def test_validators_name_argument_value_and_allowed(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_validators_return_normalized_values():
    assert errors.check_probability("p", 0) == 0.0
    assert errors.check_probability("p", 1, allow_one=True) == 1.0
    assert errors.check_positive_float("eps", 0, allow_zero=True) == 0.0
    assert errors.check_choice("mode", "fan_in", ("fan_in", "fan_out")) == "fan_in"


def test_property_violation_is_an_assertion_error():
    assert issubclass(netprops.PropertyViolation, AssertionError)


def test_make_generator_is_deterministic_and_seed_sensitive(device):
    a = torch.randn(16, generator=make_generator(3, device), device=device)
    b = torch.randn(16, generator=make_generator(3, device), device=device)
    c = torch.randn(16, generator=make_generator(4, device), device=device)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        make_generator(-1, device)


def test_resolve_generator_rejects_device_mismatch():
    g = make_generator(0, "cpu")
    assert resolve_generator(g, "cpu") is g
    assert resolve_generator(None, "cpu") is None
    with pytest.raises(ValueError, match="generator is on cpu"):
        resolve_generator(g, "cuda")


def test_derive_seed_is_stable_distinct_and_in_range():
    seeds = {derive_seed(0, "layer", i) for i in range(100)}
    assert len(seeds) == 100
    assert derive_seed(0, "layer", 1) == derive_seed(0, "layer", 1)
    assert derive_seed(0, "a") != derive_seed(1, "a")
    assert all(0 <= s < 2**63 for s in seeds)


def test_seeded_global_rng_is_replayable_and_restores_state():
    before = torch.random.get_rng_state()
    with seeded_global_rng(7):
        first = torch.rand(8)
    with seeded_global_rng(7):
        second = torch.rand(8)
    assert torch.equal(first, second)
    assert torch.equal(before, torch.random.get_rng_state())


def test_resolve_device(device):
    assert netprops.resolve_device(device).type == device
    with pytest.raises(ValueError, match="device must be one of"):
        netprops.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_resolve_device_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        netprops.resolve_device("cuda")
    assert netprops.available_devices() == ("cpu",)


def test_tf32_and_deterministic_switches_restore_state():
    old = torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled()
    with netprops.tf32_disabled(), netprops.deterministic():
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert not netprops.tf32_enabled()
        assert torch.are_deterministic_algorithms_enabled()
    assert (
        torch.backends.cuda.matmul.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
    ) == old


def test_tf32_switch_follows_the_new_fp32_precision_api():
    # torch >= 2.9: after fp32_precision is set, reading the legacy flags raises, so the
    # switch must drive fp32_precision instead (and restore it)
    backends = torch.backends
    if not hasattr(backends.cuda.matmul, "fp32_precision"):
        pytest.skip(f"torch {torch.__version__} has no fp32_precision API")
    targets = (backends.cuda.matmul, backends.cudnn.conv, backends.cudnn.rnn)
    before = [t.fp32_precision for t in targets]
    try:
        for t in targets:
            t.fp32_precision = "tf32"
        assert netprops.tf32_enabled()
        with netprops.tf32_disabled():
            # "none" defers to the (default, full-precision) global setting
            assert "tf32" not in [t.fp32_precision for t in targets]
            assert not netprops.tf32_enabled()
        assert [t.fp32_precision for t in targets] == ["tf32"] * 3
    finally:
        for t, value in zip(targets, before, strict=True):
            t.fp32_precision = value


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_tolerance_table_orders_by_precision(dtype):
    tol = netprops.tolerance(dtype)
    assert tol.rtol >= torch.finfo(dtype).eps / 2
    assert tol.rtol <= 100 * torch.finfo(dtype).eps or dtype == torch.float64


def test_tolerance_rejects_integer_dtype():
    with pytest.raises(ValueError, match=r"dtype must be one of .*got torch.int64"):
        netprops.tolerance(torch.int64)


def test_seeded_global_rng_leaves_gpu_generators_alone(monkeypatch):
    # torch.manual_seed would reseed (or queue reseeding) every GPU's generator, which
    # fork_rng does not restore for devices it was not given
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    with netprops.seeding.seeded_global_rng(3):
        first = torch.rand(4)
    with netprops.seeding.seeded_global_rng(3):
        assert torch.equal(torch.rand(4), first)
    assert calls == []


def test_resolve_device_checks_the_cuda_index(monkeypatch):
    monkeypatch.setattr(netprops.devices, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert netprops.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"'cuda:7' does not exist: this machine has 1 CUDA"):
        netprops.resolve_device("cuda:7")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_running_in_ci_reads_the_ci_variable(monkeypatch, value, expected):
    from netprops.plugin import running_in_ci

    monkeypatch.setenv("CI", value)
    assert running_in_ci() is expected
