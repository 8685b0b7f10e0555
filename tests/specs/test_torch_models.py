"""Correct models built only from torch's own modules, through the training-dynamics and
structural properties: none may fail at any ``--netprops-seed`` (false alarms on correct
code are the other half of a check's worth, next to the mutants it kills).

An MLP, a CNN and a small ResNet of torchvision's ``BasicBlock`` (all classifiers with
(N, 10) logits), and ``nn.MultiheadAttention`` as a self-attention without a mask, with a
key padding mask and with a causal mask. Weights come from torch's default initializers,
drawn from the global RNG that the plugin seeds per test.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

import netprops
from netprops.checks import Permutation

STEP = ("params_update", "gradients_flow", "finite", "update_ratio")
CLASSIFIER = (*STEP, "initial_loss", "can_overfit", "dead_units")
E, H, L = 16, 4, 10


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def _resnet() -> nn.Module:
    """Stem, two of torchvision's basic blocks (the second strided, with a projection), head."""
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        BasicBlock(8, 8),
        BasicBlock(8, 16, stride=2, downsample=down),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` as a batch-first self-attention returning only its output."""

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=True)
        self.causal = causal

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = None
        if self.causal:
            n = x.shape[1]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), 1)
        out, _ = self.attn(
            x, x, x, key_padding_mask=key_padding_mask, attn_mask=mask, need_weights=False
        )
        return out


NOT_A_CLASSIFIER = "the output is a sequence of features, not (N, C) logits"
NO_RELU = "no ReLU-family module"

test_torch_mlp = netprops.spec(_mlp, name="torch_MLP", inputs=(16, 1, 8, 8), properties=CLASSIFIER)
test_torch_cnn = netprops.spec(_cnn, name="torch_CNN", inputs=(8, 1, 12, 12), properties=CLASSIFIER)
test_torch_resnet = netprops.spec(
    _resnet, name="torchvision_BasicBlock_ResNet", inputs=(8, 1, 12, 12), properties=CLASSIFIER
)
test_torch_attention = netprops.spec(
    SelfAttention,
    name="MultiheadAttention",
    inputs=(3, L, E),
    properties=("equivariant", "mask_respected", *STEP),
    options={"equivariant": {"transform": Permutation(1)}},
    not_applicable={
        "causal": "an encoder attention sees every position",
        "initial_loss": NOT_A_CLASSIFIER,
        "dead_units": NO_RELU,
    },
)
test_torch_causal_attention = netprops.spec(
    lambda: SelfAttention(causal=True),
    name="MultiheadAttention_causal",
    inputs=(3, L, E),
    properties=("causal", "mask_respected", *STEP),
    not_applicable={
        "equivariant": "a causal mask ties outputs to positions",
        "initial_loss": NOT_A_CLASSIFIER,
        "dead_units": NO_RELU,
    },
)
