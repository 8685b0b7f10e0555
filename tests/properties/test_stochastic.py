"""Dropout and DropConnect: expectation, drop rate, eval determinism, gradients through the mask,
and the measured false-failure rates of the Monte Carlo checks.

Statistical levels (see conftest.py): every statistical check runs at ``ALPHA``
or below. ``check_expectation_equal`` holds its level for any dependence between
the outputs of one draw and for skewed draws (exact binomial tests for
two-valued outputs, Bennett bounds otherwise: docs/methods.md §Monte Carlo
checks), so p may be drawn anywhere in [0.2, 0.8] plus the edge p = 0, and
shared masks (DropConnect with ``per_sample=False``, convolutions) need no
special input shapes. ``MC_ALPHA = ALPHA/4`` is kept for the Monte Carlo tests
as a margin for the two-valued outputs whose third value was never drawn (the
one approximation of the check, see the methods section).

Dropout is checked through :class:`ExactVarianceDropout`, which adds the exact
``Var y = x²·p/(1−p)``; the check then also tests that reported variance.

The ``*_false_failure_rate`` tests are the cheap version of the calibration
table in docs/methods.md §Calibration and power: a few hundred runs at ``alpha = 0.05``
on correct layers, failing when the count of rejections is above what a rate of
0.05 allows at probability ``ALPHA`` (exact binomial bound).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from netprops import PropertyViolation, make_generator
from netprops.checks.calibration import calibrate
from netprops.checks.contract import check_train_eval_contract
from netprops.checks.stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
)
from netprops.layers.dropout import DropConnectConv2d, DropConnectLinear, Dropout
from netprops.strategies import batch_sizes, probabilities, seeds, widths

from .conftest import ALPHA, hypothesis_settings, randn, register_seeded, statistical

MC_ALPHA = ALPHA / 4
MC_SAMPLES = 1000
DROP_RATE_ENTRIES = 20_000

# p = 0 (exactly the identity / F.linear) or p in [0.2, 0.8] (see the module docstring)
drop_probs = st.one_of(st.just(0.0), probabilities(min_value=0.2, max_value=0.8))


class ExactVarianceDropout(Dropout):
    """netprops Dropout plus the exact variance of its training output, ``x²·p/(1−p)``."""

    def output_variance(self, x: torch.Tensor) -> torch.Tensor:
        return x.square() * (self.p / (1.0 - self.p))


def _linear(in_f, out_f, p, per_sample, seed, device, dtype=torch.float64):
    return DropConnectLinear(
        in_f,
        out_f,
        p=p,
        per_sample=per_sample,
        generator=make_generator(seed, device),
        device=device,
        dtype=dtype,
    )


def _conv(c_in, c_out, k, p, per_sample, seed, device, dtype=torch.float64, **kwargs):
    return DropConnectConv2d(
        c_in,
        c_out,
        k,
        p=p,
        per_sample=per_sample,
        generator=make_generator(seed, device),
        device=device,
        dtype=dtype,
        **kwargs,
    )


# --------------------------------------------------------------------------- expectation
@statistical(max_examples=8)
@given(p=drop_probs, rows=batch_sizes(max_value=4), features=widths(max_value=4), seed=seeds())
@example(p=0.0, rows=1, features=1, seed=0)
@example(p=0.5, rows=1, features=1, seed=1)
def test_dropout_mean_equals_input(device, p, rows, features, seed):
    x = randn((rows, features), seed, device, torch.float64)
    drop = ExactVarianceDropout(p)
    result = check_expectation_equal(
        drop, x, reference=lambda t: t, n_samples=MC_SAMPLES, alpha=MC_ALPHA, seed=seed
    )
    assert result.details["variance"] == "exact"
    assert drop.training  # the check restores the mode it found


@statistical(max_examples=10)
@given(
    p=drop_probs,
    per_sample=st.booleans(),
    rows=batch_sizes(max_value=4),
    in_f=widths(max_value=8),
    out_f=widths(max_value=4),
    bias=st.booleans(),
    seed=seeds(),
)
@example(p=0.0, per_sample=False, rows=1, in_f=1, out_f=1, bias=True, seed=0)
@example(p=0.5, per_sample=True, rows=1, in_f=1, out_f=1, bias=False, seed=0)
def test_dropconnect_linear_mean_equals_linear(
    device, p, per_sample, rows, in_f, out_f, bias, seed
):
    # per_sample=False shares one mask by all rows: dependent outputs, which the check allows
    layer = DropConnectLinear(
        in_f,
        out_f,
        p=p,
        bias=bias,
        per_sample=per_sample,
        generator=make_generator(seed, device),
        device=device,
        dtype=torch.float64,
    )
    x = randn((rows, in_f), seed + 1, device, torch.float64)
    result = check_expectation_equal(
        layer,
        x,
        reference=lambda t: F.linear(t, layer.weight, layer.bias),
        n_samples=MC_SAMPLES,
        alpha=MC_ALPHA,
        seed=seed,
    )
    assert result.details["variance"] == "exact"


@statistical(max_examples=3)
@given(
    p=drop_probs,
    per_sample=st.booleans(),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 4),
    k=st.integers(1, 3),
    seed=seeds(),
)
@example(p=0.0, per_sample=False, c_in=1, c_out=1, k=1, seed=0)
def test_dropconnect_conv_mean_equals_conv(device, p, per_sample, c_in, c_out, k, seed):
    layer = _conv(c_in, c_out, k, p, per_sample, seed, device)
    # a 2×2 output map of 2 examples: positions share the kernel mask, which the check allows
    x = randn((2, c_in, k + 1, k + 1), seed + 1, device, torch.float64)
    check_expectation_equal(
        layer,
        x,
        reference=lambda t: F.conv2d(t, layer.weight, layer.bias),
        n_samples=MC_SAMPLES,
        alpha=MC_ALPHA,
        seed=seed,
    )


# --------------------------------------------------------------------------- per-example masks
# check_masks_independent is an exact sign test (no tail approximation), so it runs at ALPHA.
# p in [0.2, 0.8] keeps ties rare enough that 256 draws always give the untied comparisons
# a test at ALPHA needs.
@statistical(max_examples=8)
@given(
    kind=st.sampled_from(["dropout", "linear", "conv"]),
    p=probabilities(min_value=0.2, max_value=0.8),
    width=widths(min_value=2, max_value=6),
    seed=seeds(),
)
@example(kind="linear", p=0.5, width=2, seed=0)
def test_per_example_randomness_is_independent(device, kind, p, width, seed):
    if kind == "dropout":
        layer = Dropout(p, generator=make_generator(seed, device))
        x = randn((2, width), seed + 1, device)
    elif kind == "linear":
        layer = _linear(width, 3, p, True, seed, device)
        x = randn((2, width), seed + 1, device, torch.float64)
    else:
        layer = _conv(2, 2, 2, p, True, seed, device)
        x = randn((2, 2, width, width), seed + 1, device, torch.float64)
    result = check_masks_independent(layer, x, n_samples=256, alpha=ALPHA, seed=seed)
    assert result.details["informative"] >= 31


@given(conv=st.booleans(), p=probabilities(min_value=0.2, max_value=0.8), seed=seeds())
@example(conv=False, p=0.5, seed=0)
@hypothesis_settings(max_examples=5)
def test_a_mask_shared_by_the_batch_is_caught(device, conv, p, seed):
    # per_sample=False shares one mask by design: the independence property must reject it
    if conv:
        layer = _conv(2, 2, 2, p, False, seed, device)
        x = randn((1, 2, 3, 3), seed + 1, device, torch.float64)
    else:
        layer = _linear(4, 3, p, False, seed, device)
        x = randn((1, 4), seed + 1, device, torch.float64)
    with pytest.raises(PropertyViolation, match="do not get independent randomness"):
        check_masks_independent(layer, x, n_samples=256, alpha=ALPHA, seed=seed)


# --------------------------------------------------------------------------- drop rate
@statistical(max_examples=10)
@given(p=probabilities(), seed=seeds())
@example(p=0.0, seed=0)
def test_dropout_drop_rate_and_rescale(device, p, seed):
    result = check_drop_rate(
        Dropout(p),
        torch.ones(1, device=device),
        p=p,
        seed=seed,
        n=DROP_RATE_ENTRIES,
        alpha=ALPHA,
    )
    low, high = result.bound
    assert low <= result.statistic <= high
    if p == 0:
        assert result.statistic == 0


@statistical(max_examples=10)
@given(
    p=probabilities(),
    conv=st.booleans(),
    per_sample=st.booleans(),
    width=widths(max_value=16),
    seed=seeds(),
)
@example(p=0.0, conv=False, per_sample=False, width=1, seed=0)
def test_dropconnect_drop_rate_and_kept_weights(device, p, conv, per_sample, width, seed):
    if conv:
        layer = _conv(width, 3, 3, p, per_sample, seed, device, torch.float32)
    else:
        layer = _linear(width, 5, p, per_sample, seed, device, torch.float32)
    result = check_drop_rate(layer, p=p, seed=seed, n=DROP_RATE_ENTRIES, alpha=ALPHA)
    assert result.details["source"] == "weight mask"


# --------------------------------------------------------------------------- eval mode
@given(
    kind=st.sampled_from(["dropout", "linear", "linear_per_sample", "conv"]),
    p=probabilities(),
    rows=batch_sizes(max_value=6),
    seed=seeds(),
)
@example(kind="dropout", p=0.5, rows=1, seed=0)
@example(kind="linear", p=0.0, rows=1, seed=0)
@hypothesis_settings()
def test_eval_is_deterministic_and_draws_nothing(device, kind, p, rows, seed):
    if kind == "dropout":
        module, x = Dropout(p, generator=make_generator(seed, device)), (rows, 7)
    elif kind == "conv":
        module, x = (
            _conv(2, 3, 3, p, False, seed, device, torch.float32, padding=1),
            (rows, 2, 5, 5),
        )
    else:
        module = _linear(6, 4, p, kind == "linear_per_sample", seed, device, torch.float32)
        x = (rows, 6)
    result = check_train_eval_contract(module, randn(x, seed + 1, device), seed=seed)
    expected = {"dropout": "identity", "conv": "conv2d"}.get(kind, "F.linear")
    assert result.details["dropout_like"] == {"module": expected}


# --------------------------------------------------------------------------- gradients
@given(p=probabilities(), per_sample=st.booleans(), rows=batch_sizes(max_value=5), seed=seeds())
@example(p=0.0, per_sample=False, rows=1, seed=0)
@example(p=0.5, per_sample=True, rows=1, seed=0)
@hypothesis_settings()
def test_dropconnect_linear_gradient_flows_only_through_kept_weights(
    device, p, per_sample, rows, seed
):
    layer = _linear(6, 4, p, per_sample, seed, device)
    x = randn((rows, 6), seed + 1, device, torch.float64).requires_grad_(True)
    g = randn((rows, 4), seed + 2, device, torch.float64)
    layer.train()(x).backward(g)
    q = 1.0 - p
    if p == 0:
        mask = torch.ones((rows, 4, 6) if per_sample else (4, 6), device=device, dtype=x.dtype)
    else:
        mask = layer.last_mask
    if per_sample:
        expected_w = torch.einsum("bo,bi,boi->oi", g, x.detach(), mask) / q
        expected_x = torch.einsum("bo,boi->bi", g, layer.weight.detach() * mask / q)
    else:
        expected_w = (g.T @ x.detach()) * mask / q
        expected_x = g @ (layer.weight.detach() * mask / q)
        assert torch.all(layer.weight.grad[mask == 0] == 0)  # dropped weights get exactly 0
    torch.testing.assert_close(layer.weight.grad, expected_w)
    torch.testing.assert_close(layer.bias.grad, g.sum(0))
    torch.testing.assert_close(x.grad, expected_x)


@given(p=probabilities(), per_sample=st.booleans(), rows=batch_sizes(max_value=3), seed=seeds())
@example(p=0.0, per_sample=False, rows=1, seed=0)
@hypothesis_settings(max_examples=10)
def test_dropconnect_conv_gradient_flows_only_through_kept_weights(
    device, p, per_sample, rows, seed
):
    layer = _conv(2, 3, 3, p, per_sample, seed, device, padding=1)
    x = randn((rows, 2, 5, 5), seed + 1, device, torch.float64)
    g = randn((rows, 3, 5, 5), seed + 2, device, torch.float64)
    layer.train()(x).backward(g)
    q = 1.0 - p
    mask = layer.last_mask if p > 0 else torch.ones_like(layer.weight)
    masks = mask if per_sample else mask.expand(rows, *mask.shape)
    expected = torch.zeros_like(layer.weight)
    for b in range(rows):  # the gradient of F.conv2d at example b's effective kernel
        w_eff = (layer.weight.detach() * masks[b] / q).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.conv2d(x[b : b + 1], w_eff, padding=1), w_eff, g[b : b + 1])
        expected += grad * masks[b] / q
    torch.testing.assert_close(layer.weight.grad, expected)
    if not per_sample:
        assert torch.all(layer.weight.grad[mask == 0] == 0)


@given(p=probabilities(), shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), seed=seeds())
@example(p=0.0, shape=[1], seed=0)
@hypothesis_settings()
def test_dropout_gradient_is_the_forward_mask(device, p, shape, seed):
    drop = Dropout(p, generator=make_generator(seed, device))
    x = randn(tuple(shape), seed + 1, device, torch.float64, offset=3.0).abs().requires_grad_(True)
    g = randn(tuple(shape), seed + 2, device, torch.float64)
    y = drop.train()(x)
    y.backward(g)
    kept = y.detach() != 0  # x > 0 everywhere, so y = 0 exactly where the mask dropped
    scale = torch.where(kept, 1.0 / (1.0 - p), 0.0)
    torch.testing.assert_close(y.detach(), x.detach() * scale)
    torch.testing.assert_close(x.grad, g * scale)


# --------------------------------------------------------------------------- calibration
CALIBRATION_RUNS = 150
CALIBRATION_ALPHA = 0.05
#: Most rejections out of CALIBRATION_RUNS that a rate <= CALIBRATION_ALPHA gives with
#: probability >= 1 − ALPHA (each test below is one statistical use at level ALPHA).
MAX_REJECTIONS = int(stats.binom.isf(ALPHA, CALIBRATION_RUNS, CALIBRATION_ALPHA))


class DropPath(torch.nn.Module):
    """Stochastic depth with a generator: one draw per example, kept ones × 1/(1−p)."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        keep = torch.rand(shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)


def _expectation_subject(case: str, device: str):
    def make(seed: int):
        gen = make_generator(seed, device)
        if case == "dropout p=0.05":
            return Dropout(0.05, generator=gen), randn((2, 4), seed + 1, device)
        if case == "dropout p=0.95":
            return Dropout(0.95, generator=gen), randn((2, 4), seed + 1, device)
        if case == "Dropout2d":
            return torch.nn.Dropout2d(0.3), randn((2, 3, 2, 2), seed + 1, device)
        if case == "drop-path":
            return DropPath(0.2, gen), randn((4, 3), seed + 1, device)
        layer = _linear(3, 2, 0.3, case.startswith("per-sample"), seed, device)
        return layer, randn((2, 3), seed + 1, device, torch.float64)

    return make


EXPECTATION_CASES = ["dropout p=0.05", "Dropout2d", "per-sample DropConnect (exact variance)"]


@pytest.mark.parametrize("case", EXPECTATION_CASES)
def test_expectation_equal_false_failure_rate(device, case):
    result = calibrate(
        check_expectation_equal,
        _expectation_subject(case, device),
        runs=CALIBRATION_RUNS,
        alpha=CALIBRATION_ALPHA,
        n_samples=48,
    )
    assert result.failures <= MAX_REJECTIONS, str(result)


register_seeded(test_expectation_equal_false_failure_rate, 1, cases=len(EXPECTATION_CASES))


def test_drop_rate_false_failure_rate(device):
    def make(seed):  # one draw per channel: counted per channel
        return torch.nn.Dropout2d(0.3), torch.ones(2, 3, 4, 4, device=device)

    result = calibrate(check_drop_rate, make, runs=CALIBRATION_RUNS, alpha=CALIBRATION_ALPHA, n=500)
    assert result.failures <= MAX_REJECTIONS, str(result)


register_seeded(test_drop_rate_false_failure_rate, 1)


def test_masks_independent_false_failure_rate(device):
    def make(seed):
        return Dropout(0.5, generator=make_generator(seed, device)), randn((1, 3), seed, device)

    result = calibrate(
        check_masks_independent, make, runs=CALIBRATION_RUNS, alpha=CALIBRATION_ALPHA, n_samples=32
    )
    assert result.failures <= MAX_REJECTIONS, str(result)


register_seeded(test_masks_independent_false_failure_rate, 1)
