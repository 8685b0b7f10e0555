"""Variance preservation at initialization (docs/methods.md §Variance preservation), on drawn widths, depths and seeds.

Xavier keeps E[z²] through linear layers and, with tanh's gain 5/3, near the
mean-field fixed point; He keeps it through ReLU / leaky ReLU; plain N(0, 1) or
N(0, 0.01²) weights and Xavier under ReLU do not. The expected weight scales
come from the formulas (fans counted here, gains from ``torch.nn.init``), not
from ``netprops.init``.

Levels: ``check_variance_preserved``'s depth test (T3) approximates a sum of
``depth × n_networks`` terms ``log χ²`` by a normal law whose left tail is too
light at small sizes. An exact convolution of the per-layer laws (``log χ²_n``
for linear layers, the ``Bin(n, ½)`` mixture of ``log χ²_K`` for ReLU) shows,
for width 64, depth 4, 4 networks and ReLU, a false-failure rate 17× the α the
check is given (≈ 1.1× at its defaults 256/16/16). Here width ∈ [96, 128],
depth ∈ [4, 8], 8 networks and the check gets ``ALPHA/8``: the exact rate
(T2 + T3) is then ≤ 0.31·ALPHA.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from netprops import PropertyViolation, make_generator
from netprops.checks.calibration import calibrate
from netprops.checks.stats import z_two_sided
from netprops.checks.variance import (
    check_init_distribution,
    check_model_variance,
    check_variance_preserved,
)
from netprops.init import (
    NetworkInitializer,
    he_normal_,
    he_uniform_,
    lecun_normal_,
    normal_,
    xavier_normal_,
    xavier_uniform_,
)
from netprops.strategies import seeds

from .conftest import ALPHA, hypothesis_settings, randn, register_seeded, statistical

VP_ALPHA = ALPHA / 8
N_NETWORKS = 8
vp_widths = st.integers(96, 128)
vp_depths = st.integers(4, 8)

XAVIER = {"xavier_normal": xavier_normal_, "xavier_uniform": xavier_uniform_}
HE = {"he_normal": he_normal_, "he_uniform": he_uniform_}


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _preserved(init_fn, nonlinearity, width, depth, seed, device, **kwargs):
    return check_variance_preserved(
        init_fn,
        nonlinearity=nonlinearity,
        width=width,
        depth=depth,
        n_networks=N_NETWORKS,
        seed=seed,
        device=device,
        alpha=VP_ALPHA,
        **kwargs,
    )


# --------------------------------------------------------------------------- preserved
@statistical(max_examples=6)
@given(init=st.sampled_from(sorted(XAVIER)), width=vp_widths, depth=vp_depths, seed=seeds())
@example(init="xavier_normal", width=96, depth=4, seed=0)
def test_xavier_preserves_the_linear_signal(device, init, width, depth, seed):
    result = _preserved(XAVIER[init], "linear", width, depth, seed, device)
    low, high = result.bound
    assert low <= result.statistic <= high
    assert "depth_band" in result.details  # the depth test ran too (linear is homogeneous)


@statistical(max_examples=6)
@given(
    init=st.sampled_from(sorted(HE)),
    slope=st.one_of(st.just(0.0), st.floats(0.0, 0.5)),
    width=vp_widths,
    depth=vp_depths,
    seed=seeds(),
)
@example(init="he_normal", slope=0.0, width=96, depth=4, seed=0)
def test_he_preserves_the_relu_signal(device, init, slope, width, depth, seed):
    if slope == 0.0:
        result = _preserved(HE[init], "relu", width, depth, seed, device)
    else:
        fn = functools.partial(HE[init], a=slope, nonlinearity="leaky_relu")
        result = _preserved(fn, "leaky_relu", width, depth, seed, device, negative_slope=slope)
    assert result.details["depth_band"][0] <= result.details["depth_log_ratio"]


def _mean_field_tolerance(depth: int, width: int, alpha: float) -> float:
    """Band on log(measured E[z_l²]) − log(mean field) for the mean of N_NETWORKS networks.

    Each layer multiplies ‖z‖² by an independent χ²_n/n factor (log-sd √(2/n), bias
    ≈ −1/n), and tanh contracts earlier fluctuations, so the log of one network's
    E[z_l²] has sd ≤ √(2l/n); finite-width corrections to the mean field are O(l/n).
    """
    z = z_two_sided(alpha)
    return z * math.sqrt(2 * depth / (width * N_NETWORKS)) + 3 * depth / width


@statistical(max_examples=6, checks=2)
@given(gain=st.sampled_from([1.0, 5.0 / 3.0]), width=vp_widths, depth=vp_depths, seed=seeds())
@example(gain=5.0 / 3.0, width=128, depth=8, seed=0)
def test_xavier_under_tanh_follows_the_mean_field(device, gain, width, depth, seed):
    fn = functools.partial(xavier_normal_, gain=gain)
    result = _preserved(fn, "tanh", width, depth, seed, device, gain=gain)
    measured = result.details["pre_second_moment"]
    predicted = result.details["mean_field"]
    tol = _mean_field_tolerance(depth, width, ALPHA / 2)
    gaps = [abs(math.log(m / p)) for m, p in zip(measured, predicted, strict=True)]
    assert max(gaps) <= tol, (measured, predicted, tol)
    if gain == 5.0 / 3.0:  # E[z²] falls from 2.78 towards the fixed point ≈ 1.18 (1.24 by layer 4)
        assert 1.17 < predicted[-1] < 1.25
    else:  # Glorot's gain 1 with tanh: E[z²] decays like ~1/(2L)
        assert predicted[-1] < 0.5 * predicted[0]


# --------------------------------------------------------------------------- negative controls
@given(
    case=st.sampled_from(["normal_1", "normal_0.01", "xavier_under_relu", "he_without_sqrt2"]),
    width=vp_widths,
    depth=vp_depths,
    seed=seeds(),
)
@example(case="normal_1", width=96, depth=4, seed=0)
@hypothesis_settings(max_examples=8)
def test_wrong_scales_fail(device, case, width, depth, seed):
    fn = {
        "normal_1": functools.partial(normal_, std=1.0),
        "normal_0.01": functools.partial(normal_, std=0.01),
        "xavier_under_relu": xavier_normal_,
        "he_without_sqrt2": functools.partial(he_normal_, nonlinearity="linear"),
    }[case]
    # the check fails a correct init with probability <= VP_ALPHA; these are off by a
    # factor >= 2 in variance per layer, which T2 alone rejects with certainty at D >= 3000
    with pytest.raises(PropertyViolation, match="check_variance_preserved"):
        _preserved(fn, "relu", width, depth, seed, device)


# --------------------------------------------------------------------------- weight laws
def _scheme(name: str, shape: tuple[int, ...], param: float):
    """(initializer, expected std from the formula, law) for a scheme name."""
    fan_in, fan_out = _fans(shape)
    gain = torch.nn.init.calculate_gain
    if name == "xavier_normal":
        return (
            functools.partial(xavier_normal_, gain=param),
            param * math.sqrt(2 / (fan_in + fan_out)),
            "normal",
        )
    if name == "xavier_uniform":
        return (
            functools.partial(xavier_uniform_, gain=param),
            param * math.sqrt(2 / (fan_in + fan_out)),
            "uniform",
        )
    if name == "lecun_normal":
        return lecun_normal_, 1 / math.sqrt(fan_in), "normal"
    mode = "fan_out" if param > 1.5 else "fan_in"  # param doubles as a coin for the mode
    fan = fan_out if mode == "fan_out" else fan_in
    std = gain("leaky_relu", 0.2) / math.sqrt(fan)
    fill = he_normal_ if name == "he_normal" else he_uniform_
    law = "normal" if name == "he_normal" else "uniform"
    return functools.partial(fill, a=0.2, mode=mode, nonlinearity="leaky_relu"), std, law


@statistical(max_examples=12)
@given(
    name=st.sampled_from(
        ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "lecun_normal"]
    ),
    out_f=st.integers(16, 96),
    in_f=st.integers(16, 96),
    kernel=st.sampled_from([(), (1, 1), (3, 3)]),
    param=st.floats(0.5, 2.0),
    seed=seeds(),
)
@example(name="he_uniform", out_f=16, in_f=96, kernel=(3, 3), param=2.0, seed=0)
@example(name="xavier_uniform", out_f=96, in_f=16, kernel=(), param=1.0, seed=0)
def test_initializers_draw_the_formula_law(device, name, out_f, in_f, kernel, param, seed):
    shape = (out_f, in_f, *kernel)
    fn, std, law = _scheme(name, shape, param)
    # ALPHA/4: the uniform law's Σw² test uses a normal approximation (n >= 256 here)
    result = check_init_distribution(
        fn, shape, expected_std=std, distribution=law, seed=seed, device=device, alpha=ALPHA / 4
    )
    assert result.details["distribution"] == law


# --------------------------------------------------------------------------- whole networks
@statistical(max_examples=5)
@given(depth=st.integers(2, 5), batch=st.integers(8, 32), seed=seeds())
@example(depth=2, batch=8, seed=0)
def test_he_network_keeps_forward_and_backward_moments(device, depth, batch, seed):
    width = 256
    sizes = (64, *([width] * depth), 10)
    model = NetworkInitializer("relu", "he", sizes).build(make_generator(seed, device))
    x = randn((batch, 64), seed + 1, device)
    result = check_model_variance(model, x, seed=seed, alpha=ALPHA)
    assert result.bound[0] <= result.statistic <= result.bound[1]
    assert result.alpha == ALPHA  # derived bands: a stated level for plain stacks like this one
    # every layer is compared, the first one against the input and the output layer too
    assert len(result.details["ratios"]) == 1 + depth + (depth - 1)


@given(
    scheme=st.sampled_from(["normal_1", "normal_0.01", "zeros"]),
    depth=st.integers(3, 5),
    seed=seeds(),
)
@example(scheme="normal_1", depth=3, seed=0)
@hypothesis_settings(max_examples=4)
def test_plain_normal_network_leaves_the_band(device, scheme, depth, seed):
    params = {"normal_1": {"std": 1.0}, "normal_0.01": {"std": 0.01}}.get(scheme, {})
    name = "zeros" if scheme == "zeros" else "normal"
    sizes = (64, *([256] * depth), 10)
    model = NetworkInitializer("relu", name, sizes, **params).build(make_generator(seed, device))
    x = randn((16, 64), seed + 1, device)
    # ×128 (std 1) or ×0.0128 (std 0.01) per layer: out of any derived band after 2 layers
    with pytest.raises(PropertyViolation, match="check_model_variance"):
        check_model_variance(model, x, seed=seed, alpha=ALPHA)


# --------------------------------------------------------------------------- calibration
CALIBRATION_RUNS = 150
CALIBRATION_ALPHA = 0.05
#: Most rejections out of CALIBRATION_RUNS a rate <= CALIBRATION_ALPHA gives at probability
#: >= 1 − ALPHA (exact binomial bound); each test below is one statistical use at ALPHA.
MAX_REJECTIONS = int(stats.binom.isf(ALPHA, CALIBRATION_RUNS, CALIBRATION_ALPHA))

INIT_CASES = {
    "normal": (xavier_normal_, lambda shape: math.sqrt(2 / sum(_fans(shape))), {}),
    "uniform": (xavier_uniform_, lambda shape: math.sqrt(2 / sum(_fans(shape))), {}),
    "truncated_normal": (
        functools.partial(torch.nn.init.trunc_normal_, std=0.5, a=-1.0, b=1.0),
        lambda shape: 0.5,
        {"truncation": (-1.0, 1.0)},
    ),
}


@pytest.mark.parametrize("law", sorted(INIT_CASES))
def test_init_distribution_false_failure_rate(device, law):
    fn, std, extra = INIT_CASES[law]
    shape = (8, 12)  # small: the exact and Chernoff bounds must hold at any size
    result = calibrate(
        check_init_distribution,
        lambda seed: fn,
        runs=CALIBRATION_RUNS,
        alpha=CALIBRATION_ALPHA,
        shape=shape,
        expected_std=std(shape),
        distribution=law,
        device=device,
        **extra,
    )
    assert result.failures <= MAX_REJECTIONS, str(result)


register_seeded(test_init_distribution_false_failure_rate, 1, cases=len(INIT_CASES))


def test_variance_preserved_false_failure_rate(device):
    # ReLU at width 16: the depth test's exact law has the heavy left tail the normal
    # approximation missed
    result = calibrate(
        check_variance_preserved,
        lambda seed: he_normal_,
        runs=CALIBRATION_RUNS,
        alpha=CALIBRATION_ALPHA,
        nonlinearity="relu",
        width=16,
        depth=3,
        n_networks=2,
        device=device,
    )
    assert result.failures <= MAX_REJECTIONS, str(result)


register_seeded(test_variance_preserved_false_failure_rate, 1)


def test_model_variance_false_failure_rate(device):
    # the stated level holds for plain ReLU stacks with Gaussian weights and zero biases
    def make(seed):
        sizes = (16, 32, 32, 32, 4)
        model = NetworkInitializer("relu", "he", sizes).build(make_generator(seed, device))
        return model, randn((8, 16), seed + 1, device)

    # each run is a forward and backward pass: fewer runs at a looser level
    runs, level = 40, 0.2
    result = calibrate(check_model_variance, make, runs=runs, alpha=level)
    assert result.failures <= stats.binom.isf(ALPHA, runs, level), str(result)


register_seeded(test_model_variance_false_failure_rate, 1)
