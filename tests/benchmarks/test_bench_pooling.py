"""2-D max and average pooling forward + backward: netprops vs ``torch.nn``.

Input 128 × 16 × 16 × 16, float32, 2×2 windows with stride 2, gradient of the
input. No target; the ratio is reported for information. Max pooling takes its
non-overlapping fast path here (elementwise maxima of strided slices and a
winner mask), average pooling a strided view and ``fold``; torch's CPU kernels
walk each window in scalar code.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netprops import make_generator
from netprops.layers.pooling import AvgPool2d, MaxPool2d

pytestmark = pytest.mark.benchmark

SHAPE = (128, 16, 16, 16)

CASES = {"max_pool2d": (MaxPool2d, nn.MaxPool2d), "avg_pool2d": (AvgPool2d, nn.AvgPool2d)}


@pytest.mark.parametrize("layer", list(CASES))
def test_pool_forward_backward(benchmark, forward_backward, layer, impl, device):
    ours, theirs = CASES[layer]
    g = make_generator(0, device)
    x = torch.randn(SHAPE, generator=g, device=device, requires_grad=True)
    reference = theirs(2)
    module = ours(2) if impl == "netprops" else reference
    out = module(x)
    torch.testing.assert_close(out, reference(x))
    grad_out = torch.randn(out.shape, generator=g, device=device)

    benchmark.group = f"{layer}-{device}"
    benchmark(forward_backward(module, (x,), (x,), grad_out, device))
