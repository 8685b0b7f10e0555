"""Normalization and train/eval mutants: one bug each, caught at the checks' defaults.

Appended to :data:`tests.quality.mutants.CATALOG` (see the last line of mutants.py).
LayerNorm / BatchNorm mutants break OUR layers; RMSNorm, GroupNorm and InstanceNorm
mutants break torch's (netprops has none of its own), whose unmodified class is the
correct twin. Every subject gets trained-looking parameters before it is checked
(``perturb_constant_parameters_``: affine weights around 1, biases and running
statistics around 0, all seeded), and every input is an ordinary standard-normal
batch — the mutants must be killed without special inputs. None of the probes
here is statistical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from netprops.checks.contract import check_train_eval_contract
from netprops.checks.normalization import (
    check_batch_independent,
    check_normalized,
    check_shift_invariant,
)
from netprops.layers.dropout import DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm

from .mutants import (
    BATCH_NORM,
    DROPCONNECT,
    DROPOUT,
    LAYER_NORM,
    Mutant,
    Twin,
    _batch_norm,
    _dropconnect,
    _dropout,
    _gradcheck_probe,
    _layer_norm,
    _parity_probe,
    _probe,
    _randn,
    trained,
)

__all__ = ["NORM_MUTANTS"]


# =========================================================================== LayerNorm
class IgnoresAffineLayerNorm(LayerNorm):
    """BUG: never applies its weight and bias (invisible at ones and zeros)."""

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps)


class UncentredLayerNorm(LayerNorm):
    """BUG: divides by the RMS without subtracting the mean (an RMSNorm by mistake)."""

    def forward(self, x):
        y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)
        return y * self.weight + self.bias


class AllDimsLayerNorm(LayerNorm):
    """BUG: LayerNorm(C) on (N, T, C) takes its statistics over (T, C), every non-batch dim."""

    def forward(self, x):
        dims = tuple(range(1, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


# =========================================================================== BatchNorm
class UnbiasedOutputBatchNorm(BatchNorm1d):
    """BUG: running statistics right, but the TRAINING output divides by the unbiased
    batch variance."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        super().forward(x)  # the running statistics move as they should
        var, mean = torch.var_mean(x, dim=0, correction=1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class IgnoresAffineBatchNorm(BatchNorm1d):
    """BUG: normalizes (running statistics right) but never applies weight and bias."""

    def forward(self, x):
        out = super().forward(x)
        return (out - self.bias) / self.weight


class RunningStatsInTrainBatchNorm(BatchNorm1d):
    """BUG: the training forward normalizes with the running statistics (updated right)."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        old = (self.running_mean.clone(), self.running_var.clone())
        super().forward(x)
        return F.batch_norm(x, *old, self.weight, self.bias, False, 0.0, self.eps)


class PerPixelBatchNorm2d(BatchNorm2d):
    """BUG: running statistics right, training statistics per (channel, pixel) over the batch."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        super().forward(x)
        var, mean = torch.var_mean(x, dim=0, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


# =========================================================================== RMS/Group/Instance
class CentringRMSNorm(nn.RMSNorm):
    """BUG: an "RMSNorm" that subtracts the mean first (a bias-free LayerNorm)."""

    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6) * self.weight


class InterleavedGroupNorm(nn.GroupNorm):
    """BUG: group g holds channels g, g + G, g + 2G, ... (a strided view) instead of a block."""

    def forward(self, x):
        n, c, g = x.shape[0], x.shape[1], self.num_groups
        rest = x.shape[2:]
        strided = x.reshape(n, c // g, g, *rest).transpose(1, 2).reshape(x.shape)
        y = F.group_norm(strided, g, None, None, self.eps)
        y = y.reshape(n, g, c // g, *rest).transpose(1, 2).reshape(x.shape)
        shape = (1, c) + (1,) * len(rest)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class BatchStatsInstanceNorm(nn.InstanceNorm1d):
    """BUG: normalizes each channel over the batch too (BatchNorm's statistics)."""

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


# =========================================================================== train → eval → train
class InPlaceWeightDropConnect(DropConnectLinear):
    """BUG: the training forward writes the dropped, rescaled weights into ``weight`` in place."""

    def _forward(self, x, batch_shape):
        if not self.training or self.p == 0.0:
            return self._apply_weight(x, self.weight)
        mask = self.sample_mask(())
        self.last_mask = mask
        with torch.no_grad():
            self.weight.copy_(self.masked_weight(mask))
        return self._apply_weight(x, self.weight)


class StaleEvalCacheDropConnect(DropConnectLinear):
    """BUG: eval caches Wᵀ for ``x @ Wᵀ``; the next training forward masks the stale cache
    (of the transposed shape: it raises)."""

    def _forward(self, x, batch_shape):
        cached = getattr(self, "_weight_t", None)
        if not self.training or self.p == 0.0:
            self._weight_t = self.weight.t()
            return torch.addmm(self.bias, x, self._weight_t)
        if cached is None:
            return super()._forward(x, batch_shape)
        mask = self.sample_mask(())
        return x @ (cached * mask / (1.0 - self.p)).t() + self.bias


class StickyEvalDropout(Dropout):
    """BUG: eval sets ``p = 0`` (to be the identity) and never puts it back."""

    def forward(self, x):
        if not self.training:
            self.p = 0.0
        return super().forward(x)


# =========================================================================== probes and twins
def _seq_input(seed, device):
    """An ordinary (N, T, C) batch: 4 sequences of 5 tokens, 8 features."""
    return _randn((4, 5, 8), seed, device)


def _chan_input(seed, device):
    """An ordinary (N, C, L) batch: 4 examples, 6 channels, 5 positions."""
    return _randn((4, 6, 5), seed, device)


def _row_input(seed, device):
    return _randn((6, 8), seed, device)


def _bn2d_input(seed, device):
    return _randn((4, 3, 3, 3), seed, device, offset=1.0, scale=2.0)


def _normalized_probe(make_input):
    @_probe("check_normalized")
    def run(module, seed, device):
        return check_normalized(module, make_input(seed, device))

    return run


def _batch_independent_probe(make_input, eval_mode=False):
    @_probe("check_batch_independent")
    def run(module, seed, device):
        module = module.eval() if eval_mode else module
        return check_batch_independent(module, make_input(seed, device), seed=seed)

    return run


def _shift_invariant_probe(make_input):
    @_probe("check_shift_invariant")
    def run(module, seed, device):
        return check_shift_invariant(module, make_input(seed, device), seed=seed)

    return run


def _contract_probe(make_input):
    @_probe("check_train_eval_contract")
    def run(module, seed, device):
        return check_train_eval_contract(module, make_input(seed, device), seed=seed)

    return run


def _torch_norm(cls, *args):
    return lambda seed, device: trained(cls(*args, device=device), seed)


def _double(make_input, rows=3):
    return lambda seed, device: make_input(seed, device).double()[:rows]


LAYER_NORM_SEQ = Twin(
    "LayerNorm(8) on (N, T, C)",
    (_layer_norm(LayerNorm)),
    (
        _normalized_probe(_seq_input),
        _batch_independent_probe(_seq_input),
        _shift_invariant_probe(_seq_input),
        _gradcheck_probe(_double(_seq_input, rows=2)),
    ),
)
BATCH_NORM_2D = Twin(
    "BatchNorm2d",
    lambda seed, device: trained(BatchNorm2d(3, device=device), seed),
    (
        _contract_probe(_bn2d_input),
        _normalized_probe(_bn2d_input),
        _batch_independent_probe(_bn2d_input, eval_mode=True),
        _gradcheck_probe(_double(_bn2d_input)),
    ),
)
RMS_NORM = Twin(
    "nn.RMSNorm(8)",
    _torch_norm(nn.RMSNorm, 8),
    (
        _normalized_probe(_row_input),
        _batch_independent_probe(_row_input),
        _gradcheck_probe(_double(_row_input)),
        _parity_probe(_row_input),
    ),
)
GROUP_NORM = Twin(
    "nn.GroupNorm(2, 6)",
    _torch_norm(nn.GroupNorm, 2, 6),
    (
        _normalized_probe(_chan_input),
        _batch_independent_probe(_chan_input),
        _shift_invariant_probe(_chan_input),
        _parity_probe(_chan_input),  # (gradcheck: torch's double group_norm backward is slow)
    ),
)
INSTANCE_NORM = Twin(
    "nn.InstanceNorm1d(6, affine)",
    lambda seed, device: trained(nn.InstanceNorm1d(6, affine=True, device=device), seed),
    (
        _normalized_probe(_chan_input),
        _batch_independent_probe(_chan_input),
        _shift_invariant_probe(_chan_input),
        _contract_probe(_chan_input),
    ),
)


NORM_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "layernorm_ignores_affine",
        "LayerNorm",
        "never applies weight and bias",
        (_layer_norm(IgnoresAffineLayerNorm)),
        LAYER_NORM,
    ),
    Mutant(
        "layernorm_uncentred",
        "LayerNorm",
        "divides by the RMS without subtracting the mean",
        (_layer_norm(UncentredLayerNorm)),
        LAYER_NORM,
    ),
    Mutant(
        "layernorm_all_dims_3d",
        "LayerNorm",
        "LayerNorm(C) on (N, T, C) normalizes over (T, C)",
        (_layer_norm(AllDimsLayerNorm)),
        LAYER_NORM_SEQ,
    ),
    Mutant(
        "batchnorm_unbiased_train_output",
        "BatchNorm",
        "training output divides by the unbiased batch variance",
        (_batch_norm(UnbiasedOutputBatchNorm)),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm_ignores_affine",
        "BatchNorm",
        "never applies weight and bias",
        (_batch_norm(IgnoresAffineBatchNorm)),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm_running_stats_in_train",
        "BatchNorm",
        "training output normalized with the running statistics",
        (_batch_norm(RunningStatsInTrainBatchNorm)),
        BATCH_NORM,
    ),
    Mutant(
        "batchnorm2d_per_pixel",
        "BatchNorm",
        "BatchNorm2d training statistics per (channel, pixel)",
        lambda seed, device: trained(PerPixelBatchNorm2d(3, device=device), seed),
        BATCH_NORM_2D,
    ),
    Mutant(
        "rmsnorm_centring",
        "RMSNorm",
        "subtracts the mean before dividing by the RMS",
        _torch_norm(CentringRMSNorm, 8),
        RMS_NORM,
    ),
    Mutant(
        "groupnorm_interleaved",
        "GroupNorm",
        "groups of strided channels g, g + G, ... instead of contiguous blocks",
        _torch_norm(InterleavedGroupNorm, 2, 6),
        GROUP_NORM,
    ),
    Mutant(
        "instancenorm_batch_stats",
        "InstanceNorm",
        "statistics over the batch too (BatchNorm's)",
        lambda seed, device: trained(BatchStatsInstanceNorm(6, affine=True, device=device), seed),
        INSTANCE_NORM,
    ),
    Mutant(
        "dropconnect_weight_drop_in_place",
        "DropConnect",
        "training forward writes the dropped weights into the parameter",
        _dropconnect(InPlaceWeightDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "dropconnect_stale_eval_cache",
        "DropConnect",
        "eval caches Wᵀ; the next training forward raises",
        _dropconnect(StaleEvalCacheDropConnect),
        DROPCONNECT,
    ),
    Mutant(
        "dropout_sticky_eval",
        "Dropout",
        "eval sets p = 0 and never restores it",
        _dropout(StickyEvalDropout),
        DROPOUT,
    ),
)
