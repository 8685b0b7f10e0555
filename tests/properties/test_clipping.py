"""Gradient clipping by total norm: the public check, and agreement with torch's clip_grad_norm_."""

from __future__ import annotations

import math

import torch
from hypothesis import example, given
from hypothesis import strategies as st

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
