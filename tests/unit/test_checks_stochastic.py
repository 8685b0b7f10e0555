"""check_expectation_equal, check_drop_rate and check_masks_independent on torch's and
netprops' stochastic layers."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

import netprops
import netprops.layers
from netprops.checks.stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
)


class NoRescaleDropout(nn.Module):
    """Drops with probability p but forgets the 1/(1-p) rescale."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep


class KeepPDropout(nn.Module):
    """Keeps with probability p (the paper convention) instead of dropping with p."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) < self.p
        return x * keep / self.p


def _x(device, shape=(4, 16), seed=0):
    return torch.randn(shape, generator=netprops.make_generator(seed, device), device=device)


def test_torch_dropout_mean_equals_identity(device):
    result = check_expectation_equal(nn.Dropout(0.3), _x(device), reference=lambda x: x, seed=1)
    assert result.statistic <= result.bound
    assert result.details["variance"] == "sample"
    assert result.details["n_samples"] >= 2000  # power calculation for a 0.2σ shift over 64 outputs


def test_dropout_without_rescale_is_caught(device):
    module = NoRescaleDropout(0.3, netprops.make_generator(0, device))
    with pytest.raises(netprops.PropertyViolation, match="check_expectation_equal") as info:
        check_expectation_equal(module, _x(device), reference=lambda x: x, seed=2)
    message = str(info.value)
    for part in (
        "statistic:",
        "bound:",
        "seed:      2",
        "reproduce: netprops.checks.check_expectation_equal",
    ):
        assert part in message


def test_expectation_check_restores_mode_and_module_generator(device):
    gen = netprops.make_generator(5, device)
    module = NoRescaleDropout(0.0, gen).eval()
    state = gen.get_state()
    check_expectation_equal(module, _x(device), reference=lambda x: x, n_samples=50, seed=3)
    assert module.training is False
    assert module.generator is gen
    assert torch.equal(gen.get_state(), state)


def test_expectation_check_is_replayable_from_its_seed(device):
    module = nn.Dropout(0.5)
    a = check_expectation_equal(module, _x(device), reference=lambda x: x, n_samples=200, seed=9)
    b = check_expectation_equal(module, _x(device), reference=lambda x: x, n_samples=200, seed=9)
    assert a.statistic == b.statistic


def test_deterministic_outputs_must_match_exactly(device):
    with pytest.raises(netprops.PropertyViolation, match="zero variance"):
        check_expectation_equal(nn.Identity(), _x(device), reference=lambda x: x + 1, n_samples=10)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_torch_dropout_drop_rate(device, p):
    result = check_drop_rate(nn.Dropout(p), torch.ones(4, 8, device=device), p=p, seed=4)
    low, high = result.bound
    assert low <= result.statistic <= high


def test_keep_probability_convention_is_caught(device):
    module = KeepPDropout(0.2, netprops.make_generator(0, device))
    with pytest.raises(netprops.PropertyViolation, match="entries dropped"):
        check_drop_rate(module, torch.ones(4, 8, device=device), p=0.2, seed=0)


def test_missing_rescale_is_caught_by_drop_rate(device):
    module = NoRescaleDropout(0.5, netprops.make_generator(0, device))
    with pytest.raises(netprops.PropertyViolation, match="not rescaled"):
        check_drop_rate(module, torch.ones(4, 8, device=device), p=0.5, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"alpha": 0.0}, ValueError, "alpha must be a probability in \\(0, 1\\)"),
        ({"n_samples": 1}, ValueError, "n_samples must be an int >= 2"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
    ],
)
def test_expectation_validation(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_expectation_equal(nn.Dropout(0.5), torch.ones(2, 2), reference=lambda x: x, **kwargs)


def test_expectation_rejects_integer_input_and_non_callable_reference():
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        check_expectation_equal(
            nn.Dropout(0.5), torch.ones(2, 2, dtype=torch.long), reference=lambda x: x
        )
    with pytest.raises(TypeError, match="reference must be callable"):
        check_expectation_equal(nn.Dropout(0.5), torch.ones(2, 2), reference=3)


def test_drop_rate_validation():
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\), got 1.0"):
        check_drop_rate(nn.Dropout(0.5), p=1.0)
    with pytest.raises(TypeError, match="module must be Module"):
        check_drop_rate(lambda x: x, p=0.5)
    with pytest.raises(ValueError, match="p is needed: Identity has no attribute `p`"):
        check_drop_rate(nn.Identity())
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        check_drop_rate(nn.Dropout(0.5), torch.ones(2, dtype=torch.long))


def test_drop_rate_reads_p_and_device_from_the_module_and_x(device):
    x = torch.zeros(3, device=device, dtype=torch.float64)
    result = check_drop_rate(nn.Dropout(0.25), x, seed=1, n=4000)
    assert result.details["expected"] == 1000.0  # p = module.p
    assert result.statistic == pytest.approx(1000, abs=200)


def test_expectation_derives_the_reference_from_the_module(device):
    layer = nn.Dropout(0.3)
    assert check_expectation_equal(layer, _x(device), seed=1).statistic >= 0
    with pytest.raises(ValueError, match="reference is needed for Tanh"):
        check_expectation_equal(nn.Tanh(), _x(device))


def test_rarely_dropped_outputs_do_not_fail_the_sample_variance_path(device):
    """An output kept in all N draws has sample variance 0; that proves nothing and is left out."""
    result = check_expectation_equal(
        nn.Dropout(0.001), torch.ones(4, 16), reference=lambda x: x, seed=0
    )
    assert result.details["constant_in_every_draw"] > 0
    assert result.statistic <= result.bound


def test_shared_mask_rows_are_not_summed_as_independent(device):
    layer = netprops.layers.DropConnectLinear(
        8, 5, p=0.5, generator=netprops.make_generator(3, device)
    ).to(device)
    x = _x(device, (6, 8))
    result = check_expectation_equal(
        layer,
        x,
        reference=lambda t: torch.nn.functional.linear(t, layer.weight, layer.bias),
        n_samples=300,
    )
    assert result.details["sum_z2_outputs"] == 5  # one row: the rows share the mask
    per_example = netprops.layers.DropConnectLinear(
        8, 5, p=0.5, per_sample=True, generator=netprops.make_generator(3, device)
    ).to(device)
    result = check_expectation_equal(
        per_example,
        x,
        reference=lambda t: torch.nn.functional.linear(t, per_example.weight, per_example.bias),
        n_samples=300,
    )
    assert result.details["sum_z2_outputs"] == 30


# --------------------------------------------------------------------------- check_masks_independent
class ComplementaryDropout(nn.Module):
    """p = 0.5 dropout whose odd rows keep exactly what the even row before them drops."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        half = torch.rand(
            (x.shape[0] // 2, *x.shape[1:]), generator=self.generator, device=x.device
        )
        keep = (half >= 0.5).to(x.dtype)
        mask = torch.stack([keep, 1 - keep], dim=1).reshape(x.shape)
        return x * mask * 2


def _false_failures(build, x, alpha, n_samples, seeds):
    failures = 0
    for seed in seeds:
        try:
            check_masks_independent(build(seed), x, n_samples=n_samples, alpha=alpha, seed=seed)
        except netprops.PropertyViolation:
            failures += 1
    return failures


@pytest.mark.parametrize(
    ("name", "n_samples"),
    [("torch-dropout-0.5", 48), ("dropconnect-0.3", 48), ("dropout-0.05", 160)],
)
def test_masks_independent_false_failure_rate_is_at_most_alpha(device, name, n_samples):
    # 300 seeds at alpha = 0.05: the exact sign test may fail a correct module at most 5% of
    # the time (less: it is discrete). The bound allows binomial noise at a 1e-6 level.
    def build(seed):
        gen = netprops.make_generator(seed, device)
        if name == "torch-dropout-0.5":
            return nn.Dropout(0.5)
        if name == "dropconnect-0.3":
            return netprops.layers.DropConnectLinear(
                3, 2, p=0.3, per_sample=True, generator=gen, device=device
            )
        return netprops.layers.Dropout(0.05, generator=gen)  # one feature: mostly ties

    width = 3 if name == "dropconnect-0.3" else (1 if name == "dropout-0.05" else 4)
    x = _x(device, (1, width), seed=1)
    seeds = range(300)
    failures = _false_failures(build, x, 0.05, n_samples, seeds)
    assert failures <= stats.binom.isf(1e-6, len(seeds), 0.05), failures


def test_masks_independent_catches_complementary_masks(device):
    module = ComplementaryDropout(netprops.make_generator(0, device))
    with pytest.raises(netprops.PropertyViolation, match="differ larger within a draw"):
        check_masks_independent(module, _x(device, (1, 6)), seed=2)


def test_masks_independent_catches_a_batch_shared_mask(device):
    layer = netprops.layers.DropConnectLinear(
        5, 4, p=0.5, generator=netprops.make_generator(0, device), device=device
    )
    with pytest.raises(netprops.PropertyViolation) as info:
        check_masks_independent(layer, _x(device, (3, 5)), seed=4)
    message = str(info.value)
    for part in ("check_masks_independent", "seed:      4", "reproduce: netprops.checks"):
        assert part in message


def test_masks_independent_is_replayable_and_restores_mode(device):
    module = nn.Dropout(0.3).eval()
    a = check_masks_independent(module, _x(device), seed=9)
    b = check_masks_independent(module, _x(device), seed=9)
    assert module.training is False
    assert a.statistic == b.statistic
    assert a.details == b.details
    assert a.bound == (a.alpha, 1.0)


@pytest.mark.parametrize(
    ("module", "kwargs", "error", "pattern"),
    [
        (nn.Identity(), {}, ValueError, "never varied"),
        (
            nn.Dropout(0.1),
            {"n_samples": 20},
            ValueError,
            r"only \d+ of n_samples=20 .*use n_samples >=",
        ),
        (nn.Dropout(0.5), {"alpha": 0.0}, ValueError, "alpha"),
        (nn.Dropout(0.5), {"n_samples": 1}, ValueError, "n_samples"),
        (nn.Dropout(0.5), {"seed": -1}, ValueError, "seed"),
    ],
)
def test_masks_independent_validation(module, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        check_masks_independent(module, _x("cpu", (1, 1)), **kwargs)


class _SumOverBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, 0.5).sum(0)


def test_masks_independent_needs_the_batch_dimension_first():
    with pytest.raises(ValueError, match="batch dimension first"):
        check_masks_independent(_SumOverBatch(), _x("cpu"))
    with pytest.raises(TypeError):
        check_masks_independent(nn.Dropout(0.5), torch.ones(2, 3, dtype=torch.long))
