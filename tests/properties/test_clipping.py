"""Gradient clipping by total norm: the public check, and agreement with torch's clip_grad_norm_."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from netprops import PropertyViolation
from netprops.checks.gradients import check_grad_clipping
from netprops.layers.clip import clip_grad_norm_
from netprops.strategies import seeds

from .conftest import hypothesis_settings, randn

norm_types = st.sampled_from([0.5, 1.0, 2.0, 3.5, math.inf])
max_norms = st.floats(1e-3, 1e3)


@given(
    max_norm=max_norms,
    norm_type=norm_types,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=seeds(),
)
@example(max_norm=1.0, norm_type=2.0, dtype=torch.float32, seed=0)
@example(max_norm=1e-3, norm_type=math.inf, dtype=torch.float64, seed=0)
@hypothesis_settings()
def test_clip_grad_norm_passes_the_clipping_check(device, max_norm, norm_type, dtype, seed):
    result = check_grad_clipping(
        clip_grad_norm_,
        max_norm=max_norm,
        norm_type=norm_type,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    assert result.statistic <= result.bound


@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=4),
    max_norm=st.one_of(st.just(0.0), max_norms),
    norm_type=norm_types,
    scale=st.sampled_from([0.0, 1e-3, 1.0, 1e3]),
    seed=seeds(),
)
@example(shapes=[[1]], max_norm=1.0, norm_type=2.0, scale=0.0, seed=0)  # zero gradient
@example(shapes=[[1]], max_norm=0.0, norm_type=1.0, scale=1.0, seed=0)  # max_norm = 0
@hypothesis_settings()
def test_clip_grad_norm_equals_torch(device, shapes, max_norm, norm_type, scale, seed):
    ours, theirs = [], []
    for i, shape in enumerate(shapes):
        grad = scale * randn(tuple(shape), seed + i, device, torch.float64)
        for group in (ours, theirs):
            p = torch.zeros(tuple(shape), device=device, dtype=torch.float64, requires_grad=True)
            p.grad = grad.clone()
            group.append(p)
    bare = torch.zeros(2, device=device, dtype=torch.float64, requires_grad=True)  # no .grad
    total = clip_grad_norm_([*ours, bare], max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_([*theirs, bare], max_norm, norm_type=norm_type)
    torch.testing.assert_close(total, expected)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    assert bare.grad is None


def _total_norm(params, norm_type):
    norms = [torch.linalg.vector_norm(p.grad, norm_type) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


def _scaled_clip(rule):
    """A clip function that scales every gradient by ``rule(max_norm, total)`` above the limit."""

    def clip(parameters, max_norm, norm_type=2.0):
        params = [p for p in parameters if p.grad is not None]
        total = _total_norm(params, norm_type)
        if total > max_norm:
            coef = rule(max_norm, total)
            for p in params:
                p.grad.mul_(coef)
        return total

    return clip


OVER_SHRINKING = {
    "zeroes": _scaled_clip(lambda m, t: 0.0),
    "squares the coefficient": _scaled_clip(lambda m, t: (m / (t + 1e-6)) ** 2),
    "clips to 0.99 max_norm": _scaled_clip(lambda m, t: 0.99 * m / (t + 1e-6)),
}


@given(
    bug=st.sampled_from(sorted(OVER_SHRINKING)),
    max_norm=max_norms,
    norm_type=norm_types,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=seeds(),
)
@example(
    bug="clips to 0.99 max_norm", max_norm=1e-3, norm_type=math.inf, dtype=torch.float32, seed=0
)
@hypothesis_settings()
def test_clipping_below_max_norm_is_caught(device, bug, max_norm, norm_type, dtype, seed):
    # the norm stays under max_norm and the direction is kept: only the lower bound sees it
    with pytest.raises(PropertyViolation, match="more than clipping to max_norm needs"):
        check_grad_clipping(
            OVER_SHRINKING[bug],
            max_norm=max_norm,
            norm_type=norm_type,
            seed=seed,
            device=device,
            dtype=dtype,
        )
