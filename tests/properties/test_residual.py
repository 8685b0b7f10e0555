"""Residual blocks: the skip path, zero-init identity, gradients, batch (in)dependence.

* ``zero_init_residual=True`` makes a block the exact identity (``WideBasicBlock``,
  ``ResidualMLPBlock``: any input; ``BasicBlock`` / ``Bottleneck``: non-negative
  input, which ReLU fixes) — bitwise, forward and backward.
* ``ResidualMLPBlock`` is ``x + residual_branch(x)``, and with dropout the mean of its
  training output is ``x + residual_branch(x)`` of the eval-mode block
  (``check_expectation_equal``).
* Every block passes ``check_gradcheck`` (float64; the MLP block's parameters too).
* With LayerNorm the MLP block is batch independent; with BatchNorm in train mode it is not.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from netprops import PropertyViolation, make_generator
from netprops.checks.gradients import check_gradcheck
from netprops.checks.normalization import check_batch_independent
from netprops.checks.stochastic import check_expectation_equal
from netprops.layers.residual import BasicBlock, Bottleneck, ResidualMLPBlock, WideBasicBlock
from netprops.strategies import probabilities, seeds

from .conftest import ALPHA, hypothesis_settings, randn, statistical

activations = st.sampled_from(["relu", "tanh", "leaky_relu", "elu"])


def _identity_case(kind, channels, activation, dropout, seed):
    g = make_generator(seed)
    if kind == "mlp":
        return ResidualMLPBlock(
            channels,
            channels + 2,
            activation=activation,
            norm="layer",
            dropout=dropout,
            zero_init_residual=True,
            generator=g,
        )
    if kind == "wide":
        return WideBasicBlock(
            channels, channels, dropout=dropout, zero_init_residual=True, generator=g
        )
    if kind == "basic":
        return BasicBlock(channels, channels, zero_init_residual=True, generator=g)
    return Bottleneck(4 * channels, channels, zero_init_residual=True, generator=g)


@given(
    kind=st.sampled_from(["mlp", "wide", "basic", "bottleneck"]),
    channels=st.integers(1, 4),
    activation=activations,
    dropout=probabilities(),
    rows=st.integers(2, 4),
    train=st.booleans(),
    seed=seeds(),
)
@example(kind="mlp", channels=1, activation="relu", dropout=0.0, rows=2, train=True, seed=0)
@hypothesis_settings(max_examples=20)
def test_zero_init_residual_blocks_are_the_identity(
    device, kind, channels, activation, dropout, rows, train, seed
):
    block = _identity_case(kind, channels, activation, dropout, seed).to(device).train(train)
    if hasattr(block, "dropout"):
        block.dropout.manual_seed(seed)
    if kind == "mlp":
        x = randn((rows, channels), seed, device, torch.float64).float()
    else:
        x = randn((rows, block.in_planes, 3, 3), seed, device)
        if kind in ("basic", "bottleneck"):  # post-activation: identity on ReLU's fixed points
            x = x.abs()
    x.requires_grad_(True)
    y = block(x)
    assert torch.equal(y.detach(), x.detach())
    g = randn(tuple(y.shape), seed + 1, device)
    (grad,) = torch.autograd.grad(y, x, g)
    assert torch.equal(grad, g)  # only the skip path carries the gradient


@given(norm=st.sampled_from(["layer", "batch", None]), rows=st.integers(2, 5), seed=seeds())
@example(norm=None, rows=2, seed=0)
@hypothesis_settings()
def test_mlp_block_is_input_plus_branch(device, norm, rows, seed):
    block = ResidualMLPBlock(5, 3, norm=norm, generator=make_generator(seed)).to(device).eval()
    x = randn((rows, 5), seed, device)
    torch.testing.assert_close(block(x), x + block.residual_branch(x), rtol=0, atol=0)


class _ExactVarianceMLPBlock(ResidualMLPBlock):
    """Adds the exact variance of the training output over dropout masks (features = 1):
    ``Var y = p/(1−p) · Σ_j W2_j² h_j²`` with ``h = act(norm(fc1 x))`` (docs/methods.md §Monte Carlo checks)."""

    def output_variance(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.fc1(x)))
        return (h.square() @ self.fc2.weight.square().T) * (self.dropout.p / (1 - self.dropout.p))


@statistical(max_examples=8)
@given(
    p=st.one_of(st.just(0.0), probabilities(min_value=0.2, max_value=0.8)),
    hidden=st.integers(1, 6),
    rows=st.integers(1, 4),
    seed=seeds(),
)
@example(p=0.0, hidden=1, rows=1, seed=0)
def test_mlp_block_training_mean_is_input_plus_eval_branch(device, p, hidden, rows, seed):
    # features = 1: every output has its own dropout mask, so the outputs are independent
    # (as ΣZ² against χ² needs); levels as in test_stochastic.py (p ∈ [0.2, 0.8], N = 1000)
    block = _ExactVarianceMLPBlock(
        1, hidden, dropout=p, generator=make_generator(seed), norm=None
    ).double()
    block = block.to(device)
    block.dropout.manual_seed(seed)
    reference = copy.deepcopy(block).eval()
    x = randn((rows, 1), seed + 1, device, torch.float64)
    check_expectation_equal(
        block,
        x,
        reference=lambda t: t + reference.residual_branch(t),
        n_samples=1000,
        alpha=ALPHA / 4,
        seed=seed,
    )


@given(
    kind=st.sampled_from(["basic", "basic_projection", "bottleneck", "wide", "mlp"]),
    seed=seeds(),
)
@example(kind="basic_projection", seed=0)
@hypothesis_settings(max_examples=4)
def test_residual_blocks_pass_gradcheck(device, kind, seed):
    # The conv blocks are checked through their input gradient only (it passes through
    # every layer's backward, BatchNorm's Function included): finite differences on
    # every conv weight too would cost thousands of forwards per example.
    g = make_generator(seed)
    if kind == "mlp":
        block, x, params = ResidualMLPBlock(3, 4, norm="layer", generator=g), (2, 3), True
    elif kind == "wide":
        block, x, params = WideBasicBlock(1, 2, stride=2, generator=g), (2, 1, 2, 2), False
    elif kind == "bottleneck":
        block, x, params = Bottleneck(4, 1, generator=g, activation="tanh"), (2, 4, 2, 2), False
    else:
        planes, stride = (2, 2) if kind == "basic_projection" else (1, 1)
        block = BasicBlock(1, planes, stride, generator=g, activation="elu")
        x, params = (2, 1, 2, 2), False
    check_gradcheck(block.train(), x, seed=seed, device=device, check_params=params)


@given(rows=st.integers(2, 6), seed=seeds())
@example(rows=2, seed=0)
@hypothesis_settings()
def test_mlp_block_batch_independence_follows_its_norm(device, rows, seed):
    x = randn((rows, 4), seed, device, offset=1.0)
    layer_block = ResidualMLPBlock(4, 6, norm="layer", generator=make_generator(seed))
    check_batch_independent(layer_block.to(device).train(), x, seed=seed)
    batch_block = ResidualMLPBlock(4, 6, norm="batch", generator=make_generator(seed))
    check_batch_independent(batch_block.to(device).eval(), x, seed=seed)
    with pytest.raises(PropertyViolation, match="check_batch_independent"):
        check_batch_independent(batch_block.train(), x, seed=seed)
