"""LayerNorm, BatchNorm1d and BatchNorm2d forward + backward: netprops vs ``torch.nn``.

Batch 128 × 512 features (BatchNorm2d: 128 × 32 channels × 4 × 4, the same 512
values per example), float32, training mode, gradients for the input and the
affine parameters. Target on the CPU: netprops ≤ 1.5× torch (ratio report at
the end of the run).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netprops import make_generator
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm

pytestmark = pytest.mark.benchmark

BATCH, FEATURES = 128, 512

# layer -> (netprops class, torch class, constructor argument, input shape)
CASES = {
    "layer_norm": (LayerNorm, nn.LayerNorm, FEATURES, (BATCH, FEATURES)),
    "batch_norm1d": (BatchNorm1d, nn.BatchNorm1d, FEATURES, (BATCH, FEATURES)),
    "batch_norm2d": (BatchNorm2d, nn.BatchNorm2d, 32, (BATCH, 32, 4, 4)),
}


@pytest.mark.parametrize("layer", list(CASES))
def test_norm_forward_backward(benchmark, forward_backward, layer, impl, device):
    ours, theirs, arg, shape = CASES[layer]
    g = make_generator(0, device)
    x = torch.randn(shape, generator=g, device=device, requires_grad=True)
    grad_out = torch.randn(shape, generator=g, device=device)
    reference = theirs(arg, device=device)
    module = ours(arg, device=device) if impl == "netprops" else theirs(arg, device=device)
    # Same computation on both sides (weights are ones/zeros by default, no randomness).
    torch.testing.assert_close(module(x), reference(x))

    benchmark.group = f"{layer}-{device}"
    step = forward_backward(module, (x,), (x, *module.parameters()), grad_out, device)
    benchmark(step)
