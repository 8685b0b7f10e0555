"""Variance checks: weight laws, variance preservation with depth, per-layer profiles of any model.

Initializers under test come from both netprops.init and torch.nn.init (with
``generator=``). Expected statistics are computed here from the formulas of
docs/methods.md §Initializers and §Variance preservation (σ_actual²/σ*², exact digamma moments, a mean-field quadrature),
never copied from a run of the check.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats
from torch import nn

import netprops
from netprops import init as ni
from netprops.checks import variance as variance_module
from netprops.checks.stats import chi2_interval, z_two_sided
from netprops.checks.variance import (
    VARIANCE_NONLINEARITIES,
    VarianceProfile,
    check_init_distribution,
    check_model_variance,
    check_variance_preserved,
    variance_profile,
)

ALPHA = 1e-9
FAST = {"depth": 4, "width": 128, "n_networks": 4}  # failing cases miss by orders of magnitude


def torch_init(name, **kwargs):
    """``torch.nn.init.<name>`` with the ``init_fn(w, generator=g)`` signature."""
    fn = getattr(nn.init, name)
    return lambda w, generator: fn(w, **kwargs, generator=generator)


def netprops_normal(std):
    return lambda w, generator: ni.normal_(w, std, generator=generator)


def torch_default_linear_init(w, generator):
    """What nn.Linear.reset_parameters does to its weight: Var W = 1/(3·fan_in)."""
    return nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)


def replay(reproduce, init_fn):
    """Evaluate a violation's reproduction line (netprops.checks may not re-export yet)."""
    namespace = types.SimpleNamespace(checks=variance_module, init=ni)
    return eval(reproduce, {"netprops": namespace, "init_fn": init_fn, "torch": torch})


def assert_reports(message, *, check, seed):
    for part in (
        "statistic:",
        "bound:",
        f"seed:      {seed}",
        f"reproduce: netprops.checks.{check}(",
    ):
        assert part in message


# ============================================================================ check_init_distribution
SHAPE = (256, 128)  # non-square: fan_in = 128, fan_out = 256
HE_STD = math.sqrt(2 / 128)
XAVIER_STD = math.sqrt(2 / (128 + 256))


@pytest.mark.parametrize(
    ("init_fn", "std", "law"),
    [
        (ni.he_normal_, HE_STD, "normal"),
        (ni.he_uniform_, HE_STD, "uniform"),
        (ni.xavier_normal_, XAVIER_STD, "normal"),
        (ni.xavier_uniform_, XAVIER_STD, "uniform"),
        (ni.lecun_normal_, math.sqrt(1 / 128), "normal"),
        (torch_init("kaiming_normal_", nonlinearity="relu"), HE_STD, "normal"),
        (torch_init("kaiming_uniform_", nonlinearity="relu"), HE_STD, "uniform"),
        (torch_init("xavier_uniform_", gain=5 / 3), 5 / 3 * XAVIER_STD, "uniform"),
        (torch_default_linear_init, math.sqrt(1 / (3 * 128)), "uniform"),
    ],
)
def test_correct_initializers_pass_and_their_law_is_recognized(device, init_fn, std, law):
    result = check_init_distribution(init_fn, SHAPE, expected_std=std, seed=1, device=device)
    assert result.details["distribution"] == law
    assert abs(result.details["kurtosis"] - {"normal": 3.0, "uniform": 1.8}[law]) < 0.1
    lo, hi = result.bound
    assert lo <= result.statistic <= hi
    assert result.details["ks_statistic"] <= result.details["ks_bound"]
    assert result.alpha == ALPHA and result.seed == 1


def test_conv_weights_use_the_receptive_field_in_their_fans(device):
    shape = (32, 16, 3, 3)  # fan_in = 144, fan_out = 288
    check_init_distribution(ni.he_normal_, shape, expected_std=math.sqrt(2 / 144), device=device)
    with pytest.raises(netprops.PropertyViolation):
        check_init_distribution(ni.he_normal_, shape, expected_std=math.sqrt(2 / 16), device=device)


@pytest.mark.parametrize(
    ("init_fn", "expected_std", "variance_ratio"),
    [
        # fan_out = 256 instead of fan_in = 128: half the variance
        (lambda w, generator: ni.he_normal_(w, mode="fan_out", generator=generator), HE_STD, 0.5),
        (torch_init("kaiming_normal_", mode="fan_out", nonlinearity="relu"), HE_STD, 0.5),
        # Xavier with gain 1 where tanh's 5/3 was meant
        (ni.xavier_normal_, 5 / 3 * XAVIER_STD, 9 / 25),
        (ni.xavier_uniform_, 5 / 3 * XAVIER_STD, 9 / 25),
        # He without its √2
        (
            lambda w, generator: ni.he_normal_(w, nonlinearity="linear", generator=generator),
            HE_STD,
            0.5,
        ),
    ],
)
def test_fan_swap_and_wrong_gain_fail(device, init_fn, expected_std, variance_ratio):
    with pytest.raises(netprops.PropertyViolation, match="mean") as info:
        check_init_distribution(init_fn, SHAPE, expected_std=expected_std, seed=4, device=device)
    measured = float(str(info.value).split("statistic:")[1].split()[0])
    # mean(w²)/σ² has relative sd √(2/N) (normal) or √(0.8/N) (uniform): 6 sd is < 5%.
    assert measured == pytest.approx(variance_ratio, rel=6 * math.sqrt(2 / math.prod(SHAPE)))


@pytest.mark.parametrize(
    ("factor", "pattern"), [(0.99, "stop short of the bound"), (1.01, "exceeds")]
)
def test_a_uniform_bound_off_by_one_percent_fails_through_max_abs(device, factor, pattern):
    bound = math.sqrt(3) * XAVIER_STD

    def init_fn(w, generator):
        return ni.uniform_(w, bound * factor, generator=generator)

    with pytest.raises(netprops.PropertyViolation, match=pattern):
        check_init_distribution(init_fn, SHAPE, expected_std=XAVIER_STD, seed=2, device=device)
    check_init_distribution(
        lambda w, generator: ni.uniform_(w, bound, generator=generator),
        SHAPE,
        expected_std=XAVIER_STD,
        seed=2,
        device=device,
    )


@pytest.mark.parametrize("n", [8, 32, 128, 1024])
@pytest.mark.parametrize("alpha", [1e-3, 0.05])
def test_uniform_sum_of_squares_band_is_calibrated_for_small_shapes(n, alpha):
    # distribution='uniform' gives the Σw² test alpha/3, alpha/6 per side. Simulate
    # mean((w/b)²) for w ~ U(-b, b) (fixed seed) and bound the exceedances of each side
    # by the binomial quantile at 1e-9: a normal-approximation band (3.3x too thin in the
    # upper tail at n = 32, alpha = 1e-9) is also visibly miscalibrated at these alphas.
    side = alpha / 6
    lo, hi = variance_module._squared_uniform_mean_band(n, side)
    draws = 400_000 if n <= 128 else 40_000
    rng = np.random.default_rng(20260 + n)
    means = np.concatenate([(rng.random((draws // 8, n)) ** 2).mean(axis=1) for _ in range(8)])
    limit = stats.binom.isf(1e-9, draws, side)
    assert (means < lo).sum() <= limit
    assert (means > hi).sum() <= limit
    assert 0 < lo < 1 / 3 < hi < 1


def test_uniform_sum_of_squares_band_costs_little_power_on_large_shapes():
    # Chernoff is rigorous but wider than the normal quantile: by < 10% at 10^6 weights.
    lo, hi = variance_module._squared_uniform_mean_band(10**6, ALPHA / 6)
    half = z_two_sided(ALPHA / 3) * math.sqrt(0.8 / 10**6) / 3
    assert half < hi - 1 / 3 < 1.1 * half
    assert half < 1 / 3 - lo < 1.1 * half


def test_squared_uniform_cgf_matches_quadrature():
    nodes, weights = np.polynomial.legendre.leggauss(400)
    u, wu = (nodes + 1) / 2, weights / 2
    for t in (-200.0, -3.0, -1e-5, 1e-9, 1e-5, 0.5, 40.0):
        m = float(np.sum(wu * np.exp(t * u * u)))
        m1 = float(np.sum(wu * u * u * np.exp(t * u * u))) / m
        log_m, mean = variance_module._squared_uniform_cgf(t)
        assert log_m == pytest.approx(math.log(m), rel=1e-9, abs=1e-12)
        assert mean == pytest.approx(m1, rel=1e-6)


def test_small_uniform_shapes_fail_at_most_alpha(device):
    # End to end at alpha = 0.05 on 32 weights (all three tests and KS): false failures
    # over fixed seeds stay within the binomial 1e-9 quantile of Bin(seeds, alpha).
    seeds, failures = 400, 0
    for seed in range(seeds):
        try:
            check_init_distribution(
                ni.xavier_uniform_,
                (4, 8),
                expected_std=math.sqrt(2 / 12),
                distribution="uniform",
                seed=seed,
                device=device,
                alpha=0.05,
            )
        except netprops.PropertyViolation:
            failures += 1
    assert failures <= stats.binom.isf(1e-9, seeds, 0.05)


@pytest.mark.parametrize(
    ("init_fn", "shape", "dtype"),
    [
        (ni.xavier_uniform_, (512, 512), torch.float16),
        (ni.he_uniform_, (512, 512), torch.bfloat16),
        (ni.he_normal_, (4096, 4096), torch.bfloat16),
    ],
)
def test_low_precision_draws_allow_for_rounding(init_fn, shape, dtype):
    fan_in, fan_out = shape[1], shape[0]
    std = (
        math.sqrt(2 / (fan_in + fan_out))
        if init_fn is ni.xavier_uniform_
        else math.sqrt(2 / fan_in)
    )
    result = check_init_distribution(init_fn, shape, expected_std=std, dtype=dtype)
    if math.prod(shape) > 10**7:
        assert "rounding step" in result.details["ks_skipped"]
        assert result.details["ks_statistic"] is None
    else:
        assert result.details["ks_statistic"] <= result.details["ks_bound"]


def test_relu_widths_with_a_likely_all_zero_layer_are_rejected():
    # P(some layer is all zero) <= depth·K·2^-width; 16·16·2^-16 = 3.9e-3 >> alpha.
    with pytest.raises(ValueError, match=r"width=16 .*depth=16, n_networks=16.*width >= 42"):
        check_variance_preserved(ni.he_normal_, nonlinearity="relu", width=16)
    with pytest.raises(ValueError, match="width >= "):
        check_variance_preserved(
            ni.he_normal_, nonlinearity="leaky_relu", negative_slope=0.0, width=32
        )
    # Linear layers never vanish; a larger alpha makes width 16 acceptable for ReLU.
    check_variance_preserved(ni.xavier_normal_, nonlinearity="linear", width=16, depth=4)
    check_variance_preserved(
        ni.he_normal_, nonlinearity="relu", width=16, depth=2, n_networks=2, alpha=1e-3
    )


def test_a_uniform_law_with_the_right_variance_is_not_normal(device):
    # Same variance, so Σw²/σ² passes; the Kolmogorov–Smirnov distance catches the law.
    with pytest.raises(netprops.PropertyViolation, match="Kolmogorov") as info:
        check_init_distribution(
            ni.xavier_uniform_, SHAPE, expected_std=XAVIER_STD, distribution="normal", device=device
        )
    d = float(str(info.value).split("statistic:")[1].split()[0])
    # the population distance sup |Φ(x/σ) − U(x)|; the sample adds O(1/√N) = 0.006
    grid = np.linspace(-4, 4, 80001)
    distance = np.max(
        np.abs(stats.norm.cdf(grid) - stats.uniform(-math.sqrt(3), 2 * math.sqrt(3)).cdf(grid))
    )
    assert d == pytest.approx(distance, abs=6 / math.sqrt(math.prod(SHAPE)))


def trunc_normal(std, a, b):
    """``torch.nn.init.trunc_normal_`` with the ``init_fn(w, generator=g)`` signature."""

    def init_fn(w, generator=None):
        return nn.init.trunc_normal_(w, std=std, a=a, b=b, generator=generator)

    return init_fn


TN_STD = 0.02


@pytest.mark.parametrize("c", [1.0, 2.0, 3.0])
def test_a_truncated_normal_is_recognized_not_misread_as_uniform(device, c):
    init_fn = trunc_normal(TN_STD, -c * TN_STD, c * TN_STD)
    result = check_init_distribution(init_fn, SHAPE, expected_std=TN_STD, device=device)
    assert result.details["distribution"] == "truncated_normal"
    assert result.details["truncation_in_std"][1] == pytest.approx(c, rel=1e-2)
    declared = check_init_distribution(
        init_fn, SHAPE, expected_std=TN_STD, truncation=(-c * TN_STD, c * TN_STD), device=device
    )
    assert declared.details["law_std"] == pytest.approx(stats.truncnorm(-c, c, scale=TN_STD).std())


def test_timms_absolute_bounds_are_a_normal_law_in_practice(device):
    # trunc_normal_(std=0.02, a=-2, b=2) truncates at ±100σ: nothing is ever cut off
    init_fn = trunc_normal(TN_STD, -2.0, 2.0)
    auto = check_init_distribution(init_fn, SHAPE, expected_std=TN_STD, device=device)
    assert auto.details["distribution"] == "normal"
    declared = check_init_distribution(
        init_fn, SHAPE, expected_std=TN_STD, truncation=(-2.0, 2.0), device=device
    )
    assert declared.details["truncation_in_std"] == (-100.0, 100.0)


@pytest.mark.parametrize(
    ("init_fn", "pattern"),
    [
        (trunc_normal(TN_STD, -TN_STD, TN_STD), "stops short of the truncation bound"),
        (trunc_normal(TN_STD / 2, -2 * TN_STD, 2 * TN_STD), "stops short|mean\\(w²\\)"),
        (trunc_normal(TN_STD, -3 * TN_STD, 3 * TN_STD), "outside the truncation"),
        (trunc_normal(1.3 * TN_STD, -2 * TN_STD, 2 * TN_STD), "mean\\(w²\\)|Kolmogorov"),
    ],
    ids=["bound-1σ", "std-halved", "bound-3σ", "std-1.3x"],
)
def test_a_truncated_normal_with_the_wrong_bound_or_std_fails(device, init_fn, pattern):
    with pytest.raises(netprops.PropertyViolation, match=pattern):
        check_init_distribution(
            init_fn,
            SHAPE,
            expected_std=TN_STD,
            truncation=(-2 * TN_STD, 2 * TN_STD),
            device=device,
        )


@pytest.mark.parametrize(("lo", "hi"), [(-2.0, 2.0), (-1.0, 3.0), (-0.5, 0.5), (-50.0, 50.0)])
def test_squared_truncated_normal_cgf_matches_quadrature(lo, hi):
    cgf = variance_module._squared_truncated_normal_cgf(lo, hi)
    law = stats.truncnorm(lo, hi)
    assert cgf(0.0)[1] == pytest.approx(law.moment(2), rel=1e-9)
    mass = stats.norm.cdf(hi) - stats.norm.cdf(lo)
    for t in (-3.0, -0.4, 0.2, 0.45):
        value, slope = cgf(t)
        # E exp(tZ²) = ∫ exp(−(1 − 2t)z²/2)/√(2π) dz / mass over [lo, hi]
        density = lambda z, t=t, k=0: z**k * np.exp(-(1 - 2 * t) * z * z / 2)  # noqa: E731
        m = integrate.quad(density, lo, hi, points=[0.0])[0] / math.sqrt(2 * math.pi) / mass
        m1 = integrate.quad(density, lo, hi, args=(t, 2), points=[0.0])[0]
        m1 /= math.sqrt(2 * math.pi) * mass
        assert value == pytest.approx(math.log(m), rel=1e-7, abs=1e-10)
        assert slope == pytest.approx(m1 / m, rel=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"distribution": "truncated_normal"}, ValueError, "needs truncation=\\(a, b\\)"),
        ({"distribution": "normal", "truncation": (-1, 1)}, ValueError, "only used by"),
        ({"truncation": (0.0, 1.0)}, ValueError, "a < 0 < b"),
        ({"truncation": (-1.0,)}, ValueError, "must be a pair"),
        ({"truncation": (-1.0, math.inf)}, ValueError, "truncation\\[1\\]"),
        ({"truncation": "wide"}, TypeError, "truncation must be"),
    ],
)
def test_truncation_arguments_are_validated(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_init_distribution(ni.he_normal_, SHAPE, expected_std=HE_STD, **kwargs)


def test_violation_message_has_statistic_bound_seed_and_a_working_reproduction(device):
    def init_fn(w, generator):
        return ni.he_normal_(w, mode="fan_out", generator=generator)

    with pytest.raises(netprops.PropertyViolation) as info:
        check_init_distribution(init_fn, SHAPE, expected_std=HE_STD, seed=7, device=device)
    message = str(info.value)
    assert_reports(message, check="check_init_distribution", seed=7)
    reproduce = message.split("reproduce: ")[1].strip()
    assert f"device='{torch.device(device)}'" in reproduce
    with pytest.raises(netprops.PropertyViolation) as again:
        replay(reproduce, init_fn)
    assert str(again.value) == message


def test_small_shapes_need_the_distribution_named(device):
    with pytest.raises(ValueError, match="distribution='normal'"):
        check_init_distribution(
            ni.he_normal_, (16, 16), expected_std=math.sqrt(2 / 16), device=device
        )
    result = check_init_distribution(
        ni.he_normal_,
        (16, 16),
        expected_std=math.sqrt(2 / 16),
        distribution="normal",
        device=device,
    )
    assert result.details["law_from"] == "argument"
    # the detection threshold: P(kurtosis on the wrong side of 2.4) <= alpha/4 by the
    # asymptotic variances 24/N (normal) and 1.32/N (uniform)
    z = stats.norm.isf(ALPHA / 4)
    assert variance_module._min_elements_for_detection(ALPHA / 4) == math.ceil(24 * (z / 0.6) ** 2)


def test_an_initializer_that_does_not_fill_in_place_fails(device):
    def returns_a_copy(w, generator):
        return torch.randn(w.shape, generator=generator, device=w.device)

    with pytest.raises(netprops.PropertyViolation, match="not finite"):
        check_init_distribution(returns_a_copy, SHAPE, expected_std=1.0, device=device)
    with pytest.raises(netprops.PropertyViolation, match="every drawn weight is 0"):
        check_init_distribution(
            lambda w, generator: ni.zeros_(w), SHAPE, expected_std=1.0, device=device
        )


def test_init_distribution_result_str_is_readable(device):
    result = check_init_distribution(
        ni.he_normal_, SHAPE, expected_std=HE_STD, seed=3, device=device
    )
    text = str(result)
    assert text.startswith("check_init_distribution: passed (statistic")
    assert "seed 3" in text and "distribution: normal" in text


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fan_in=st.integers(40, 160), swap_wide=st.booleans(), seed=st.integers(0, 2**31))
def test_fan_modes_are_told_apart_on_any_non_square_shape(device, fan_in, swap_wide, seed):
    shape = (2 * fan_in, fan_in) if swap_wide else (fan_in // 2, fan_in)
    fan_out = shape[0]
    for mode, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        std = math.sqrt(2 / fan)

        def init_fn(w, generator, mode=mode):
            return ni.he_normal_(w, mode=mode, generator=generator)

        check_init_distribution(
            init_fn, shape, expected_std=std, distribution="normal", seed=seed, device=device
        )
        wrong = math.sqrt(2 / (fan_out if fan == fan_in else fan_in))
        with pytest.raises(netprops.PropertyViolation):
            check_init_distribution(
                init_fn, shape, expected_std=wrong, distribution="normal", seed=seed, device=device
            )


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"init_fn": 3}, TypeError, "init_fn must be callable"),
        ({"shape": (16,)}, ValueError, "shape must have at least 2 dimensions"),
        ({"shape": (16, 0)}, ValueError, r"shape\[1\] must be an int >= 1"),
        ({"shape": 16}, TypeError, "shape must be"),
        ({"expected_std": 0.0}, ValueError, "expected_std must be a finite number > 0"),
        (
            {"distribution": "laplace"},
            ValueError,
            "'normal', 'uniform', 'truncated_normal'; got 'laplace'",
        ),
        ({"alpha": 0.0}, ValueError, "alpha must be a probability in"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"device": "tpu"}, ValueError, "device must be one of"),
        ({"dtype": torch.int64}, TypeError, "dtype must be a floating-point"),
    ],
)
def test_init_distribution_rejects_bad_arguments(kwargs, exc, pattern):
    args = {"init_fn": ni.he_normal_, "shape": SHAPE, "expected_std": HE_STD, **kwargs}
    with pytest.raises(exc, match=pattern):
        check_init_distribution(args.pop("init_fn"), args.pop("shape"), **args)


# ============================================================================ check_variance_preserved
@pytest.mark.parametrize(
    ("init_fn", "nonlinearity"),
    [
        (ni.he_normal_, "relu"),
        (ni.xavier_normal_, "linear"),
    ],
)
def test_matched_schemes_pass_at_default_size(device, init_fn, nonlinearity):
    result = check_variance_preserved(init_fn, nonlinearity=nonlinearity, seed=0, device=device)
    d = 256 * 16 * 16
    lo, hi = chi2_interval(d, ALPHA / 2)
    assert result.bound == pytest.approx((lo / d, hi / d))
    assert lo / d <= result.statistic <= hi / d
    band = result.details["depth_band"]
    assert band[0] <= result.details["depth_log_ratio"] <= band[1]


@pytest.mark.parametrize(
    ("init_fn", "nonlinearity", "kwargs"),
    [
        (ni.he_uniform_, "relu", {}),
        (torch_init("kaiming_normal_", nonlinearity="relu"), "relu", {}),
        (torch_init("kaiming_uniform_", nonlinearity="relu"), "relu", {}),
        (ni.xavier_uniform_, "linear", {}),
        (torch_init("xavier_normal_"), "linear", {}),
        (ni.lecun_normal_, "linear", {}),
        (
            lambda w, generator: ni.he_normal_(
                w, a=0.2, nonlinearity="leaky_relu", generator=generator
            ),
            "leaky_relu",
            {"negative_slope": 0.2},
        ),
        (torch_init("xavier_normal_", gain=5 / 3), "tanh", {}),
        (ni.xavier_normal_, "tanh", {"gain": 1.0}),
        (ni.xavier_normal_, "sigmoid", {}),
    ],
)
def test_matched_schemes_pass(device, init_fn, nonlinearity, kwargs):
    result = check_variance_preserved(
        init_fn,
        nonlinearity=nonlinearity,
        depth=6,
        width=128,
        n_networks=6,
        seed=1,
        device=device,
        **kwargs,
    )
    assert result.bound[0] <= result.statistic <= result.bound[1]
    assert ("depth_band" in result.details) == (nonlinearity in ("linear", "relu", "leaky_relu"))


@pytest.mark.parametrize(
    ("init_fn", "nonlinearity", "variance_ratio"),
    [
        # σ_actual² / σ*² with σ*² = gain²/n at n = 128 (FAST)
        (netprops_normal(1.0), "relu", 128 / 2),  # explodes: ×64 per layer
        (netprops_normal(0.01), "relu", 128 * 1e-4 / 2),  # vanishes
        (
            lambda w, generator: ni.he_normal_(w, nonlinearity="linear", generator=generator),
            "relu",
            0.5,
        ),
        (ni.xavier_normal_, "relu", 0.5),  # Xavier used with ReLU
        (torch_default_linear_init, "relu", 1 / 6),  # 1/(3n) instead of 2/n
        (torch_default_linear_init, "linear", 1 / 3),
        (ni.he_normal_, "linear", 2.0),
        (ni.xavier_normal_, "tanh", 9 / 25),  # tanh's target is torch's gain 5/3
    ],
)
def test_mismatched_scales_fail_by_the_predicted_factor(
    device, init_fn, nonlinearity, variance_ratio
):
    with pytest.raises(netprops.PropertyViolation, match="ΣT/D") as info:
        check_variance_preserved(init_fn, nonlinearity=nonlinearity, seed=5, device=device, **FAST)
    measured = float(str(info.value).split("statistic:")[1].split()[0])
    d = FAST["width"] * FAST["depth"] * FAST["n_networks"]
    # ΣT/D = ratio · χ²_D/D for Gaussian weights (a smaller spread for uniform ones)
    assert measured == pytest.approx(variance_ratio, rel=z_two_sided(ALPHA) * math.sqrt(2 / d))


def test_depth_test_catches_what_the_one_step_test_averages_away(device):
    """Per-call scales 0.5 and 1.5 average to the right variance but not in log."""
    calls = []

    def alternating(w, generator):
        calls.append(None)
        scale = (0.5, 1.5)[len(calls) % 2]
        return ni.normal_(w, math.sqrt(scale * 2 / w.shape[1]), generator=generator)

    with pytest.raises(netprops.PropertyViolation, match="after 16 layers") as info:
        check_variance_preserved(alternating, nonlinearity="relu", seed=0, device=device)
    # each network keeps one scale: the mean log ratio is 16·½(log 0.5 + log 1.5) − ReLU's 5L/(2n)
    y = float(str(info.value).split("statistic:")[1].split()[0])
    expected = 16 * 0.5 * (math.log(0.5) + math.log(1.5)) - 5 * 16 / (2 * 256)
    assert y == pytest.approx(expected, abs=z_two_sided(ALPHA) * math.sqrt(5 * 16 / 256 / 16))
    assert "ΣT/D" not in str(info.value).splitlines()[0]


def _exact_log_ratio_moments(nonlinearity, n):
    """Exact mean and variance of log(‖f(z)‖²/(c·n)), z ~ N(0, I_n), by digamma functions."""
    if nonlinearity == "linear":  # log(χ²_n / n)
        return special.digamma(n / 2) + math.log(2 / n), special.polygamma(1, n / 2)
    # relu: χ²_K with K ~ Bin(n, ½) (K = 0 has probability 2^-n)
    k = np.arange(1, n + 1)
    p = stats.binom.pmf(k, n, 0.5)
    p = p / p.sum()
    m = special.digamma(k / 2) + math.log(2) - math.log(n / 2)
    mean = float(np.sum(p * m))
    return mean, float(np.sum(p * special.polygamma(1, k / 2)) + np.sum(p * (m - mean) ** 2))


@pytest.mark.parametrize("nonlinearity", ["linear", "relu"])
@pytest.mark.parametrize("width", [64, 256])
def test_depth_band_matches_the_exact_log_chi2_moments(nonlinearity, width):
    _, mean, var = variance_module._log_ratio_moments(nonlinearity, 0.01, width)
    exact_mean, exact_var = _exact_log_ratio_moments(nonlinearity, width)
    # second-order delta method: the errors left are O(1/n³) in the mean and
    # O(1/n²) relative in the variance (≈ 12/n³ and −17/n² for ReLU)
    assert abs(mean - exact_mean) <= 20 / width**3
    assert abs(var / exact_var - 1) <= 25 / width**2
    # docs/methods.md keeps the leading terms: −5/(2n), 5/n (ReLU) and −1/n, 2/n (linear)
    lead_mean, lead_var = {"relu": (-5 / 2, 5), "linear": (-1, 2)}[nonlinearity]
    assert abs(lead_mean / width - exact_mean) > abs(mean - exact_mean)
    assert abs(lead_var / width - exact_var) > abs(var - exact_var)


@pytest.mark.parametrize("nonlinearity", ["linear", "relu"])
@pytest.mark.parametrize("width", [16, 256])
def test_exact_depth_law_has_the_exact_per_layer_moments(nonlinearity, width):
    gain = math.sqrt(2) if nonlinearity == "relu" else 1.0
    cgf, t_min = variance_module._log_norm_ratio_cgf(nonlinearity, gain, width)
    exact_mean, exact_var = _exact_log_ratio_moments(nonlinearity, width)
    c = 0.5 if nonlinearity == "relu" else 1.0
    # K'(0) = E log(σ²χ²_k) = log(gain²·c) + E log(‖f(z)‖²/(c·n)); K''(0) by a central difference
    assert cgf(0.0)[1] == pytest.approx(math.log(gain**2 * c) + exact_mean, abs=1e-12)
    h = 1e-4
    second = (cgf(h)[1] - cgf(-h)[1]) / (2 * h)
    assert second == pytest.approx(exact_var, rel=1e-6)
    assert t_min == (-width / 2 if nonlinearity == "linear" else -0.5)


def test_depth_band_holds_its_level_under_the_exact_law():
    # ReLU at width 16, depth 4, 4 networks, level 2e-3: simulate the statistic from its exact
    # law (per layer log((2/16)·χ²_k), k ~ Bin(16, ½)) and count how often it leaves the band
    width, depth, nets, alpha = 16, 4, 4, 2e-3
    band, _, law = variance_module._depth_band("relu", 0.0, math.sqrt(2), width, depth, nets, alpha)
    assert law.startswith("exact")
    rng = np.random.default_rng(0)
    runs = 400_000
    k = rng.binomial(width, 0.5, size=(runs, depth * nets))
    with np.errstate(divide="ignore"):  # k = 0: a dead layer, −inf (the width rule's share)
        ratio = np.log((2 / width) * rng.chisquare(np.maximum(k, 1)) * (k > 0))
    y = ratio.reshape(runs, depth, nets).sum(axis=1).mean(axis=1)
    outside = int(np.sum((y < band[0]) | (y > band[1])))
    dead = depth * nets * 2.0**-width  # counted outside too
    assert outside <= stats.binom.isf(1e-6, runs, alpha + dead), (outside, runs * alpha)
    # not vacuous: at most 1.6× the spread of the simulated quantiles (Chernoff's price for the
    # heavy left tail at this width; the normal approximation's band leaves 4.4·alpha/2 below)
    q_lo, q_hi = np.quantile(y[np.isfinite(y)], [alpha / 2, 1 - alpha / 2])
    assert band[1] - band[0] <= 1.6 * (q_hi - q_lo)


# ---------------------------------------------------------------- tanh: the mean-field prediction
def _tanh_mean_field(gain, depth, width, n_networks, z):
    """q_l (infinite width) and a tolerance on the mean over networks of log(‖z_l‖²/n).

    Linearized finite-width fluctuation: δ_{l+1} = λ(q_l)·δ_l + η_{l+1}, with
    λ(q) = d log G/d log q <= 1 (G(q) = E tanh²(√q Z) is concave), Var η_1 = ψ'(n/2)
    (the χ²_n of the first layer, ‖x‖² = n exactly) and Var η_{l+1} <= (2 + v(q_l))/n
    (χ²_n of the weights plus the finite sum over units, v = Var tanh²/E[tanh²]²).
    The tolerance is z·sd/√K plus a bias allowance of one variance (second-order
    terms such as E log(χ²_n/n) ≈ −1/n are half a variance each).
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(101)
    weights = weights / weights.sum()

    def g(q):
        return float(np.sum(weights * np.tanh(math.sqrt(q) * nodes) ** 2))

    def v(q):
        y = np.tanh(math.sqrt(q) * nodes) ** 2
        return float(np.sum(weights * y**2) / np.sum(weights * y) ** 2 - 1)

    def lam(q, h=1e-5):
        return (math.log(g(q * math.exp(h))) - math.log(g(q * math.exp(-h)))) / (2 * h)

    q, var = gain**2, float(special.polygamma(1, width / 2))
    qs, variances = [q], [var]
    for _ in range(depth - 1):
        var = lam(q) ** 2 * var + (2 + v(q)) / width
        q = gain**2 * g(q)
        qs.append(q)
        variances.append(var)
    variances = np.array(variances)
    return np.array(qs), z * np.sqrt(variances / n_networks) + variances


def test_mean_field_reference_reproduces_the_methods_numbers():
    qs, _ = _tanh_mean_field(1.0, 11, 256, 1, 0.0)
    for layer, quoted in ((2, 0.39), (3, 0.24), (6, 0.10), (11, 0.05)):
        assert abs(qs[layer - 1] - quoted) <= 0.005
    qs, _ = _tanh_mean_field(5 / 3, 40, 256, 1, 0.0)
    assert abs(qs[-1] - 1.18) <= 0.005
    assert (
        abs(math.sqrt(qs[-1] / (5 / 3) ** 2) - 0.65) <= 0.005
    )  # post-tanh RMS: E tanh² = q*/gain²


@pytest.mark.parametrize(
    ("init_fn", "gain"),
    [
        (ni.xavier_normal_, 1.0),  # Glorot: E[z²] decays roughly like 1/(2L)
        (torch_init("xavier_normal_", gain=5 / 3), 5 / 3),  # torch's gain: fixed point ≈ 1.18
    ],
)
def test_tanh_profile_follows_the_mean_field_prediction(device, init_fn, gain):
    depth, width, k = 10, 256, 32
    result = check_variance_preserved(
        init_fn,
        nonlinearity="tanh",
        gain=gain,
        depth=depth,
        width=width,
        n_networks=k,
        seed=2,
        device=device,
    )
    z = z_two_sided(ALPHA, tests=depth)
    qs, tol = _tanh_mean_field(gain, depth, width, k, z)
    np.testing.assert_allclose(result.details["mean_field"], qs, rtol=1e-5)
    measured = np.log(result.details["pre_second_moment"])
    assert np.all(np.abs(measured - np.log(qs)) <= tol), (measured, np.log(qs), tol)
    if gain == 1.0:  # the decay is far outside the tolerance of a preserved signal
        assert measured[-1] + tol[-1] < math.log(0.1)
    else:
        assert abs(measured[-1] - math.log(1.18)) <= tol[-1]


def test_zero_init_stops_the_signal(device):
    with pytest.raises(netprops.PropertyViolation, match="became 0 or non-finite after layer 1"):
        check_variance_preserved(
            lambda w, generator: ni.zeros_(w), nonlinearity="relu", device=device, **FAST
        )


def test_an_initializer_that_does_not_fill_in_place_is_reported(device):
    def noop(w, generator):
        return w

    with pytest.raises(netprops.PropertyViolation, match="non-finite weights in layer 1"):
        check_variance_preserved(noop, nonlinearity="linear", device=device, **FAST)


def test_normal_one_at_depth_64_does_not_overflow(device):
    # ×128 per layer: 128^64 = 1e135 in ‖h‖², and its square would overflow float64 without logs
    with pytest.raises(netprops.PropertyViolation, match="ΣT/D") as info:
        check_variance_preserved(
            netprops_normal(1.0),
            nonlinearity="relu",
            depth=64,
            width=256,
            n_networks=1,
            device=device,
        )
    assert not re.search(r"\b(nan|inf)\b", str(info.value))


def test_variance_violation_reports_and_replays(device):
    with pytest.raises(netprops.PropertyViolation) as info:
        check_variance_preserved(
            ni.xavier_normal_, nonlinearity="relu", seed=3, device=device, **FAST
        )
    message = str(info.value)
    assert_reports(message, check="check_variance_preserved", seed=3)
    reproduce = message.split("reproduce: ")[1].strip()
    assert reproduce.startswith(
        "netprops.checks.check_variance_preserved(netprops.init.xavier_normal_, nonlinearity='relu'"
    )
    with pytest.raises(netprops.PropertyViolation) as again:
        replay(reproduce, None)
    assert str(again.value) == message


def test_variance_check_is_a_function_of_its_seed(device):
    a = check_variance_preserved(ni.he_normal_, nonlinearity="relu", seed=4, device=device, **FAST)
    b = check_variance_preserved(ni.he_normal_, nonlinearity="relu", seed=4, device=device, **FAST)
    c = check_variance_preserved(ni.he_normal_, nonlinearity="relu", seed=5, device=device, **FAST)
    assert a.statistic == b.statistic != c.statistic
    assert "check_variance_preserved: passed" in str(a)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"init_fn": "he"}, TypeError, "init_fn must be callable"),
        (
            {"nonlinearity": "swish"},
            ValueError,
            "'linear', 'relu', 'leaky_relu', 'tanh', 'sigmoid'; got 'swish'",
        ),
        ({"nonlinearity": 3}, TypeError, "nonlinearity must be str"),
        ({"depth": 0}, ValueError, "depth must be an int >= 1"),
        ({"width": 1}, ValueError, "width must be an int >= 2"),
        ({"n_networks": 0}, ValueError, "n_networks must be an int >= 1"),
        ({"negative_slope": -0.1}, ValueError, "negative_slope must be a finite number >= 0"),
        ({"gain": 0.0}, ValueError, "gain must be a finite number > 0"),
        ({"alpha": 1.0}, ValueError, "alpha must be a probability"),
        ({"device": "tpu"}, ValueError, "device must be one of"),
    ],
)
def test_variance_preserved_rejects_bad_arguments(kwargs, exc, pattern):
    args = {"init_fn": ni.he_normal_, "nonlinearity": "relu", **kwargs}
    with pytest.raises(exc, match=pattern):
        check_variance_preserved(args.pop("init_fn"), **args)
    assert set(VARIANCE_NONLINEARITIES) == {"linear", "relu", "leaky_relu", "tanh", "sigmoid"}


# ============================================================================ variance_profile
def _mlp(device, init=None, seed=0, widths=(32, 64, 64, 10), inplace=False):
    with netprops.seeded_global_rng(seed):
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU(inplace=inplace))
        model = nn.Sequential(*layers).to(device)
    if init is not None:
        ni.init_network(model, init, generator=netprops.make_generator(seed, device))
    return model


def _cnn(device, seed=0, inplace=True):
    with netprops.seeded_global_rng(seed):
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )
    return model.to(device)


def _reference_rows(model, x, target):
    """E[z²], Var[act], E[g²] per weight layer by hand (non-in-place copies of each step)."""
    zs, acts, h = [], [], x
    for module in model:
        h = F.relu(h) if isinstance(module, nn.ReLU) else module(h)  # never in place
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            zs.append(h)
            acts.append(None)
        elif isinstance(module, (nn.ReLU, nn.Tanh)) and acts[-1] is None:
            acts[-1] = h
    acts[-1] = h if acts[-1] is None else acts[-1]
    loss = F.cross_entropy(h.double(), target, reduction="sum")
    grads = torch.autograd.grad(loss, zs)
    return [
        (
            float(z.detach().double().square().mean()),
            float(a.detach().double().var(unbiased=False)),
            float(g.double().square().mean()),
        )
        for z, a, g in zip(zs, acts, grads, strict=True)
    ]


@pytest.mark.parametrize(("builder", "shape"), [(_mlp, (16, 32)), (_cnn, (4, 3, 8, 8))])
def test_profile_matches_a_hand_computation(device, builder, shape):
    model = builder(device)
    g = netprops.make_generator(3, device)
    x = torch.randn(shape, generator=g, device=device)
    target = torch.randint(0, 10, (shape[0],), generator=g, device=device)
    profile = variance_profile(model, x, target=target)
    expected = _reference_rows(model, x, target)
    assert len(profile) == len(expected)
    for row, (pre, act, grad) in zip(profile, expected, strict=True):
        assert row.pre_second_moment == pytest.approx(pre, rel=1e-5)
        assert row.act_variance == pytest.approx(act, rel=1e-5)
        assert row.grad_second_moment == pytest.approx(grad, rel=1e-5)
    kinds = [row.kind for row in profile]
    assert kinds == [type(m).__name__ for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert profile.layers[0].shape == tuple(model[0](x).shape)


def test_in_place_activation_gives_pre_activation_gradients(device):
    g = netprops.make_generator(1, device)
    x = torch.randn(16, 32, generator=g, device=device)
    a = variance_profile(_mlp(device, inplace=True), x, seed=2)
    b = variance_profile(_mlp(device, inplace=False), x, seed=2)
    assert a.to_dict() == b.to_dict()


def test_profile_leaves_the_model_as_it_was(device):
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4)
        )
    model = model.to(device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 8, generator=netprops.make_generator(0, device), device=device)
    first = variance_profile(model, x, seed=5)
    assert variance_profile(model, x, seed=5) == first  # dropout and targets replay from the seed
    assert variance_profile(model, x, seed=6) != first
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_hooks_are_removed_when_the_forward_pass_raises(device):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("broken layer")

    model = nn.Sequential(_mlp(device, widths=(4, 4)), Broken())
    with pytest.raises(RuntimeError, match="broken layer"):
        variance_profile(model, torch.ones(2, 4, device=device))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_profile_str_and_to_dict(device):
    model = _mlp(device)
    x = torch.randn(4, 32, generator=netprops.make_generator(0, device), device=device)
    profile = variance_profile(model, x)
    text = str(profile)
    assert text.splitlines()[0].startswith("VarianceProfile: 3 layers; loss: cross-entropy")
    for word in ("E[z²]", "Var[act]", "E[g²]", "Linear", "4×64"):
        assert word in text
    data = json.loads(json.dumps(profile.to_dict()))
    assert [row["name"] for row in data["layers"]] == ["0", "2", "4"]
    assert data["seed"] == 0


def test_profile_of_non_classifier_outputs_uses_random_projections(device):
    model = _cnn(device)
    body = nn.Sequential(*list(model)[:4])  # conv output is 4-D
    x = torch.randn(2, 3, 8, 8, generator=netprops.make_generator(0, device), device=device)
    profile = variance_profile(body, x)
    assert profile.loss == "sum(output · N(0, 1) noise)"
    assert not math.isnan(profile.layers[-1].act_variance)  # last layer: its own output
    with torch.no_grad():  # works inside no_grad too
        again = variance_profile(body, x)
    assert again == profile


def test_profile_with_explicit_float_target(device):
    model = _mlp(device)
    x = torch.randn(4, 32, generator=netprops.make_generator(0, device), device=device)
    profile = variance_profile(model, x, target=torch.zeros(4, 10, device=device))
    assert profile.loss == "½·Σ(output − target)²"
    with torch.no_grad():
        out = model(x)
    # ∂L/∂output = output − target: E[g²] of the last layer is E[output²]
    assert profile.layers[-1].grad_second_moment == pytest.approx(
        float(out.double().square().mean()), rel=1e-6
    )


class TupleOutput(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return y, y


def _linear(n_in=4, n_out=2):
    with netprops.seeded_global_rng(0):
        return nn.Linear(n_in, n_out)


@pytest.mark.parametrize(
    ("make", "x", "target", "exc", "pattern"),
    [
        (lambda: "not a model", torch.ones(2, 4), None, TypeError, "model must be Module"),
        (_linear, [1.0], None, TypeError, "x must be Tensor"),
        (nn.ReLU, torch.ones(2, 4), None, ValueError, "called no weight layer"),
        (
            _linear,
            torch.ones(2, 4),
            torch.ones(3),
            ValueError,
            "target must have the output's shape",
        ),
        (_linear, torch.ones(2, 4), torch.ones(3, dtype=torch.long), ValueError, "class index"),
        (
            lambda: TupleOutput(_linear()),
            torch.ones(2, 4),
            None,
            TypeError,
            "output must be a floating-point torch.Tensor",
        ),
    ],
)
def test_profile_rejects_bad_arguments(make, x, target, exc, pattern):
    with pytest.raises(exc, match=pattern):
        variance_profile(make(), x, target=target)


# ============================================================================ check_model_variance
def test_he_initialized_deep_relu_mlp_stays_in_band(device):
    model = _mlp(device, init="he", widths=(128, 256, 256, 256, 256, 256, 256, 10))
    x = torch.randn(256, 128, generator=netprops.make_generator(0, device), device=device)
    result = check_model_variance(model, x, device=device)
    assert 0.25 <= result.statistic <= 4.0
    assert isinstance(result.details["profile"], VarianceProfile)
    assert "profile:" in str(result)


@pytest.mark.parametrize(
    ("scheme", "params", "pattern"),
    [
        ("normal", {"std": 1.0}, "pre-activation"),  # ×128 per layer
        ("xavier", {}, "pre-activation"),  # ×½ per ReLU layer
        ("normal", {"std": 0.01}, "pre-activation"),
    ],
)
def test_badly_scaled_mlps_leave_the_band(device, scheme, params, pattern):
    model = _mlp(device, widths=(128, 256, 256, 256, 256, 256, 256, 10))
    ni.init_network(model, scheme, generator=netprops.make_generator(0, device), **params)
    x = torch.randn(64, 128, generator=netprops.make_generator(0, device), device=device)
    with pytest.raises(netprops.PropertyViolation, match=pattern) as info:
        check_model_variance(model, x, seed=2)
    message = str(info.value)
    assert_reports(message, check="check_model_variance", seed=2)
    assert "VarianceProfile" in message


@pytest.mark.parametrize(
    ("band", "exc", "pattern"),
    [
        ((2.0, 4.0), ValueError, "0 < low <= 1 <= high"),
        ((0.5,), ValueError, r"band must be a pair"),
        ((0.0, 2.0), ValueError, r"band\[0\] must be a finite number > 0"),
        (2.0, TypeError, "band must be tuple or list"),
    ],
)
def test_model_variance_rejects_bad_bands(band, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_model_variance(
            nn.Linear(2, 2, device="meta"), torch.ones(1, 2, device="meta"), band=band
        )


def test_profiles_replay_module_generators_and_leave_them_untouched():
    from netprops.layers import DropConnectLinear

    gen = netprops.make_generator(1)
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(
            nn.Linear(16, 32),
            nn.ReLU(),
            DropConnectLinear(32, 32, p=0.5, generator=gen),
            nn.ReLU(),
            nn.Linear(32, 4),
        )
    x = torch.randn(8, 16, generator=netprops.make_generator(0))
    state = gen.get_state().clone()
    first = variance_profile(model, x, seed=0)
    second = variance_profile(model, x, seed=0)
    assert [r.pre_second_moment for r in first] == [r.pre_second_moment for r in second]
    assert torch.equal(gen.get_state(), state)


def test_model_variance_skips_the_gradient_band_when_no_gradient_reaches_it():
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Embedding(100, 32), nn.Flatten(), nn.Linear(32 * 5, 10))
    model[0].weight.requires_grad_(False)
    tokens = torch.randint(0, 100, (4, 5), generator=netprops.make_generator(0))
    result = check_model_variance(model, tokens)
    assert result.details["gradient_band"].startswith("skipped: no gradient reaches")


def _band_of(result, layer_name):
    """The (low, high) band of a layer's forward ratio, from details["ratios"]."""
    for line in result.details["ratios"]:
        if line.startswith(f"{layer_name} pre-activation"):
            low, high = line.rsplit("[", 1)[1].rstrip("]").split(", ")
            return float(low), float(high)
    raise KeyError(layer_name)


def test_model_variance_bands_follow_width_depth_batch_and_alpha(device):
    def he(widths):
        return _mlp(device, init="he", widths=widths)

    x = torch.randn(64, 32, generator=netprops.make_generator(0, device), device=device)
    narrow = check_model_variance(he((32, 64, 64, 64, 10)), x)
    wide = check_model_variance(he((32, 512, 512, 512, 10)), x)
    # log half-width ∝ 1/√width for the hidden layers ('4' is the third hidden layer)
    hi_n = _band_of(narrow, "4")[1]
    hi_w = _band_of(wide, "4")[1]
    assert math.log(hi_w) < 0.5 * math.log(hi_n)
    # deeper layers get wider bands (more fluctuation accumulated)
    assert _band_of(wide, "4")[1] > _band_of(wide, "2")[1]
    # a looser alpha gives narrower bands
    loose = check_model_variance(he((32, 512, 512, 512, 10)), x, alpha=1e-2)
    assert _band_of(loose, "4")[1] < hi_w
    # the first layer against the input: a batch of independent examples narrows the band
    one = check_model_variance(he((32, 512, 512, 512, 10)), x[:1])
    assert _band_of(wide, "0")[1] < _band_of(one, "0")[1]
    assert wide.details["effective_batch"] > 10 * one.details["effective_batch"]
    assert wide.alpha == 1e-9 and loose.alpha == 1e-2


@pytest.mark.parametrize(
    ("layer", "factor", "pattern"),
    [
        (0, 10.0, "'0' pre-activation .* vs the input"),
        (-1, 30.0, "'6' pre-activation .* first layer"),
    ],
    ids=["first-layer-vs-input", "output-layer"],
)
def test_model_variance_compares_the_first_and_the_output_layer(device, layer, factor, pattern):
    model = _mlp(device, init="he", widths=(128, 256, 256, 256, 10))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linears[layer].weight.mul_(factor)  # ×100 (first) or ×900 (output) in E[z²]
    x = torch.randn(64, 128, generator=netprops.make_generator(0, device), device=device)
    with pytest.raises(netprops.PropertyViolation, match=pattern):
        check_model_variance(model, x)


def test_model_variance_states_alpha_only_for_derived_bands_and_is_a_heuristic(device):
    model = _mlp(device, init="he", widths=(32, 64, 64, 10))
    x = torch.randn(16, 32, generator=netprops.make_generator(0, device), device=device)
    assert check_model_variance(model, x, band=(0.01, 100.0)).alpha == 0.0
    derived = check_model_variance(model, x, alpha=1e-6)
    assert derived.alpha == 1e-6
    assert derived.details["alpha_holds_for"].startswith("plain stacks")
    assert netprops.checks.get_check("model_variance").verified is False


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"gain_allowance": 0.5}, "gain_allowance must be a number >= 1"), ({"alpha": 0.0}, "alpha")],
)
def test_model_variance_rejects_bad_levels(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_model_variance(nn.Linear(2, 2, device="meta"), torch.ones(1, 2), **kwargs)
