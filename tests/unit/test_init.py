"""Initializers, fans, gains, init_network and NetworkInitializer against torch.nn.init.

Statistical checks (docs/methods.md §Initializers) run at α = 1e-9 on fixed seeds (or a
derandomized Hypothesis search), so none can flake: a normal initializer must
give Σw²/σ² inside the two-sided χ²_N interval, every initializer must pass a
one-sample KS test against its theoretical law and a two-sample KS test
against an independent draw of its torch.nn.init counterpart. Expected
standard deviations and bounds come from torch's own fan and gain helpers.
Shapes are non-square so a fan_in/fan_out swap changes σ by ≥ √2 and fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from netprops import init
from netprops.layers.activations import ACTIVATIONS, get_activation
from netprops.seeding import make_generator, seeded_global_rng

ALPHA = 1e-9
SHAPES = [(300, 100), (32, 16, 3, 3)]
SHAPE_IDS = ["linear-300x100", "conv-32x16x3x3"]
# Only the `device` fixture is function-scoped (a plain string), so reusing it is safe.
FIXTURE_OK = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)
# Monte Carlo properties: fixed example sequence, so a statistical test cannot flake.
STATISTICAL = settings(
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# --------------------------------------------------------------------------- references
def torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape, device="meta"))


def torch_gain(name: str, param: float | None = None) -> float:
    return float(torch.nn.init.calculate_gain(name, param))


def xavier_std_ref(shape, gain):
    fan_in, fan_out = torch_fans(shape)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def he_std_ref(shape, mode, nonlinearity, a=0.0):
    fan_in, fan_out = torch_fans(shape)
    return torch_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


class Case(NamedTuple):
    """An initializer, its torch.nn.init counterpart and the reference scale of its law."""

    ours: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    ref: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    scale: Callable[[tuple[int, ...]], float]  # std (normal) or bound (uniform)


TI = torch.nn.init
NORMAL_CASES = {
    "normal": Case(
        lambda t, g: init.normal_(t, 0.37, generator=g),
        lambda t, g: TI.normal_(t, 0.0, 0.37, generator=g),
        lambda s: 0.37,
    ),
    "xavier_normal": Case(
        lambda t, g: init.xavier_normal_(t, 5 / 3, generator=g),
        lambda t, g: TI.xavier_normal_(t, 5 / 3, generator=g),
        lambda s: xavier_std_ref(s, 5 / 3),
    ),
    "he_normal-fan_in-relu": Case(
        lambda t, g: init.he_normal_(t, generator=g),
        lambda t, g: TI.kaiming_normal_(t, nonlinearity="relu", generator=g),
        lambda s: he_std_ref(s, "fan_in", "relu"),
    ),
    "he_normal-fan_out-leaky0.2": Case(
        lambda t, g: init.he_normal_(t, 0.2, "fan_out", "leaky_relu", generator=g),
        lambda t, g: TI.kaiming_normal_(t, 0.2, "fan_out", "leaky_relu", generator=g),
        lambda s: he_std_ref(s, "fan_out", "leaky_relu", 0.2),
    ),
    "lecun_normal": Case(
        lambda t, g: init.lecun_normal_(t, generator=g),
        lambda t, g: TI.kaiming_normal_(t, nonlinearity="linear", generator=g),
        lambda s: 1.0 / math.sqrt(torch_fans(s)[0]),
    ),
}
UNIFORM_CASES = {
    "uniform": Case(
        lambda t, g: init.uniform_(t, 0.3, generator=g),
        lambda t, g: TI.uniform_(t, -0.3, 0.3, generator=g),
        lambda s: 0.3,
    ),
    "xavier_uniform": Case(
        lambda t, g: init.xavier_uniform_(t, 5 / 3, generator=g),
        lambda t, g: TI.xavier_uniform_(t, 5 / 3, generator=g),
        lambda s: math.sqrt(3.0) * xavier_std_ref(s, 5 / 3),
    ),
    "he_uniform-fan_in-relu": Case(
        lambda t, g: init.he_uniform_(t, generator=g),
        lambda t, g: TI.kaiming_uniform_(t, nonlinearity="relu", generator=g),
        lambda s: math.sqrt(3.0) * he_std_ref(s, "fan_in", "relu"),
    ),
    "he_uniform-fan_out-tanh": Case(
        lambda t, g: init.he_uniform_(t, mode="fan_out", nonlinearity="tanh", generator=g),
        lambda t, g: TI.kaiming_uniform_(t, mode="fan_out", nonlinearity="tanh", generator=g),
        lambda s: math.sqrt(3.0) * he_std_ref(s, "fan_out", "tanh"),
    ),
}
ALL_CASES = {**NORMAL_CASES, **UNIFORM_CASES}


def draw(fn, shape, seed, device, dtype=torch.float32) -> torch.Tensor:
    return fn(torch.empty(shape, device=device, dtype=dtype), make_generator(seed, device))


def assert_chi2_std(w: torch.Tensor, std: float, mean: float = 0.0) -> None:
    """Σ((w - mean)/std)² ~ χ²_N exactly for i.i.d. N(mean, std²) entries."""
    w = w.detach()
    n = w.numel()
    statistic = float((((w.double() - mean) / std) ** 2).sum())
    low, high = stats.chi2.ppf(ALPHA / 2, n), stats.chi2.isf(ALPHA / 2, n)
    assert low <= statistic <= high, (
        f"Σw²/σ² = {statistic:.1f} outside the χ²_{n} interval [{low:.1f}, {high:.1f}] "
        f"(α={ALPHA}); empirical std {float(w.double().std()):.5g} vs expected {std:.5g}"
    )


def assert_ks(w: torch.Tensor, dist: str, args: tuple[float, ...]) -> None:
    result = stats.kstest(w.detach().double().cpu().numpy().ravel(), dist, args=args)
    assert result.pvalue > ALPHA, (
        f"KS vs {dist}{args}: D={result.statistic:.4g}, p={result.pvalue:.3g}"
    )


# --------------------------------------------------------------------------- fans and gains
@FIXTURE_OK
@given(shape=st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple))
def test_fans_match_torch(device, shape):
    assert init.fans(torch.empty(shape, device=device)) == torch_fans(shape)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (lambda: nn.Linear(100, 300, device="meta"), (100, 300)),
        (lambda: nn.Conv1d(4, 6, 5, device="meta"), (4 * 5, 6 * 5)),
        (lambda: nn.Conv2d(16, 32, (3, 5), device="meta"), (16 * 15, 32 * 15)),
        (lambda: nn.Conv2d(8, 12, 3, groups=4, device="meta"), (2 * 9, 12 * 9)),
        (lambda: nn.Conv3d(3, 7, (2, 3, 4), device="meta"), (3 * 24, 7 * 24)),
    ],
    ids=["linear", "conv1d", "conv2d", "conv2d-groups", "conv3d"],
)
def test_fans_of_layer_weights(module, expected):
    weight = module().weight
    assert init.fans(weight) == expected
    assert init.fans(weight) == torch.nn.init._calculate_fan_in_and_fan_out(weight)


@pytest.mark.parametrize(
    "name",
    [
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "selu",
    ],
)
def test_calculate_gain_matches_torch_for_every_name(name):
    assert init.calculate_gain(name) == pytest.approx(torch_gain(name), rel=1e-15)


def test_calculate_gain_identity_and_defaults():
    assert init.calculate_gain("identity") == torch_gain("linear")
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    # torch ignores the parameter for every nonlinearity but leaky_relu; so do we.
    assert init.calculate_gain("tanh", 0.3) == torch_gain("tanh", 0.3)
    assert set(init.NONLINEARITIES) >= {"linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"}


@given(slope=st.floats(-10, 10, allow_nan=False) | st.integers(-5, 5))
def test_calculate_gain_leaky_relu_matches_torch(slope):
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
        torch_gain("leaky_relu", slope), rel=1e-15
    )


# --------------------------------------------------------------------------- distributions
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("case", NORMAL_CASES.values(), ids=NORMAL_CASES.keys())
def test_normal_initializers_have_exact_variance_and_normal_shape(device, case, shape):
    w = draw(case.ours, shape, seed=11, device=device)
    std = case.scale(shape)
    assert w.shape == shape
    assert_chi2_std(w, std)
    assert_ks(w, "norm", (0.0, std))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("case", UNIFORM_CASES.values(), ids=UNIFORM_CASES.keys())
def test_uniform_initializers_respect_bound_and_uniform_shape(device, case, shape):
    w = draw(case.ours, shape, seed=12, device=device)
    bound = case.scale(shape)
    # float32 rounding of -bound + u·2·bound may land an ulp past the real bound.
    assert float(w.abs().max()) <= bound * (1 + 2 * torch.finfo(w.dtype).eps)
    assert_ks(w, "uniform", (-bound, 2 * bound))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_same_distribution_as_torch_two_sample_ks(device, case, shape):
    ours = draw(case.ours, shape, seed=21, device=device)
    theirs = draw(case.ref, shape, seed=22, device=device)  # independent draw
    result = stats.ks_2samp(
        ours.double().cpu().numpy().ravel(), theirs.double().cpu().numpy().ravel()
    )
    assert result.pvalue > ALPHA, (
        f"2-sample KS vs torch: D={result.statistic:.4g}, p={result.pvalue:.3g}"
    )


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_same_generator_state_gives_torchs_draws(device, case):
    # Both draw through Tensor.normal_/uniform_ with the same generator, so the
    # values agree up to the rounding of std/bound.
    shape = SHAPES[1]
    torch.testing.assert_close(
        draw(case.ours, shape, seed=5, device=device), draw(case.ref, shape, seed=5, device=device)
    )


@STATISTICAL
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    mode=st.sampled_from(init.FAN_MODES),
    nonlinearity=st.sampled_from(["relu", "tanh", "leaky_relu", "selu", "linear"]),
    a=st.floats(-1, 1),
    seed=st.integers(0, 2**32),
)
def test_he_normal_variance_for_any_shape(device, shape, mode, nonlinearity, a, seed):
    w = init.he_normal_(
        torch.empty(shape, device=device),
        a,
        mode,
        nonlinearity,
        generator=make_generator(seed, device),
    )
    assert_chi2_std(w, he_std_ref(shape, mode, nonlinearity, a))


@STATISTICAL
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    gain=st.floats(0.1, 5),
    seed=st.integers(0, 2**32),
)
def test_xavier_normal_variance_for_any_shape(device, shape, gain, seed):
    w = init.xavier_normal_(
        torch.empty(shape, device=device), gain, generator=make_generator(seed, device)
    )
    assert_chi2_std(w, xavier_std_ref(shape, gain))


@FIXTURE_OK
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    gain=st.floats(0, 5),
    seed=st.integers(0, 2**32),
)
def test_xavier_uniform_never_exceeds_its_bound(device, shape, gain, seed):
    w = init.xavier_uniform_(
        torch.empty(shape, device=device), gain, generator=make_generator(seed, device)
    )
    bound = math.sqrt(3.0) * xavier_std_ref(shape, gain)
    assert float(w.abs().max()) <= bound * (1 + 2 * torch.finfo(w.dtype).eps)


def test_normal_mean_shifts_the_law(device):
    w = init.normal_(
        torch.empty(300, 100, device=device), 0.5, 2.0, generator=make_generator(3, device)
    )
    assert_chi2_std(w, 0.5, mean=2.0)
    assert_ks(w, "norm", (2.0, 0.5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_initializers_keep_dtype(device, dtype):
    w = init.he_normal_(
        torch.empty(300, 100, device=device, dtype=dtype), generator=make_generator(4, device)
    )
    assert w.dtype == dtype
    assert torch.isfinite(w).all()
    if dtype == torch.float64:
        assert_chi2_std(w, he_std_ref((300, 100), "fan_in", "relu"))


# --------------------------------------------------------------------------- reproducibility
@FIXTURE_OK
@given(name=st.sampled_from(sorted(ALL_CASES)), seed=st.integers(0, 2**62))
def test_same_seed_same_draws_different_seed_different_draws(device, name, seed):
    fn = ALL_CASES[name].ours
    a = draw(fn, (20, 10), seed, device)
    assert torch.equal(a, draw(fn, (20, 10), seed, device))
    assert not torch.equal(a, draw(fn, (20, 10), seed + 1, device))


def test_generator_none_draws_from_the_default_generator(device):
    def under_seed(seed):
        with seeded_global_rng(seed, devices=(device,)):
            return init.xavier_normal_(torch.empty(30, 20, device=device))

    assert torch.equal(under_seed(1), under_seed(1))
    assert not torch.equal(under_seed(1), under_seed(2))


def test_fills_parameters_in_place_and_returns_them(device):
    p = nn.Parameter(torch.ones(6, 4, device=device))
    assert init.xavier_uniform_(p, generator=make_generator(0, device)) is p
    assert p.requires_grad
    assert init.zeros_(p) is p
    assert torch.equal(p, torch.zeros(6, 4, device=device))
    assert init.constant_(p, -1.5) is p
    assert torch.equal(p, torch.full((6, 4), -1.5, device=device))


# --------------------------------------------------------------------------- validation
W = torch.empty(6, 4)
NEEDS_FANS = {
    "xavier_uniform_": init.xavier_uniform_,
    "xavier_normal_": init.xavier_normal_,
    "he_normal_": init.he_normal_,
    "he_uniform_": init.he_uniform_,
    "lecun_normal_": init.lecun_normal_,
}
ALL_INITIALIZERS = {
    **NEEDS_FANS,
    "zeros_": init.zeros_,
    "constant_": lambda t: init.constant_(t, 1.0),
    "normal_": init.normal_,
    "uniform_": lambda t: init.uniform_(t, 1.0),
}


@pytest.mark.parametrize("fn", [init.fans, *NEEDS_FANS.values()], ids=["fans", *NEEDS_FANS])
@pytest.mark.parametrize("shape", [(5,), ()], ids=["1d", "0d"])
def test_fans_need_two_dimensions(fn, shape):
    with pytest.raises(ValueError, match=r"tensor must have at least 2 dimensions, got shape"):
        fn(torch.empty(shape))


@pytest.mark.parametrize("fn", [init.fans, *NEEDS_FANS.values()], ids=["fans", *NEEDS_FANS])
@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (4, 3, 0)])
def test_zero_size_fans_are_rejected(fn, shape):
    with pytest.raises(ValueError, match=r"zero-size fan \(fan_in=\d+, fan_out=\d+\)"):
        fn(torch.empty(shape))


def test_fans_rejects_non_tensor():
    with pytest.raises(TypeError, match="tensor must be Tensor, got"):
        init.fans((3, 4))


@pytest.mark.parametrize("fn", ALL_INITIALIZERS.values(), ids=ALL_INITIALIZERS.keys())
def test_integer_tensors_are_rejected(fn):
    with pytest.raises(
        TypeError, match=r"tensor must be a floating-point tensor .* got dtype torch.int64"
    ):
        fn(torch.zeros(6, 4, dtype=torch.int64))


@pytest.mark.parametrize("fn", ALL_INITIALIZERS.values(), ids=ALL_INITIALIZERS.keys())
def test_non_tensors_are_rejected(fn):
    with pytest.raises(TypeError, match=r"tensor must be a torch\.Tensor, got list"):
        fn([[1.0, 2.0]])


@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (
            lambda: init.he_normal_(W, nonlinearity="gelu"),
            ValueError,
            r"nonlinearity must be one of 'linear', .*'selu'; got 'gelu'",
        ),
        (
            lambda: init.he_uniform_(W, nonlinearity=None),
            TypeError,
            r"nonlinearity must be str, got None",
        ),
        (
            lambda: init.calculate_gain("swish"),
            ValueError,
            r"nonlinearity must be one of .*'leaky_relu'.*; got 'swish'",
        ),
        (
            lambda: init.he_normal_(W, mode="fan_avg"),
            ValueError,
            r"mode must be one of 'fan_in', 'fan_out'; got 'fan_avg'",
        ),
        (
            lambda: init.he_uniform_(W, mode="FAN_IN"),
            ValueError,
            r"mode must be one of 'fan_in', 'fan_out'; got 'FAN_IN'",
        ),
        (lambda: init.he_normal_(W, a=math.nan), ValueError, r"a must be finite, got nan"),
        (
            lambda: init.calculate_gain("leaky_relu", True),
            TypeError,
            r"param must be a real number, got True",
        ),
        (
            lambda: init.calculate_gain("leaky_relu", "0.2"),
            TypeError,
            r"param must be a real number, got '0.2'",
        ),
        (
            lambda: init.normal_(W, std=-0.1),
            ValueError,
            r"std must be a finite number >= 0, got -0.1",
        ),
        (lambda: init.normal_(W, std=math.inf), ValueError, r"std must be finite, got inf"),
        (lambda: init.normal_(W, mean=math.nan), ValueError, r"mean must be finite, got nan"),
        (
            lambda: init.uniform_(W, -1.0),
            ValueError,
            r"bound must be a finite number >= 0, got -1.0",
        ),
        (
            lambda: init.xavier_uniform_(W, gain=-1.0),
            ValueError,
            r"gain must be a finite number >= 0, got -1.0",
        ),
        (
            lambda: init.xavier_normal_(W, gain="2"),
            TypeError,
            r"gain must be a real number, got '2'",
        ),
        (lambda: init.constant_(W, math.inf), ValueError, r"value must be finite, got inf"),
        (lambda: init.constant_(W, None), TypeError, r"value must be a real number, got None"),
        (lambda: init.normal_(W, generator=3), TypeError, r"generator must be Generator, got 3"),
        (
            lambda: init.lecun_normal_(
                torch.empty(6, 4, device="meta"), generator=make_generator(0)
            ),
            ValueError,
            r"generator is on cpu but the tensor is on meta",
        ),
    ],
)
def test_bad_arguments_name_argument_value_and_allowed(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_failed_validation_leaves_tensor_untouched():
    w = torch.ones(6, 4)
    with pytest.raises(ValueError, match="mode"):
        init.he_normal_(w, mode="bad", generator=make_generator(0))
    assert torch.equal(w, torch.ones(6, 4))


# --------------------------------------------------------------------------- init_network
class OptIn(nn.Module):
    """A layer that is not an nn.Linear but asks init_network to initialize it."""

    _netprops_initializable = True

    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_out, n_in))
        self.bias = nn.Parameter(torch.ones(n_out)) if bias else None


class NotOptedIn(OptIn):
    _netprops_initializable = False


def small_model(device: str) -> nn.Module:
    with seeded_global_rng(0):
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 24),
            nn.LayerNorm(24),
            nn.Sequential(OptIn(24, 12, bias=False), nn.Tanh()),
            NotOptedIn(12, 12),
            nn.Conv1d(1, 2, 3, bias=False),
        )
    return model.to(device)


TARGETS = ["0", "3", "5.0", "7"]
SCHEME_FNS: dict[str, tuple[dict[str, Any], Callable[..., torch.Tensor]]] = {
    "normal": ({"std": 0.2}, lambda t, g: init.normal_(t, 0.2, generator=g)),
    "xavier": ({"gain": 2.0}, lambda t, g: init.xavier_uniform_(t, 2.0, generator=g)),
    "xavier_normal": ({}, lambda t, g: init.xavier_normal_(t, generator=g)),
    "he": ({"mode": "fan_out"}, lambda t, g: init.he_normal_(t, mode="fan_out", generator=g)),
    "he_uniform": (
        {"a": 0.3, "nonlinearity": "leaky_relu"},
        lambda t, g: init.he_uniform_(t, 0.3, nonlinearity="leaky_relu", generator=g),
    ),
    "lecun": ({}, lambda t, g: init.lecun_normal_(t, generator=g)),
}


def test_initializable_modules_rule(device):
    model = small_model(device)
    assert [name for name, _ in init.initializable_modules(model)] == TARGETS


@pytest.mark.parametrize("scheme", SCHEME_FNS)
def test_init_network_draws_every_weight_like_its_initializer(device, scheme):
    params, fn = SCHEME_FNS[scheme]
    model = small_model(device)
    untouched = {k: v.clone() for k, v in model.named_parameters() if k.startswith(("4.", "6."))}
    assert init.init_network(model, scheme, generator=make_generator(9, device), **params) is model

    expected = small_model(device)
    g = make_generator(9, device)
    for name in TARGETS:  # weights draw module by module, in named_modules() order
        fn(expected.get_submodule(name).weight, g)
    state = model.state_dict()
    for name in TARGETS:
        torch.testing.assert_close(
            state[f"{name}.weight"], expected.state_dict()[f"{name}.weight"], rtol=0, atol=0
        )
        bias = model.get_submodule(name).bias
        assert bias is None or torch.count_nonzero(bias) == 0
    for key, value in untouched.items():  # LayerNorm and the opted-out layer
        assert torch.equal(state[key], value)


def test_init_network_zeros(device):
    model = init.init_network(small_model(device), "zeros")
    for name in TARGETS:
        module = model.get_submodule(name)
        assert torch.count_nonzero(module.weight) == 0
        assert module.bias is None or torch.count_nonzero(module.bias) == 0
    assert torch.count_nonzero(model.get_submodule("6").weight) == 12 * 12


def test_init_network_is_seed_deterministic(device):
    def params(seed):
        model = init.init_network(small_model(device), "he", generator=make_generator(seed, device))
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(params(4), params(4))
    assert not torch.equal(params(4), params(5))


def test_init_network_he_weights_have_he_variance(device):
    with seeded_global_rng(1):
        model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Conv2d(16, 32, 3)).to(device)
    init.init_network(model, "he", generator=make_generator(2, device))
    for module in (model[0], model[2]):
        assert_chi2_std(module.weight, he_std_ref(tuple(module.weight.shape), "fan_in", "relu"))


def test_scheme_std_matches_reference_formulas():
    w = torch.empty(32, 16, 3, 3, device="meta")
    shape = tuple(w.shape)
    assert init.scheme_std(w, "zeros") == 0.0
    assert init.scheme_std(w, "normal", std=0.3) == 0.3
    assert init.scheme_std(w, "xavier", gain=2.0) == pytest.approx(xavier_std_ref(shape, 2.0))
    assert init.scheme_std(w, "xavier_normal") == pytest.approx(xavier_std_ref(shape, 1.0))
    assert init.scheme_std(w, "he", mode="fan_out") == pytest.approx(
        he_std_ref(shape, "fan_out", "relu")
    )
    assert init.scheme_std(w, "he_uniform", nonlinearity="tanh") == pytest.approx(
        he_std_ref(shape, "fan_in", "tanh")
    )
    assert init.scheme_std(w, "lecun") == pytest.approx(1 / math.sqrt(torch_fans(shape)[0]))


class Flat(nn.Module):
    _netprops_initializable = True

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(5))


class NoWeight(nn.Module):
    _netprops_initializable = True


@pytest.mark.parametrize(
    ("model", "scheme", "params", "exc", "pattern"),
    [
        (None, "he", {}, TypeError, r"model must be Module, got None"),
        (
            "small",
            "kaiming",
            {},
            ValueError,
            r"scheme must be one of 'zeros', 'normal', 'xavier', .*'lecun'; got 'kaiming'",
        ),
        ("small", 3, {}, TypeError, r"scheme must be str, got 3"),
        ("small", "normal", {}, ValueError, r"scheme 'normal' requires parameter\(s\) \['std'\]"),
        (
            "small",
            "xavier",
            {"std": 0.1},
            ValueError,
            r"unexpected parameter\(s\) \['std'\]; it accepts gain",
        ),
        (
            "small",
            "lecun",
            {"gain": 1.0},
            ValueError,
            r"scheme 'lecun' .* it accepts no parameters",
        ),
        ("small", "he", {"gain": 2}, ValueError, r"it accepts a, mode, nonlinearity"),
        (
            "small",
            "normal",
            {"std": -1.0},
            ValueError,
            r"std must be a finite number >= 0, got -1.0",
        ),
        ("small", "xavier", {"gain": -2.0}, ValueError, r"gain must be a finite number >= 0"),
        (
            "small",
            "he",
            {"mode": "avg"},
            ValueError,
            r"mode must be one of 'fan_in', 'fan_out'; got 'avg'",
        ),
        (
            "small",
            "he_uniform",
            {"nonlinearity": "gelu"},
            ValueError,
            r"nonlinearity must be one of",
        ),
        ("small", "he", {"a": "x"}, TypeError, r"a must be a real number"),
        (
            nn.Sequential(nn.ReLU(), nn.LayerNorm(4)),
            "he",
            {},
            ValueError,
            r"has no module to initialize",
        ),
        (
            nn.Sequential(nn.LazyLinear(4)),
            "he",
            {},
            ValueError,
            r"'0' \(LazyLinear\) is an uninitialized lazy",
        ),
        (
            nn.Sequential(Flat()),
            "he",
            {},
            ValueError,
            r"weight of module '0' \(Flat\) must have at least 2",
        ),
        (
            nn.Sequential(NoWeight()),
            "he",
            {},
            TypeError,
            r"weight of module '0' \(NoWeight\) must be a torch.Tensor",
        ),
    ],
)
def test_init_network_bad_arguments(device, model, scheme, params, exc, pattern):
    if model == "small":
        model = small_model(device)
    state = model.state_dict() if model is not None else {}
    before = {k: v.clone() for k, v in state.items() if not nn.parameter.is_lazy(v)}
    with pytest.raises(exc, match=pattern):
        init.init_network(model, scheme, generator=make_generator(0, device), **params)
    for key, value in before.items():  # nothing was touched
        assert torch.equal(model.state_dict()[key], value)


def test_init_network_rejects_generator_on_other_device():
    model = small_model("cpu").to_empty(device="meta")
    with pytest.raises(ValueError, match="generator is on cpu but the tensor is on meta"):
        init.init_network(model, "he", generator=make_generator(0))


def test_init_schemes_are_all_accepted():
    assert init.INIT_SCHEMES == (
        "zeros",
        "normal",
        "xavier",
        "xavier_normal",
        "he",
        "he_uniform",
        "lecun",
    )
    assert set(SCHEME_FNS) | {"zeros"} == set(init.INIT_SCHEMES)


# --------------------------------------------------------------------------- NetworkInitializer
def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_network_initializer_builds_reference_network(device, activation):
    model = init.NetworkInitializer(activation).build(make_generator(0, device))
    assert isinstance(model, nn.Sequential)
    assert isinstance(model[0], nn.Flatten)
    sizes = [(m.in_features, m.out_features) for m in linear_layers(model)]
    assert sizes == [(784, 500), (500, 100), (100, 100), (100, 10)]
    kinds = [type(m) for m in model[1:]]
    act = type(get_activation(activation))
    assert kinds == [nn.Linear, act, nn.Linear, act, nn.Linear, act, nn.Linear]
    for p in model.parameters():
        assert p.device.type == torch.device(device).type
        assert p.dtype == torch.float32
    for layer in linear_layers(model):
        assert torch.count_nonzero(layer.bias) == 0
    out = model(torch.zeros(3, 1, 28, 28, device=device))
    assert out.shape == (3, 10)


def test_network_initializer_passes_activation_params(device):
    factory = init.NetworkInitializer(
        "leaky_relu", layer_sizes=[6, 5, 4], activation_params={"negative_slope": 0.2}
    )
    model = factory.build(make_generator(0, device))
    assert repr(model[2]) == repr(get_activation("leaky_relu", negative_slope=0.2))
    assert len(model) == 4


@pytest.mark.parametrize(
    ("scheme", "params", "std_of"),
    [
        ("he", {}, lambda s: he_std_ref(s, "fan_in", "relu")),
        ("xavier_normal", {"gain": 5 / 3}, lambda s: xavier_std_ref(s, 5 / 3)),
        ("normal", {"std": 0.05}, lambda s: 0.05),
        ("lecun", {}, lambda s: 1 / math.sqrt(torch_fans(s)[0])),
    ],
)
def test_network_initializer_applies_scheme(device, scheme, params, std_of):
    model = init.NetworkInitializer("tanh", scheme, **params).build(make_generator(6, device))
    for layer in linear_layers(model):
        assert_chi2_std(layer.weight, std_of(tuple(layer.weight.shape)))


def test_network_initializer_is_deterministic_per_seed(device):
    factory = init.NetworkInitializer("relu", "he_uniform", layer_sizes=(50, 40, 30, 10))

    def flat(seed):
        return torch.cat(
            [p.flatten() for p in factory.build(make_generator(seed, device)).parameters()]
        )

    state = torch.random.get_rng_state()
    assert torch.equal(flat(1), flat(1))
    assert not torch.equal(flat(1), flat(2))
    assert torch.equal(state, torch.random.get_rng_state())


def test_network_initializer_dtype_device_and_default_generator(device):
    factory = init.NetworkInitializer(layer_sizes=(8, 4))
    model = factory.build(make_generator(0, device), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    with seeded_global_rng(3, devices=(device,)):
        a = factory.build(device=device)
    with seeded_global_rng(3, devices=(device,)):
        b = factory.build(device=device)
    assert torch.equal(a[1].weight, b[1].weight)
    assert a[1].weight.device.type == torch.device(device).type


def test_network_initializer_repr():
    factory = init.NetworkInitializer("tanh", "xavier", (10, 3), gain=2.0)
    assert (
        repr(factory)
        == "NetworkInitializer(activation='tanh', scheme='xavier', layer_sizes=(10, 3), gain=2.0)"
    )
    assert repr(init.NetworkInitializer()) == (
        "NetworkInitializer(activation='relu', scheme='he', layer_sizes=(784, 500, 100, 100, 10))"
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"activation": "gelu"}, ValueError, r"name must be one of .*'relu'.*; got 'gelu'"),
        (
            {"activation": "relu", "activation_params": {"alpha": 1.0}},
            TypeError,
            r"unexpected keyword",
        ),
        ({"activation_params": [("alpha", 1.0)]}, TypeError, r"activation_params must be Mapping"),
        ({"scheme": "kaiming"}, ValueError, r"scheme must be one of"),
        ({"scheme": "normal"}, ValueError, r"requires parameter\(s\) \['std'\]"),
        (
            {"scheme": "xavier", "mode": "fan_in"},
            ValueError,
            r"unexpected parameter\(s\) \['mode'\]",
        ),
        ({"layer_sizes": (784,)}, ValueError, r"layer_sizes must list at least 2 widths"),
        ({"layer_sizes": (784, 0, 10)}, ValueError, r"layer_sizes\[1\] must be an int >= 1, got 0"),
        ({"layer_sizes": (784, 2.5)}, TypeError, r"layer_sizes\[1\] must be an int, got 2.5"),
        ({"layer_sizes": 784}, TypeError, r"layer_sizes must be tuple or list, got 784"),
    ],
)
def test_network_initializer_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        init.NetworkInitializer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        (
            {"dtype": torch.int64},
            TypeError,
            r"dtype must be a floating-point torch.dtype, got torch.int64",
        ),
        ({"dtype": "float32"}, TypeError, r"dtype must be dtype"),
        ({"generator": 0}, TypeError, r"generator must be Generator, got 0"),
        (
            {"generator": make_generator(0), "device": "meta"},
            ValueError,
            r"generator is on cpu but the tensor is on meta",
        ),
    ],
)
def test_network_initializer_build_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        init.NetworkInitializer(layer_sizes=(4, 2)).build(**kwargs)
