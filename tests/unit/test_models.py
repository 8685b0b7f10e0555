"""Model zoo: registry, shapes, parameter counts, torch references, residual zero-init, modes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchvision.models.resnet as tv_resnet
from torch import nn
from torch.nn import functional as F

from netprops import make_generator, seeded_global_rng, tolerance
from netprops.init import scheme_std
from netprops.layers.dropout import DropConnectLinear, Dropout
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from netprops.layers.pooling import MaxPool2d
from netprops.layers.residual import BasicBlock, Bottleneck, ResidualMLPBlock, WideBasicBlock
from netprops.models import (
    KERNEL_PLANS,
    MLP,
    STANDARD_INPUT_SHAPES,
    ConvNet,
    DepthCNN,
    KernelCNN,
    ResidualMLP,
    ResNet,
    SimpleCNN,
    conv_parameter_count,
    create,
    get_model_entry,
    list_models,
    register_model,
)
from netprops.models import registry as registry_module

SPEC_NAMES = [
    "mlp-784-500-100-100-10",
    "mlp-784-256-10",
    "mlp-784-128-64-10",
    "mlp-784-128-64-32-16-10",
    "cnn-2",
    "cnn-3",
    "cnn-k3",
    "cnn-k5",
    "cnn-k7",
    "cnn-k1x3",
    *[f"cnn-depth{d}{s}" for d in (2, 4, 6, 8) for s in ("", "-residual")],
    "resnet20",
    "resnet-bottleneck",
    "wrn-16-4",
    "resmlp",
]
MLP_PRESETS = [n for n in SPEC_NAMES if n.startswith("mlp-")]
KERNEL_NAMES = ["cnn-k3", "cnn-k5", "cnn-k7", "cnn-k1x3"]
RESIDUAL_NAMES = ["resnet20", "resnet-bottleneck", "wrn-16-4", "resmlp"] + [
    f"cnn-depth{d}-residual" for d in (2, 4, 6, 8)
]
MODEL_SHAPES = [(name, shape) for name in SPEC_NAMES for shape in STANDARD_INPUT_SHAPES]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randn(shape, seed, device, dtype=torch.float32):
    g = make_generator(seed, device)
    return torch.randn(shape, generator=g, device=device, dtype=dtype)


def _close(actual, expected):
    tol = tolerance(expected.dtype)
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def _sizes(name):
    return [int(n) for n in name.split("-")[1:]]


def _closed_form(sizes):
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


# --------------------------------------------------------------------------- registry
def test_registry_lists_every_spec_name():
    assert set(SPEC_NAMES) <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_builtin_entries_declare_both_input_kinds(name):
    entry = get_model_entry(name)
    assert entry.name == name
    assert entry.input_shapes == ((1, 28, 28), (3, 32, 32))
    assert entry.description


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet21'.*resnet20.*wrn-16-4"):
        create("resnet21")
    with pytest.raises(TypeError, match="name"):
        create(20)


@pytest.mark.parametrize(
    ("name", "override"),
    [("mlp-784-256-10", "kernel_size"), ("resnet20", "depth"), ("cnn-2", "bogus")],
)
def test_unknown_override_is_named(name, override):
    with pytest.raises(TypeError, match=rf"unexpected override\(s\) \['{override}'\].*accepts"):
        create(name, **{override: 1})


def test_seed_and_generator_are_exclusive():
    with pytest.raises(ValueError, match="seed or generator"):
        create("cnn-2", seed=0, generator=make_generator(0))
    with pytest.raises(TypeError, match="generator"):
        create("cnn-2", generator=0)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_construction_is_deterministic_and_leaves_global_rng_alone(name):
    before = torch.random.get_rng_state()
    a = create(name, seed=3).state_dict()
    b = create(name, generator=make_generator(3)).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp-784-256-10", "cnn-k1x3", "resnet20", "resmlp"])
def test_different_seeds_give_different_weights(name):
    a, c = create(name, seed=3).state_dict(), create(name, seed=4).state_dict()
    weights = [k for k, v in a.items() if v.is_floating_point() and v.dim() >= 2]
    assert weights
    assert all(not torch.equal(a[k], c[k]) for k in weights)


def test_default_seed_is_zero():
    a = create("mlp-784-256-10").state_dict()
    b = create("mlp-784-256-10", seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.cuda
def test_generator_must_be_cpu():
    with pytest.raises(ValueError, match="generator"):
        create("cnn-2", generator=torch.Generator(device="cuda"))


def test_input_kind_overrides():
    assert create("cnn-2", in_channels=3).input_shape == (3, 32, 32)
    assert create("cnn-k5", input_shape=(3, 32, 32)).input_shape == (3, 32, 32)
    assert create("resnet20", input_shape=(3, 32, 32)).in_channels == 3
    assert create("resmlp", in_channels=3).in_features == 3072
    assert create("mlp-784-256-10", in_channels=3).layer_sizes == (3072, 256, 10)
    custom = create("mlp-784-256-10", layer_sizes=[784, 32, 10], in_channels=3)
    assert custom.layer_sizes == (3072, 32, 10)
    assert create("cnn-2", input_shape=(2, 20, 24)).input_shape == (2, 20, 24)
    with pytest.raises(ValueError, match="in_channels=2 has no standard input shape"):
        create("cnn-2", in_channels=2)
    with pytest.raises(ValueError, match="disagrees with input_shape"):
        create("resnet20", in_channels=3, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        create("cnn-2", input_shape=(28, 28))
    with pytest.raises(ValueError, match=r"input_shape\[1\]"):
        create("cnn-2", input_shape=(1, 0, 28))


def test_register_model_and_create(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    def tiny(hidden=4, *, generator):
        return MLP([6, hidden, 2], generator=generator)

    entry = register_model("tiny", tiny, input_shapes=[(1, 2, 3)], description="a tiny MLP")
    assert entry.input_shapes == ((1, 2, 3),)
    assert "tiny" in list_models()
    model = create("tiny", seed=1, hidden=5)
    assert model.layer_sizes == (6, 5, 2)
    ref = MLP([6, 5, 2], generator=make_generator(1))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ref.state_dict().items())
    with pytest.raises(TypeError, match=r"unexpected override\(s\) \['width'\]"):
        create("tiny", width=3)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", tiny)
    register_model("tiny", lambda **kw: MLP([6, 3, 2], **kw), overwrite=True)
    assert create("tiny").layer_sizes == (6, 3, 2)
    with pytest.raises(TypeError, match="generator"):
        register_model("no-gen", lambda hidden=4: MLP([6, hidden, 2]))
    with pytest.raises(TypeError, match="callable"):
        register_model("not-callable", 3)
    with pytest.raises(ValueError, match="non-empty"):
        register_model("", tiny)
    with pytest.raises(ValueError, match="input_shape"):
        register_model("bad-shape", tiny, input_shapes=[(28, 28)])


# --------------------------------------------------------------------------- shapes, grads, counts
@pytest.mark.parametrize(("name", "shape"), MODEL_SHAPES)
def test_output_shape_and_layer_outputs_on_both_input_kinds(device, name, shape):
    model = create(name, seed=0, input_shape=shape).to(device).eval()
    x = _randn((2, *shape), 1, device)
    with torch.no_grad():
        outputs = model.get_layer_outputs(x)
        y = model(x)
    names = list(outputs)
    assert names[-1] == "output"
    assert len(names) == len(set(names)) >= 3
    assert all(t.shape[0] == 2 for t in outputs.values())
    assert all(t.device.type == torch.device(device).type for t in outputs.values())
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(outputs["output"], y, rtol=0, atol=0)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_forward_backward_reaches_every_parameter(device, name):
    model = create(name, seed=0).to(device)
    model(_randn((2, 1, 28, 28), 1, device)).square().mean().backward()
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    assert trainable
    assert [k for k, p in trainable if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert model.count_parameters() == sum(p.numel() for _, p in trainable)


@pytest.mark.parametrize("name", MLP_PRESETS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_mlp_presets_count_matches_closed_form(name, in_channels):
    sizes = _sizes(name)
    shape = STANDARD_INPUT_SHAPES[0] if in_channels == 1 else STANDARD_INPUT_SHAPES[1]
    sizes[0] = math.prod(shape)
    model = create(name, in_channels=in_channels)
    assert model.count_parameters() == _closed_form(sizes)


def test_count_parameters_counts_trainable_only():
    model = create("mlp-784-128-64-10")
    full = model.count_parameters()
    model.hidden1.linear.weight.requires_grad_(False)
    assert model.count_parameters() == full - 784 * 128
    assert sum(p.numel() for p in model.parameters()) == full


# --------------------------------------------------------------------------- MLP
def test_mlp_layer_outputs_match_float64_reference(device):
    sizes = [784, 500, 100, 100, 10]
    model = MLP(sizes, generator=make_generator(0)).to(device, torch.float64)
    x = _randn((4, 1, 28, 28), 1, device, torch.float64)
    outputs = model.get_layer_outputs(x)
    expected_names = [f"hidden{k}.{w}" for k in (1, 2, 3) for w in ("pre", "post")] + ["output"]
    assert list(outputs) == expected_names
    h = x.reshape(4, 784)
    for k, layer in enumerate(model.hidden_layers(), start=1):
        z = F.linear(h, layer.linear.weight, layer.linear.bias)
        _close(outputs[f"hidden{k}.pre"], z)
        h = torch.relu(z)
        _close(outputs[f"hidden{k}.post"], h)
        assert outputs[f"hidden{k}.post"].shape == (4, sizes[k])
    _close(outputs["output"], F.linear(h, model.output.weight, model.output.bias))
    _close(model(x), outputs["output"])
    _close(model(x.reshape(4, 784)), outputs["output"])


def test_mlp_matches_torch_sequential(device):
    model = MLP(
        [784, 64, 32, 10],
        activation="tanh",
        output_activation="sigmoid",
        generator=make_generator(0),
    )
    model = model.to(device, torch.float64)
    with seeded_global_rng(0):
        ref = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 32), nn.Tanh()
        )
        ref.append(nn.Linear(32, 10)).append(nn.Sigmoid())
    ref = ref.to(device, torch.float64)
    for dst, src in zip(
        [ref[1], ref[3], ref[5]],
        [model.hidden1.linear, model.hidden2.linear, model.output],
        strict=True,
    ):
        dst.load_state_dict(src.state_dict())
    x = _randn((5, 1, 28, 28), 2, device, torch.float64)
    _close(model(x), ref(x))


def test_mlp_default_init_is_torch_default_and_drawn_from_generator():
    model = MLP([784, 500, 10], generator=make_generator(0))
    w, b = model.hidden1.linear.weight, model.hidden1.linear.bias
    bound = 1 / math.sqrt(784)
    assert w.abs().max() <= bound
    assert b.abs().max() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert b.abs().sum() > 0


@pytest.mark.parametrize("scheme", ["he", "xavier", "lecun"])
def test_mlp_init_scheme_sets_weight_std_and_zero_bias(scheme):
    model = MLP([784, 500, 100, 10], init=scheme, generator=make_generator(0))
    for layer in [model.hidden1.linear, model.hidden2.linear, model.output]:
        expected = scheme_std(layer.weight, scheme)
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0


def test_mlp_init_params_and_zeros():
    model = MLP([20, 30, 5], init="normal", init_params={"std": 0.25}, generator=make_generator(0))
    assert model.hidden1.linear.weight.std().item() == pytest.approx(0.25, rel=0.1)
    zeros = MLP([20, 30, 5], init="zeros", generator=make_generator(0))
    assert all(torch.count_nonzero(p) == 0 for p in zeros.parameters())


def test_mlp_norm_dropout_dropconnect_layers():
    model = MLP(
        [784, 64, 32, 10], norm="layer", dropout=0.2, dropconnect=0.3, generator=make_generator(0)
    )
    for layer in model.hidden_layers():
        assert isinstance(layer.linear, DropConnectLinear)
        assert isinstance(layer.norm, LayerNorm)
        assert isinstance(layer.dropout, Dropout)
    assert type(model.output) is nn.Linear
    plain = MLP([784, 64, 32, 10], generator=make_generator(0))
    assert all(type(layer.linear) is nn.Linear for layer in plain.hidden_layers())
    assert all(isinstance(layer.dropout, nn.Identity) for layer in plain.hidden_layers())
    batch = MLP([784, 64, 10], norm="batch", generator=make_generator(0))
    assert isinstance(batch.hidden1.norm, BatchNorm1d)
    # DropConnect keeps the parameter count of the plain network.
    assert model.count_parameters() == plain.count_parameters() + 2 * (64 + 32)


def test_mlp_norm_pre_is_the_normalized_linear_output(device):
    model = MLP([12, 8, 3], norm="layer", generator=make_generator(0)).to(device)
    x = _randn((5, 12), 1, device)
    out = model.get_layer_outputs(x)
    z = model.hidden1.linear(x)
    _close(out["hidden1.pre"], F.layer_norm(z, (8,)))
    _close(out["hidden1.post"], torch.relu(out["hidden1.pre"]))


def test_mlp_residual_skips_equal_width_hidden_layers(device):
    plain = create("mlp-784-500-100-100-10", seed=0).to(device)
    res = create("mlp-784-500-100-100-10", seed=0, residual=True).to(device)
    assert [layer.skip for layer in res.hidden_layers()] == [False, False, True]
    assert res.count_parameters() == plain.count_parameters()
    x = _randn((3, 1, 28, 28), 1, device)
    out = res.get_layer_outputs(x)
    _close(out["hidden3.post"], out["hidden2.post"] + torch.relu(out["hidden3.pre"]))
    _close(out["hidden2.post"], torch.relu(out["hidden2.pre"]))
    assert not torch.allclose(res(x), plain(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer_sizes": [784]}, ValueError, "at least 2 widths"),
        ({"layer_sizes": []}, ValueError, "at least 2 widths"),
        ({"layer_sizes": [784, 0, 10]}, ValueError, r"layer_sizes\[1\] must be an int >= 1"),
        ({"layer_sizes": [784, -3]}, ValueError, r"layer_sizes\[1\]"),
        ({"layer_sizes": [784, 2.5]}, TypeError, r"layer_sizes\[1\]"),
        ({"layer_sizes": "784"}, TypeError, "layer_sizes"),
        ({"activation": "relux"}, ValueError, "'relu'"),
        ({"output_activation": "softmax"}, ValueError, "'sigmoid'"),
        ({"norm": "group"}, ValueError, "norm must be one of None, 'layer', 'batch'"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"dropconnect": -0.1}, ValueError, "dropconnect"),
        ({"init": "orthogonal"}, ValueError, "'xavier'"),
        ({"init": "normal"}, ValueError, "std"),
        ({"init_params": {"std": 1.0}}, ValueError, "init_params was given without init"),
        ({"residual": True}, ValueError, "residual=True needs"),
        ({"residual": 1}, TypeError, "residual"),
        ({"generator": 0}, TypeError, "generator"),
    ],
)
def test_mlp_bad_arguments(kwargs, error, match):
    args = {"layer_sizes": [784, 64, 10], "generator": make_generator(0), **kwargs}
    with pytest.raises(error, match=match):
        MLP(**args)


def test_mlp_wrong_input_shape(device):
    model = create("mlp-784-256-10").to(device)
    with pytest.raises(ValueError, match=r"784 features per sample.*\(2, 3, 32, 32\)"):
        model(_randn((2, 3, 32, 32), 0, device))
    with pytest.raises(ValueError, match="784 features"):
        model(_randn((784,), 0, device))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 784, dtype=torch.long, device=device))


# --------------------------------------------------------------------------- CNNs
def _conv_reference(model: ConvNet, x):
    """The ConvNet forward written with torch.nn.functional, from the model's weights."""
    units = iter(model.units)
    for stage in model.stages:
        for _ in stage:
            unit = next(units)
            conv = unit.conv
            z = F.conv2d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)
            if unit.skip:
                z = z + x
            x = torch.relu(z)
        x = F.max_pool2d(x, 2)
    return F.linear(x.flatten(1), model.head.weight, model.head.bias)


@pytest.mark.parametrize(
    "name", ["cnn-2", "cnn-3", "cnn-k5", "cnn-k1x3", "cnn-depth4", "cnn-depth4-residual"]
)
@pytest.mark.parametrize("shape", STANDARD_INPUT_SHAPES)
def test_cnn_matches_functional_reference(device, name, shape):
    model = create(name, input_shape=shape).to(device, torch.float64)
    x = _randn((2, *shape), 1, device, torch.float64)
    _close(model(x), _conv_reference(model, x))


@pytest.mark.parametrize("shape", STANDARD_INPUT_SHAPES)
def test_simple_cnn_layer_output_names_and_shapes(device, shape):
    model = create("cnn-3", input_shape=shape).to(device)
    outputs = model.get_layer_outputs(_randn((2, *shape), 0, device))
    _, h, w = shape
    expected = {}
    for i, width in enumerate((32, 64, 128), start=1):
        expected[f"conv{i}.pre"] = (2, width, h, w)
        expected[f"conv{i}.post"] = (2, width, h, w)
        h, w = h // 2, w // 2
        expected[f"pool{i}"] = (2, width, h, w)
    expected["output"] = (2, 10)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected
    assert list(outputs) == list(expected)
    assert all(isinstance(p, MaxPool2d) for p in model.pools)
    assert model.head.in_features == 128 * h * w


def test_simple_cnn_options():
    model = SimpleCNN(
        3,
        channels=(8, 16, 24),
        kernel_size=5,
        norm="batch",
        dropout=0.5,
        generator=make_generator(0),
    )
    assert [u.conv.out_channels for u in model.units] == [8, 16, 24]
    assert all(u.conv.kernel_size == (5, 5) and u.conv.bias is None for u in model.units)
    assert all(isinstance(u.norm, BatchNorm2d) for u in model.units)
    assert isinstance(model.dropout, Dropout)
    assert model.count_parameters() == conv_parameter_count(model) + 24 * 3 * 3 * 10 + 10


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_kernel_variants_have_equal_parameter_counts(in_channels, norm):
    models = {n: create(n, in_channels=in_channels, norm=norm) for n in KERNEL_NAMES}
    for counts in (
        [m.count_parameters() for m in models.values()],
        [conv_parameter_count(m) for m in models.values()],
    ):
        assert max(counts) <= 1.05 * min(counts), counts
    for kernel, name in zip(("3", "5", "7"), KERNEL_NAMES[:3], strict=True):
        assert {u.conv.kernel_size for u in models[name].units} == {(int(kernel),) * 2}
    assert [u.conv.kernel_size[0] for u in models["cnn-k1x3"].units] == [3, 1, 3]
    assert set(KERNEL_PLANS) == {"3", "5", "7", "1x3"}


@pytest.mark.parametrize("depth", [2, 4, 6, 8])
def test_depth_variants(depth, device):
    plain = create(f"cnn-depth{depth}").to(device)
    res = create(f"cnn-depth{depth}-residual").to(device)
    assert len(plain.units) == len(res.units) == depth
    assert [u.skip for u in plain.units] == [False] * depth
    assert [u.skip for u in res.units] == [False] + [True] * (depth - 1)
    assert plain.count_parameters() == res.count_parameters()
    x = _randn((2, 1, 28, 28), 0, device)
    out = res.get_layer_outputs(x)
    conv = res.units[1].conv
    conv2_input = out["pool1" if depth == 2 else "conv1.post"]
    z = F.conv2d(conv2_input, conv.weight, conv.bias, padding=1)
    _close(out["conv2.pre"], z + conv2_input)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: SimpleCNN(4), "num_conv must be one of 2, 3"),
        (lambda: SimpleCNN(2, channels=(8,)), "channels must list 2 widths"),
        (lambda: SimpleCNN(norm="layer"), "norm must be one of None, 'batch'"),
        (lambda: SimpleCNN(activation="gelu"), "'relu'"),
        (lambda: SimpleCNN(kernel_size=4), "kernel_size must be odd"),
        (lambda: SimpleCNN(input_shape=(1, 3, 3)), "too small for 2 2x2 pooling stages"),
        (lambda: SimpleCNN(dropout=1.5), "dropout"),
        (lambda: KernelCNN(4), "kernel must be one of '3', '5', '7', '1x3'"),
        (lambda: DepthCNN(1), "depth must be an int >= 2"),
        (lambda: DepthCNN(4, zero_init_residual=True), "needs residual=True"),
        (lambda: ConvNet([]), "at least one stage"),
        (lambda: ConvNet([[]]), r"stages\[0\] must list"),
        (lambda: ConvNet([[(8, 3, 1)]]), r"\(channels, kernel_size\) pair"),
        (lambda: ConvNet([[(8, 3)]], residual=True), "no conv has equal"),
    ],
)
def test_cnn_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize(
    ("bad_shape", "match"),
    [
        ((2, 3, 32, 32), r"SimpleCNN expected input of shape \(N, 1, 28, 28\)"),
        ((2, 1, 32, 32), r"\(N, 1, 28, 28\), got \(2, 1, 32, 32\)"),
        ((1, 28, 28), r"\(N, 1, 28, 28\)"),
    ],
)
def test_cnn_wrong_input_shape(device, bad_shape, match):
    model = create("cnn-2").to(device)
    with pytest.raises(ValueError, match=match):
        model(_randn(bad_shape, 0, device))


# --------------------------------------------------------------------------- ResNets
class _TvResNet(nn.Module):
    """Reference CIFAR ResNet from torchvision's blocks, with our parameter names."""

    def __init__(self, block, model: ResNet):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(model.in_channels, model.width, 3, padding=1, bias=False),
            nn.BatchNorm2d(model.width),
            nn.ReLU(),
        )
        in_planes = model.width
        for s, (n, w, stride) in enumerate(
            zip(model.layers, model.stage_widths, (1, 2, 2), strict=True)
        ):
            blocks = []
            for b in range(n):
                st = stride if b == 0 else 1
                planes = w // block.expansion
                down = None
                if st != 1 or in_planes != w:
                    down = nn.Sequential(
                        nn.Conv2d(in_planes, w, 1, stride=st, bias=False), nn.BatchNorm2d(w)
                    )
                blocks.append(block(in_planes, planes, st, down))
                in_planes = w
            self.add_module(f"stage{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(in_planes, model.num_classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("block", "tv_block", "width"),
    [("basic", tv_resnet.BasicBlock, 8), ("bottleneck", tv_resnet.Bottleneck, 16)],
)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_resnet_matches_torchvision_blocks(device, block, tv_block, width, mode):
    model = ResNet(block, (2, 1, 1), width=width, in_channels=3, generator=make_generator(0))
    with seeded_global_rng(0):
        ref = _TvResNet(tv_block, model)
    ref.load_state_dict(model.state_dict())
    model, ref = model.to(device, torch.float64), ref.to(device, torch.float64)
    getattr(model, mode)()
    getattr(ref, mode)()
    x = _randn((3, 3, 12, 12), 1, device, torch.float64)
    _close(model(x), ref(x))


def test_resnet_depths_and_widths():
    def weighted_layers(model):
        convs = [
            m
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and "downsample" not in name
        ]
        return len(convs) + 1  # + the linear head

    assert weighted_layers(create("resnet20")) == 20
    assert weighted_layers(create("resnet-bottleneck")) == 29
    assert create("resnet20").stage_widths == (16, 32, 64)
    assert create("resnet-bottleneck").stage_widths == (64, 128, 256)
    wrn = create("wrn-16-4")
    assert wrn.stage_widths == (64, 128, 256)
    blocks = [m for m in wrn.modules() if isinstance(m, (BasicBlock, Bottleneck, WideBasicBlock))]
    assert len(blocks) == 6
    assert all(isinstance(b, WideBasicBlock) for b in blocks)
    assert [len(getattr(wrn, f"stage{s}")) for s in (1, 2, 3)] == [2, 2, 2]


def test_resnet_layer_output_names_and_shapes(device):
    shape = (3, 32, 32)
    model = create("resnet20", input_shape=shape).to(device)
    outputs = model.get_layer_outputs(_randn((2, *shape), 0, device))
    _, h, w = shape
    expected = {"stem": (2, 16, h, w)}
    for s, (c, stride) in enumerate(zip((16, 32, 64), (1, 2, 2), strict=True), start=1):
        h, w = -(-h // stride), -(-w // stride)
        for b in (1, 2, 3):
            expected[f"stage{s}.block{b}"] = (2, c, h, w)
    expected["pool"] = (2, 64)
    expected["output"] = (2, 10)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected
    assert list(outputs) == list(expected)
    _close(outputs["pool"], outputs["stage3.block3"].mean(dim=(2, 3)))


def test_wide_resnet_has_final_norm_output(device):
    model = ResNet("wide", (1, 1, 1), width=4, widen_factor=2, generator=make_generator(0))
    outputs = model.to(device).get_layer_outputs(_randn((2, 1, 28, 28), 0, device))
    assert list(outputs) == [
        "stem",
        "stage1.block1",
        "stage2.block1",
        "stage3.block1",
        "final",
        "pool",
        "output",
    ]
    assert outputs["final"].min() >= 0  # norm + ReLU


def test_bottleneck_resnet_is_smaller_than_basic_at_same_width_and_depth():
    for width, layers in [(16, (3, 3, 3)), (32, (2, 2, 2))]:
        basic = ResNet("basic", layers, width=width, generator=make_generator(0))
        bottleneck = ResNet("bottleneck", layers, width=width, generator=make_generator(0))
        assert basic.stage_widths == bottleneck.stage_widths
        assert bottleneck.count_parameters() < basic.count_parameters()


def test_resnet_norm_layer_is_injected():
    model = ResNet(
        "basic",
        (1, 1, 1),
        width=8,
        norm_layer=lambda c: nn.GroupNorm(2, c),
        generator=make_generator(0),
    )
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, BatchNorm2d))]
    assert norms
    assert all(isinstance(m, nn.GroupNorm) for m in norms)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"block": "dense"}, ValueError, "block must be one of 'basic', 'bottleneck', 'wide'"),
        ({"block": 1}, TypeError, "block"),
        ({"layers": (3, 3)}, ValueError, "layers must list 3"),
        ({"layers": (3, 0, 3)}, ValueError, r"layers\[1\]"),
        ({"block": "bottleneck", "width": 6}, ValueError, "divisible by 4"),
        ({"dropout": 0.3}, ValueError, "only used by block='wide'"),
        ({"width": 0}, ValueError, "width"),
        ({"norm_layer": "batch"}, TypeError, "norm_layer"),
        ({"activation": "swish"}, ValueError, "'silu'"),
    ],
)
def test_resnet_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ResNet(**kwargs)


def test_resnet_wrong_input_shape(device):
    model = create("resnet20").to(device)
    with pytest.raises(ValueError, match=r"ResNet expected input of shape \(N, 1, H, W\)"):
        model(_randn((2, 3, 32, 32), 0, device))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(_randn((1, 28, 28), 0, device))


def test_residual_mlp_structure_and_errors(device):
    model = create("resmlp").to(device)
    assert len(model.blocks) == 4
    assert all(isinstance(b, ResidualMLPBlock) and b.features == 256 for b in model.blocks)
    outputs = model.get_layer_outputs(_randn((3, 784), 0, device))
    assert list(outputs) == ["stem.pre", "stem.post"] + [f"block{b}" for b in range(1, 5)] + [
        "output"
    ]
    assert outputs["block4"].shape == (3, 256)
    with pytest.raises(ValueError, match="784 features"):
        model(_randn((3, 3, 32, 32), 0, device))
    with pytest.raises(ValueError, match="n_blocks"):
        ResidualMLP(n_blocks=0)
    with pytest.raises(ValueError, match="norm"):
        ResidualMLP(norm="group")


# --------------------------------------------------------------------------- zero-init residual
def _block_io(model, x):
    """(input, output) of every residual unit with an identity shortcut, in forward order."""
    if isinstance(model, ConvNet):
        # Conv units run through pre_post (no hooks): read them off the layer outputs.
        pairs, prev, units = [], x, iter(model.units)
        for name, t in model.get_layer_outputs(x).items():
            if name.endswith(".pre"):
                continue
            if name.endswith(".post") and next(units).skip:
                pairs.append((prev, t))
            prev = t
        assert pairs
        return pairs
    modules = [
        m
        for m in model.modules()
        if (isinstance(m, (BasicBlock, Bottleneck, WideBasicBlock)) and not m.has_projection)
        or isinstance(m, ResidualMLPBlock)
    ]
    seen = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, i=i: seen.__setitem__(i, (inp[0], out)))
        for i, m in enumerate(modules)
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) == len(modules) > 0
    return [seen[i] for i in range(len(modules))]


@pytest.mark.parametrize("name", RESIDUAL_NAMES)
def test_zero_init_residual_makes_blocks_identity(device, name):
    kwargs = {"widen_factor": 1} if name == "wrn-16-4" else {}
    if name == "resmlp":
        shape = (2, 784)
    elif name.startswith("cnn"):
        shape = (2, 1, 28, 28)
    else:
        shape = (2, 1, 8, 8)  # global pooling: any spatial size
    x = _randn(shape, 0, device)
    zero = create(name, zero_init_residual=True, **kwargs).to(device)
    pairs = _block_io(zero, x)
    for inp, out in pairs:
        # Post-activation blocks see non-negative input (a previous ReLU), so act(x) == x.
        torch.testing.assert_close(out, inp, rtol=0, atol=0)
    plain = create(name, **kwargs).to(device)
    assert any(not torch.equal(out, inp) for inp, out in _block_io(plain, x))


@pytest.mark.parametrize("norm", [None, "batch"])
def test_zero_init_residual_conv_units_with_and_without_norm(device, norm):
    model = DepthCNN(
        4, residual=True, norm=norm, zero_init_residual=True, generator=make_generator(0)
    )
    model = model.to(device)
    skipped = [u for u in model.units if u.skip]
    assert len(skipped) == 3
    for unit in skipped:
        target = unit.norm if norm else unit.conv
        assert torch.count_nonzero(target.weight) == 0
    x = _randn((2, 1, 28, 28), 0, device)
    for inp, out in _block_io(model, x):
        torch.testing.assert_close(out, inp, rtol=0, atol=0)


# --------------------------------------------------------------------------- train / eval
@pytest.mark.parametrize(
    ("name", "overrides", "layer_types"),
    [
        (
            "mlp-784-128-64-10",
            {"dropout": 0.5, "dropconnect": 0.3, "norm": "batch"},
            (Dropout, DropConnectLinear, BatchNorm1d),
        ),
        ("cnn-2", {"dropout": 0.5, "norm": "batch"}, (Dropout, BatchNorm2d)),
        ("cnn-depth4-residual", {"dropout": 0.5, "norm": "batch"}, (Dropout, BatchNorm2d)),
        ("resmlp", {"dropout": 0.5, "norm": "batch"}, (Dropout, BatchNorm1d)),
        ("wrn-16-4", {"dropout": 0.5, "widen_factor": 1}, (Dropout, BatchNorm2d)),
    ],
)
def test_train_eval_propagate_to_custom_layers(device, name, overrides, layer_types):
    model = create(name, **overrides).to(device)
    for t in layer_types:
        assert any(isinstance(m, t) for m in model.modules()), t
    x = _randn((4, 1, 28, 28), 0, device)
    assert all(m.training for m in model.modules())
    train_a, train_b = model(x), model(x)
    assert not torch.equal(train_a, train_b)  # fresh masks / batch statistics each call
    model.eval()
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        eval_a, eval_b = model(x), model(x)
    torch.testing.assert_close(eval_a, eval_b, rtol=0, atol=0)
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_masks_are_drawn_from_the_seed(device):
    x = _randn((4, 1, 28, 28), 0, device)
    outs = [
        create("mlp-784-128-64-10", seed=s, dropout=0.5, dropconnect=0.5).to(device)(x)
        for s in (7, 7, 8)
    ]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])


def test_mask_generators_follow_device_and_manual_seed(device):
    model = create("mlp-784-128-64-10", seed=0, dropout=0.5, dropconnect=0.5).to(device)
    for m in model.modules():
        if isinstance(m, DropConnectLinear):
            assert m.generator.device.type == torch.device(device).type
    x = _randn((4, 784), 0, device)
    model.manual_seed(3)
    a = model(x)
    model.manual_seed(3)
    b = model(x)
    model.manual_seed(4)
    c = model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    double = create("mlp-784-128-64-10", seed=0, dropout=0.5, dropconnect=0.5).to(device)
    double = double.double().manual_seed(3)
    torch.testing.assert_close(double(x.double()).float(), a, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="seed"):
        model.manual_seed(-1)
