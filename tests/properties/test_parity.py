"""Device parity of every layer: outputs, input and parameter gradients, buffers.

With ``--device cuda`` (or ``all``) the CUDA run compares CPU with CUDA in float32;
on the CPU the same comparison runs between float64 and float32
(``check_device_parity(devices=("cpu", "cpu"), dtypes=(float64, float32))``), which
exercises everything but the CUDA kernels. Inputs are float32 values, so both
sides see the same points (and the same side of every kink); max pooling gets
distinct values 0.1 apart so both dtypes pick the same arg-max.
"""

from __future__ import annotations

import torch
from hypothesis import example, given
from hypothesis import strategies as st

from netprops import make_generator
from netprops.checks.normalization import conditioning
from netprops.checks.parity import check_device_parity
from netprops.layers.activations import ACTIVATIONS, get_activation
from netprops.layers.attention import MultiHeadSelfAttention, SqueezeExcitation
from netprops.layers.dropout import DropConnectConv2d, DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.layers.pooling import AvgPool2d, MaxPool2d
from netprops.layers.residual import BasicBlock, ResidualMLPBlock, WideBasicBlock
from netprops.strategies import seeds

from .conftest import hypothesis_settings, randn

MODULES = (
    "activation",
    "layer_norm",
    "batch_norm_1d",
    "batch_norm_2d",
    "max_pool",
    "avg_pool",
    "dropout",
    "dropconnect_linear",
    "dropconnect_conv",
    "basic_block",
    "wide_block",
    "mlp_block",
    "attention",
    "squeeze_excitation",
)


def _parity(module, x, device, seed, kappa=1.0):
    if device == "cpu":
        return check_device_parity(
            module,
            x,
            devices=("cpu", "cpu"),
            dtypes=(torch.float64, torch.float32),
            seed=seed,
            kappa=kappa,
        )
    return check_device_parity(module, x, devices=("cpu", device), seed=seed, kappa=kappa)


def _case(name: str, seed: int, device: str, train: bool):
    """(module, input, kappa) for one layer kind; modules are built on the CPU."""
    g = make_generator(seed)
    if name == "activation":
        act = ACTIVATIONS[seed % len(ACTIVATIONS)]
        return get_activation(act), randn((3, 7), seed, device, scale=3.0), 1.0
    if name == "layer_norm":
        x = randn((4, 2, 6), seed, device, offset=float(seed % 7) * 10.0)
        return LayerNorm((2, 6)), x, float(conditioning(x, (1, 2), 1e-5).max())
    if name == "batch_norm_1d":
        return BatchNorm1d(5, momentum=None).train(train), randn((6, 5, 3), seed, device), 1.0
    if name == "batch_norm_2d":
        return BatchNorm2d(3).train(train), randn((4, 3, 2, 2), seed, device), 1.0
    if name in ("max_pool", "avg_pool"):
        order = torch.randperm(2 * 3 * 5 * 5, generator=g).to(device)
        x = (order.to(torch.float32) * 0.1 - 7.0).reshape(2, 3, 5, 5)
        cls = MaxPool2d if name == "max_pool" else AvgPool2d
        return cls(3, stride=2, padding=1), x, 1.0
    if name == "dropout":
        return Dropout(0.4, generator=g), randn((3, 8), seed, device), 1.0
    if name == "dropconnect_linear":
        return DropConnectLinear(6, 4, p=0.3, generator=g), randn((3, 6), seed, device), 1.0
    if name == "dropconnect_conv":
        layer = DropConnectConv2d(2, 3, 3, padding=1, p=0.3, generator=g)
        return layer, randn((2, 2, 4, 4), seed, device), 1.0
    if name == "basic_block":
        block = BasicBlock(2, 3, stride=2, generator=g).train(train)
        return block, randn((3, 2, 4, 4), seed, device), 1.0
    if name == "wide_block":
        block = WideBasicBlock(3, 3, dropout=0.2, generator=g).train(train)
        return block, randn((2, 3, 4, 4), seed, device), 1.0
    if name == "mlp_block":
        block = ResidualMLPBlock(4, 6, norm="layer", dropout=0.3, generator=g)
        return block.train(train), randn((5, 4), seed, device), 1.0
    if name == "attention":
        return MultiHeadSelfAttention(8, 2, generator=g), randn((2, 5, 8), seed, device), 1.0
    return SqueezeExcitation(4, reduction=2, generator=g), randn((2, 4, 3, 3), seed, device), 1.0


@given(name=st.sampled_from(MODULES), train=st.booleans(), seed=seeds())
@example(name="layer_norm", train=True, seed=6)  # offset 60: kappa ~ 60
@example(name="batch_norm_1d", train=True, seed=0)  # running statistics compared too
@hypothesis_settings(max_examples=20)
def test_layers_compute_the_same_across_devices_and_dtypes(device, name, train, seed):
    module, x, kappa = _case(name, seed, device, train)
    result = _parity(module.train(train) if name != "mlp_block" else module, x, device, seed, kappa)
    assert "output" in result.details["errors"]
    if any(p.requires_grad for p in module.parameters()):
        assert any(key.startswith("grad of ") for key in result.details["errors"])
