"""Activation forward + backward: netprops' autograd Functions vs ``torch.nn``.

Batch 128 × 512, float32, gradient of the input. Target on the CPU:
netprops ≤ 1.5× torch (ratio report at the end of the run).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netprops import make_generator
from netprops.layers.activations import get_activation

pytestmark = pytest.mark.benchmark

BATCH, FEATURES = 128, 512

TORCH_ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # both default to negative_slope=0.01
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


@pytest.mark.parametrize("layer", list(TORCH_ACTIVATIONS))
def test_activation_forward_backward(benchmark, forward_backward, layer, impl, device):
    g = make_generator(0, device)
    x = torch.randn(BATCH, FEATURES, generator=g, device=device, requires_grad=True)
    grad_out = torch.randn(BATCH, FEATURES, generator=g, device=device)
    reference = TORCH_ACTIVATIONS[layer]()
    module = get_activation(layer) if impl == "netprops" else reference
    torch.testing.assert_close(module(x), reference(x))

    benchmark.group = f"{layer}-{device}"
    benchmark(forward_backward(module, (x,), (x,), grad_out, device))
