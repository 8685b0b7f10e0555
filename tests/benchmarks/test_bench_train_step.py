"""One training step of the seed MLP 784→500→100→100→10: netprops model vs plain ``torch.nn``.

Batch 128 (input ``(128, 1, 28, 28)``), cross-entropy, Adam 1e-3, float32:
zero the gradients, forward, loss, backward, optimizer step. The netprops
model (``create("mlp-784-500-100-100-10")``, ReLU through netprops'
autograd Function) and an ``nn.Sequential`` with the same weights; the ratio
is reported for information.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from netprops import make_generator, seeded_global_rng
from netprops.models import create

pytestmark = pytest.mark.benchmark

SIZES = (784, 500, 100, 100, 10)
BATCH = 128


def _torch_mlp() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_mlp_train_step(benchmark, impl, device, adam_train_step):
    ours = create("mlp-784-500-100-100-10", seed=0).to(device)
    with seeded_global_rng(0):  # nn.Linear draws its init from the global RNG
        reference = _torch_mlp().to(device)
    ours_params, ref_params = list(ours.parameters()), list(reference.parameters())
    assert [p.shape for p in ours_params] == [p.shape for p in ref_params]
    with torch.no_grad():
        for mine, theirs in zip(ours_params, ref_params, strict=True):
            theirs.copy_(mine)
    g = make_generator(0, device)
    x = torch.randn(BATCH, 1, 28, 28, generator=g, device=device)
    target = torch.randint(0, SIZES[-1], (BATCH,), generator=g, device=device)
    torch.testing.assert_close(ours(x), reference(x))

    model = ours if impl == "netprops" else reference
    benchmark.group = f"mlp_train_step-{device}"
    benchmark(adam_train_step(model, x, target, device))
