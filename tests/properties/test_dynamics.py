"""Training dynamics and structure, as properties over random architectures.

Deterministic properties (gradient flow, one-step updates, causality, equivariance,
padding masks) hold for every draw; widths are >= 16 and batches >= 4 so that a
correct ReLU layer dead on the whole batch (which would honestly cut the gradient)
has probability below 1e-12. The statistical checks (dead units, saturation, initial
loss) run at ``ALPHA`` and are budgeted with :func:`statistical`.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from netprops import PropertyViolation, make_generator, seeded_global_rng
from netprops.checks import (
    CyclicShift,
    Permutation,
    check_causal,
    check_dead_units,
    check_equivariant,
    check_gradients_flow,
    check_initial_loss,
    check_mask_respected,
    check_params_update,
    check_saturation,
)
from netprops.init import NetworkInitializer
from netprops.layers import MultiHeadSelfAttention
from netprops.strategies import seeds

from .conftest import ALPHA, hypothesis_settings, randn, statistical

sizes = st.lists(st.integers(16, 48), min_size=2, max_size=4)


def _sizes(inner, classes=5):
    return (8, *inner, classes)


# --------------------------------------------------------------------------- gradients
@given(
    inner=sizes,
    activation=st.sampled_from(["relu", "tanh", "elu"]),
    batch=st.integers(4, 12),
    seed=seeds(),
)
@example(inner=[16, 16], activation="relu", batch=4, seed=0)
@hypothesis_settings(max_examples=8)
def test_every_parameter_of_a_random_mlp_learns(device, inner, activation, batch, seed):
    model = NetworkInitializer(activation, "he", _sizes(inner)).build(make_generator(seed, device))
    x = randn((batch, 8), seed + 1, device)
    check_gradients_flow(model, x, seed=seed)
    check_params_update(model, x, seed=seed)


class _DetachAt(nn.Module):
    def __init__(self, body: nn.Sequential, cut: int) -> None:
        super().__init__()
        self.body, self.cut = body, cut

    def forward(self, x):
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i == self.cut:
                x = x.detach()
        return x


@given(inner=sizes, data=st.data(), seed=seeds())
@hypothesis_settings(max_examples=8)
def test_a_detach_cuts_exactly_the_layers_before_it(device, inner, data, seed):
    body = NetworkInitializer("relu", "he", _sizes(inner)).build(make_generator(seed, device))
    linears = [i for i, m in enumerate(body) if isinstance(m, nn.Linear)]
    cut = data.draw(st.sampled_from(linears[:-1]), label="detach after module")
    with pytest.raises(PropertyViolation) as info:
        check_gradients_flow(_DetachAt(body, cut), randn((6, 8), seed + 1, device), seed=seed)
    message = str(info.value)
    for i in linears:
        assert (f"body.{i}.weight: no gradient" in message) == (i <= cut)


# --------------------------------------------------------------------------- statistical
@statistical(max_examples=8, checks=2)
@given(inner=sizes, batch=st.integers(1, 32), seed=seeds())
@example(inner=[16, 16], batch=1, seed=0)
def test_he_relu_networks_have_no_excess_of_dead_units(device, inner, batch, seed):
    model = NetworkInitializer("relu", "he", _sizes(inner, 10)).build(make_generator(seed, device))
    x = randn((batch, 8), seed + 1, device)
    check_dead_units(model, x, alpha=ALPHA, seed=seed)
    if batch >= 2:
        check_initial_loss(model, x, alpha=ALPHA, seed=seed)
    else:  # one example: keep the count of checks per example fixed
        check_dead_units(model, x, alpha=ALPHA, seed=seed + 1)


@statistical(max_examples=8)
@given(
    inner=sizes,
    activation=st.sampled_from(["tanh", "sigmoid"]),
    batch=st.integers(1, 32),
    seed=seeds(),
)
def test_xavier_tanh_and_sigmoid_networks_are_not_saturated(device, inner, activation, batch, seed):
    gain = 5.0 / 3.0 if activation == "tanh" else 1.0
    model = NetworkInitializer(activation, "xavier", _sizes(inner), gain=gain).build(
        make_generator(seed, device)
    )
    check_saturation(model, randn((batch, 8), seed + 1, device), alpha=ALPHA, seed=seed)


@given(inner=sizes, bias=st.floats(-6.0, -4.0), seed=seeds())
@hypothesis_settings(max_examples=5)
def test_a_large_negative_bias_is_caught(device, inner, bias, seed):
    model = NetworkInitializer("relu", "he", _sizes([128, *inner])).build(
        make_generator(seed, device)
    )
    with torch.no_grad():
        model[1].bias.fill_(bias)
    with pytest.raises(PropertyViolation, match="dead on the whole batch"):
        check_dead_units(model, randn((16, 8), seed + 1, device), alpha=ALPHA, seed=seed)


# --------------------------------------------------------------------------- structure
def _attention(heads, seed, device):
    return MultiHeadSelfAttention(8 * heads, heads, generator=make_generator(seed)).to(device)


class _Causal(nn.Module):
    def __init__(self, attention: nn.Module, diagonal: int) -> None:
        super().__init__()
        self.attention, self.diagonal = attention, diagonal

    def forward(self, x, key_padding_mask=None):
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), self.diagonal)
        return self.attention(x, attn_mask=mask, key_padding_mask=key_padding_mask)


@given(heads=st.integers(1, 3), length=st.integers(2, 12), diagonal=st.integers(1, 3), seed=seeds())
@example(heads=1, length=2, diagonal=2, seed=0)
@hypothesis_settings(max_examples=10)
def test_causal_masks_hold_and_off_by_k_masks_leak(device, heads, length, diagonal, seed):
    module = _Causal(_attention(heads, seed, device), diagonal)
    x = randn((2, length, 8 * heads), seed + 1, device)
    if diagonal == 1:
        check_causal(module, x, seed=seed)
        check_mask_respected(module, x, seed=seed)
    else:
        with pytest.raises(PropertyViolation, match="reads the future"):
            check_causal(module, x, seed=seed)


@given(heads=st.integers(1, 3), length=st.integers(2, 12), seed=seeds())
@hypothesis_settings(max_examples=10)
def test_attention_commutes_with_permutations_and_respects_random_masks(
    device, heads, length, seed
):
    attention = _attention(heads, seed, device)
    x = randn((3, length, 8 * heads), seed + 1, device)
    check_equivariant(attention, x, transform=Permutation(1), seed=seed)
    g = make_generator(seed + 2, device)
    mask = torch.rand(3, length, generator=g, device=device) < 0.4
    mask[:, 0] = False  # every query keeps one key
    mask[0, -1] = length > 1
    if bool(mask.any()):
        check_mask_respected(attention, x, key_padding_mask=mask, seed=seed)


@given(
    kernel=st.sampled_from([1, 3, 5]),
    length=st.integers(6, 16),
    shift=st.integers(-20, 20),
    seed=seeds(),
)
@hypothesis_settings(max_examples=10)
def test_convolutions_commute_with_shifts(device, kernel, length, shift, seed):
    x = randn((2, 3, length), seed + 1, device)
    with seeded_global_rng(seed):
        circular = nn.Conv1d(3, 4, kernel, padding=kernel // 2, padding_mode="circular")
        zero = nn.Conv1d(3, 4, kernel, padding=kernel // 2)
    circular, zero = circular.to(device), zero.to(device)
    check_equivariant(circular, x, transform=CyclicShift(2, shifts=shift), seed=seed)
    check_equivariant(
        zero, x, transform=CyclicShift(2, shifts=shift, margin=kernel // 2), seed=seed
    )
    if kernel > 1 and shift % length:
        with pytest.raises(PropertyViolation):
            check_equivariant(zero, x, transform=CyclicShift(2, shifts=shift), seed=seed)


def test_causal_convolution_of_any_kernel(device):
    x = randn((2, 3, 12), 0, device)
    for kernel in (1, 2, 3, 5):
        with seeded_global_rng(kernel):
            conv = nn.Conv1d(3, 3, kernel).to(device)
        causal = nn.Sequential(nn.ConstantPad1d((kernel - 1, 0), 0.0), conv)
        check_causal(causal, x, dim=2)
        if kernel > 1:
            leaky = nn.Sequential(nn.ConstantPad1d((kernel - 2, 1), 0.0), conv)
            with pytest.raises(PropertyViolation):
                check_causal(leaky, x, dim=2)
