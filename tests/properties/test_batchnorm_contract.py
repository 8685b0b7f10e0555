"""BatchNorm's train/eval contract (docs/methods.md §Normalization contracts), alone and
inside composed models.

``check_train_eval_contract``: eval forwards are deterministic, draw no random
numbers and leave parameters and buffers alone; a train forward moves
``running_mean`` / ``running_var`` by ``(1 − m)·old + m·batch`` with the UNBIASED
batch variance (``momentum=None``: the cumulative average), its output equals
``F.batch_norm(training=True)`` in float64, and a train forward right after an eval
forward reproduces the one before it. Exact up to the dtype tolerance: not a
statistical test.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from netprops import PropertyViolation, make_generator
from netprops.checks.contract import check_train_eval_contract
from netprops.layers.activations import ReLU
from netprops.layers.dropout import DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, BatchNorm2d
from netprops.layers.residual import ResidualMLPBlock
from netprops.spec import perturb_constant_parameters_
from netprops.strategies import probabilities, seeds

from .conftest import hypothesis_settings, randn

momenta = st.one_of(st.just(0.1), st.just(None), st.floats(0.0, 1.0))


@st.composite
def bn_setups(draw):
    """(module class, input shape, dtype, momentum, offset, warm-up batches, seed)."""
    rank = draw(st.sampled_from([2, 3, 4]))
    batch = draw(st.integers(2, 6))
    channels = draw(st.integers(1, 5))
    spatial = tuple(draw(st.integers(1, 3)) for _ in range(rank - 2))
    cls = BatchNorm2d if rank == 4 else BatchNorm1d
    return (
        cls,
        (batch, channels, *spatial),
        draw(st.sampled_from([torch.float32, torch.float64])),
        draw(momenta),
        draw(st.sampled_from([0.0, 2.0, -30.0])),
        draw(st.integers(0, 3)),
        draw(seeds()),
    )


@given(setup=bn_setups(), affine=st.booleans())
@example(setup=(BatchNorm1d, (2, 1), torch.float32, 0.1, 0.0, 0, 0), affine=True)
@example(setup=(BatchNorm2d, (2, 3, 1, 1), torch.float64, None, 2.0, 2, 1), affine=False)
@hypothesis_settings()
def test_batch_norm_keeps_the_train_eval_contract(device, setup, affine):
    cls, shape, dtype, momentum, offset, warmup, seed = setup
    bn = cls(shape[1], momentum=momentum, affine=affine, device=device, dtype=dtype)
    with torch.no_grad():  # earlier training batches: running stats away from (0, 1)
        for k in range(warmup):
            bn.train()(randn(shape, seed + 100 + k, device, dtype, offset=offset, scale=2.0))
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = randn(shape, seed, device, dtype, offset=offset)
    result = check_train_eval_contract(bn, x, seed=seed)
    assert result.statistic <= 1.0
    assert "momentum" in result.details["batchnorm_like"]["module"]
    for key, value in bn.state_dict().items():  # the check restores what the train forward moved
        assert torch.equal(value, before[key]), key


@given(cls=st.sampled_from([BatchNorm1d, BatchNorm2d]), channels=st.integers(1, 4), seed=seeds())
@example(cls=BatchNorm1d, channels=1, seed=0)
@hypothesis_settings()
def test_batch_norm_one_value_per_channel_raises_in_train_only(device, cls, channels, seed):
    shape = (1, channels) if cls is BatchNorm1d else (1, channels, 1, 1)
    bn = cls(channels, device=device)
    x = randn(shape, seed, device)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn.train()(x)
    y = bn.eval()(x)  # eval: running statistics (0, 1) -> x / sqrt(1 + eps)
    torch.testing.assert_close(y, x / torch.sqrt(torch.tensor(1.0 + bn.eps)))


@given(rows=st.integers(2, 6), seed=seeds())
@example(rows=2, seed=0)
@hypothesis_settings()
def test_batch_norm_without_running_stats_keeps_the_contract(device, rows, seed):
    bn = BatchNorm1d(3, track_running_stats=False, device=device)
    result = check_train_eval_contract(bn, randn((rows, 3), seed, device), seed=seed)
    assert "batchnorm_like" not in result.details  # no running statistics to update


@given(p=probabilities(), momentum=momenta, rows=st.integers(2, 6), seed=seeds())
@example(p=0.0, momentum=0.1, rows=2, seed=0)
@hypothesis_settings(max_examples=15)
def test_composed_models_keep_the_contract(device, p, momentum, rows, seed):
    g = make_generator(seed, device)
    model = nn.Sequential(
        DropConnectLinear(5, 6, p=p, generator=g, device=device),
        BatchNorm1d(6, momentum=momentum, device=device),
        ReLU(),
        Dropout(p, generator=make_generator(seed + 1, device)),
    )
    result = check_train_eval_contract(model, randn((rows, 5), seed, device), seed=seed)
    assert set(result.details["dropout_like"]) == {"0", "3"}
    assert set(result.details["batchnorm_like"]) == {"1"}
    # the residual MLP block (BatchNorm + dropout inside, built on the CPU generator)
    block = ResidualMLPBlock(5, 7, norm="batch", dropout=p, generator=make_generator(seed))
    block.dropout.manual_seed(seed)
    result = check_train_eval_contract(block.to(device), randn((rows, 5), seed, device), seed=seed)
    assert set(result.details["batchnorm_like"]) == {"norm"}


# --------------------------------------------------------------------------- train → eval → train
_STATS_NORMS = {
    "nn.BatchNorm1d": (lambda c, m, d, dt: nn.BatchNorm1d(c, momentum=m, device=d, dtype=dt), 3),
    "nn.BatchNorm2d": (lambda c, m, d, dt: nn.BatchNorm2d(c, momentum=m, device=d, dtype=dt), 4),
    "nn.BatchNorm3d": (lambda c, m, d, dt: nn.BatchNorm3d(c, momentum=m, device=d, dtype=dt), 5),
    "BatchNorm2d": (lambda c, m, d, dt: BatchNorm2d(c, momentum=m, device=d, dtype=dt), 4),
    "nn.InstanceNorm1d": (
        lambda c, m, d, dt: nn.InstanceNorm1d(
            c, momentum=m, affine=True, track_running_stats=True, device=d, dtype=dt
        ),
        3,
    ),
    "nn.InstanceNorm2d": (
        lambda c, m, d, dt: nn.InstanceNorm2d(
            c, momentum=m, affine=True, track_running_stats=True, device=d, dtype=dt
        ),
        4,
    ),
}


@given(
    family=st.sampled_from(sorted(_STATS_NORMS)),
    batch=st.integers(2, 4),
    channels=st.integers(1, 4),
    momentum=momenta,
    dtype=st.sampled_from([torch.float32, torch.float64]),
    offset=st.sampled_from([0.0, 2.0, -30.0]),
    seed=seeds(),
)
@hypothesis_settings(max_examples=12)
def test_norm_layers_with_trained_statistics_keep_train_eval_train(
    device, family, batch, channels, momentum, dtype, offset, seed
):
    factory, rank = _STATS_NORMS[family]
    module = factory(channels, momentum, device, dtype)
    perturb_constant_parameters_(module, seed=seed)  # affine and running statistics
    before = {k: v.clone() for k, v in module.state_dict().items()}
    shape = (batch, channels, *(2,) * (rank - 3), 3)
    result = check_train_eval_contract(module, randn(shape, seed, device, dtype, offset=offset))
    assert result.details["batchnorm_train"]["module"].endswith("with batch statistics")
    assert "running statistics" in result.details["batchnorm_eval"]["module"]
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


class _UnbiasedOutputBatchNorm1d(nn.BatchNorm1d):
    """Running statistics right; the training output divides by the unbiased variance."""

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        dims = [d for d in range(x.dim()) if d != 1]
        var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


@given(
    batch=st.integers(2, 6),
    channels=st.integers(1, 4),
    length=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=seeds(),
)
@example(batch=2, channels=1, length=1, dtype=torch.float32, seed=0)
@hypothesis_settings(max_examples=6)
def test_an_unbiased_training_output_fails_for_any_shape(
    device, batch, channels, length, dtype, seed
):
    module = _UnbiasedOutputBatchNorm1d(channels, device=device, dtype=dtype)
    perturb_constant_parameters_(module, seed=seed)
    x = randn((batch, channels, length), seed, device, dtype, offset=1.0)
    with pytest.raises(PropertyViolation, match=r"does not compute F\.batch_norm .* in train"):
        check_train_eval_contract(module, x, seed=seed)
