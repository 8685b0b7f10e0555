"""Dropout, DropConnectLinear and DropConnectConv2d: exact and statistical properties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

import netprops
from netprops.checks.stats import binom_interval, chi2_upper, z_two_sided
from netprops.layers.dropout import DropConnectConv2d, DropConnectLinear, Dropout

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
ALPHA = 1e-9


def _randn(seed: int, shape, device: str, dtype=torch.float64) -> torch.Tensor:
    g = netprops.make_generator(seed, device)
    return torch.randn(shape, generator=g, device=device, dtype=dtype)


def _linear(device, seed=0, **kwargs) -> DropConnectLinear:
    kwargs.setdefault("dtype", torch.float64)
    in_f, out_f = kwargs.pop("in_features", 6), kwargs.pop("out_features", 4)
    return DropConnectLinear(
        in_f, out_f, generator=netprops.make_generator(seed, device), device=device, **kwargs
    )


def _conv(device, seed=0, **kwargs) -> DropConnectConv2d:
    kwargs.setdefault("dtype", torch.float64)
    return DropConnectConv2d(
        kwargs.pop("in_channels", 4),
        kwargs.pop("out_channels", 6),
        kwargs.pop("kernel_size", 3),
        generator=netprops.make_generator(seed, device),
        device=device,
        **kwargs,
    )


def _rng_states(device: str) -> list[torch.Tensor]:
    states = [torch.random.get_rng_state()]
    if device.startswith("cuda"):
        states.append(torch.cuda.get_rng_state())
    return states


def _assert_no_draw(module: nn.Module, device: str, fn) -> torch.Tensor:
    """Run ``fn`` and assert neither the module's generator nor torch's global RNG moved."""
    gen_state = module.generator.get_state() if module.generator is not None else None
    global_states = _rng_states(device)
    out = fn()
    if gen_state is not None:
        assert torch.equal(module.generator.get_state(), gen_state)
    for before, after in zip(global_states, _rng_states(device), strict=True):
        assert torch.equal(before, after)
    return out


# --------------------------------------------------------------------------- Dropout


def test_dropout_eval_and_p0_are_identity_without_draws(device):
    x = _randn(0, (5, 7), device)
    gen = netprops.make_generator(1, device)
    drop = Dropout(0.3, generator=gen).eval()
    assert torch.equal(_assert_no_draw(drop, device, lambda: drop(x)), x)
    zero = Dropout(0.0, generator=netprops.make_generator(1, device)).train()
    assert torch.equal(_assert_no_draw(zero, device, lambda: zero(x)), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_kept_values_scaled_and_drop_count_binomial(device, p, dtype):
    n = 200_000
    drop = Dropout(p, generator=netprops.make_generator(7, device))
    y = drop(torch.ones(n, device=device, dtype=dtype))
    dropped = int((y == 0).sum())
    lo, hi = binom_interval(n, p, ALPHA)
    assert lo <= dropped <= hi, (dropped, lo, hi)
    kept = y[y != 0]
    expected = torch.ones((), dtype=dtype, device=device) / (1 - p)
    assert torch.equal(kept, expected.expand_as(kept))


@fixture_ok
@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.0, 0.95), n=st.integers(1, 64))
@example(seed=0, p=0.0, n=1)
def test_dropout_kept_values_equal_rescaled_input(device, seed, p, n):
    x = _randn(seed, (n,), device) + 0.5  # no exact zeros (a.s.)
    y = Dropout(p, generator=netprops.make_generator(seed, device))(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=4e-16, atol=0)
    assert torch.equal(y[~kept], torch.zeros_like(y[~kept]))


def test_dropout_backward_uses_forward_mask(device):
    p = 0.4
    x = (_randn(0, (6, 9), device) + 0.5).requires_grad_(True)
    dy = _randn(1, (6, 9), device)
    y = Dropout(p, generator=netprops.make_generator(2, device))(x)
    y.backward(dy)
    scale = torch.ones((), dtype=x.dtype, device=device) / (1 - p)
    assert torch.equal(x.grad, dy * (y != 0).to(x.dtype) * scale)
    assert (y == 0).any()
    assert (y != 0).any()


def test_dropout_same_seed_same_output(device):
    x = _randn(0, (50,), device)
    a = Dropout(0.5).manual_seed(3)
    b = Dropout(0.5).manual_seed(3)
    c = Dropout(0.5).manual_seed(4)
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb)
    assert not torch.equal(ya, yc)
    assert a.generator is not None
    assert torch.device(a.generator.device).type == torch.device(device).type
    # the stream advances: a second call draws a new mask
    assert not torch.equal(a(x), ya)


def test_dropout_global_rng_when_no_generator(device):
    x = _randn(0, (64,), device)
    with netprops.seeded_global_rng(5, devices=(device,)):
        first = Dropout(0.5)(x)
    with netprops.seeded_global_rng(5, devices=(device,)):
        second = Dropout(0.5)(x)
    assert torch.equal(first, second)


def test_dropout_repr_and_validation():
    assert repr(Dropout(0.25)) == "Dropout(p=0.25)"
    with pytest.raises(ValueError, match="p must be a probability"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="p must be a probability"):
        Dropout(-0.1)
    with pytest.raises(TypeError, match="p must be a real number"):
        Dropout("a")
    with pytest.raises(TypeError, match="generator"):
        Dropout(0.5, generator=0)
    with pytest.raises(TypeError, match="seed"):
        Dropout(0.5).manual_seed(1.5)
    with pytest.raises(ValueError, match="seed"):
        Dropout(0.5).manual_seed(-1)
    with pytest.raises(TypeError, match="floating-point"):
        Dropout(0.5)(torch.ones(3, dtype=torch.long))


def test_generator_on_wrong_device_raises():
    """A CPU generator cannot draw for a tensor elsewhere (``meta`` stands in for CUDA)."""
    x = torch.empty(4, 6, device="meta", dtype=torch.float64)
    drop = Dropout(0.5, generator=torch.Generator())
    with pytest.raises(ValueError, match="generator is on cpu but the tensor is on meta"):
        drop(x)
    with pytest.raises(ValueError, match="generator is on cpu"):
        DropConnectLinear(6, 3, generator=torch.Generator(), device="meta")


# --------------------------------------------------------------------------- DropConnect: exact


def test_dropconnect_init_matches_torch_under_same_global_seed(device):
    with netprops.seeded_global_rng(11, devices=(device,)):
        ref = nn.Linear(7, 5, device=device)
    with netprops.seeded_global_rng(11, devices=(device,)):
        ours = DropConnectLinear(7, 5, device=device)
    assert torch.equal(ours.weight, ref.weight)
    assert torch.equal(ours.bias, ref.bias)
    with netprops.seeded_global_rng(12, devices=(device,)):
        ref = nn.Conv2d(4, 6, (3, 2), groups=2, device=device)
    with netprops.seeded_global_rng(12, devices=(device,)):
        ours = DropConnectConv2d(4, 6, (3, 2), groups=2, device=device)
    assert torch.equal(ours.weight, ref.weight)
    assert torch.equal(ours.bias, ref.bias)


@pytest.mark.parametrize("cls", [DropConnectLinear, DropConnectConv2d])
def test_dropconnect_init_from_generator_matches_torch_init(device, cls):
    """With ``generator=`` the init draws from it (the global RNG is untouched: conftest)."""
    ours = (_linear if cls is DropConnectLinear else _conv)(device, seed=3)
    gen = netprops.make_generator(3, device)
    weight = torch.empty_like(ours.weight)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
    fan_in = weight[0].numel()
    bias = torch.empty_like(ours.bias).uniform_(
        -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen
    )
    assert torch.equal(ours.weight, weight)
    assert torch.equal(ours.bias, bias)
    # reset_parameters(generator) redraws from the given generator
    ours.reset_parameters(netprops.make_generator(3, device))
    assert torch.equal(ours.weight, weight)


def test_dropconnect_linear_eval_is_f_linear_without_draws(device):
    layer = _linear(device, p=0.4).eval()
    x = _randn(0, (5, 6), device)
    y = _assert_no_draw(layer, device, lambda: layer(x))
    assert torch.equal(y, F.linear(x, layer.weight, layer.bias))
    per_sample = _linear(device, p=0.4, per_sample=True).eval()
    y = _assert_no_draw(per_sample, device, lambda: per_sample(x))
    assert torch.equal(y, F.linear(x, per_sample.weight, per_sample.bias))


def test_dropconnect_conv_eval_is_f_conv2d_without_draws(device):
    layer = _conv(device, p=0.4, stride=2, padding=1, groups=2).eval()
    x = _randn(0, (2, 4, 7, 7), device)
    y = _assert_no_draw(layer, device, lambda: layer(x))
    assert torch.equal(y, F.conv2d(x, layer.weight, layer.bias, 2, 1, 1, 2))


@pytest.mark.parametrize("per_sample", [False, True])
def test_dropconnect_p0_is_plain_layer(device, per_sample):
    lin = _linear(device, p=0.0, per_sample=per_sample)
    x = _randn(0, (3, 6), device)
    assert torch.equal(
        _assert_no_draw(lin, device, lambda: lin(x)), F.linear(x, lin.weight, lin.bias)
    )
    conv = _conv(device, p=0.0, per_sample=per_sample)
    xc = _randn(1, (2, 4, 5, 5), device)
    expected = F.conv2d(xc, conv.weight, conv.bias)
    assert torch.equal(_assert_no_draw(conv, device, lambda: conv(xc)), expected)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_masked_weight_kept_values_are_rescaled(device, p):
    layer = _linear(device, p=p, in_features=50, out_features=40)
    mask = layer.sample_mask()
    assert mask.shape == layer.weight.shape
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    w = layer.masked_weight(mask).detach()
    kept = mask == 1
    assert torch.equal(w[kept], layer.weight.detach()[kept] / (1 - p))
    assert torch.equal(w[~kept], torch.zeros_like(w[~kept]))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_sample_mask_drop_fraction_is_binomial(device, p):
    layer = _linear(device, p=p, in_features=20, out_features=10)
    masks = layer.sample_mask((600,))
    assert masks.shape == (600, 10, 20)
    n = masks.numel()
    assert n >= 100_000
    lo, hi = binom_interval(n, p, ALPHA)
    dropped = int((masks == 0).sum())
    assert lo <= dropped <= hi, (dropped, lo, hi)
    conv_masks = _conv(device, p=p).sample_mask((200, 2))
    assert conv_masks.shape == (200, 2, 6, 4, 3, 3)
    lo, hi = binom_interval(conv_masks.numel(), p, ALPHA)
    assert lo <= int((conv_masks == 0).sum()) <= hi


def test_shared_mask_forward_uses_last_mask(device):
    layer = _linear(device, p=0.5)
    x = _randn(0, (3, 5, 6), device)
    y = layer(x)
    assert layer.last_mask.shape == (4, 6)
    torch.testing.assert_close(y, F.linear(x, layer.masked_weight(layer.last_mask), layer.bias))
    conv = _conv(device, p=0.5, padding=1)
    xc = _randn(1, (2, 4, 5, 5), device)
    yc = conv(xc)
    assert conv.last_mask.shape == (6, 4, 3, 3)
    expected = F.conv2d(xc, conv.masked_weight(conv.last_mask), conv.bias, padding=1)
    torch.testing.assert_close(yc, expected)


@fixture_ok
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    in_f=st.integers(1, 6),
    out_f=st.integers(1, 5),
)
def test_per_sample_linear_forward_matches_loop(device, seed, batch, in_f, out_f):
    layer = _linear(device, seed, p=0.5, per_sample=True, in_features=in_f, out_features=out_f)
    x = _randn(seed, (*batch, in_f), device)
    y = layer(x)
    assert y.shape == (*batch, out_f)
    assert layer.last_mask.shape == (*batch, out_f, in_f)
    flat_x = x.reshape(-1, in_f)
    flat_m = layer.last_mask.reshape(-1, out_f, in_f)
    expected = torch.stack(
        [
            F.linear(xi, layer.masked_weight(mi), layer.bias)
            for xi, mi in zip(flat_x, flat_m, strict=True)
        ]
    ).reshape(*batch, out_f)
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("groups", [1, 2])
def test_per_sample_conv_forward_matches_loop(device, groups):
    conv = _conv(device, p=0.5, per_sample=True, stride=2, padding=1, groups=groups)
    x = _randn(0, (3, 4, 6, 6), device)
    y = conv(x)
    assert conv.last_mask.shape == (3, 6, 4 // groups, 3, 3)
    expected = torch.cat(
        [
            F.conv2d(
                x[i : i + 1], conv.masked_weight(conv.last_mask[i]), conv.bias, 2, 1, 1, groups
            )
            for i in range(3)
        ]
    )
    torch.testing.assert_close(y, expected)
    # unbatched input: one mask
    single = conv(x[0])
    assert conv.last_mask.shape == (6, 4 // groups, 3, 3)
    expected = F.conv2d(x[0], conv.masked_weight(conv.last_mask), conv.bias, 2, 1, 1, groups)
    torch.testing.assert_close(single, expected)


def test_per_sample_masks_differ_shared_do_not(device):
    x = _randn(0, (1, 6), device).expand(8, 6)
    per_sample = _linear(device, p=0.5, per_sample=True)
    y = per_sample(x)
    masks = per_sample.last_mask
    assert any(not torch.equal(masks[0], masks[i]) for i in range(1, 8))
    assert any(not torch.equal(y[0], y[i]) for i in range(1, 8))
    shared = _linear(device, p=0.5)
    y = shared(x)
    assert shared.last_mask.shape == (4, 6)
    assert all(torch.equal(y[0], y[i]) for i in range(1, 8))


def test_gradient_flows_only_through_kept_weights(device):
    p = 0.5
    layer = _linear(device, p=p, in_features=12, out_features=10)
    x = _randn(0, (5, 12), device)
    dy = _randn(1, (5, 10), device)
    layer(x).backward(dy)
    mask = layer.last_mask
    assert (mask == 0).any()
    grad = layer.weight.grad
    assert torch.equal(grad[mask == 0], torch.zeros_like(grad[mask == 0]))
    expected = (dy.t() @ x) * mask / (1 - p)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(layer.bias.grad, dy.sum(0))
    conv = _conv(device, p=p)
    conv(_randn(2, (2, 4, 5, 5), device)).sum().backward()
    cmask = conv.last_mask
    assert torch.equal(conv.weight.grad[cmask == 0], torch.zeros_like(conv.weight.grad[cmask == 0]))
    assert (conv.weight.grad[cmask == 1] != 0).all()


@pytest.mark.parametrize("cls", [DropConnectLinear, DropConnectConv2d])
def test_same_seed_same_output(device, cls):
    make = _linear if cls is DropConnectLinear else _conv
    x = _randn(0, (3, 6) if cls is DropConnectLinear else (2, 4, 5, 5), device)
    a, b = make(device, seed=1), make(device, seed=1)
    assert torch.equal(a(x), b(x))
    b.manual_seed(99)
    a.manual_seed(99)
    assert torch.equal(a(x), b(x))
    a.manual_seed(100)
    assert not torch.equal(a(x), b(x))
    assert torch.device(a.generator.device).type == torch.device(device).type


# --------------------------------------------------------------------------- DropConnect: moments


def _z_and_chi2_bounds(m: int) -> tuple[float, float]:
    """max|Z| and ΣZ² bounds at α/2 each (docs/methods.md §Monte Carlo checks)."""
    return z_two_sided(ALPHA / 2, tests=m), chi2_upper(m, ALPHA / 2)


def _assert_mean_matches(samples: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> None:
    """Z_i = √N (ȳ_i − μ_i)/σ_i with exact σ: max|Z| and ΣZ² within their bounds."""
    n = samples.shape[0]
    z = math.sqrt(n) * (samples.mean(0) - mu) / var.sqrt()
    z_max, chi2_max = _z_and_chi2_bounds(z.numel())
    assert z.abs().max().item() <= z_max, (z.abs().max().item(), z_max)
    assert (z**2).sum().item() <= chi2_max, ((z**2).sum().item(), chi2_max)


def _assert_variance_matches(samples: torch.Tensor, var: torch.Tensor, fourth: torch.Tensor):
    """Sample variance s_i² vs exact σ_i²: |s² − σ²| ≤ z·√((μ₄ − σ⁴)/N) (CLT for s²)."""
    n = samples.shape[0]
    s2 = samples.var(0, correction=1)
    sd = ((fourth - var**2) / n).sqrt()
    z = ((s2 - var) / sd).flatten()
    z_max = z_two_sided(ALPHA, tests=z.numel())
    assert z.abs().max().item() <= z_max, (z.abs().max().item(), z_max)


def _exact_fourth_moment(terms: torch.Tensor, p: float) -> torch.Tensor:
    """μ₄ of Σ_j a_j u_j with independent u_j = m_j/q − 1, m_j ~ Bernoulli(q); terms a on dim -1."""
    q = 1 - p
    e2 = p / q
    e4 = p**4 / q**3 + p
    a2 = terms**2
    s2 = a2.sum(-1)
    return (a2**2).sum(-1) * (e4 - 3 * e2**2) + 3 * e2**2 * s2**2


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_linear_monte_carlo_mean_and_variance_per_sample(device, p):
    """Vectorized: N copies of x with per-example masks are N independent forwards."""
    layer = _linear(device, seed=4, p=p, per_sample=True, in_features=6, out_features=4)
    x = _randn(5, (6,), device)
    n = 20_000
    with torch.no_grad():
        samples = layer(x.expand(n, 6))
        mu = F.linear(x, layer.weight, layer.bias)
        var = layer.output_variance(x)
        terms = layer.weight * x  # a_ij = W_ij x_j
    assert var.shape == mu.shape
    torch.testing.assert_close(var, p / (1 - p) * (terms**2).sum(-1))
    _assert_mean_matches(samples, mu, var)
    _assert_variance_matches(samples, var, _exact_fourth_moment(terms, p))


def test_linear_monte_carlo_mean_shared_mask(device):
    """The shared-mask path, one forward per mask (small N keeps it fast)."""
    p = 0.5
    layer = _linear(device, seed=6, p=p, in_features=5, out_features=3)
    x = _randn(7, (2, 5), device)
    with torch.no_grad():
        samples = torch.stack([layer(x) for _ in range(1500)])
        mu = F.linear(x, layer.weight, layer.bias)
        var = layer.output_variance(x)
    assert var.shape == (2, 3)
    _assert_mean_matches(samples, mu, var)


def test_missing_rescale_would_fail_the_mean_test(device):
    """Negative control: the mean test detects outputs without the 1/(1−p) rescale."""
    p = 0.5
    layer = _linear(device, seed=4, p=p, per_sample=True, in_features=6, out_features=4)
    x = _randn(5, (6,), device)
    with torch.no_grad():
        samples = layer(x.expand(4000, 6)) - layer.bias
        unscaled = samples * (1 - p) + layer.bias
        mu = F.linear(x, layer.weight, layer.bias)
        var = layer.output_variance(x)
    with pytest.raises(AssertionError):
        _assert_mean_matches(unscaled, mu, var)


def test_conv_monte_carlo_mean_and_variance(device):
    # float32 layer (the grouped conv has a fast float32 CPU kernel); statistics in float64
    p = 0.4
    conv = _conv(
        device,
        seed=8,
        p=p,
        per_sample=True,
        in_channels=2,
        out_channels=3,
        padding=1,
        dtype=torch.float32,
    )
    x = _randn(9, (1, 2, 4, 4), device, torch.float32)
    n = 6000
    with torch.no_grad():
        samples = conv(x.expand(n, 2, 4, 4)).double()
        w, xd = conv.weight.double(), x.double()
        mu = F.conv2d(xd, w, conv.bias.double(), padding=1)[0]
        var = conv.output_variance(xd.float())[0].double()
        # terms a = W_{o,c,k} · x_{c, patch}: unfold the input patches
        patches = F.unfold(xd, 3, padding=1)[0]  # (c·kh·kw, L)
        terms = w.reshape(3, -1, 1) * patches  # (out, c·kh·kw, L)
        fourth = _exact_fourth_moment(terms.transpose(1, 2), p).reshape(3, 4, 4)
    torch.testing.assert_close(
        var, p / (1 - p) * (terms**2).sum(1).reshape(3, 4, 4), rtol=1e-5, atol=1e-6
    )
    _assert_mean_matches(samples, mu, var)
    _assert_variance_matches(samples, var, fourth)


def test_output_variance_shape_and_zero_for_p0(device):
    lin = _linear(device, p=0.0)
    x = _randn(0, (2, 3, 6), device)
    assert torch.equal(lin.output_variance(x), torch.zeros(2, 3, 4, dtype=x.dtype, device=device))
    conv = _conv(device, p=0.5, stride=2)
    xc = _randn(1, (2, 4, 7, 7), device)
    assert conv.output_variance(xc).shape == conv.eval()(xc).shape


# --------------------------------------------------------------------------- validation


def test_dropconnect_repr():
    text = repr(DropConnectLinear(3, 2, p=0.25, bias=False, generator=torch.Generator()))
    assert text == (
        "DropConnectLinear(in_features=3, out_features=2, p=0.25, bias=False, per_sample=False)"
    )
    conv = DropConnectConv2d(2, 4, 3, padding=1, groups=2, p=0.1, generator=torch.Generator())
    assert "kernel_size=(3, 3)" in repr(conv)
    assert "groups=2" in repr(conv)
    assert "p=0.1" in repr(conv)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 1.0}, ValueError, "p must be a probability"),
        ({"p": -0.1}, ValueError, "p must be a probability"),
        ({"p": "a"}, TypeError, "p must be a real number"),
        ({"in_features": 0}, ValueError, "in_features"),
        ({"out_features": -1}, ValueError, "out_features"),
        ({"in_features": 2.0}, TypeError, "in_features"),
        ({"bias": "yes"}, TypeError, "bias"),
        ({"per_sample": 1}, TypeError, "per_sample"),
        ({"generator": "g"}, TypeError, "generator"),
    ],
)
def test_dropconnect_linear_constructor_validation(kwargs, error, match):
    args = {"in_features": 3, "out_features": 2, "generator": torch.Generator()} | kwargs
    with pytest.raises(error, match=match):
        DropConnectLinear(**args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 1.0}, ValueError, "p must be a probability"),
        ({"p": -0.1}, ValueError, "p must be a probability"),
        ({"p": "a"}, TypeError, "p must be a real number"),
        ({"in_channels": 0}, ValueError, "in_channels"),
        ({"out_channels": 0}, ValueError, "out_channels"),
        ({"kernel_size": 0}, ValueError, "kernel_size"),
        ({"kernel_size": (3, 0)}, ValueError, r"kernel_size\[1\]"),
        ({"kernel_size": (3, 3, 3)}, ValueError, "kernel_size"),
        ({"kernel_size": 2.5}, TypeError, "kernel_size"),
        ({"stride": 0}, ValueError, "stride"),
        ({"padding": -1}, ValueError, "padding"),
        ({"dilation": 0}, ValueError, "dilation"),
        ({"groups": 0}, ValueError, "groups"),
        ({"groups": 3}, ValueError, "groups must divide"),
    ],
)
def test_dropconnect_conv_constructor_validation(kwargs, error, match):
    args = {
        "in_channels": 4,
        "out_channels": 6,
        "kernel_size": 3,
        "generator": torch.Generator(),
    } | kwargs
    with pytest.raises(error, match=match):
        DropConnectConv2d(**args)


def test_dropconnect_input_validation(device):
    lin = _linear(device)
    with pytest.raises(ValueError, match=r"in_features=6.*\[2, 5\]"):
        lin(torch.zeros(2, 5, device=device, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        lin(torch.zeros(2, 6, dtype=torch.long, device=device))
    with pytest.raises(TypeError, match="floating-point"):
        lin.output_variance(torch.zeros(2, 6, dtype=torch.long, device=device))
    with pytest.raises(TypeError, match="batch_shape"):
        lin.sample_mask((2.0,))
    with pytest.raises(ValueError, match="batch_shape"):
        lin.sample_mask((-1,))
    conv = _conv(device)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\).*\[2, 3, 5, 5\]"):
        conv(torch.zeros(2, 3, 5, 5, device=device, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        conv(torch.zeros(4, 5, device=device, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        conv(torch.zeros(1, 4, 5, 5, dtype=torch.int32, device=device))


def test_a_seeded_generator_follows_the_module_and_a_given_one_is_kept(device):
    # .to()/.cuda()/.double() re-create a manual_seed generator on the parameters' device
    layer = DropConnectLinear(4, 3, p=0.5, generator=netprops.make_generator(0)).manual_seed(5)
    moved = layer.to(device=device, dtype=torch.float64)
    assert moved.generator.device.type == torch.device(device).type
    fresh = DropConnectLinear(
        4,
        3,
        p=0.5,
        generator=netprops.make_generator(0, device),
        device=device,
        dtype=torch.float64,
    ).manual_seed(5)
    assert torch.equal(moved.sample_mask(()), fresh.sample_mask(()))
    given = torch.Generator().manual_seed(1)
    kept = DropConnectLinear(4, 3, p=0.5, generator=given).double()
    assert kept.generator is given
    drop = Dropout(0.5).manual_seed(2)
    x = torch.ones(64, device=device)
    first = drop.train()(x)
    assert torch.equal(drop.to(device)(x), first)  # moving restarts the stream from the seed


@pytest.mark.parametrize("per_sample", [False, True])
def test_dropconnect_conv_handles_an_empty_batch(device, per_sample):
    layer = DropConnectConv2d(
        2,
        3,
        3,
        p=0.5,
        per_sample=per_sample,
        generator=netprops.make_generator(0, device),
        device=device,
    )
    y = layer.train()(torch.randn(0, 2, 5, 5, device=device))
    assert y.shape == (0, 3, 3, 3)
