"""check_expectation_equal, check_drop_rate and check_masks_independent on torch's and
netprops' stochastic layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import netprops
import netprops.layers
from netprops.checks.stats import (
    bennett_log_tail,
    binom_two_sided_pvalue,
    nonnegative_mean_upper_bound,
)
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
    low, high = result.bound
    assert low <= result.statistic <= high
    assert result.details["variance"] == "sample"
    assert result.details["two_valued"] == 64  # each output is 0 or x/(1-p): exact binomial tests
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
    assert result.bound[0] <= result.statistic <= result.bound[1]


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


# --------------------------------------------------------------------------- shared draws
class DropPath(nn.Module):
    """Stochastic depth: one keep/drop draw per example, kept examples scaled by 1/(1-p)."""

    def __init__(self, p: float, generator: torch.Generator, rescale: bool = True) -> None:
        super().__init__()
        self.p = p
        self.generator = generator
        self.rescale = rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        keep = torch.rand(shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1 - self.p) if self.rescale else x * keep


class EmbeddingDropout(nn.Module):
    """Drops whole rows of an embedding table (one draw shared by every use of a token)."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator
        self.weight = nn.Parameter(torch.randn(6, 5, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = torch.arange(x.shape[0], device=x.device) % 3  # tokens repeat: shared draws
        weight = self.weight
        if self.training:
            keep = torch.rand(6, 1, generator=self.generator, device=x.device) >= self.p
            weight = weight * keep / (1 - self.p)
        return x * weight[tokens]


class NoRescale(nn.Module):
    """Wraps a torch dropout and undoes its 1/(1-p)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.p = inner.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * (1 - self.p) if self.training else x


def _shared_draw_case(name, device, seed, rescale=True):
    """(module, x, reference) with one random draw shared by several outputs."""
    gen = netprops.make_generator(seed, device)
    if name in ("Dropout2d", "Dropout1d"):
        module = nn.Dropout2d(0.3) if name == "Dropout2d" else nn.Dropout1d(0.3)
        shape = (8, 16, 4, 4) if name == "Dropout2d" else (8, 16, 10)
        return (module if rescale else NoRescale(module)), _x(device, shape, seed=seed), None
    if name == "drop-path":
        return DropPath(0.2, gen, rescale=rescale), _x(device, (16, 32), seed=seed), None
    if name == "embedding-dropout":
        module = EmbeddingDropout(0.3, gen).to(device)
        tokens = torch.arange(12, device=device) % 3
        reference = lambda t: t * module.weight[tokens]  # noqa: E731
        return (module if rescale else NoRescale(module)), _x(device, (12, 5), seed=seed), reference
    layer = netprops.layers.DropConnectLinear(
        16, 12, p=0.3, per_sample=name == "per-sample DropConnect", generator=gen, device=device
    )
    if not rescale:
        layer.masked_weight = lambda mask: layer.weight * mask  # forgets 1/(1-p)
    return layer, _x(device, (8, 16), seed=seed), None


SHARED = [
    "Dropout2d",
    "Dropout1d",
    "drop-path",
    "embedding-dropout",
    "per-sample DropConnect",
    "batch-shared DropConnect",
]


@pytest.mark.parametrize("name", SHARED)
def test_shared_draws_do_not_fail_a_correct_layer(device, name):
    # one draw zeroes a channel, an example, a token's row or a weight row used by every
    # example: the outputs are dependent, and the check uses only independence across draws
    for seed in range(2):
        module, x, reference = _shared_draw_case(name, device, seed)
        result = check_expectation_equal(module, x, reference=reference, seed=seed)
        assert result.bound[0] <= result.statistic <= 1.0
        if name in ("Dropout2d", "Dropout1d", "drop-path"):
            assert result.details["two_valued"] == x.numel()


@pytest.mark.parametrize("name", SHARED)
def test_shared_draws_without_the_rescale_fail(device, name):
    module, x, reference = _shared_draw_case(name, device, 0, rescale=False)
    with pytest.raises(netprops.PropertyViolation, match="check_expectation_equal"):
        check_expectation_equal(module, x, reference=reference, seed=0)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.95, 0.99])
def test_skewed_dropout_gets_exact_binomial_tests(device, p):
    result = check_expectation_equal(nn.Dropout(p), _x(device, (4, 8)), seed=3)
    assert result.details["two_valued"] + result.details["constant_in_every_draw"] == 32


def test_a_bias_spread_thinly_over_many_outputs_fails_the_spread_test(device):
    class SlightlyLowDropout(nn.Module):
        p = 0.3

        def forward(self, x):
            return nn.functional.dropout(x, self.p) * 0.97  # 3 % low: ~2σ per output at N

    x = _x(device, (16, 64))
    with pytest.raises(netprops.PropertyViolation, match="across outputs"):
        check_expectation_equal(SlightlyLowDropout(), x, seed=0, n_samples=2000)
    # no single output shows it: the per-output test alone passes
    result = check_expectation_equal(nn.Dropout(0.3), x, seed=0, n_samples=2000)
    assert result.details["spread_p"] > 0.01


class MisreportingDropConnect(netprops.layers.DropConnectLinear):
    """Reports ``factor`` times the true variance of its outputs."""

    factor = 1.0

    def output_variance(self, x):
        return super().output_variance(x) * self.factor


@pytest.mark.parametrize(
    ("factor", "pattern"),
    [(1 / 0.3, "over-reports"), (2.0, "over-reports"), (0.25, "under-reports|differs")],
)
def test_a_reported_variance_is_tested_not_trusted(device, factor, pattern):
    layer = MisreportingDropConnect(16, 8, p=0.3, generator=netprops.make_generator(0, device))
    layer.factor = factor
    x = _x(device, (4, 16))
    with pytest.raises(netprops.PropertyViolation, match=pattern):
        check_expectation_equal(layer, x, seed=1)
    layer.factor = 1.0
    result = check_expectation_equal(layer, x, seed=1)
    assert result.details["variance"] == "exact"
    assert result.details["variance_ratio"] == pytest.approx(1.0, abs=0.05)


def test_an_output_reported_deterministic_must_not_vary(device):
    class ZeroVariance(nn.Dropout):
        def output_variance(self, x):
            return torch.zeros_like(x)

    with pytest.raises(netprops.PropertyViolation, match="varied over the draws"):
        check_expectation_equal(ZeroVariance(0.5), _x(device, (2, 3)), n_samples=50)


@pytest.mark.parametrize(
    ("variance", "pattern"),
    [
        (lambda x: torch.ones(3), "has 3 elements"),
        (lambda x: -torch.ones_like(x), "finite and >= 0"),
    ],
)
def test_a_malformed_output_variance_is_an_error(variance, pattern):
    module = nn.Dropout(0.5)
    module.output_variance = variance
    with pytest.raises(ValueError, match=pattern):
        check_expectation_equal(module, torch.ones(2, 2))


def test_non_finite_outputs_fail():
    class Exploding(nn.Dropout):
        def forward(self, x):
            return super().forward(x) / 0.0

    with pytest.raises(netprops.PropertyViolation, match="not finite"):
        check_expectation_equal(Exploding(0.5), torch.ones(2, 2), n_samples=10)


# --------------------------------------------------------------------------- drop rate, shared
@pytest.mark.parametrize(
    ("module", "shape", "shared", "per_draw"),
    [
        (nn.Dropout(0.3), (4, 8), 0, 1),
        (nn.Dropout2d(0.3), (2, 3, 8, 8), 2, 64),
        (nn.Dropout1d(0.5), (2, 5, 7), 1, 7),
        (nn.Dropout3d(0.2), (2, 3, 2, 4, 4), 3, 32),
    ],
    ids=["Dropout", "Dropout2d", "Dropout1d", "Dropout3d"],
)
def test_drop_rate_counts_independent_draws(device, module, shape, shared, per_draw):
    x = torch.ones(shape, device=device)
    result = check_drop_rate(module, x, seed=2)
    assert result.details["shared_over_last_dims"] == shared
    assert result.details["entries_per_draw"] == per_draw
    assert result.details["entries"] >= 100_000  # n independent draws, not n entries


def test_drop_rate_counts_drop_path_per_example(device):
    module = DropPath(0.25, netprops.make_generator(0, device))
    result = check_drop_rate(module, _x(device, (4, 6, 5)), seed=1)
    assert result.details["entries_per_draw"] == 30
    assert result.details["entries"] >= 100_000


def test_feature_dropout_with_the_wrong_rate_or_no_rescale_fails(device):
    x = torch.ones(2, 3, 8, 8, device=device)
    with pytest.raises(netprops.PropertyViolation, match="entries dropped"):
        check_drop_rate(nn.Dropout2d(0.4), x, p=0.3, seed=0)
    with pytest.raises(netprops.PropertyViolation, match="not rescaled"):
        check_drop_rate(NoRescale(nn.Dropout2d(0.3)), x, seed=0)


def test_drop_rate_needs_a_shape_keeping_module():
    with pytest.raises(ValueError, match="must keep the shape"):
        check_drop_rate(_SumOverBatch(), torch.ones(2, 3), p=0.5)


# --------------------------------------------------------------------------- the tail bounds
@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("n", [20, 200, 2000])
def test_bennett_bound_is_above_the_exact_binomial_tail(p, n):
    # X = Bernoulli(p): both tails of the mean of n draws, at every attainable count
    k = torch.arange(n + 1, dtype=torch.float64)
    upper = torch.tensor(stats.binom.sf(k.numpy() - 1, n, p))  # P(K >= k)
    lower = torch.tensor(stats.binom.cdf(k.numpy(), n, p))  # P(K <= k)
    var = torch.full_like(k, p * (1 - p))
    up = bennett_log_tail(k / n - p, var, torch.full_like(k, 1 - p), n).exp()
    down = bennett_log_tail(p - k / n, var, torch.full_like(k, p), n).exp()
    assert torch.all(up >= upper * (1 - 1e-9))
    assert torch.all(down >= lower * (1 - 1e-9))


def test_nonnegative_upper_bound_covers_the_mean():
    # Y = (Bernoulli(0.05) - 0.05)²: the most skewed case; the bound at 1e-3 must cover E Y
    # in (far) more than 99.9 % of 2000 simulated samples of size 200
    g = torch.Generator().manual_seed(0)
    b = (torch.rand(2000, 200, generator=g) < 0.05).double()
    y = (b - 0.05) ** 2
    ucb = nonnegative_mean_upper_bound(y.mean(1), y.max(1).values, 200, 1e-3)
    assert int((ucb < 0.05 * 0.95).sum()) <= 2


def test_binomial_pvalue_matches_scipy_at_a_point_null():
    k = np.array([0, 3, 10, 17, 20])
    got = binom_two_sided_pvalue(k, 20, np.full(5, 0.4), np.full(5, 0.4))
    expected = [
        min(1, 2 * min(stats.binom.cdf(i, 20, 0.4), stats.binom.sf(i - 1, 20, 0.4))) for i in k
    ]
    np.testing.assert_allclose(got, expected)
    # a composite null takes its most favourable point; π = 0 with a count > 0 gives 0
    assert binom_two_sided_pvalue(np.array([10]), 20, np.array([0.3]), np.array([0.6]))[0] == 1.0
    assert binom_two_sided_pvalue(np.array([1]), 20, np.array([0.0]), np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize("cls", [nn.AlphaDropout, nn.FeatureAlphaDropout])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_alpha_dropout_has_a_derived_mean_and_no_drop_rate(device, cls, dtype):
    # E[y | x] = a·(1 − p)·x for torch's affine alpha dropout, not x
    module = cls(0.2)
    x = _x(device, (8, 6, 3)).to(dtype)
    result = check_expectation_equal(module, x, seed=1)
    assert result.details["two_valued"] + result.details["constant_in_every_draw"] == x.numel()
    with pytest.raises(netprops.PropertyViolation):
        check_expectation_equal(module, x, reference=lambda t: t, seed=1)
    with pytest.raises(ValueError, match="does not apply to"):
        check_drop_rate(module, x)
