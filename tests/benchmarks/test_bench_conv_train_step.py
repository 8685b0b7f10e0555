"""One training step of the zoo's ``cnn-2`` and ``resnet20``: netprops model vs plain ``torch.nn``.

Batch 64 of ``(1, 28, 28)`` images, cross-entropy, Adam 1e-3, float32: zero
the gradients, forward, loss, backward, optimizer step. The netprops side is
``create(name, seed=0)`` (netprops ReLU, ``MaxPool2d``, ``BatchNorm2d`` with
hand-written backward passes, torch's ``nn.Conv2d``/``nn.Linear``); the torch
side is the same network written from ``torch.nn`` layers, loaded with the
same weights and checked to give the same logits. Target on the CPU: netprops
≤ 1.3× torch (ratio report at the end of the run).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netprops import make_generator, seeded_global_rng
from netprops.models import create

pytestmark = pytest.mark.benchmark

BATCH = 64


def _torch_cnn2(ours: nn.Module) -> nn.Sequential:
    """``cnn-2`` from torch.nn layers: (conv3x3 → ReLU → MaxPool2d(2)) × 2 → flatten → Linear."""
    first, second = (unit.conv for unit in ours.units)
    reference = nn.Sequential(
        nn.Conv2d(first.in_channels, first.out_channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(second.in_channels, second.out_channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(ours.head.in_features, ours.head.out_features),
    )
    sources = (first, second, ours.head)
    targets = (reference[0], reference[3], reference[7])
    for source, target in zip(sources, targets, strict=True):
        target.load_state_dict(source.state_dict())
    return reference


class _BasicBlock(nn.Module):
    """torchvision's BasicBlock, with netprops' parameter names."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.downsample(x))


class _TorchResNet(nn.Module):
    """CIFAR-style ResNet of basic blocks (resnet20: 3 × 3 blocks, widths 16/32/64)."""

    def __init__(self, in_channels: int, width: int, layers: tuple[int, ...], classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        planes = width
        for s, (blocks, stride) in enumerate(zip(layers, (1, 2, 2), strict=True), start=1):
            out = width * 2 ** (s - 1)
            stage = [_BasicBlock(planes if b == 0 else out, out, stride if b == 0 else 1)
                     for b in range(blocks)]  # fmt: skip
            self.add_module(f"stage{s}", nn.Sequential(*stage))
            planes = out
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def _torch_resnet20(ours: nn.Module) -> nn.Module:
    reference = _TorchResNet(ours.in_channels, ours.width, ours.layers, ours.num_classes)
    reference.load_state_dict(ours.state_dict())  # same names: a missing one raises
    return reference


TWINS = {"cnn-2": _torch_cnn2, "resnet20": _torch_resnet20}


@pytest.mark.parametrize("name", list(TWINS))
def test_conv_train_step(benchmark, impl, device, name, adam_train_step):
    ours = create(name, seed=0)
    with seeded_global_rng(0):  # torch.nn layers draw an init (overwritten) from the global RNG
        reference = TWINS[name](ours).to(device)
    ours.to(device)
    g = make_generator(0, device)
    x = torch.randn(BATCH, 1, 28, 28, generator=g, device=device)
    target = torch.randint(0, 10, (BATCH,), generator=g, device=device)
    with torch.no_grad():  # eval mode would hide BatchNorm's training path; no_grad keeps it
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)

    model = ours if impl == "netprops" else reference
    benchmark.group = f"{name.replace('-', '')}_train_step-{device}"
    benchmark(adam_train_step(model, x, target, device))
