"""check_symmetry_broken: interchangeable units (same incoming weights AND same gradients) fail."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import netprops
from netprops import init as ni
from netprops.checks.symmetry import check_symmetry_broken


def _mlp(device, activation=nn.ReLU, widths=(12, 16, 16, 5), seed=0):
    with netprops.seeded_global_rng(seed):  # torch's default init draws from the global RNG
        layers = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(activation())
        return nn.Sequential(*layers).to(device)


def _x(device, shape=(32, 12), seed=1):
    return torch.randn(shape, generator=netprops.make_generator(seed, device), device=device)


def _tied_count(message):
    return int(float(re.search(r"statistic: +(\S+)", message).group(1)))


@pytest.mark.parametrize("scheme", ["he", "xavier", "lecun"])
def test_random_initializations_break_symmetry(device, scheme):
    model = _mlp(device)
    ni.init_network(model, scheme, generator=netprops.make_generator(2, device))
    result = check_symmetry_broken(model, _x(device), seed=3)
    assert result.statistic == 0.0 and result.bound == 0.0
    assert result.details["layers_checked"] == 3
    assert "check_symmetry_broken: passed" in str(result)


def test_torch_default_init_and_a_cnn_break_symmetry(device):
    check_symmetry_broken(_mlp(device), _x(device))
    with netprops.seeded_global_rng(0):
        cnn = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 6 * 6, 4),
        ).to(device)
    result = check_symmetry_broken(cnn, _x(device, (4, 3, 6, 6)))
    assert result.details["layers_checked"] == 3


@pytest.mark.parametrize(("scheme", "params"), [("zeros", {}), ("normal", {"std": 0.0})])
def test_zero_initialization_is_a_catastrophe(device, scheme, params):
    model = _mlp(device)
    ni.init_network(model, scheme, generator=netprops.make_generator(0, device), **params)
    with pytest.raises(netprops.PropertyViolation, match="interchangeable units"):
        check_symmetry_broken(model, _x(device))  # random targets
    # With zero weights every hidden activation is 0, so only the output biases' gradients
    # (softmax − one-hot summed over the batch) separate output units: classes with equal
    # target counts tie as well. Distinct counts leave just the hidden layers tied.
    target = torch.tensor([0] + [1] * 2 + [2] * 4 + [3] * 8 + [4] * 17, device=device)
    with pytest.raises(netprops.PropertyViolation) as info:
        check_symmetry_broken(model, _x(device), target=target, seed=4)
    message = str(info.value)
    assert "0 (Linear): 16 of 16 units in 1 tied group(s)" in message
    assert "2 (Linear): 16 of 16 units in 1 tied group(s)" in message
    assert _tied_count(message) == 32
    assert "output layer" not in message
    reproduce = "reproduce: netprops.checks.check_symmetry_broken(model, x, target=target, seed=4)"
    for part in ("bound:     <= 0", "seed:      4", reproduce):
        assert part in message


def test_constant_initialization_ties_units_despite_rounding(device):
    model = _mlp(device, activation=nn.Tanh, widths=(12, 64, 64, 5))
    for module in model:
        if isinstance(module, nn.Linear):
            nn.init.constant_(module.weight, 0.1)
            nn.init.constant_(module.bias, 0.01)
    with pytest.raises(netprops.PropertyViolation) as info:
        check_symmetry_broken(model, _x(device, (257, 12)))
    assert "64 of 64 units" in str(info.value)


def test_equal_weights_with_different_gradients_pass(device):
    # Zero first layer under tanh: tanh'(0) = 1, so the units receive W2ᵀg, different per unit.
    model = _mlp(device, activation=nn.Tanh)
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    check_symmetry_broken(model, _x(device))
    # Under ReLU, relu'(0) = 0: the same zero layer receives no gradient and stays tied.
    model = _mlp(device, activation=nn.ReLU)
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    with pytest.raises(netprops.PropertyViolation, match=r"0 \(Linear\): 16 of 16"):
        check_symmetry_broken(model, _x(device))


def _duplicate_unit(model, layer, src, dst, *, outgoing=True):
    """Make unit ``dst`` of Linear ``model[layer]`` a copy of unit ``src``."""
    with torch.no_grad():
        model[layer].weight[dst] = model[layer].weight[src]
        model[layer].bias[dst] = model[layer].bias[src]
        if outgoing:
            model[layer + 2].weight[:, dst] = model[layer + 2].weight[:, src]


def test_one_duplicated_unit_is_found(device):
    model = _mlp(device)
    _duplicate_unit(model, 2, src=3, dst=11)
    with pytest.raises(netprops.PropertyViolation) as info:
        check_symmetry_broken(model, _x(device))
    message = str(info.value)
    assert "2 (Linear): 2 of 16 units in 1 tied group(s), e.g. units [3, 11]" in message
    assert "0 (Linear)" not in message


def test_same_incoming_but_different_outgoing_weights_pass(device):
    model = _mlp(device)
    _duplicate_unit(model, 2, src=3, dst=11, outgoing=False)
    check_symmetry_broken(model, _x(device))


def test_tied_output_units_are_reported_as_the_output_layer(device):
    model = _mlp(device)
    _duplicate_unit(model, 4, src=0, dst=1, outgoing=False)
    # no example of class 0 or 1: their logits and gradients are identical
    target = torch.arange(32, device=device) % 3 + 2
    with pytest.raises(
        netprops.PropertyViolation, match=r"4 \(Linear, output layer\): 2 of 5 units"
    ):
        check_symmetry_broken(model, _x(device), target=target)
    check_symmetry_broken(model, _x(device), target=torch.arange(32, device=device) % 5)


def test_conv_channels_can_tie(device):
    with netprops.seeded_global_rng(0):
        cnn = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4)
        ).to(device)
    nn.init.zeros_(cnn[0].weight)
    nn.init.zeros_(cnn[0].bias)
    with pytest.raises(netprops.PropertyViolation, match=r"0 \(Conv2d\): 8 of 8 units"):
        check_symmetry_broken(cnn, _x(device, (4, 3, 6, 6)))


def test_model_is_left_untouched(device):
    model = _mlp(device)
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check_symmetry_broken(model, _x(device))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "0.weight")
    assert all(not m._forward_hooks for m in model.modules())


def test_frozen_layers_are_compared_by_weights(device):
    model = _mlp(device)
    _duplicate_unit(model, 2, src=0, dst=1, outgoing=False)
    model[2].requires_grad_(False)  # frozen: nothing will ever separate units 0 and 1
    with pytest.raises(netprops.PropertyViolation, match=r"units \[0, 1\]"):
        check_symmetry_broken(model, _x(device))


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_every_duplicated_pair_is_counted(device, pairs, seed):
    model = _mlp(device, widths=(12, 24, 24, 5), seed=seed)
    for k in range(pairs):
        _duplicate_unit(model, 2, src=2 * k, dst=2 * k + 1)
    with pytest.raises(netprops.PropertyViolation) as info:
        check_symmetry_broken(model, _x(device), seed=seed)
    assert _tied_count(str(info.value)) == 2 * pairs


@pytest.mark.parametrize(
    ("model", "x", "kwargs", "exc", "pattern"),
    [
        ("model", torch.ones(2, 12), {}, TypeError, "model must be Module"),
        (None, "x", {}, TypeError, "x must be Tensor"),
        (None, torch.ones(2, 12), {"seed": -1}, ValueError, "seed must be an int >= 0"),
        (None, torch.ones(2, 12), {"device": "tpu"}, ValueError, "device must be one of"),
        (nn.Identity(), torch.ones(2, 12), {}, ValueError, "called no weight layer"),
    ],
)
def test_symmetry_check_rejects_bad_arguments(model, x, kwargs, exc, pattern):
    model = _mlp("cpu") if model is None else model
    with pytest.raises(exc, match=pattern):
        check_symmetry_broken(model, x, **kwargs)


def _transposed_net(tie: bool) -> nn.Module:
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(
            nn.Linear(8, 4),
            nn.Unflatten(1, (4, 1, 1)),
            nn.ConvTranspose2d(4, 6, 2),
            nn.Flatten(),
            nn.Linear(24, 3),
        )
    if tie:  # output channels 0 and 1 identical, incoming and outgoing
        with torch.no_grad():
            model[2].weight[:, 1] = model[2].weight[:, 0]
            model[2].bias[1] = model[2].bias[0]
            model[4].weight.view(3, 6, 4)[:, 1] = model[4].weight.view(3, 6, 4)[:, 0]
    return model


def test_conv_transpose_units_are_its_output_channels():
    x = torch.randn(5, 8, generator=netprops.make_generator(1))
    check_symmetry_broken(_transposed_net(tie=False), x)
    with pytest.raises(netprops.PropertyViolation, match=r"ConvTranspose2d.*units \[0, 1\]"):
        check_symmetry_broken(_transposed_net(tie=True), x)
