"""Correct classifiers built only from torch's own modules, through the training-dynamics
properties: none may fail at any ``--netprops-seed`` (false alarms on correct code are the
other half of a check's worth, next to the mutants it kills).

An MLP, a CNN and a small ResNet of torchvision's ``BasicBlock``, all with (N, 10) logits.
Weights come from torch's default initializers, drawn from the global RNG that the plugin
seeds per test. The single torch layers, ``nn.MultiheadAttention`` with and without masks
included, are in the false-alarm battery (test_torch_battery.py).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock

import netprops

STEP = ("params_update", "gradients_flow", "finite", "update_ratio")
CLASSIFIER = (*STEP, "initial_loss", "can_overfit", "dead_units")


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


test_torch_mlp = netprops.spec(_mlp, name="torch_MLP", inputs=(16, 1, 8, 8), properties=CLASSIFIER)
test_torch_cnn = netprops.spec(_cnn, name="torch_CNN", inputs=(8, 1, 12, 12), properties=CLASSIFIER)
test_torch_resnet = netprops.spec(
    _resnet, name="torchvision_BasicBlock_ResNet", inputs=(8, 1, 12, 12), properties=CLASSIFIER
)
