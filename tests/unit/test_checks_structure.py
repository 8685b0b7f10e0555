"""Structural checks: causality, equivariance, padding masks — correct modules pass (torch's
own included, at every seed of a sweep), the classic bugs fail with a report saying where."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netprops
from netprops import PropertyViolation
from netprops.checks import (
    CyclicShift,
    Permutation,
    check_causal,
    check_equivariant,
    check_mask_respected,
)
from netprops.layers import MultiHeadSelfAttention
from netprops.layers.attention import SqueezeExcitation

E, H = 16, 4


def _x(shape=(3, 10, E), seed=0, dtype=torch.float32):
    return torch.randn(shape, generator=netprops.make_generator(seed), dtype=dtype)


def _triu(length, diagonal=1):
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal)


class TorchSelfAttention(nn.Module):
    """nn.MultiheadAttention as a self-attention module ``forward(x, key_padding_mask=None)``."""

    def __init__(self, causal=False, diagonal=1, seed=0):
        super().__init__()
        with netprops.seeded_global_rng(seed):
            self.mha = nn.MultiheadAttention(E, H, batch_first=True)
        self.causal, self.diagonal = causal, diagonal

    def forward(self, x, key_padding_mask=None):
        mask = _triu(x.shape[1], self.diagonal) if self.causal else None
        return self.mha(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask)


class OursSelfAttention(nn.Module):
    def __init__(self, causal=False, diagonal=1, seed=0):
        super().__init__()
        self.attn = MultiHeadSelfAttention(E, H, generator=netprops.make_generator(seed))
        self.causal, self.diagonal = causal, diagonal

    def forward(self, x, key_padding_mask=None):
        mask = _triu(x.shape[1], self.diagonal) if self.causal else None
        return self.attn(x, attn_mask=mask, key_padding_mask=key_padding_mask)


class CausalConv(nn.Module):
    def __init__(self, padding=(2, 0)):
        super().__init__()
        with netprops.seeded_global_rng(0):
            self.conv = nn.Conv1d(4, 4, 3)
        self.padding = padding

    def forward(self, x):
        return self.conv(F.pad(x, self.padding))


# --------------------------------------------------------------------------- causal
@pytest.mark.parametrize("cls", [TorchSelfAttention, OursSelfAttention])
def test_causal_attention_passes_and_an_off_by_one_mask_fails(cls):
    x = _x()
    result = check_causal(cls(causal=True), x)
    assert result.statistic == 0.0 and result.details["cuts tried"] == 9
    with pytest.raises(PropertyViolation, match=r"output position 0 changed .* positions > 0"):
        check_causal(cls(causal=True, diagonal=2), x)
    with pytest.raises(PropertyViolation, match="reads the future"):
        check_causal(cls(causal=False), x)


def test_causal_conv_and_rnns_pass_symmetric_padding_fails():
    signal = _x((2, 4, 20))
    check_causal(CausalConv(), signal, dim=2)
    with pytest.raises(PropertyViolation, match=r"cut"):
        check_causal(CausalConv((1, 1)), signal, dim=2)
    with netprops.seeded_global_rng(0):
        rnns = [nn.LSTM(E, 8, batch_first=True), nn.GRU(E, 8, batch_first=True)]
        rnns.append(nn.RNN(E, 8, batch_first=True))
    for rnn in rnns:  # (output, hidden) tuples: the output is checked
        check_causal(rnn, _x())
    with netprops.seeded_global_rng(0):
        bidirectional = nn.GRU(E, 8, batch_first=True, bidirectional=True)
    with pytest.raises(PropertyViolation):
        check_causal(bidirectional, _x())
    check_causal(nn.Sequential(), _x())  # the identity is causal


def test_causal_cuts_option_and_errors():
    module = OursSelfAttention(causal=True)
    assert check_causal(module, _x(), cuts=[0, 8]).details["cuts tried"] == 2
    assert check_causal(module, _x(), cuts=3).details["cuts tried"] == 3
    long = _x((1, 200, E))
    assert check_causal(module, long).details["cuts tried"] == 64
    with pytest.raises(ValueError, match=r"cuts must be positions in \[0, 8\]"):
        check_causal(module, _x(), cuts=[9])
    with pytest.raises(ValueError, match="dim must not be 0"):
        check_causal(module, _x(), dim=0)
    with pytest.raises(ValueError, match="dim must be a dimension"):
        check_causal(module, _x(), dim=3)
    with pytest.raises(ValueError, match="the output must have the input's length"):
        check_causal(nn.AdaptiveAvgPool1d(3), _x((2, 4, 10)), dim=2)


# --------------------------------------------------------------------------- equivariant
class MeanPool(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, t):
        out = self.inner(t)
        return (out[0] if isinstance(out, tuple) else out).mean(dim=1)


def test_self_attention_is_permutation_equivariant_and_a_mean_pool_invariant():
    x = _x()
    for module in (OursSelfAttention(), TorchSelfAttention()):
        result = check_equivariant(module, x, transform=Permutation(1))
        assert 0 <= result.statistic <= 1
        pooled = MeanPool(module)
        check_equivariant(pooled, x, transform=Permutation(1), output_transform=lambda y: y)
        with pytest.raises(ValueError, match="permutation of 10 positions cannot reorder dim 1"):
            check_equivariant(pooled, x, transform=Permutation(1), output_transform=Permutation(1))
    with pytest.raises(PropertyViolation, match="does not commute"):
        check_equivariant(OursSelfAttention(causal=True), x, transform=Permutation(1))


def test_convolutions_are_shift_equivariant_circularly_or_on_the_interior():
    signal, image = _x((2, 4, 20)), _x((2, 3, 10, 12))
    with netprops.seeded_global_rng(0):
        circular = nn.Conv1d(4, 5, 3, padding=1, padding_mode="circular")
        zero1 = nn.Conv1d(4, 5, 3, padding=1)
        zero2 = nn.Conv2d(3, 5, 5, padding=2)
        circular2 = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular")
    check_equivariant(circular, signal, transform=CyclicShift(2))
    with pytest.raises(PropertyViolation, match="does not commute"):
        check_equivariant(zero1, signal, transform=CyclicShift(2))
    check_equivariant(zero1, signal, transform=CyclicShift(2, margin=1))
    check_equivariant(zero2, image, transform=CyclicShift(3, margin=2))
    check_equivariant(zero2, image, transform=CyclicShift(-2, margin=2))
    with pytest.raises(PropertyViolation):
        check_equivariant(zero2, image, transform=CyclicShift(3, margin=1))
    check_equivariant(circular2, image, transform=CyclicShift(2, shifts=5))
    se = SqueezeExcitation(3, reduction=1, generator=netprops.make_generator(0))
    check_equivariant(se, image, transform=CyclicShift(2))  # gates from a global mean


def test_batch_permutation_catches_a_module_that_mixes_examples():
    x = _x((6, E))
    with netprops.seeded_global_rng(0):
        linear = nn.Linear(E, 3)
    check_equivariant(linear, x, transform=Permutation(0))
    check_equivariant(nn.BatchNorm1d(E), x, transform=Permutation(0))  # statistics are symmetric

    class LeaksFirstRow(nn.Module):
        def forward(self, t):
            return t + t[:1]

    with pytest.raises(PropertyViolation):
        check_equivariant(LeaksFirstRow(), x, transform=Permutation(0))


def test_user_transform_pair_and_output_transform_on_another_dim():
    x = _x()
    module = OursSelfAttention()
    check_equivariant(
        module, x, transform=lambda t: t.flip(1), output_transform=lambda y: y.flip(1)
    )

    class Transposed(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, t):
            return self.inner(t).transpose(1, 2)

    check_equivariant(Transposed(), x, transform=Permutation(1), output_transform=Permutation(2))
    with pytest.raises(ValueError, match="output_transform reuses the draw"):
        check_equivariant(module, x, transform=lambda t: t, output_transform=Permutation(1))
    with pytest.raises(TypeError, match="transform must be CyclicShift"):
        check_equivariant(module, x, transform=3)
    with pytest.raises(ValueError, match="cannot reorder dim 1 of a tensor of shape"):
        check_equivariant(Transposed(), x, transform=Permutation(1))
    with pytest.raises(ValueError, match="give the output_transform that matches"):
        check_equivariant(
            Transposed(), x, transform=lambda t: t, output_transform=lambda y: y[:, :1]
        )


def test_equivariance_tolerance_follows_the_dtype():
    x64 = _x(dtype=torch.float64)
    module = OursSelfAttention().double()
    result = check_equivariant(module, x64, transform=Permutation(1))
    assert result.statistic <= 1


def test_transform_draws_are_never_trivial():
    g = netprops.make_generator(0)
    for _ in range(50):
        assert CyclicShift(1).draw(2, g) == 1
        assert Permutation(1).draw(2, g).tolist() == [1, 0]
    with pytest.raises(ValueError, match="at least 2 positions"):
        Permutation(1).draw(1, g)


# --------------------------------------------------------------------------- mask_respected
@pytest.mark.parametrize("cls", [TorchSelfAttention, OursSelfAttention])
@pytest.mark.parametrize("causal", [False, True])
def test_padding_masks_are_respected(cls, causal):
    result = check_mask_respected(cls(causal=causal), _x())
    assert result.statistic == 0.0


def test_an_ignored_or_inverted_mask_fails():
    class Ignores(OursSelfAttention):
        def forward(self, x, key_padding_mask=None):
            return super().forward(x)

    class Inverts(OursSelfAttention):
        def forward(self, x, key_padding_mask=None):
            return super().forward(x, key_padding_mask=~key_padding_mask)

    for module in (Ignores(), Ignores(causal=True), Inverts()):
        with pytest.raises(PropertyViolation, match="the padding mask leaks"):
            check_mask_respected(module, _x())


def test_mask_options_and_errors():
    module = OursSelfAttention()
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, 7:] = True
    assert (
        check_mask_respected(module, _x(), key_padding_mask=mask).details["masked positions"]
        == "9 of 30"
    )
    check_mask_respected(module, _x(), key_padding_mask=lambda x, g: mask)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(3, 10\)"):
        check_mask_respected(module, _x(), key_padding_mask=mask.float())
    with pytest.raises(ValueError, match="masks no position"):
        check_mask_respected(module, _x(), key_padding_mask=torch.zeros(3, 10, dtype=torch.bool))


# --------------------------------------------------------------------------- false alarms
@pytest.mark.parametrize("seed", range(20))
def test_torch_attention_passes_every_structural_check_at_every_seed(seed):
    x = _x(seed=seed + 100)
    plain, causal = TorchSelfAttention(seed=seed), TorchSelfAttention(causal=True, seed=seed)
    check_equivariant(plain, x, transform=Permutation(1), seed=seed)
    check_mask_respected(plain, x, seed=seed)
    check_causal(causal, x, seed=seed)
    check_mask_respected(causal, x, seed=seed)
    with netprops.seeded_global_rng(seed):
        conv = nn.Conv1d(4, 4, 3, padding=1, padding_mode="circular")
    check_equivariant(conv, _x((2, 4, 12), seed=seed), transform=CyclicShift(2), seed=seed)
