"""Residual blocks: shapes, shortcuts, zero-init identity, torchvision/functional references."""

from __future__ import annotations

import pytest
import scipy.stats
import torch
import torchvision.models.resnet as tv_resnet
from torch import nn
from torch.nn import functional as F

from netprops import make_generator, seeded_global_rng, tolerance
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.layers.residual import BasicBlock, Bottleneck, ResidualMLPBlock, WideBasicBlock

CONV_BLOCKS = [BasicBlock, Bottleneck, WideBasicBlock]


def _randn(shape, seed, device, dtype=torch.float32):
    g = make_generator(seed, device)
    return torch.randn(shape, generator=g, device=device, dtype=dtype)


def _close(actual, expected):
    tol = tolerance(expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def _norms(block):
    return [m for m in block.modules() if isinstance(m, (BatchNorm1d, BatchNorm2d, LayerNorm))]


def _reseed_dropout_off_cpu(block, device, seed=0):
    """The constructor's generator is a CPU one; off the CPU the dropout needs its own."""
    if torch.device(device).type != "cpu":
        block.dropout.manual_seed(seed)
    return block


class _Zero(nn.Module):
    """A shortcut that carries nothing: the 'block without its skip' mutant."""

    def forward(self, x):
        return torch.zeros_like(x)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("cls", "in_planes", "planes", "stride", "projection"),
    [
        (BasicBlock, 8, 8, 1, False),
        (BasicBlock, 8, 16, 1, True),
        (BasicBlock, 8, 8, 2, True),
        (Bottleneck, 16, 4, 1, False),
        (Bottleneck, 8, 4, 1, True),
        (Bottleneck, 16, 4, 2, True),
        (WideBasicBlock, 8, 8, 1, False),
        (WideBasicBlock, 8, 12, 1, True),
        (WideBasicBlock, 8, 8, 2, True),
    ],
)
def test_conv_block_shapes_and_shortcut_type(device, cls, in_planes, planes, stride, projection):
    block = cls(in_planes, planes, stride, generator=make_generator(0)).to(device)
    out_planes = planes * cls.expansion
    assert block.has_projection is projection
    if projection:
        conv = block.downsample if cls is WideBasicBlock else block.downsample[0]
        assert isinstance(conv, nn.Conv2d)
        assert conv.kernel_size == (1, 1)
        assert conv.stride == (stride, stride)
        assert conv.out_channels == out_planes
    else:
        assert isinstance(block.downsample, nn.Identity)
    y = block(_randn((2, in_planes, 7, 6), 1, device))
    assert y.shape == (2, out_planes, (7 + stride - 1) // stride, (6 + stride - 1) // stride)


def test_expansion_class_attributes():
    assert (BasicBlock.expansion, Bottleneck.expansion, WideBasicBlock.expansion) == (1, 4, 1)


@pytest.mark.parametrize(("hidden", "norm"), [(None, None), (12, "layer"), (5, "batch")])
def test_mlp_block_shape(device, hidden, norm):
    block = ResidualMLPBlock(6, hidden, norm=norm, generator=make_generator(0)).to(device)
    assert block.hidden_features == (6 if hidden is None else hidden)
    assert block(_randn((4, 6), 1, device)).shape == (4, 6)


# --------------------------------------------------------------------------- references
def _torchvision_twin(block):
    """torchvision's block with ``block``'s weights (state dict names match)."""
    cls = tv_resnet.BasicBlock if isinstance(block, BasicBlock) else tv_resnet.Bottleneck
    out_planes = block.planes * cls.expansion
    with seeded_global_rng(0):
        downsample = None
        if block.has_projection:
            downsample = nn.Sequential(
                nn.Conv2d(block.in_planes, out_planes, 1, block.stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        ref = cls(block.in_planes, block.planes, block.stride, downsample)
    ref.load_state_dict(block.state_dict())
    return ref


@pytest.mark.parametrize(
    ("cls", "in_planes", "planes", "stride"),
    [(BasicBlock, 6, 6, 1), (BasicBlock, 4, 6, 2), (Bottleneck, 8, 2, 1), (Bottleneck, 4, 3, 2)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resnet_blocks_match_torchvision(device, cls, in_planes, planes, stride, dtype):
    block = cls(in_planes, planes, stride, generator=make_generator(1))
    ref = _torchvision_twin(block)
    block, ref = block.to(device, dtype), ref.to(device, dtype)
    x = _randn((3, in_planes, 6, 5), 2, device, dtype).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = block(x), ref(x_ref)  # train mode: batch statistics, running-stat update
    _close(y, y_ref)
    g = _randn(y.shape, 3, device, dtype)
    y.backward(g)
    y_ref.backward(g)
    _close(x.grad, x_ref.grad)
    for name, p in block.named_parameters():
        _close(p.grad, ref.get_parameter(name).grad)
    for name, buf in block.named_buffers():
        torch.testing.assert_close(buf, ref.get_buffer(name))
    block.eval()
    ref.eval()
    _close(block(x), ref(x))


def _bn(m, t):
    return F.batch_norm(t, None, None, m.weight, m.bias, training=True, eps=m.eps)


def _wide_reference(block, x):
    """The WRN block written with torch.nn.functional (train-mode BN, no dropout)."""
    pre = F.relu(_bn(block.bn1, x))
    out = F.conv2d(pre, block.conv1.weight, stride=block.stride, padding=1)
    out = F.conv2d(F.relu(_bn(block.bn2, out)), block.conv2.weight, padding=1)
    if block.has_projection:
        return out + F.conv2d(pre, block.downsample.weight, stride=block.stride)
    return out + x


@pytest.mark.parametrize(("in_planes", "planes", "stride"), [(6, 6, 1), (4, 6, 1), (6, 6, 2)])
def test_wide_block_matches_functional_reference(device, in_planes, planes, stride):
    block = WideBasicBlock(in_planes, planes, stride, generator=make_generator(4))
    block = block.to(device).double()
    x = _randn((3, in_planes, 5, 5), 5, device, torch.float64)
    _close(block(x), _wide_reference(block, x))
    # no activation after the sum: outputs take both signs
    assert bool((block(x) < 0).any())


@pytest.mark.parametrize("norm", [None, "layer", "batch"])
def test_mlp_block_matches_functional_reference(device, norm):
    block = ResidualMLPBlock(5, 7, norm=norm, generator=make_generator(6)).to(device).double()
    with torch.no_grad():  # non-trivial biases and norm affine
        block.fc1.bias.copy_(_randn(7, 1, device, torch.float64))
        block.fc2.bias.copy_(_randn(5, 2, device, torch.float64))
    x = _randn((4, 5), 7, device, torch.float64)
    h = F.linear(x, block.fc1.weight, block.fc1.bias)
    if norm == "layer":
        h = F.layer_norm(h, (7,), block.norm.weight, block.norm.bias, block.norm.eps)
    elif norm == "batch":
        h = _bn(block.norm, h)
    expected = x + F.linear(F.relu(h), block.fc2.weight, block.fc2.bias)
    _close(block(x), expected)


# --------------------------------------------------------------------------- zero init
def _identity_cases():
    # (factory, non_negative_input): post-activation blocks fix only non-negative x
    return [
        pytest.param(
            lambda g: BasicBlock(8, 8, zero_init_residual=True, generator=g), True, id="basic"
        ),
        pytest.param(
            lambda g: Bottleneck(16, 4, zero_init_residual=True, generator=g), True, id="bottleneck"
        ),
        pytest.param(
            lambda g: WideBasicBlock(8, 8, zero_init_residual=True, generator=g), False, id="wide"
        ),
        pytest.param(
            lambda g: ResidualMLPBlock(8, 16, norm="layer", zero_init_residual=True, generator=g),
            False,
            id="mlp",
        ),
    ]


def _identity_input(block, non_negative, device):
    shape = (4, 8) if isinstance(block, ResidualMLPBlock) else (2, block.in_planes, 5, 5)
    x = _randn(shape, 9, device)
    return x.relu() if non_negative else x


@pytest.mark.parametrize(("factory", "non_negative"), _identity_cases())
def test_zero_init_residual_block_is_identity(device, factory, non_negative):
    block = factory(make_generator(0)).to(device)
    x = _identity_input(block, non_negative, device)
    for mode in (block.train, block.eval):
        mode()
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)


@pytest.mark.parametrize(("factory", "non_negative"), _identity_cases())
def test_identity_check_fails_without_the_skip(device, factory, non_negative, monkeypatch):
    """The identity test above must catch a block that lost its shortcut."""
    block = factory(make_generator(0)).to(device)
    x = _identity_input(block, non_negative, device)
    if isinstance(block, ResidualMLPBlock):
        monkeypatch.setattr(block, "forward", block.residual_branch)
    else:
        monkeypatch.setattr(block, "downsample", _Zero())
    with pytest.raises(AssertionError):
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)


@pytest.mark.parametrize(("factory", "non_negative"), _identity_cases())
def test_identity_check_fails_without_zero_init(device, factory, non_negative):
    block = factory(make_generator(0))
    kwargs = {"generator": make_generator(0)}
    if isinstance(block, ResidualMLPBlock):
        plain = ResidualMLPBlock(8, 16, norm="layer", **kwargs)
    else:
        plain = type(block)(block.in_planes, block.planes, **kwargs)
    plain = plain.to(device)
    x = _identity_input(plain, non_negative, device)
    assert not torch.allclose(plain(x), x)


def test_post_activation_zero_init_gives_act_of_input(device):
    """Documented limit: with signed input a zero-init BasicBlock returns relu(x), not x."""
    block = BasicBlock(4, 4, zero_init_residual=True, generator=make_generator(0)).to(device)
    x = _randn((2, 4, 3, 3), 1, device)
    torch.testing.assert_close(block(x), x.relu(), rtol=0, atol=0)
    assert not torch.equal(block(x), x)


def test_zero_init_zeroes_the_last_gamma_only():
    b = Bottleneck(16, 4, zero_init_residual=True, generator=make_generator(0))
    assert torch.count_nonzero(b.bn3.weight) == 0
    assert bool((b.bn1.weight == 1).all())
    assert bool((b.bn2.weight == 1).all())
    w = WideBasicBlock(8, 8, zero_init_residual=True, generator=make_generator(0))
    assert torch.count_nonzero(w.conv2.weight) == 0
    assert torch.count_nonzero(w.conv1.weight) == w.conv1.weight.numel()


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_conv_block_forward_backward(device, cls):
    block = cls(4, 4, 2, generator=make_generator(0)).to(device)
    x = _randn((2, 4, 6, 6), 1, device).requires_grad_()
    block(x).square().sum().backward()
    assert x.grad.shape == x.shape
    assert bool(x.grad.isfinite().all())
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        assert bool(p.grad.isfinite().all()), name
        assert bool(p.grad.ne(0).any()), name


def test_mlp_block_forward_backward(device):
    block = ResidualMLPBlock(6, 10, norm="batch", dropout=0.2, generator=make_generator(0))
    block = _reseed_dropout_off_cpu(block.to(device), device)
    x = _randn((8, 6), 1, device).requires_grad_()
    block(x).square().sum().backward()
    assert bool(x.grad.isfinite().all())
    assert all(p.grad is not None and bool(p.grad.isfinite().all()) for p in block.parameters())


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_train_eval_propagate_into_norms(device, cls):
    block = cls(4, 4, 2, generator=make_generator(0)).to(device)
    norms = _norms(block)
    assert len(norms) >= 2
    block.eval()
    assert not any(m.training for m in norms)
    x = _randn((3, 4, 4, 4), 1, device)
    # eval: running statistics, so each example is processed independently of the batch
    _close(block(x)[:1], block(x[:1]))
    block.train()
    assert all(m.training for m in norms)
    # train: batch statistics, so changing example 2 changes example 0's output
    other = x.clone()
    other[2] += 3.0
    assert not torch.allclose(block(x)[0], block(other)[0])


def test_wide_block_dropout_draws_from_its_generator(device):
    def build(p):
        block = WideBasicBlock(4, 4, dropout=p, generator=make_generator(2)).to(device)
        return _reseed_dropout_off_cpu(block, device)

    x = _randn((2, 4, 5, 5), 3, device)
    a, b, no_drop = build(0.3), build(0.3), build(0.0)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert not torch.allclose(a(x), no_drop(x))
    # eval: dropout is off (fresh blocks, so the running statistics agree)
    torch.testing.assert_close(build(0.3).eval()(x), build(0.0).eval()(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(("in_planes", "planes", "stride"), [(8, 8, 1), (8, 16, 1), (16, 16, 2)])
def test_basic_block_parameter_count_closed_form(in_planes, planes, stride):
    block = BasicBlock(in_planes, planes, stride, generator=make_generator(0))
    expected = 9 * in_planes * planes + 9 * planes * planes + 2 * 2 * planes
    if stride != 1 or in_planes != planes:
        expected += in_planes * planes + 2 * planes
    assert sum(p.numel() for p in block.parameters()) == expected


def test_bottleneck_is_cheaper_than_two_wide_3x3_convs():
    block = Bottleneck(256, 64, generator=make_generator(0))
    assert not block.has_projection
    n = sum(p.numel() for p in block.parameters())
    assert n == 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * (64 + 64 + 256)
    assert n < 2 * 9 * 256 * 256


def test_injected_torch_batchnorm(device):
    g = make_generator(3)
    block = BasicBlock(4, 8, 2, norm_layer=nn.BatchNorm2d, generator=g).to(device).double()
    assert isinstance(block.bn1, nn.BatchNorm2d)
    assert isinstance(block.downsample[1], nn.BatchNorm2d)
    ours = BasicBlock(4, 8, 2, generator=make_generator(3)).to(device).double()
    x = _randn((3, 4, 6, 6), 4, device, torch.float64)
    _close(block(x), ours(x))
    block.eval()
    assert not block.bn2.training


def test_injected_group_norm_and_zero_init():
    block = BasicBlock(
        8,
        8,
        norm_layer=lambda c: nn.GroupNorm(2, c),
        zero_init_residual=True,
        generator=make_generator(0),
    )
    assert isinstance(block.bn2, nn.GroupNorm)
    x = _randn((2, 8, 4, 4), 1, "cpu").relu()
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_zero_init_needs_an_affine_norm():
    with pytest.raises(ValueError, match="zero_init_residual"):
        BasicBlock(
            4,
            4,
            norm_layer=lambda c: nn.BatchNorm2d(c, affine=False),
            zero_init_residual=True,
            generator=make_generator(0),
        )


# --------------------------------------------------------------------------- init
@pytest.mark.parametrize("cls", [*CONV_BLOCKS, ResidualMLPBlock])
def test_init_is_deterministic_per_seed(cls):
    args = (8,) if cls is ResidualMLPBlock else (4, 8, 2)
    a = cls(*args, generator=make_generator(5)).state_dict()
    b = cls(*args, generator=make_generator(5)).state_dict()
    c = cls(*args, generator=make_generator(6)).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    weights = [n for n in a if n.endswith("weight") and a[n].dim() > 1]
    assert weights
    assert all(not torch.equal(a[n], c[n]) for n in weights)
    # generator=None is torch's default generator: seeding it gives the same weights
    with seeded_global_rng(5):
        d = cls(*args).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], d[name], rtol=0, atol=0)


def _chi2_bounds(n, alpha=1e-9):
    return scipy.stats.chi2.ppf(alpha / 2, n), scipy.stats.chi2.ppf(1 - alpha / 2, n)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_conv_weights_are_he_normal_fan_out(cls):
    block = cls(16, 32, 2, generator=make_generator(0))
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) >= 3
    for conv in convs:
        w = conv.weight.detach().double()
        fan_out = w.shape[0] * w[0, 0].numel()
        t = float(w.square().sum() / (2.0 / fan_out))  # ~ chi2(N) for N(0, 2/fan_out)
        lo, hi = _chi2_bounds(w.numel())
        assert lo < t < hi, (conv, t / w.numel())
    for norm in _norms(block):
        assert bool((norm.weight == 1).all())
        assert bool((norm.bias == 0).all())


def test_mlp_weights_are_he_normal_fan_in():
    block = ResidualMLPBlock(64, 256, generator=make_generator(0))
    for fc in (block.fc1, block.fc2):
        w = fc.weight.detach().double()
        t = float(w.square().sum() / (2.0 / w.shape[1]))
        lo, hi = _chi2_bounds(w.numel())
        assert lo < t < hi
        assert torch.count_nonzero(fc.bias) == 0


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("cls", CONV_BLOCKS)
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 4), {}, ValueError, "in_planes"),
        ((4, -1), {}, ValueError, "planes"),
        ((4, 4.0), {}, TypeError, "planes"),
        ((4, 4, 0), {}, ValueError, "stride"),
        ((4, 4, 1.5), {}, TypeError, "stride"),
        ((4, 4), {"activation": "gelu"}, ValueError, "activation"),
        ((4, 4), {"activation": None}, TypeError, "activation"),
        ((4, 4), {"norm_layer": "batch"}, TypeError, "norm_layer"),
        ((4, 4), {"norm_layer": lambda c: 3}, TypeError, "norm_layer"),
        ((4, 4), {"zero_init_residual": 1}, TypeError, "zero_init_residual"),
        ((4, 4), {"generator": 0}, TypeError, "generator"),
    ],
)
def test_conv_blocks_reject_bad_arguments(cls, args, kwargs, error, match):
    kwargs = {"generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=match):
        cls(*args, **kwargs)


@pytest.mark.cuda
@pytest.mark.parametrize("cls", [*CONV_BLOCKS, ResidualMLPBlock])
def test_blocks_reject_a_generator_off_the_cpu(cls):
    args = (4,) if cls is ResidualMLPBlock else (4, 4)
    with pytest.raises(ValueError, match="generator"):
        cls(*args, generator=make_generator(0, "cuda"))


@pytest.mark.parametrize("p", [1.0, -0.1])
def test_wide_block_rejects_bad_dropout(p):
    with pytest.raises(ValueError, match="dropout"):
        WideBasicBlock(4, 4, dropout=p, generator=make_generator(0))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0,), {}, ValueError, "features"),
        ((4, 0), {}, ValueError, "hidden_features"),
        ((4,), {"norm": "group"}, ValueError, "norm"),
        ((4,), {"dropout": 1.0}, ValueError, "dropout"),
        ((4,), {"activation": "gelu"}, ValueError, "activation"),
        ((4,), {"zero_init_residual": None}, TypeError, "zero_init_residual"),
        ((4,), {"generator": "g"}, TypeError, "generator"),
    ],
)
def test_mlp_block_rejects_bad_arguments(args, kwargs, error, match):
    kwargs = {"generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=match):
        ResidualMLPBlock(*args, **kwargs)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
@pytest.mark.parametrize(
    ("shape", "dtype", "error"),
    [
        ((2, 4, 5), torch.float32, ValueError),
        ((2, 3, 5, 5), torch.float32, ValueError),
        ((2, 4, 5, 5), torch.int64, TypeError),
    ],
)
def test_conv_blocks_reject_bad_input(cls, shape, dtype, error):
    block = cls(4, 4, generator=make_generator(0))
    with pytest.raises(error, match="x"):
        block(torch.zeros(shape, dtype=dtype))


@pytest.mark.parametrize(("norm", "shape"), [(None, (2, 5)), ("layer", (2,)), ("batch", (2, 3, 4))])
def test_mlp_block_rejects_bad_input(norm, shape):
    block = ResidualMLPBlock(4, norm=norm, generator=make_generator(0))
    with pytest.raises(ValueError, match="x"):
        block(torch.zeros(shape))


def test_mlp_block_accepts_leading_dims_without_batch_norm():
    block = ResidualMLPBlock(4, norm="layer", generator=make_generator(0))
    x = _randn((2, 3, 4), 1, "cpu")
    _close(block(x), block(x.reshape(6, 4)).reshape(2, 3, 4))
