"""SqueezeExcitation and MultiHeadSelfAttention against float64 formulas and torch/torchvision."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from netprops import make_generator, seeded_global_rng, tolerance
from netprops.layers.attention import MultiHeadSelfAttention, SqueezeExcitation

_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _randn(shape, seed, device, dtype=torch.float32):
    g = make_generator(seed, device)
    return torch.randn(shape, generator=g, device=device, dtype=dtype)


def _close(actual, expected, dtype=None):
    tol = tolerance(dtype or expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


# --------------------------------------------------------------------------- SE
def _se_reference(se: SqueezeExcitation, x: torch.Tensor) -> torch.Tensor:
    """The SE formula written with matrices, in float64."""
    x = x.double()
    w1 = se.fc1.weight.double()[:, :, 0, 0]
    w2 = se.fc2.weight.double()[:, :, 0, 0]
    m = x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.relu(m @ w1.T + se.fc1.bias.double()) @ w2.T + se.fc2.bias.double())
    return x * s[:, :, None, None]


@pytest.mark.parametrize(("channels", "reduction"), [(16, 4), (3, 16), (32, 16)])
def test_se_matches_float64_formula(device, channels, reduction):
    se = SqueezeExcitation(channels, reduction, generator=make_generator(1)).to(device).double()
    x = _randn((4, channels, 5, 3), 2, device, torch.float64)
    assert se.hidden == max(1, channels // reduction)
    _close(se(x), _se_reference(se, x))


def test_se_matches_torchvision_with_copied_weights(device):
    se = SqueezeExcitation(24, 6, generator=make_generator(3))
    with seeded_global_rng(0):
        ref = torchvision.ops.SqueezeExcitation(24, se.hidden)
    ref.load_state_dict(se.state_dict())
    se, ref = se.to(device), ref.to(device)
    x = _randn((3, 24, 7, 7), 4, device).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = se(x), ref(x_ref)
    _close(y, y_ref)
    g = _randn(y.shape, 5, device)
    y.backward(g)
    y_ref.backward(g)
    _close(x.grad, x_ref.grad)
    _close(se.fc1.weight.grad, ref.fc1.weight.grad)
    _close(se.fc2.bias.grad, ref.fc2.bias.grad)


def test_se_hard_sigmoid_gate_matches_torch(device):
    se = SqueezeExcitation(8, 2, gate="hard_sigmoid", generator=make_generator(0)).to(device)
    x = _randn((2, 8, 4, 4), 1, device)
    m = x.mean(dim=(2, 3), keepdim=True)
    expected = F.hardsigmoid(se.fc2(F.relu(se.fc1(m))))
    _close(se.scale(x), expected)


@_FIXTURE_OK
@given(
    channels=st.integers(1, 24),
    reduction=st.integers(1, 32),
    seed=st.integers(0, 2**32),
)
def test_se_gate_in_open_unit_interval(device, channels, reduction, seed):
    se = SqueezeExcitation(channels, reduction, generator=make_generator(seed)).to(device)
    x = _randn((2, channels, 3, 3), seed, device)
    s = se.scale(x)
    assert s.shape == (2, channels, 1, 1)
    assert bool(((s > 0) & (s < 1)).all())
    torch.testing.assert_close(se(x), x * s)


def test_se_init_is_deterministic_per_seed():
    a = SqueezeExcitation(16, 4, generator=make_generator(7))
    b = SqueezeExcitation(16, 4, generator=make_generator(7))
    c = SqueezeExcitation(16, 4, generator=make_generator(8))
    for name, p in a.state_dict().items():
        torch.testing.assert_close(p, b.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    # torch's default conv init: |w|, |b| <= 1/sqrt(fan_in)
    assert float(a.fc1.weight.detach().abs().max()) <= 16**-0.5
    assert float(a.fc2.bias.detach().abs().max()) <= 4**-0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": 0}, ValueError, "channels"),
        ({"channels": 2.0}, TypeError, "channels"),
        ({"channels": 8, "reduction": 0}, ValueError, "reduction"),
        ({"channels": 8, "gate": "relu"}, ValueError, "gate"),
        ({"channels": 8, "gate": 1}, TypeError, "gate"),
        ({"channels": 8, "activation": "gelu"}, ValueError, "activation"),
        ({"channels": 8, "activation": nn.ReLU()}, TypeError, "activation"),
        ({"channels": 8, "generator": 0}, TypeError, "generator"),
    ],
)
def test_se_rejects_bad_arguments(kwargs, error, match):
    kwargs = {"generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=match):
        SqueezeExcitation(**kwargs)


@pytest.mark.parametrize(
    ("shape", "dtype", "error"),
    [
        ((2, 8, 4), torch.float32, ValueError),
        ((2, 4, 3, 3), torch.float32, ValueError),
        ((2, 8, 3, 3), torch.int64, TypeError),
    ],
)
def test_se_rejects_bad_input(shape, dtype, error):
    se = SqueezeExcitation(8, 2, generator=make_generator(0))
    with pytest.raises(error, match="x"):
        se(torch.zeros(shape, dtype=dtype))


# --------------------------------------------------------------------------- MHSA
def _pair(embed_dim, num_heads, seed, device, dtype, *, bias=True):
    """Our module and torch's, same weights, on ``device`` in ``dtype``."""
    ours = MultiHeadSelfAttention(embed_dim, num_heads, bias=bias, generator=make_generator(seed))
    with seeded_global_rng(seed):
        ref = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True)
    ours.load_from_torch(ref)
    return ours.to(device, dtype), ref.to(device, dtype)


def _masks(kind, n, length, device, dtype):
    """(attn_mask, key_padding_mask); padding at the end, so no query row is fully masked."""
    causal = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    padding = torch.zeros(n, length, dtype=torch.bool, device=device)
    padding[0, -2:] = True
    padding[-1, -1] = True
    if kind == "none":
        return None, None
    if kind == "bool_attn":
        return causal, None
    if kind == "float_attn":
        return _randn((length, length), 11, device, dtype), None
    if kind == "float_attn_3d":
        return None, None  # built by the caller, needs num_heads
    if kind == "padding":
        return None, padding
    return causal, padding  # "both"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["none", "bool_attn", "float_attn", "padding", "both"])
def test_mhsa_forward_backward_match_torch(device, dtype, kind):
    n, length, e, h = 3, 5, 8, 2
    ours, ref = _pair(e, h, 0, device, dtype)
    attn_mask, kpm = _masks(kind, n, length, device, dtype)
    x = _randn((n, length, e), 1, device, dtype).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, w = ours(x, attn_mask, kpm, need_weights=True)
    y_ref, w_ref = ref(x_ref, x_ref, x_ref, key_padding_mask=kpm, attn_mask=attn_mask)
    _close(y, y_ref)
    _close(w, w_ref)
    g = _randn(y.shape, 2, device, dtype)
    y.backward(g)
    y_ref.backward(g)
    _close(x.grad, x_ref.grad)
    for name, p in ours.named_parameters():
        _close(p.grad, ref.get_parameter(name).grad)


def test_mhsa_per_head_weights_and_3d_mask_match_torch(device):
    n, length, e, h = 2, 4, 12, 3
    ours, ref = _pair(e, h, 5, device, torch.float64)
    x = _randn((n, length, e), 6, device, torch.float64)
    mask = _randn((n * h, length, length), 7, device, torch.float64)
    y, w = ours(x, mask, need_weights=True, average_attn_weights=False)
    y_ref, w_ref = ref(x, x, x, attn_mask=mask, average_attn_weights=False)
    assert w.shape == (n, h, length, length)
    _close(y, y_ref)
    _close(w, w_ref)


def test_mhsa_without_bias_matches_torch(device):
    ours, ref = _pair(6, 3, 2, device, torch.float64, bias=False)
    assert ours.in_proj_bias is None
    assert ours.out_proj.bias is None
    x = _randn((2, 3, 6), 3, device, torch.float64)
    _close(ours(x), ref(x, x, x, need_weights=False)[0])


def test_mhsa_init_matches_torch_scheme():
    ours = MultiHeadSelfAttention(16, 4, generator=make_generator(0))
    assert ours.in_proj_weight.shape == (48, 16)
    assert float(ours.in_proj_weight.detach().abs().max()) <= (6 / (16 + 48)) ** 0.5
    assert float(ours.out_proj.weight.detach().abs().max()) <= 16**-0.5
    assert torch.count_nonzero(ours.in_proj_bias) == 0
    assert torch.count_nonzero(ours.out_proj.bias) == 0
    again = MultiHeadSelfAttention(16, 4, generator=make_generator(0))
    assert torch.equal(ours.in_proj_weight, again.in_proj_weight)
    assert torch.equal(ours.out_proj.weight, again.out_proj.weight)


def test_mhsa_gradcheck_float64(device):
    n, length, e, h = 2, 3, 4, 2
    mha = MultiHeadSelfAttention(e, h, generator=make_generator(0)).to(device).double()
    with torch.no_grad():  # non-zero biases so their gradients are exercised
        mha.in_proj_bias.copy_(_randn(3 * e, 1, device, torch.float64))
        mha.out_proj.bias.copy_(_randn(e, 2, device, torch.float64))
    names = [name for name, _ in mha.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in mha.named_parameters()]
    x = _randn((n, length, e), 3, device, torch.float64).requires_grad_()
    mask = _randn((length, length), 4, device, torch.float64)
    kpm = torch.tensor([[False, False, True], [False, False, False]], device=device)

    def fn(x, *ps):
        return functional_call(mha, dict(zip(names, ps, strict=True)), (x, mask, kpm))

    assert torch.autograd.gradcheck(fn, (x, *params))


@_FIXTURE_OK
@given(
    length=st.integers(1, 6),
    heads=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**32),
)
def test_mhsa_is_permutation_equivariant(device, length, heads, seed):
    mha = MultiHeadSelfAttention(8, heads, generator=make_generator(seed)).to(device).double()
    x = _randn((2, length, 8), seed, device, torch.float64)
    perm = torch.randperm(length, generator=make_generator(seed + 1)).to(device)
    _close(mha(x[:, perm]), mha(x)[:, perm])


def test_mhsa_key_padding_hides_padded_positions(device):
    mha = MultiHeadSelfAttention(8, 2, generator=make_generator(0)).to(device)
    x = _randn((1, 5, 8), 1, device)
    changed = x.clone()
    changed[0, 3:] = _randn((2, 8), 2, device)
    kpm = torch.tensor([[False, False, False, True, True]], device=device)
    # padded keys carry no weight, so the unpadded queries do not see the change
    _close(mha(changed, key_padding_mask=kpm)[0, :3], mha(x, key_padding_mask=kpm)[0, :3])
    assert not torch.allclose(mha(changed)[0, :3], mha(x)[0, :3])


def test_mhsa_dropout_uses_module_generator(device):
    def build():
        mha = MultiHeadSelfAttention(8, 2, dropout=0.5, generator=make_generator(3)).to(device)
        if torch.device(device).type != "cpu":  # the init generator is a CPU one
            mha.attn_dropout.manual_seed(3)
        return mha

    x = _randn((2, 6, 8), 4, device)
    a, b = build(), build()
    y_a, w_a = a(x, need_weights=True, average_attn_weights=False)
    y_b, w_b = b(x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(y_a, y_b, rtol=0, atol=0)  # same seed, same masks
    torch.testing.assert_close(w_a, w_b, rtol=0, atol=0)
    a.eval()
    y_eval, w_eval = a(x, need_weights=True, average_attn_weights=False)
    assert not torch.allclose(y_a, y_eval)
    kept = w_a != 0
    assert 0 < int(kept.sum()) < kept.numel()
    # train weights = eval weights * mask / (1 - p): inverted dropout of the softmax
    torch.testing.assert_close(w_a, torch.where(kept, w_eval / 0.5, torch.zeros_like(w_eval)))
    # eval is deterministic and equals the dropout-free module
    ref = MultiHeadSelfAttention(8, 2, generator=make_generator(3)).to(device)
    _close(y_eval, ref(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"embed_dim": 10, "num_heads": 3}, ValueError, "divisible"),
        ({"embed_dim": 0, "num_heads": 1}, ValueError, "embed_dim"),
        ({"embed_dim": 8, "num_heads": 0}, ValueError, "num_heads"),
        ({"embed_dim": 8, "num_heads": 2, "dropout": 1.0}, ValueError, "dropout"),
        ({"embed_dim": 8, "num_heads": 2, "bias": 1}, TypeError, "bias"),
        ({"embed_dim": 8, "num_heads": 2, "generator": "g"}, TypeError, "generator"),
    ],
)
def test_mhsa_rejects_bad_arguments(kwargs, error, match):
    kwargs = {"generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=match):
        MultiHeadSelfAttention(**kwargs)


@pytest.mark.cuda
@pytest.mark.parametrize("cls", [SqueezeExcitation, MultiHeadSelfAttention])
def test_attention_rejects_a_generator_off_the_cpu(cls):
    with pytest.raises(ValueError, match="generator"):
        cls(8, 2, generator=make_generator(0, "cuda"))


@pytest.mark.parametrize(
    ("x_shape", "mask", "kpm", "error", "match"),
    [
        ((2, 8), None, None, ValueError, "x"),
        ((1, 2, 3, 8), None, None, ValueError, "x"),
        ((2, 3, 6), None, None, ValueError, "x"),
        ((2, 3, 8), torch.zeros(3, 4), None, ValueError, "attn_mask"),
        ((2, 3, 8), torch.zeros(3, 3, 3), None, ValueError, "attn_mask"),
        ((2, 3, 8), torch.zeros(3, 3, dtype=torch.int64), None, TypeError, "attn_mask"),
        ((2, 3, 8), None, torch.zeros(3, 2, dtype=torch.bool), ValueError, "key_padding_mask"),
        ((2, 3, 8), None, [[0, 0, 1]], TypeError, "key_padding_mask"),
    ],
)
def test_mhsa_rejects_bad_input(x_shape, mask, kpm, error, match):
    mha = MultiHeadSelfAttention(8, 2, generator=make_generator(0))
    with pytest.raises(error, match=match):
        mha(torch.zeros(x_shape), mask, kpm)


def test_mhsa_rejects_integer_input():
    mha = MultiHeadSelfAttention(8, 2, generator=make_generator(0))
    with pytest.raises(TypeError, match="x"):
        mha(torch.zeros(2, 3, 8, dtype=torch.int64))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"embed_dim": 8, "num_heads": 4}, ValueError),
        ({"embed_dim": 8, "num_heads": 2, "bias": False}, ValueError),
        ({"embed_dim": 8, "num_heads": 2, "add_bias_kv": True}, ValueError),
        ({"embed_dim": 8, "num_heads": 2, "kdim": 4}, ValueError),
    ],
)
def test_load_from_torch_rejects_other_shapes(kwargs, error):
    mha = MultiHeadSelfAttention(8, 2, generator=make_generator(0))
    with seeded_global_rng(0):
        other = nn.MultiheadAttention(batch_first=True, **kwargs)
    with pytest.raises(error, match="mha"):
        mha.load_from_torch(other)
    with pytest.raises(TypeError, match="mha"):
        mha.load_from_torch(nn.Linear(8, 8, device="meta"))


@pytest.mark.parametrize("bias", [True, False])
def test_attention_draws_the_same_weights_as_torch_from_one_rng_state(bias):
    with seeded_global_rng(5):
        theirs = nn.MultiheadAttention(8, 2, bias=bias, batch_first=True)
    ours = MultiHeadSelfAttention(8, 2, bias=bias, generator=make_generator(5))
    assert torch.equal(ours.in_proj_weight, theirs.in_proj_weight)
    assert torch.equal(ours.out_proj.weight, theirs.out_proj.weight)
    if bias:
        assert torch.equal(ours.in_proj_bias, theirs.in_proj_bias)
        assert torch.equal(ours.out_proj.bias, theirs.out_proj.bias)
