"""Mutants of training setups and sequence layers, for the dynamics and structural checks.

A training-setup subject is a :class:`Setup` (model, batch, optimizer factory, loss);
its probes call the dynamics checks on it. Structural subjects are modules; their probes
draw the input. Everything is built from the seed (module construction runs under
``seeded_global_rng``, which restores torch's global RNG), on the CPU, then moved.

Registered in the catalog by the last lines of ``tests/quality/mutants.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from properties.conftest import ALPHA
from torch import nn

from netprops import make_generator, seeded_global_rng
from netprops.checks import (
    CyclicShift,
    Permutation,
    check_batch_independent,
    check_can_overfit,
    check_causal,
    check_dead_units,
    check_equivariant,
    check_finite,
    check_gradients_flow,
    check_initial_loss,
    check_mask_respected,
    check_params_update,
    check_saturation,
    check_update_ratio,
)
from netprops.init import he_normal_, normal_, xavier_normal_
from netprops.layers.attention import MultiHeadSelfAttention

from .mutants import Mutant, Probe, Twin

__all__ = ["DYNAMICS_CHECKS", "DYNAMICS_MUTANTS", "Setup"]

#: Kill-matrix columns of the new checks, in the order they are printed.
DYNAMICS_CHECKS: tuple[str, ...] = (
    "check_params_update",
    "check_gradients_flow",
    "check_finite",
    "check_initial_loss",
    "check_can_overfit",
    "check_dead_units",
    "check_saturation",
    "check_update_ratio",
    "check_causal",
    "check_equivariant",
    "check_mask_respected",
)

IN, HIDDEN, CLASSES, BATCH = 32, 256, 10, 16
EMBED, HEADS, LENGTH = 16, 4, 10


@dataclass
class Setup:
    """A training setup: the model, its batch, the optimizer factory and the loss."""

    model: nn.Module
    x: torch.Tensor
    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def run(self, check: Callable[..., Any], seed: int, **kwargs: Any) -> Any:
        """``check(model, x, seed=seed, **kwargs)`` plus the optimizer and loss it accepts."""
        accepted = inspect.signature(check).parameters
        options = dict(kwargs)
        for name in ("optimizer", "loss_fn"):
            if getattr(self, name) is not None and name in accepted:
                options[name] = getattr(self, name)
        return check(self.model, self.x, seed=seed, **options)


def _x(shape, seed, device):
    return torch.randn(shape, generator=make_generator(seed + 1000), dtype=torch.float32).to(device)


# =========================================================================== models
class MLP(nn.Module):
    """He-initialized ReLU MLP IN → HIDDEN → HIDDEN → CLASSES (zero biases): the correct twin."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = make_generator(seed)
        with seeded_global_rng(seed):
            self.fc1, self.fc2 = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
            self.out = nn.Linear(HIDDEN, CLASSES)
        with torch.no_grad():
            for layer in (self.fc1, self.fc2, self.out):
                he_normal_(layer.weight, generator=g)
                layer.bias.zero_()
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()

    def hidden(self, x):
        return self.act2(self.fc2(self.act1(self.fc1(x))))

    def forward(self, x):
        return self.out(self.hidden(x))


class DetachedMLP(MLP):
    """BUG: the first layer's output is detached, so fc1 never learns."""

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)).detach())))


class IntegerCastMLP(MLP):
    """BUG: the hidden activations are cast to int and back (quantized): no gradient flows back."""

    def forward(self, x):
        h = self.act1(self.fc1(x))
        h = (h * 1000).long().float() / 1000
        return self.out(self.act2(self.fc2(h)))


class UnusedBranchMLP(MLP):
    """BUG: an auxiliary head is built (and given to the optimizer) but never called."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        with seeded_global_rng(seed + 1):
            self.aux = nn.Linear(HIDDEN, CLASSES)


class NaiveLogSoftmaxMLP(MLP):
    """BUG: log-probabilities as log(softmax(z)): softmax underflows to 0 for large logits."""

    def forward(self, x):
        return torch.log(torch.softmax(super().forward(x), dim=1))


class NoEpsNormMLP(MLP):
    """BUG: hidden features scaled by 1/‖h‖ with no ε: 0/0 for a zero input."""

    def forward(self, x):
        h = self.act1(self.fc1(x))
        h = h / h.norm(dim=1, keepdim=True)
        return self.out(self.act2(self.fc2(h)))


class HugeHeadMLP(MLP):
    """BUG: the output layer initialized N(0, 1) (std 1 instead of √(2/fan_in))."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        normal_(self.out.weight, std=1.0, generator=make_generator(seed + 7))


class DoubleSoftmaxMLP(MLP):
    """BUG: the model returns softmax probabilities; cross-entropy applies a second softmax."""

    def forward(self, x):
        return torch.softmax(super().forward(x), dim=1)


class NegativeBiasMLP(MLP):
    """BUG: hidden biases initialized at −3: most ReLUs are dead on every example."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        with torch.no_grad():
            self.fc1.bias.fill_(-3.0)
            self.fc2.bias.fill_(-3.0)


class TinyInitMLP(MLP):
    """BUG: hidden weights N(0, 1e-4²): Adam's first step (≈ lr) dwarfs them."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        g = make_generator(seed + 7)
        normal_(self.fc1.weight, std=1e-4, generator=g)
        normal_(self.fc2.weight, std=1e-4, generator=g)


class HugeHiddenInitMLP(MLP):
    """BUG: the second hidden layer N(0, 1) (16× He's std at fan_in 256): it barely moves."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        normal_(self.fc2.weight, std=1.0, generator=make_generator(seed + 7))


def _adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr)


class ShuffledLabels:
    """BUG: a loss whose targets are re-shuffled on every call (labels shuffled per step)."""

    __name__ = "cross_entropy_on_shuffled_labels"

    def __init__(self, seed: int) -> None:
        self.generator = make_generator(seed + 3)

    def __call__(self, out, target):
        perm = torch.randperm(target.shape[0], generator=self.generator).to(target.device)
        return F.cross_entropy(out.double(), target[perm])


def nll_on_logits(out, target):
    """BUG: NLL applied to raw logits (the log_softmax is missing)."""
    return F.nll_loss(out.double(), target)


def _setup(model_cls, *, optimizer=None, loss_fn=None):
    def build(seed, device):
        model = model_cls(seed).to(device)
        loss = loss_fn(seed) if isinstance(loss_fn, type) else loss_fn
        return Setup(model, _x((BATCH, IN), seed, device), optimizer, loss)

    return build


# ----------------------------------------------------------------------------- frozen backbone
class FrozenBackbone(nn.Module):
    """Linear → BatchNorm → ReLU backbone, frozen and in eval mode, under a trainable head."""

    def __init__(self, seed: int, bn_train: bool = False) -> None:
        super().__init__()
        g = make_generator(seed)
        with seeded_global_rng(seed):
            self.backbone = nn.Sequential(nn.Linear(IN, 64), nn.BatchNorm1d(64), nn.ReLU())
            self.head = nn.Linear(64, CLASSES)
        with torch.no_grad():
            he_normal_(self.backbone[0].weight, generator=g)
            he_normal_(self.head.weight, generator=g)
        self.backbone.requires_grad_(False)
        self.backbone.train(bn_train)

    def forward(self, x):
        return self.head(self.backbone(x))


def _adamw(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)


class SGDDecayAll(torch.optim.Optimizer):
    """BUG: a hand-written SGD whose weight decay shrinks every parameter it was given,
    frozen ones (no gradient) included."""

    def __init__(self, params, lr=1e-2, weight_decay=0.1):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class InPlaceZeroGradAdamW(torch.optim.AdamW):
    """Training code that zeroes gradients in place (``set_to_none=False``)."""

    def zero_grad(self, set_to_none: bool = False) -> None:
        super().zero_grad(set_to_none=False)


def _frozen_twin(seed, device):
    return Setup(FrozenBackbone(seed).to(device), _x((BATCH, IN), seed, device), _adamw)


def _frozen_decay_all(seed, device):
    return Setup(FrozenBackbone(seed).to(device), _x((BATCH, IN), seed, device), SGDDecayAll)


def _optimizer_before_freezing(seed, device):
    """BUG: the optimizer was built and stepped while the backbone trained; the backbone was
    then frozen, and gradients are zeroed in place, so AdamW's momentum and weight decay keep
    moving it."""
    model = FrozenBackbone(seed).to(device)
    model.backbone.requires_grad_(True)
    opt = InPlaceZeroGradAdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = _x((BATCH, IN), seed, device)
    F.cross_entropy(model(x), torch.zeros(BATCH, dtype=torch.long, device=device)).backward()
    opt.step()
    model.backbone.requires_grad_(False)
    return Setup(model, x, lambda params: opt)


def _frozen_bn_training(seed, device):
    """BUG: the frozen backbone was left in train mode: its BatchNorm statistics keep moving."""
    return Setup(
        FrozenBackbone(seed, bn_train=True).to(device), _x((BATCH, IN), seed, device), _adamw
    )


# ----------------------------------------------------------------------------- tanh network
class TanhMLP(nn.Module):
    """Xavier-normal tanh MLP with torch's gain 5/3 (zero biases): the correct twin."""

    def __init__(self, seed: int, std: float | None = None) -> None:
        super().__init__()
        g = make_generator(seed)
        with seeded_global_rng(seed):
            self.net = nn.Sequential(
                nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                nn.Linear(HIDDEN, CLASSES),
            )  # fmt: skip
        with torch.no_grad():
            for layer in self.net[::2]:
                if std is None:
                    xavier_normal_(layer.weight, gain=5.0 / 3.0, generator=g)
                else:
                    normal_(layer.weight, std=std, generator=g)
                layer.bias.zero_()

    def forward(self, x):
        return self.net(x)


class NormalInitTanhMLP(TanhMLP):
    """BUG: weights N(0, 1), no 1/√fan_in: the tanh units sit in saturation."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed, std=1.0)


# =========================================================================== probes
def _setup_probe(check, statistical=False, **kwargs):
    def run(setup, seed, device):
        return setup.run(check, seed, **kwargs)

    return Probe(check.__name__, run, statistical)


PARAMS_UPDATE = _setup_probe(check_params_update)
GRADIENTS_FLOW = _setup_probe(check_gradients_flow)
FINITE = _setup_probe(check_finite)
INITIAL_LOSS = _setup_probe(check_initial_loss, statistical=True, alpha=ALPHA)
CAN_OVERFIT = _setup_probe(check_can_overfit)
DEAD_UNITS = _setup_probe(check_dead_units, statistical=True, alpha=ALPHA)
SATURATION = _setup_probe(check_saturation, statistical=True, alpha=ALPHA)
UPDATE_RATIO = _setup_probe(check_update_ratio)


MLP_TWIN = Twin(
    "MLP + Adam",
    _setup(MLP),
    (
        PARAMS_UPDATE,
        GRADIENTS_FLOW,
        FINITE,
        INITIAL_LOSS,
        CAN_OVERFIT,
        DEAD_UNITS,
        UPDATE_RATIO,
    ),
)
CLASSIFIER_LOSS_TWIN = Twin("MLP + cross-entropy", _setup(MLP), (INITIAL_LOSS,))
FROZEN_TWIN = Twin("frozen backbone + AdamW", _frozen_twin, (PARAMS_UPDATE,))
TANH_TWIN = Twin("tanh MLP (Xavier, gain 5/3)", _setup(TanhMLP), (SATURATION, FINITE))


# =========================================================================== sequence layers
def _causal_mask(length, device, diagonal=1):
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal)


class CausalSelfAttention(nn.Module):
    """netprops' MultiHeadSelfAttention with a causal mask: the correct twin."""

    diagonal = 1

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.attn = MultiHeadSelfAttention(EMBED, HEADS, generator=make_generator(seed))

    def forward(self, x, key_padding_mask=None):
        mask = _causal_mask(x.shape[1], x.device, self.diagonal)
        return self.attn(x, attn_mask=mask, key_padding_mask=key_padding_mask)


class OffByOneCausalAttention(CausalSelfAttention):
    """BUG: triu(·, diagonal=2) masks from t+2 on: position t sees t+1."""

    diagonal = 2


class BatchFlattenedAttention(CausalSelfAttention):
    """BUG: the batch is flattened into one long sequence: tokens attend across examples."""

    def forward(self, x, key_padding_mask=None):
        n, length, e = x.shape
        flat = x.reshape(1, n * length, e)
        mask = _causal_mask(n * length, x.device)
        return self.attn(flat, attn_mask=mask).reshape(n, length, e)


class IgnoredPaddingAttention(CausalSelfAttention):
    """BUG: key_padding_mask is accepted and ignored."""

    def forward(self, x, key_padding_mask=None):
        return super().forward(x)


class CausalConv(nn.Module):
    """A causal convolution: pad k − 1 on the left only (the correct twin)."""

    padding = (2, 0)

    def __init__(self, seed: int) -> None:
        super().__init__()
        with seeded_global_rng(seed):
            self.conv = nn.Conv1d(4, 4, 3)

    def forward(self, x):
        return self.conv(F.pad(x, self.padding))


class SymmetricPaddingConv(CausalConv):
    """BUG: "causal" conv padded on both sides (padding=1): position t sees t+1."""

    padding = (1, 1)


def _conv1d(padding_mode):
    def build(seed, device):
        with seeded_global_rng(seed):
            return nn.Conv1d(4, 4, 3, padding=1, padding_mode=padding_mode).to(device)

    return build


class SelfAttention(nn.Module):
    """netprops' MultiHeadSelfAttention without positional encoding (the correct twin)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.attn = MultiHeadSelfAttention(EMBED, HEADS, generator=make_generator(seed))

    def forward(self, x):
        return self.attn(x)


class PositionBiasAttention(SelfAttention):
    """BUG: a position-dependent additive score bias (|i − j|) in an encoder claimed
    permutation-equivariant."""

    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)
        bias = -(pos[:, None] - pos[None, :]).abs()
        return self.attn(x, attn_mask=bias)


class MeanPoolHead(SelfAttention):
    """Attention then mean over positions: invariant to permuting positions (correct twin)."""

    def forward(self, x):
        return super().forward(x).mean(dim=1)


class FirstTokenPoolHead(SelfAttention):
    """BUG: "pools" by taking the first position's output."""

    def forward(self, x):
        return super().forward(x)[:, 0]


def _module(cls):
    return lambda seed, device: cls(seed).to(device)


def _seq(seed, device):
    return _x((3, LENGTH, EMBED), seed, device)


def _signal(seed, device):
    return _x((2, 4, 20), seed, device)


def _structure_probe(check, make_input, **kwargs):
    def run(module, seed, device):
        return check(module, make_input(seed, device), seed=seed, **kwargs)

    return Probe(check.__name__, run)


def _batch_independent(module, seed, device):
    return check_batch_independent(module, _seq(seed, device), seed=seed)


CAUSAL_ATTENTION_TWIN = Twin(
    "causal MultiHeadSelfAttention",
    _module(CausalSelfAttention),
    (
        _structure_probe(check_causal, _seq),
        _structure_probe(check_mask_respected, _seq),
        Probe("check_batch_independent", _batch_independent),
    ),
)
CAUSAL_CONV_TWIN = Twin(
    "causal Conv1d", _module(CausalConv), (_structure_probe(check_causal, _signal, dim=2),)
)
CIRCULAR_CONV_TWIN = Twin(
    "circular Conv1d",
    _conv1d("circular"),
    (_structure_probe(check_equivariant, _signal, transform=CyclicShift(2)),),
)
ATTENTION_TWIN = Twin(
    "MultiHeadSelfAttention",
    _module(SelfAttention),
    (_structure_probe(check_equivariant, _seq, transform=Permutation(1)),),
)
POOL_TWIN = Twin(
    "attention + mean pool",
    _module(MeanPoolHead),
    (
        _structure_probe(
            check_equivariant, _seq, transform=Permutation(1), output_transform=lambda y: y
        ),
    ),
)


# =========================================================================== the catalog
DYNAMICS_MUTANTS: tuple[Mutant, ...] = (
    Mutant("detached_layer", "dynamics", "fc1's output is detached", _setup(DetachedMLP), MLP_TWIN),
    Mutant(
        "integer_cast", "dynamics", "hidden values cast to int and back", _setup(IntegerCastMLP),
        MLP_TWIN,
    ),
    Mutant(
        "unused_branch", "dynamics", "an auxiliary head is never called", _setup(UnusedBranchMLP),
        MLP_TWIN,
    ),
    Mutant(
        "log_of_zero", "dynamics", "log(softmax(z)) instead of log_softmax",
        _setup(NaiveLogSoftmaxMLP), MLP_TWIN,
    ),
    Mutant("norm_without_eps", "dynamics", "h / ‖h‖ with no ε", _setup(NoEpsNormMLP), MLP_TWIN),
    Mutant(
        "huge_output_init", "dynamics", "output layer N(0, 1)", _setup(HugeHeadMLP), MLP_TWIN
    ),
    Mutant(
        "double_softmax", "dynamics", "softmax output fed to cross-entropy",
        _setup(DoubleSoftmaxMLP), MLP_TWIN,
    ),
    Mutant(
        "nll_on_logits", "dynamics", "F.nll_loss on raw logits",
        _setup(MLP, loss_fn=nll_on_logits), CLASSIFIER_LOSS_TWIN,
    ),
    Mutant(
        "lr_effectively_zero", "dynamics", "Adam with lr 1e-8", _setup(MLP, optimizer=_adam(1e-8)),
        MLP_TWIN,
    ),
    Mutant(
        "labels_shuffled_per_step", "dynamics", "targets re-shuffled at every step",
        _setup(MLP, loss_fn=ShuffledLabels), MLP_TWIN,
    ),
    Mutant(
        "dead_relu_negative_bias", "dynamics", "hidden biases −3", _setup(NegativeBiasMLP), MLP_TWIN
    ),
    Mutant("tiny_init", "dynamics", "hidden weights N(0, 1e-4²)", _setup(TinyInitMLP), MLP_TWIN),
    Mutant(
        "huge_hidden_init", "dynamics", "second hidden layer N(0, 1)", _setup(HugeHiddenInitMLP),
        MLP_TWIN,
    ),
    Mutant(
        "weight_decay_on_frozen", "dynamics", "SGD decays every parameter, frozen ones too",
        _frozen_decay_all, FROZEN_TWIN,
    ),
    Mutant(
        "optimizer_before_freezing", "dynamics",
        "AdamW built and stepped before freezing, gradients zeroed in place",
        _optimizer_before_freezing, FROZEN_TWIN,
    ),
    Mutant(
        "frozen_bn_in_train_mode", "dynamics", "frozen backbone left in train mode",
        _frozen_bn_training, FROZEN_TWIN,
    ),
    Mutant(
        "saturated_tanh", "dynamics", "tanh MLP with N(0, 1) weights", _setup(NormalInitTanhMLP),
        TANH_TWIN,
    ),
    Mutant(
        "off_by_one_causal_mask", "structure", "triu(diagonal=2): t sees t + 1",
        _module(OffByOneCausalAttention), CAUSAL_ATTENTION_TWIN,
    ),
    Mutant(
        "attention_across_batch", "structure", "batch flattened into one sequence",
        _module(BatchFlattenedAttention), CAUSAL_ATTENTION_TWIN,
    ),
    Mutant(
        "padding_mask_ignored", "structure", "key_padding_mask ignored",
        _module(IgnoredPaddingAttention), CAUSAL_ATTENTION_TWIN,
    ),
    Mutant(
        "causal_conv_symmetric_padding", "structure", "padding=1 on both sides",
        _module(SymmetricPaddingConv), CAUSAL_CONV_TWIN,
    ),
    Mutant(
        "zero_padding_claimed_circular", "structure", "zero-padded conv checked as circular",
        _conv1d("zeros"), CIRCULAR_CONV_TWIN,
    ),
    Mutant(
        "position_bias_attention", "structure", "|i − j| score bias without positions claimed",
        _module(PositionBiasAttention), ATTENTION_TWIN,
    ),
    Mutant(
        "first_token_pooling", "structure", "pools by taking position 0",
        _module(FirstTokenPoolHead), POOL_TWIN,
    ),
)  # fmt: skip
