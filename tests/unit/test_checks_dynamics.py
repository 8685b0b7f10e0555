"""Training-dynamics checks: each passes correct models, fails its bug with a report naming
the culprit, restores the model, and validates its arguments; the live building blocks
measure what the checks measure."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import netprops
from netprops import PropertyViolation
from netprops import init as ni
from netprops.checks import (
    ActivationRecorder,
    NonFiniteTracer,
    ParameterSnapshot,
    bernstein_upper,
    binom_upper,
    check_can_overfit,
    check_dead_units,
    check_finite,
    check_gradients_flow,
    check_initial_loss,
    check_params_update,
    check_saturation,
    check_update_ratio,
    expected_uniform_loss,
    gradient_problems,
    logit_variance_limit,
    max_init_scale,
    saturation_limit,
)
from netprops.models import ResNet, SimpleCNN

DYNAMICS = (
    check_params_update,
    check_gradients_flow,
    check_finite,
    check_initial_loss,
    check_can_overfit,
    check_dead_units,
    check_update_ratio,
)


def _mlp(seed=0, act=nn.ReLU, widths=(12, 32, 32, 5), init="he", device="cpu"):
    with netprops.seeded_global_rng(seed):
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(act())
        model = nn.Sequential(*layers)
    if init is not None:
        ni.init_network(model, init, generator=netprops.make_generator(seed))
    return model.to(device)


def _x(shape=(16, 12), seed=1, device="cpu"):
    return torch.randn(shape, generator=netprops.make_generator(seed), dtype=torch.float32).to(
        device
    )


def _state(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def _same_state(a, b):
    (sa, ga, ra, ta), (sb, gb, rb, tb) = a, b
    return (
        all(torch.equal(sa[k], sb[k]) for k in sa)
        and all((x is None and y is None) or torch.equal(x, y) for x, y in zip(ga, gb, strict=True))
        and ra == rb
        and ta == tb
    )


# --------------------------------------------------------------------------- correct models pass
@pytest.mark.parametrize("check", DYNAMICS, ids=lambda c: c.__name__)
def test_a_correct_mlp_passes_and_is_restored(device, check):
    model = _mlp(device=device)
    model[0].weight.grad = torch.ones_like(model[0].weight)  # a stale gradient must survive
    before = _state(model)
    result = check(model, _x(device=device), seed=3)
    assert result.check == check.__name__
    assert f"{check.__name__}: passed" in str(result)
    assert _same_state(before, _state(model))


def test_restoration_covers_buffers_modes_and_frozen_flags():
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model[0].requires_grad_(False)
    before = _state(model)
    for check in (check_params_update, check_update_ratio):
        check(model, _x((16, 6)), seed=0)
    with pytest.raises(PropertyViolation):  # 8 frozen random features cannot fit 16 labels
        check_can_overfit(model, _x((16, 6)), seed=0, steps=50)
    assert _same_state(before, _state(model))


def test_small_zoo_models_pass_every_dynamics_check():
    g = netprops.make_generator(0)
    models = [
        (SimpleCNN(generator=g), (8, 1, 28, 28)),
        (ResNet("basic", (1, 1, 1), width=4, generator=g), (8, 1, 12, 12)),
    ]
    for model, shape in models:
        for check in DYNAMICS:
            check(model, _x(shape), seed=1)


# --------------------------------------------------------------------------- params_update
class _Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = _mlp()

    def forward(self, x):
        h = self.body[1](self.body[0](x)).detach()
        return self.body[4](self.body[3](self.body[2](h)))


def test_params_update_names_a_detached_layer():
    with pytest.raises(
        PropertyViolation, match=r"trainable body\.0\.weight: did not change: no gradient"
    ):
        check_params_update(_Detached(), _x())


def test_params_update_catches_weight_decay_on_frozen_parameters():
    model = _mlp()
    model[0].requires_grad_(False)

    def sgd_decaying_everything(params):
        params = list(params)

        class Opt(torch.optim.SGD):
            @torch.no_grad()
            def step(self, closure=None):
                for p in params:
                    p.mul_(0.99)
                super().step()

        return Opt(params, lr=0.01)

    check_params_update(model, _x(), optimizer=lambda p: torch.optim.AdamW(p, weight_decay=0.1))
    with pytest.raises(PropertyViolation, match=r"frozen 0\.weight: changed by up to"):
        check_params_update(model, _x(), optimizer=sgd_decaying_everything)


def test_params_update_flags_buffers_of_eval_or_frozen_modules():
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    check_params_update(model, _x((16, 6)))  # BatchNorm in train mode, trainable: stats move
    model[:2].requires_grad_(False)
    with pytest.raises(PropertyViolation, match=r"buffer 1\.running_mean: .*module 1 is frozen"):
        check_params_update(model, _x((16, 6)))
    model[1].eval()
    check_params_update(model, _x((16, 6)))
    result = check_params_update(
        model.train(),
        _x((16, 6)),
        moving_buffers=["1.running_mean", "1.running_var", "1.num_batches_tracked"],
    )
    assert result.statistic == 0.0
    with pytest.raises(ValueError, match=r"moving_buffers\[0\] must name a buffer"):
        check_params_update(model, _x((16, 6)), moving_buffers=["nope"])


def test_params_update_names_a_parameter_the_optimizer_skips():
    model = _mlp()
    with pytest.raises(
        PropertyViolation, match=r"trainable 4\.weight: .*optimizer did not move it"
    ):
        check_params_update(model, _x(), optimizer=lambda p: torch.optim.Adam(list(p)[:4]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parameters_are_stepped_as_fp32_masters(dtype):
    # an Adam step of 1e-3 is below half a bfloat16 ulp of a weight near 1: stored in
    # half precision the step rounds away; the fp32 master copy moves, as in mixed
    # precision training, and the model keeps its dtype and values afterwards
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8)).to(dtype)
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.5, 1.5, 8))
    before = [p.detach().clone() for p in model.parameters()]
    x = _x((4, 6)).to(dtype)
    check_params_update(model, x)
    ratio = check_update_ratio(model, x)
    assert ratio.statistic > 0
    for p, old in zip(model.parameters(), before, strict=True):
        assert p.dtype == dtype
        assert torch.equal(p.detach(), old)
        assert p.grad is None
    # the master copies keep the check's power: a skipped parameter still fails
    with pytest.raises(PropertyViolation, match=r"trainable 1\.bias: .*optimizer did not move it"):
        check_params_update(model, x, optimizer=lambda p: torch.optim.Adam(list(p)[:3]))
    assert all(p.dtype == dtype for p in model.parameters())


# --------------------------------------------------------------------------- gradients_flow
class _Quantized(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.unused = nn.Linear(12, 8), nn.Linear(8, 4), nn.Linear(8, 4)

    def forward(self, x):
        with torch.no_grad():
            h = self.a(x)
        return self.b(h.relu())


def test_gradients_flow_names_every_parameter_without_a_gradient():
    with netprops.seeded_global_rng(0):
        model = _Quantized()
    with pytest.raises(PropertyViolation) as info:
        check_gradients_flow(model, _x())
    message = str(info.value)
    for name in ("a.weight", "a.bias", "unused.weight", "unused.bias"):
        assert f"{name}: no gradient" in message
    assert "b.weight" not in message
    assert "4 of 6 trainable parameters" in message


def test_gradients_flow_reports_zero_and_nonfinite_gradients():
    model = _mlp()
    with torch.no_grad():
        model[2].weight.zero_()  # nothing flows back through a zero layer
    with pytest.raises(PropertyViolation, match=r"0\.weight: zero gradient"):
        check_gradients_flow(model, _x())
    model = _mlp()
    with pytest.raises(PropertyViolation, match="non-finite gradient"):
        check_gradients_flow(
            model, _x(), loss_fn=lambda out, y: out.sqrt().sum() * 0 + (out * 0).sum() / 0
        )


def test_gradients_flow_honours_frozen_parameters_and_custom_losses():
    model = _mlp()
    model[0].requires_grad_(False)
    result = check_gradients_flow(model, _x(), loss_fn=lambda out, y: F.cross_entropy(out, y))
    assert result.details["trainable parameters"] == 4
    with pytest.raises(ValueError, match="no trainable parameter"):
        check_gradients_flow(model.requires_grad_(False), _x())


# --------------------------------------------------------------------------- finite
class _NaiveLogSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = _mlp()
        self.logp = _Log()

    def forward(self, x):
        return self.logp(self.body(x).softmax(dim=1))


class _Log(nn.Module):
    def forward(self, p):
        return p.log()


class _Normalize(nn.Module):
    def forward(self, x):
        return x / x.norm(dim=1, keepdim=True)


def test_finite_names_the_module_that_makes_the_first_non_finite_value():
    with pytest.raises(PropertyViolation) as info:
        check_finite(_NaiveLogSoftmax(), _x())
    message = str(info.value)
    assert "x rescaled to RMS 10000" in message
    assert "module logp (_Log) output" in message and "from finite inputs" in message
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(_Normalize(), nn.Linear(12, 3))
    with pytest.raises(PropertyViolation, match=r"for input zeros(.|\n)*module 0 \(_Normalize\)"):
        check_finite(model, _x())


def test_finite_edge_magnitude_follows_the_dtype_and_the_option():
    model = _mlp()
    result = check_finite(model, _x())
    assert "x rescaled to RMS 10000" in result.details["inputs"]
    result = check_finite(model, _x(), large=100.0)
    assert result.details["inputs"].endswith("RMS 100")
    result = check_finite(model.half(), _x().half())
    assert result.details["inputs"].endswith("RMS 15.998")  # 65504 ** (1/4)
    with pytest.raises(ValueError, match="large must be a finite number > 0"):
        check_finite(model, _x(), large=0.0)


def test_non_finite_tracer_reports_origin_not_propagation():
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Linear(4, 4), _Log(), nn.Linear(4, 2))
    x = -torch.ones(2, 4)
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4))
        model[0].bias.zero_()
    with NonFiniteTracer(model) as tracer:
        model(x)
    assert tracer.origin is not None and tracer.origin.name == "1"
    assert tracer.first.name == "1"


# --------------------------------------------------------------------------- initial_loss
def test_expected_uniform_loss_is_exact():
    z = torch.randn(7, 5, generator=netprops.make_generator(0), dtype=torch.float64)
    by_class = [F.cross_entropy(z, torch.full((7,), c)) for c in range(5)]
    assert expected_uniform_loss(z) == pytest.approx(float(torch.stack(by_class).mean()), rel=1e-12)
    assert expected_uniform_loss(z, F.cross_entropy) == pytest.approx(
        expected_uniform_loss(z), rel=1e-12
    )
    assert expected_uniform_loss(torch.zeros(3, 10)) == pytest.approx(math.log(10), rel=1e-12)
    with pytest.raises(ValueError, match="classifier logits"):
        expected_uniform_loss(torch.zeros(3, 1))


def test_initial_loss_fails_a_huge_output_layer_and_a_double_softmax():
    model = _mlp(widths=(12, 128, 128, 10))
    result = check_initial_loss(model, _x())
    assert 0 < result.statistic <= result.bound
    assert result.details["ln C"] == pytest.approx(math.log(10), rel=1e-6)
    assert result.details["expected initial loss E_y[L]"] >= math.log(10)
    with torch.no_grad():  # N(0, 1): 64 times He's variance at fan_in 128
        model[4].weight.normal_(generator=netprops.make_generator(3))
    with pytest.raises(PropertyViolation, match="more spread across classes"):
        check_initial_loss(model, _x())
    with pytest.raises(PropertyViolation, match="double softmax"):
        check_initial_loss(nn.Sequential(_mlp(), nn.Softmax(dim=1)), _x())


def test_initial_loss_fails_a_loss_that_is_not_cross_entropy_of_the_logits():
    with pytest.raises(PropertyViolation, match="below ln C"):
        check_initial_loss(_mlp(), _x(), loss_fn=F.nll_loss)
    check_initial_loss(
        _mlp(), _x(), loss_fn=lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1)
    )


def test_logit_variance_limit_is_the_chi_square_quantile_of_a_he_layer():
    limit = logit_variance_limit(0.5, 100, 10, alpha=1e-3)
    assert limit == pytest.approx(50 / 9 * (0.5 + 0.01) * stats.chi2.isf(1e-3, 9) / 10)
    assert max_init_scale() == pytest.approx(50 / 9) and max_init_scale("relu") == pytest.approx(4)


def test_initial_loss_needs_classifier_logits():
    with netprops.seeded_global_rng(0):
        regression = nn.Linear(12, 1)
    with pytest.raises(ValueError, match=r"classifier logits of shape \(N, C\)"):
        check_initial_loss(regression, _x())


# --------------------------------------------------------------------------- can_overfit
def test_can_overfit_fails_a_step_size_of_zero_and_shuffled_labels():
    result = check_can_overfit(_mlp(), _x())
    assert result.statistic <= result.bound and result.details["steps taken"] < 100
    with pytest.raises(PropertyViolation, match="cannot fit this batch"):
        check_can_overfit(_mlp(), _x(), optimizer=lambda p: torch.optim.Adam(p, lr=1e-9), steps=50)
    g = netprops.make_generator(5)

    def shuffled(out, y):
        return F.cross_entropy(out, y[torch.randperm(len(y), generator=g)])

    with pytest.raises(PropertyViolation, match="cannot fit this batch"):
        check_can_overfit(_mlp(), _x(), loss_fn=shuffled, steps=100)


def test_can_overfit_reports_a_non_finite_loss_and_rejects_a_non_positive_start():
    with pytest.raises(PropertyViolation, match="became non-finite"):
        check_can_overfit(_mlp(), _x(), optimizer=lambda p: torch.optim.SGD(p, lr=1e30), steps=20)
    with pytest.raises(ValueError, match="finite initial loss > 0"):
        check_can_overfit(_mlp(), _x(), loss_fn=lambda out, y: (out * 0).sum())
    with pytest.raises(ValueError, match="fraction must be a probability"):
        check_can_overfit(_mlp(), _x(), fraction=0.0)


# --------------------------------------------------------------------------- dead units / saturation
def test_dead_units_fail_a_large_negative_bias_and_pass_batchnorm():
    model = _mlp(widths=(12, 128, 128, 5))
    check_dead_units(model, _x())
    with torch.no_grad():
        model[0].bias.fill_(-4.0)
    with pytest.raises(PropertyViolation, match=r"FAILED 1: \d+ dead of 128 units"):
        check_dead_units(model, _x())
    with netprops.seeded_global_rng(0):
        bn = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    result = check_dead_units(bn, _x())
    assert result.statistic == 0.0
    with pytest.raises(ValueError, match="calls no ReLU-family module"):
        check_dead_units(_mlp(act=nn.Tanh, init="xavier"), _x())


def test_dead_unit_limit_is_the_binomial_quantile_of_constant_sign_units():
    model = _mlp(widths=(12, 64, 5))
    with ActivationRecorder(model) as rec, torch.no_grad():
        model(_x((4, 12)))
    (layer,) = rec.layers
    assert layer.kind == "relu" and layer.units == 64 and layer.entries == 4
    result = check_dead_units(model, _x((4, 12)), alpha=1e-3)
    assert result.details["1"].endswith(
        f"limit {binom_upper(layer.dead + layer.positive, 0.5, 1e-3)}"
    )


def test_activation_recorder_uses_channels_after_a_conv_and_counts_repeated_calls():
    with netprops.seeded_global_rng(0):
        act = nn.ReLU()
        model = nn.Sequential(nn.Conv1d(2, 6, 3), act, nn.Linear(8, 5), act)
    with ActivationRecorder(model) as rec, torch.no_grad():
        model(torch.randn(3, 2, 10, generator=netprops.make_generator(0)))
    assert [(a.name, a.units, a.entries) for a in rec.layers] == [("1", 6, 24), ("1#2", 5, 18)]


def test_saturation_fails_normal_init_tanh_and_passes_xavier():
    check_saturation(_mlp(act=nn.Tanh, widths=(12, 256, 256, 5), init="xavier"), _x())
    check_saturation(_mlp(act=nn.Sigmoid, widths=(12, 256, 256, 5), init=None), _x())
    bad = _mlp(act=nn.Tanh, widths=(12, 256, 256, 5), init=None)
    with torch.no_grad():
        for layer in bad[::2]:
            layer.weight.normal_(generator=netprops.make_generator(1))
    with pytest.raises(PropertyViolation, match=r"FAILED 3: .*% of entries saturated"):
        check_saturation(bad, _x())
    with pytest.raises(ValueError, match="calls no tanh or sigmoid"):
        check_saturation(_mlp(), _x())


def test_saturation_limits():
    assert saturation_limit("tanh") == pytest.approx(math.acosh(10))
    assert saturation_limit("sigmoid") == pytest.approx(2 * math.acosh(10))
    z = saturation_limit("tanh", 0.05)
    assert 1 - math.tanh(z) ** 2 == pytest.approx(0.05)
    with pytest.raises(ValueError, match="kind must be one of"):
        saturation_limit("relu")


# --------------------------------------------------------------------------- update_ratio
def test_update_ratio_range_is_derived_from_adams_step():
    model = _mlp(widths=(12, 64, 5))
    result = check_update_ratio(model, _x())
    low, high = result.bound
    assert high / low == pytest.approx(100.0)
    assert "ρ = " in result.details["0.weight"]
    expected = 1e-3 * math.sqrt(12)
    assert result.details["0.weight"].endswith(f"range [{expected / 10:.3g}, {expected * 10:.3g}]")


def test_update_ratio_fails_tiny_and_huge_weights():
    model = _mlp(widths=(12, 256, 256, 5))
    with torch.no_grad():
        model[2].weight.normal_(std=1e-5, generator=netprops.make_generator(2))
    with pytest.raises(PropertyViolation, match=r"2\.weight: unstable"):
        check_update_ratio(model, _x())
    model = _mlp(widths=(12, 256, 256, 5))
    with torch.no_grad():
        model[2].weight.normal_(std=1.0, generator=netprops.make_generator(2))
    with pytest.raises(PropertyViolation, match=r"2\.weight: stalled"):
        check_update_ratio(model, _x())


def test_update_ratio_needs_a_band_for_other_optimizers():
    sgd = lambda p: torch.optim.SGD(p, lr=0.1)  # noqa: E731
    with pytest.raises(ValueError, match="for SGD pass band"):
        check_update_ratio(_mlp(), _x(), optimizer=sgd)
    check_update_ratio(_mlp(), _x(), optimizer=sgd, band=(1e-6, 1.0))
    with pytest.raises(PropertyViolation, match="stalled"):
        check_update_ratio(_mlp(), _x(), optimizer=sgd, band=(0.5, 1.0))
    with pytest.raises(ValueError, match="band must have low < high"):
        check_update_ratio(_mlp(), _x(), band=(1.0, 0.5))


# --------------------------------------------------------------------------- live blocks
def test_parameter_snapshot_and_gradient_problems_on_a_live_step():
    model = _mlp()
    model[2].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    snap = ParameterSnapshot(model)
    F.cross_entropy(model(_x()), torch.zeros(16, dtype=torch.long)).backward()
    assert gradient_problems(model) == {}
    opt.step()
    changes = snap.parameter_changes(model)
    assert changes["0.weight"] > 0 and changes["2.weight"] == 0
    ratios = snap.update_ratios(model)
    assert set(ratios) == {"0.weight", "4.weight"}
    assert ratios["0.weight"] == pytest.approx(
        float(
            (model[0].weight.detach() - snap.parameters["0.weight"]).norm()
            / snap.parameters["0.weight"].norm()
        )
    )
    model[0].weight.grad = None
    model[4].bias.grad.fill_(float("nan"))
    problems = gradient_problems(model)
    assert problems["0.weight"].startswith("no gradient") and "non-finite" in problems["4.bias"]


# --------------------------------------------------------------------------- stats
def test_binom_upper_is_the_one_sided_quantile():
    for n, alpha in ((10, 1e-3), (40, 1e-6), (200, 1e-9)):
        c = binom_upper(n, 0.5, alpha)
        assert stats.binom.sf(c, n, 0.5) <= alpha < stats.binom.sf(c - 1, n, 0.5)
    assert binom_upper(0, 0.5, 1e-9) == 0


def test_bernstein_upper_holds_by_simulation():
    g = netprops.make_generator(0)
    bound = bernstein_upper(0.1, 50, 1e-2)
    means = (torch.rand(20_000, 50, generator=g) < 0.1).double().mean(dim=1)
    assert float((means > bound).double().mean()) <= 1e-2
    assert bernstein_upper(0.0, 10, 1e-9) > 0


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("check", DYNAMICS, ids=lambda c: c.__name__)
def test_bad_arguments_name_the_argument(check):
    with pytest.raises(TypeError, match="model must be Module"):
        check("model", _x())
    with pytest.raises(TypeError, match="x must be"):
        check(_mlp(), [1.0])
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        check(_mlp(), _x(), seed=-1)


def test_bad_optimizer_and_loss_fn_are_named():
    with pytest.raises(TypeError, match="optimizer must be a callable"):
        check_params_update(_mlp(), _x(), optimizer=3)
    with pytest.raises(TypeError, match="optimizer\\(params\\) must return an optimizer"):
        check_params_update(_mlp(), _x(), optimizer=lambda p: 3)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        check_gradients_flow(_mlp(), _x(), loss_fn="ce")
    with pytest.raises(TypeError, match="must return a floating-point scalar"):
        check_gradients_flow(_mlp(), _x(), loss_fn=lambda out, y: out)


# --------------------------------------------------------------------------- false alarms
def _torch_models(seed):
    with netprops.seeded_global_rng(seed):
        return [
            ("Linear", nn.Linear(12, 5), (16, 12)),
            ("MLP", nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)), (16, 12)),
            ("tanh MLP", nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 5)), (16, 12)),
            (
                "CNN",
                nn.Sequential(
                    nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                    nn.Linear(8, 5),
                ),
                (8, 1, 8, 8),
            ),
            ("ResNet", ResNet("basic", (1, 1, 1), width=4, generator=netprops.make_generator(seed)), (8, 1, 8, 8)),
            ("Conv", nn.Conv2d(3, 4, 3, padding=1), (4, 3, 6, 6)),
        ]  # fmt: skip


_SWEEP = (
    check_params_update,
    check_gradients_flow,
    check_finite,
    check_initial_loss,
    check_dead_units,
    check_saturation,
    check_update_ratio,
)


@pytest.mark.parametrize("seed", range(20))
def test_torch_modules_pass_at_every_seed(seed):
    for name, model, shape in _torch_models(seed):
        x = _x(shape, seed=seed + 100)
        for check in _SWEEP:
            applies = not (
                (check is check_initial_loss and name == "Conv")
                or (check is check_dead_units and name in ("Linear", "tanh MLP", "Conv"))
                or (check is check_saturation and name != "tanh MLP")
            )
            if applies:
                check(model, x, seed=seed)
        if name in ("Linear", "MLP", "tanh MLP") and seed % 5 == 0:
            # 8 points in 12 dimensions: any labelling is affinely separable (16 may not be)
            check_can_overfit(model, x[:8], seed=seed)
