"""DropConnectLinear vs ``nn.Linear`` + ``nn.Dropout``: forward + backward in training mode.

Batch 128, 512 → 512, p = 0.5, float32, gradients of the input, weight and
bias. DropConnect draws a 512 × 512 weight mask per call where dropout draws a
128 × 512 activation mask, so the target on the CPU is netprops ≤ 2× torch.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netprops import make_generator, seeded_global_rng
from netprops.layers.dropout import DropConnectLinear

pytestmark = pytest.mark.benchmark

BATCH, FEATURES, P = 128, 512, 0.5


def test_dropconnect_linear_forward_backward(benchmark, forward_backward, impl, device):
    g = make_generator(0, device)
    x = torch.randn(BATCH, FEATURES, generator=g, device=device, requires_grad=True)
    grad_out = torch.randn(BATCH, FEATURES, generator=g, device=device)
    with seeded_global_rng(0):  # nn.Linear draws its init from the global RNG
        reference = nn.Sequential(nn.Linear(FEATURES, FEATURES), nn.Dropout(P)).to(device)
    ours = DropConnectLinear(
        FEATURES, FEATURES, p=P, generator=make_generator(1, device), device=device
    )
    with torch.no_grad():
        ours.weight.copy_(reference[0].weight)
        ours.bias.copy_(reference[0].bias)
    # Without masks (eval mode) both are the same affine map.
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))
    module = ours.train() if impl == "netprops" else reference.train()

    benchmark.group = f"dropconnect_linear-{device}"
    step = forward_backward(module, (x,), (x, *module.parameters()), grad_out, device)
    # nn.Dropout draws from the global RNG: fork it so the run leaves it untouched.
    with seeded_global_rng(0, devices=(device,)):
        benchmark(step)
