"""netprops' own attention layer, residual blocks and zoo CNNs, declared with the
training-dynamics and structural properties.

Every ``netprops.spec`` call below becomes one generated test per (property × device ×
dtype); each factory draws its weights from torch's global RNG, which the plugin seeds
per test from ``--netprops-seed``.
"""

from __future__ import annotations

import torch
from torch import nn

import netprops
from netprops.checks import CyclicShift, Permutation
from netprops.layers import (
    BasicBlock,
    Bottleneck,
    MultiHeadSelfAttention,
    ResidualMLPBlock,
    SqueezeExcitation,
    WideBasicBlock,
)
from netprops.models import ResNet, create

#: What one training step of any trainable block must do.
STEP = ("params_update", "gradients_flow", "finite", "update_ratio")
E, H, L = 16, 4, 10
NOT_A_CLASSIFIER = "the output is a feature map, not (N, C) logits"
NO_RELU = "no ReLU-family module"


class CausalSelfAttention(nn.Module):
    """netprops' MultiHeadSelfAttention with a causal mask (a decoder's self-attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = MultiHeadSelfAttention(E, H)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), 1)
        return self.attn(x, attn_mask=mask, key_padding_mask=key_padding_mask)


def _zoo(name: str) -> nn.Module:
    """A zoo model whose weights vary with the test's seed (one draw from the seeded global RNG)."""
    return create(name, seed=int(torch.randint(0, 2**31, ())))


def _small_resnet() -> nn.Module:
    """ResNet-8: one basic block per stage, width 8 (weights from the seeded global RNG)."""
    return ResNet("basic", (1, 1, 1), width=8)


# --------------------------------------------------------------------------- attention
netprops.spec(
    lambda: MultiHeadSelfAttention(E, H),
    name="MultiHeadSelfAttention",
    inputs=(3, L, E),
    properties=("equivariant", "mask_respected", *STEP),
    options={"equivariant": {"transform": Permutation(1)}},
    not_applicable={
        "causal": "an encoder attention sees every position",
        "initial_loss": NOT_A_CLASSIFIER,
        "dead_units": NO_RELU,
    },
)
netprops.spec(
    CausalSelfAttention,
    inputs=(3, L, E),
    properties=("causal", "mask_respected", *STEP),
    not_applicable={"equivariant": "a causal mask ties outputs to positions"},
)

# --------------------------------------------------------------------------- residual blocks
netprops.spec(
    lambda: BasicBlock(8, 8),
    name="BasicBlock",
    inputs=(4, 8, 6, 6),
    properties=(*STEP, "dead_units"),
    not_applicable={"initial_loss": NOT_A_CLASSIFIER},
)
netprops.spec(
    lambda: Bottleneck(8, 2),
    name="Bottleneck",
    inputs=(4, 8, 6, 6),
    properties=(*STEP, "dead_units"),
    not_applicable={"initial_loss": NOT_A_CLASSIFIER},
)
netprops.spec(
    lambda: WideBasicBlock(8, 8),
    name="WideBasicBlock",
    inputs=(4, 8, 6, 6),
    properties=(*STEP, "dead_units"),
    not_applicable={"initial_loss": NOT_A_CLASSIFIER},
)
# In eval mode (fixed statistics) zero-padded 3×3 convs commute with shifts on the
# interior: receptive radius 2 for two stacked 3×3 convs, 1 for the bottleneck's one.
netprops.spec(
    lambda: BasicBlock(8, 8).eval(),
    name="BasicBlock_eval",
    inputs=(2, 8, 10, 10),
    properties=("equivariant",),
    options={"equivariant": {"transform": CyclicShift(3, margin=2)}},
)
netprops.spec(
    lambda: Bottleneck(8, 2).eval(),
    name="Bottleneck_eval",
    inputs=(2, 8, 10, 10),
    properties=("equivariant",),
    options={"equivariant": {"transform": CyclicShift(2, margin=1)}},
)
netprops.spec(
    lambda: WideBasicBlock(8, 8).eval(),
    name="WideBasicBlock_eval",
    inputs=(2, 8, 10, 10),
    properties=("equivariant",),
    options={"equivariant": {"transform": CyclicShift(3, margin=2)}},
)

netprops.spec(
    lambda: ResidualMLPBlock(16),
    name="ResidualMLPBlock",
    inputs=(8, 16),
    properties=(*STEP, "dead_units", "equivariant"),
    options={"equivariant": {"transform": Permutation(0)}},  # no example sees another
)
netprops.spec(
    # 8 ReLU units in the squeeze and 8 examples: all of them dead on the batch (which
    # would rightly cut every gradient) has probability ~1e-10; 4 units on 2 examples
    # happened at --netprops-seed 11
    lambda: SqueezeExcitation(16, reduction=2),
    name="SqueezeExcitation",
    inputs=(8, 16, 4, 4),
    properties=("equivariant", "params_update", "gradients_flow", "finite"),
    # the gates come from a global mean: the block commutes with any cyclic shift
    options={"equivariant": {"transform": CyclicShift(2)}},
)

# --------------------------------------------------------------------------- zoo CNNs
CLASSIFIER = (*STEP, "initial_loss", "can_overfit", "dead_units")
netprops.spec(
    lambda: _zoo("cnn-2"),
    name="SimpleCNN",
    inputs=(8, 1, 28, 28),
    properties=CLASSIFIER,
    dtypes=(torch.float32,),
)
netprops.spec(
    _small_resnet,
    name="ResNet8",
    inputs=(8, 1, 12, 12),
    properties=CLASSIFIER,
    dtypes=(torch.float32,),
)
netprops.spec(
    lambda: _zoo("mlp-784-128-64-10"),
    name="MLP784",
    inputs=(16, 1, 28, 28),
    properties=CLASSIFIER,
)
