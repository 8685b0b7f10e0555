"""``check_gradcheck`` (finite differences, float64) on every custom ``autograd.Function``.

Covered: the six activation Functions, MaxPool2dFunction, AvgPool2dFunction,
LayerNorm's and BatchNorm's Functions (parameters differentiated too).
Finite differences with step 1e-6 are wrong across a kink, so piecewise
activations get inputs at least 0.05 from 0, and max pooling gets distinct
values 0.1 apart (a tie within the step would move the arg-max).
"""

from __future__ import annotations

import torch
from hypothesis import example, given
from hypothesis import strategies as st

from netprops import make_generator
from netprops.checks.gradients import check_gradcheck
from netprops.layers.activations import ELU, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.layers.pooling import AvgPool2d, MaxPool2d
from netprops.strategies import seeds

from .conftest import hypothesis_settings, randn

ACTIVATION_MODULES = {
    "sigmoid": lambda a: Sigmoid(),
    "tanh": lambda a: Tanh(),
    "relu": lambda a: ReLU(),
    "leaky_relu": lambda a: LeakyReLU(a),
    "elu": lambda a: ELU(abs(a)),
    "silu": lambda a: SiLU(),
}


def _away_from_zero(x: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    return torch.where(x >= 0, x + margin, x - margin)


@given(
    name=st.sampled_from(sorted(ACTIVATION_MODULES)),
    param=st.floats(-2.0, 2.0),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=seeds(),
)
@example(name="relu", param=0.0, shape=[1], seed=0)
@hypothesis_settings()
def test_activation_functions_pass_gradcheck(device, name, param, shape, seed):
    x = _away_from_zero(randn(tuple(shape), seed, device, torch.float64, scale=2.0))
    result = check_gradcheck(ACTIVATION_MODULES[name](param), x, seed=seed, device=device)
    assert result.details["inputs"] == [tuple(shape)]


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 6))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 6))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    return kernel, stride, padding, shape


@given(case=pool_cases(), seed=seeds())
@example(case=((1, 1), (1, 1), (0, 0), (1, 1, 1, 1)), seed=0)  # n = 1
@example(case=((3, 3), (1, 1), (1, 1), (1, 1, 2, 2)), seed=0)  # overlapping, padded
@hypothesis_settings(max_examples=12)
def test_pooling_functions_pass_gradcheck(device, case, seed):
    kernel, stride, padding, shape = case
    numel = torch.Size(shape).numel()
    order = torch.randperm(numel, generator=make_generator(seed)).to(device)
    distinct = (order.to(torch.float64) * 0.1).reshape(shape)  # no ties within the FD step
    check_gradcheck(MaxPool2d(kernel, stride, padding), distinct, seed=seed, device=device)
    x = randn(shape, seed, device, torch.float64)
    check_gradcheck(AvgPool2d(kernel, stride, padding), x, seed=seed, device=device)


@given(
    rows=st.integers(1, 4),
    norm_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2),
    affine=st.booleans(),
    seed=seeds(),
)
@example(rows=1, norm_shape=[1], affine=True, seed=0)
@hypothesis_settings()
def test_layer_norm_function_passes_gradcheck(device, rows, norm_shape, affine, seed):
    ln = LayerNorm(norm_shape, elementwise_affine=affine, device=device, dtype=torch.float64)
    if affine:
        g = make_generator(seed, device)
        with torch.no_grad():
            ln.weight.normal_(generator=g)
            ln.bias.normal_(generator=g)
    x = randn((rows, *norm_shape), seed, device, torch.float64, offset=3.0)
    result = check_gradcheck(ln, x, seed=seed, device=device)
    assert result.details["parameters"] == (2 if affine else 0)


@given(
    rank=st.sampled_from([2, 3, 4]),
    rows=st.integers(2, 4),
    channels=st.integers(1, 3),
    affine=st.booleans(),
    seed=seeds(),
)
@example(rank=2, rows=2, channels=1, affine=True, seed=0)
@hypothesis_settings()
def test_batch_norm_function_passes_gradcheck(device, rank, rows, channels, affine, seed):
    cls = BatchNorm2d if rank == 4 else BatchNorm1d
    bn = cls(channels, affine=affine, device=device, dtype=torch.float64).train()
    if affine:
        g = make_generator(seed, device)
        with torch.no_grad():
            bn.weight.normal_(generator=g)
            bn.bias.normal_(generator=g)
    shape = (rows, channels, *([2] * (rank - 2)))
    check_gradcheck(bn, randn(shape, seed, device, torch.float64), seed=seed, device=device)
