"""netprops.spec: validation, the case matrix, building modules and inputs, running checks."""

from __future__ import annotations

import functools
import inspect
import re
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netprops
import netprops.layers
from netprops.spec import (
    DECLARATIONS,
    PROPERTIES,
    ModuleSpec,
    default_reference,
    perturb_constant_parameters_,
)


class Shift(nn.Module):
    """A deterministic toy layer: x + 1 (batch independent, no parameters)."""

    def forward(self, x):
        return x + 1


class BatchCentered(nn.Module):
    """Subtracts the batch mean: not batch independent."""

    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def declare(**kwargs):
    args = {"inputs": (4, 3), "properties": ("batch_independent",)} | kwargs
    return netprops.spec(args.pop("factory", Shift), **args)


# --------------------------------------------------------------------------- registration
def test_spec_returns_a_module_spec_and_records_only_module_level_calls():
    s = declare()
    assert isinstance(s, ModuleSpec)
    assert s.name == "Shift"
    assert s.dtypes == (torch.float32, torch.float64)
    assert s.origin_path == __file__
    assert re.fullmatch(r".*test_spec\.py:\d+", s.origin)
    # called inside a function: nothing is recorded for collection
    assert DECLARATIONS not in globals()


def test_calls_of_a_modules_top_level_code_are_recorded_once_per_declaration():
    namespace = {"netprops": netprops, "Shift": Shift, "nn": nn, "declare": declare}
    source = (
        "a = netprops.spec(Shift, inputs=(4, 3), properties=['gradcheck'])\n"
        "for p in (0.1, 0.5):\n"
        "    netprops.spec(lambda: nn.Dropout(p), name='D', inputs=(4, 3), properties=['drop_rate'])\n"
        "def helper(name):\n"
        "    return netprops.spec(Shift, name=name, inputs=(4, 3), properties=['gradcheck'])\n"
        "helpers = [helper(n) for n in ('H1', 'H2')]\n"
        "elsewhere = declare(name='NotRecorded')  # made by another module's function\n"
    )
    code = compile(source, "declarations.py", "exec")
    exec(code, namespace)
    declared = namespace[DECLARATIONS]
    assert [s.name for s in declared] == ["Shift", "D", "D", "H1", "H2"]
    assert declared[0] is namespace["a"]
    exec(code, namespace)  # executed again (a reloaded module): identical ones replace themselves
    assert [s.name for s in namespace[DECLARATIONS]] == ["Shift", "D", "D", "H1", "H2", "D", "D"]
    assert namespace[DECLARATIONS][0] is namespace["a"]  # the lambdas are new objects: appended


def test_spec_is_exported_from_netprops():
    # the function, also after `from netprops.spec import ...` imported the submodule
    assert netprops.spec is sys.modules["netprops.spec"].spec
    assert inspect.isfunction(netprops.spec)
    assert "spec" in netprops.__all__


def test_default_name_of_a_partial_is_the_wrapped_function():
    def make_shift(offset):
        return Shift()

    assert declare(factory=functools.partial(make_shift, 2)).name == "make_shift"


def test_a_lambda_needs_a_name():
    with pytest.raises(ValueError, match="name= is required"):
        declare(factory=lambda: Shift())
    assert declare(factory=lambda: Shift(), name="Shift2").name == "Shift2"


def test_unknown_property_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"properties\[1\] must be one of") as info:
        declare(properties=("batch_independent", "batch_indep"))
    for name in PROPERTIES:
        assert repr(name) in str(info.value)
    assert "'batch_indep'" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"factory": Shift()}, TypeError, "factory must be a callable .* got Shift"),
        ({"factory": 3}, TypeError, "factory must be a callable"),
        ({"properties": "batch_independent"}, TypeError, "sequence of property names"),
        ({"properties": ()}, ValueError, "at least one"),
        ({"properties": ("normalized", "normalized")}, ValueError, "must not repeat"),
        ({"properties": (3,)}, TypeError, r"properties\[0\] must be str"),
        ({"name": "My Norm"}, ValueError, "name must start with a letter"),
        ({"name": "a-b"}, ValueError, "part of test ids"),
        ({"name": 3}, TypeError, "name must be str"),
        ({"inputs": "4x3"}, TypeError, "inputs must be an input shape"),
        ({"inputs": torch.zeros(4, 3)}, TypeError, "inputs must be an input shape"),
        ({"inputs": ()}, ValueError, "non-empty shape"),
        ({"inputs": (4, 0)}, ValueError, r"inputs\[1\] must be an int >= 1"),
        ({"inputs": (4, 2.5)}, TypeError, r"inputs\[1\] must be an int"),
        ({"dtypes": torch.float32}, TypeError, "dtypes must be a non-empty sequence"),
        ({"dtypes": ()}, TypeError, "dtypes must be a non-empty sequence"),
        ({"dtypes": (torch.int64,)}, ValueError, r"dtypes\[0\] must be one of"),
        ({"dtypes": (torch.float32, torch.float32)}, ValueError, "must not repeat"),
        ({"reference": 3}, TypeError, "reference must be callable"),
        ({"reference": lambda m, x: x}, ValueError, "only used by 'expectation_equal'"),
        ({"not_applicable": ["gradcheck"]}, TypeError, "not_applicable must be Mapping"),
        ({"not_applicable": {"gradchek": "x"}}, ValueError, r"not_applicable\[0\] must be one of"),
        ({"not_applicable": {"gradcheck": " "}}, ValueError, "must give a reason"),
        ({"not_applicable": {"gradcheck": 1}}, TypeError, "must be str"),
        (
            {"not_applicable": {"batch_independent": "no"}},
            ValueError,
            "both in properties and in not_applicable",
        ),
        ({"options": []}, TypeError, "options must be Mapping"),
        ({"options": {"gradcheck": {}}}, ValueError, "options key must be one of"),
        ({"options": {"batch_independent": 1}}, TypeError, "must be Mapping"),
        ({"options": {"batch_independent": {"seed": 1}}}, ValueError, r"must not set \['seed'\]"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        declare(**kwargs)


# --------------------------------------------------------------------------- the case matrix
def test_cases_cover_property_device_dtype_with_fixed_axes():
    s = declare(
        properties=("batch_independent", "gradcheck", "device_parity"),
        not_applicable={"expectation_equal": "deterministic layer"},
    )
    ids = [c.id for c in s.cases(["cpu", "cuda"], seed=7)]
    assert ids == [
        "Shift-batch_independent-cpu-float32",
        "Shift-batch_independent-cpu-float64",
        "Shift-batch_independent-cuda-float32",
        "Shift-batch_independent-cuda-float64",
        "Shift-gradcheck-cpu-float64",
        "Shift-gradcheck-cuda-float64",
        "Shift-device_parity-cuda-float32",
        "Shift-device_parity-cuda-float64",
        "Shift-expectation_equal-cpu-float32",
        "Shift-expectation_equal-cpu-float64",
        "Shift-expectation_equal-cuda-float32",
        "Shift-expectation_equal-cuda-float64",
    ]
    cases = s.cases(["cpu"], seed=7)
    assert {c.seed for c in cases} == {7}
    assert [c.id for c in cases if c.property == "device_parity"] == [
        "Shift-device_parity-cuda-float32",
        "Shift-device_parity-cuda-float64",
    ]
    na = [c for c in cases if c.not_applicable is not None]
    assert {c.property for c in na} == {"expectation_equal"}
    assert na[0].not_applicable == "not applicable to Shift: deterministic layer"
    with pytest.raises(ValueError, match="declared not applicable"):
        na[0].run()


# --------------------------------------------------------------------------- build and inputs
def test_build_is_a_pure_function_of_the_seed(device):
    s = declare(factory=lambda: nn.Linear(3, 2), name="Lin")
    a = s.build(device, torch.float64, seed=1)
    b = s.build(device, torch.float64, seed=1)
    c = s.build(device, torch.float64, seed=2)
    assert a.weight.dtype == torch.float64
    assert a.weight.device.type == device
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    assert not torch.equal(a.weight, c.weight)


def test_build_rejects_a_factory_that_returns_no_module():
    s = declare(factory=lambda: "nope", name="Nope")
    with pytest.raises(TypeError, match=r"must return a torch\.nn\.Module, got str"):
        s.build()


def test_make_input_from_a_shape_is_seeded_normal(device):
    s = declare()
    x = s.make_input(device, torch.float64, seed=3)
    assert x.shape == (4, 3)
    assert x.dtype == torch.float64
    assert x.device.type == device
    torch.testing.assert_close(x, s.make_input(device, torch.float64, seed=3), rtol=0, atol=0)
    assert not torch.equal(x, s.make_input(device, torch.float64, seed=4))


def test_make_input_calls_the_input_factory(device):
    seen = []

    def inputs(generator, dev, dtype):
        seen.append((generator.device.type, dev.type, dtype))
        return torch.rand(5, 2, generator=generator, device=dev, dtype=dtype)

    x = declare(inputs=inputs).make_input(device, torch.float32)
    assert x.shape == (5, 2)
    assert seen == [(device, device, torch.float32)]


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (lambda g, d, t: [1.0], TypeError, "must return a torch.Tensor, got list"),
        (
            lambda g, d, t: torch.zeros(2, 2, dtype=torch.float16, device=d),
            ValueError,
            "returned .*float16",
        ),
    ],
)
def test_make_input_rejects_bad_factory_results(inputs, error, match):
    with pytest.raises(error, match=match):
        declare(inputs=inputs).make_input("cpu", torch.float32)


# --------------------------------------------------------------------------- check()
def test_check_runs_the_property_and_reports_its_seed(device):
    s = declare(factory=lambda: nn.LayerNorm(3), name="LN", properties=("batch_independent",))
    result = s.check("batch_independent", device=device, dtype=torch.float64, seed=5)
    assert result.check == "check_batch_independent"
    assert result.seed == 5


def test_check_violation_names_the_spec_and_how_to_replay(device):
    s = declare(factory=BatchCentered)
    with pytest.raises(netprops.PropertyViolation) as info:
        s.check("batch_independent", device=device, seed=2)
    text = str(info.value)
    assert text.startswith("check_batch_independent:")
    assert re.search(r"spec: +BatchCentered, declared at .*test_spec\.py:\d+", text)
    assert f"case:      batch_independent on {device}, torch.float32, seed 2" in text
    assert (
        f"spec.check('batch_independent', device='{device}', dtype=torch.float32, seed=2)" in text
    )


def test_check_rejects_undeclared_properties_and_other_gradcheck_dtypes():
    s = declare(properties=("gradcheck",))
    with pytest.raises(ValueError, match="property must be one of 'gradcheck'"):
        s.check("batch_independent")
    with pytest.raises(ValueError, match=r"dtype for gradcheck must be one of torch\.float64"):
        s.check("gradcheck", dtype=torch.float32)
    assert s.check("gradcheck", dtype=torch.float64).check == "check_gradcheck"


def test_device_parity_compares_cuda_with_the_cpu():
    from netprops.checks.parity import CheckSkipped

    s = declare(factory=lambda: nn.LayerNorm(3), name="LN", properties=("device_parity",))
    if torch.cuda.is_available():
        assert s.check("device_parity", device="cuda").check == "check_device_parity"
    else:
        with pytest.raises(CheckSkipped, match="needs CUDA, which is not available"):
            s.check("device_parity", device="cuda")


def test_options_reach_the_check():
    s = declare(options={"batch_independent": {"batch_sizes": (0,)}})
    with pytest.raises(ValueError, match="batch_sizes"):
        s.check("batch_independent")


# --------------------------------------------------------------------------- references
def test_default_reference_of_linear_and_conv_is_the_functional_layer(device):
    g = netprops.make_generator(0, device)
    with netprops.seeded_global_rng(0):
        linear = nn.Linear(3, 2).to(device)
        conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1, groups=2).to(device)
    x = torch.randn(5, 3, generator=g, device=device)
    torch.testing.assert_close(
        default_reference(linear)(x), F.linear(x, linear.weight, linear.bias)
    )
    img = torch.randn(2, 2, 7, 7, generator=g, device=device)
    expected = F.conv2d(img, conv.weight, conv.bias, stride=2, padding=1, groups=2)
    torch.testing.assert_close(default_reference(conv)(img), expected)


def test_default_reference_of_dropout_is_the_identity_and_others_have_none():
    x = torch.arange(6.0).reshape(2, 3)
    assert default_reference(nn.Dropout(0.3))(x) is x
    assert default_reference(nn.LayerNorm(3)) is None
    assert default_reference(Shift()) is None
    with netprops.seeded_global_rng(0):
        reflect = nn.Conv1d(1, 1, 3, padding=1, padding_mode="reflect")
        transposed = nn.ConvTranspose2d(1, 1, 3)
    assert default_reference(reflect) is None
    assert default_reference(transposed) is None


def test_expectation_equal_without_a_reference_says_how_to_give_one():
    s = declare(properties=("expectation_equal",))
    with pytest.raises(ValueError, match=r"in netprops\.spec: reference=lambda module, x"):
        s.check("expectation_equal")


def test_expectation_equal_uses_the_given_reference(device):
    options = {"expectation_equal": {"n_samples": 200}}

    def declare_dropout(name, reference):
        return declare(
            factory=lambda: nn.Dropout(0.5),
            name=name,
            properties=("expectation_equal",),
            reference=reference,
            options=options,
        )

    good = declare_dropout("Drop", lambda module, x: x)
    assert good.check("expectation_equal", device=device).details["n_samples"] == 200
    wrong = declare_dropout("DropWrong", lambda module, x: 2 * x)
    with pytest.raises(netprops.PropertyViolation, match="Monte Carlo mean"):
        wrong.check("expectation_equal", device=device)


def test_drop_rate_needs_p():
    s = declare(properties=("drop_rate",))
    with pytest.raises(ValueError, match="has no attribute `p`"):
        s.check("drop_rate")
    d = declare(factory=lambda: nn.Dropout(0.2), name="D", properties=("drop_rate",))
    assert d.check("drop_rate").check == "check_drop_rate"


def test_masks_independent_through_a_spec():
    d = declare(factory=lambda: nn.Dropout(0.3), name="D", properties=("masks_independent",))
    result = d.check("masks_independent")
    assert result.check == "check_masks_independent"
    assert result.details["informative"] >= 31
    shared = declare(
        factory=lambda: netprops.layers.DropConnectLinear(3, 2, p=0.5),
        name="Shared",
        properties=("masks_independent",),
    )
    with pytest.raises(netprops.PropertyViolation, match="independent randomness"):
        shared.check("masks_independent")


# --------------------------------------------------------------------------- the table
def test_every_property_is_a_public_check_registered_where_it_is_defined():
    assert len(PROPERTIES) >= 11
    for name, prop in PROPERTIES.items():
        assert prop.property == name
        assert prop.name == f"check_{name}"
        assert getattr(netprops.checks, prop.name) is prop.function
        assert prop.summary and prop.summary != prop.name  # first docstring line


def mlp():
    return nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def constant_mlp():
    model = mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.1)
    return model


def test_model_level_properties_run_through_their_adapters(device):
    s = netprops.spec(
        mlp,
        inputs=(32, 4),
        properties=("symmetry_broken", "model_variance", "batch_independent"),
        options={"model_variance": {"band": (0.01, 100.0)}},
    )
    for name in s.properties:
        assert s.check(name, device=device).check == f"check_{name}"
    broken = netprops.spec(constant_mlp, inputs=(32, 4), properties=("symmetry_broken",))
    with pytest.raises(netprops.PropertyViolation, match=r"spec: +constant_mlp"):
        broken.check("symmetry_broken", device=device)


def test_unknown_option_keys_fail_at_declaration():
    with pytest.raises(
        ValueError, match=r"options\['gradcheck'\] has unknown key\(s\) \['bogus'\]"
    ):
        declare(properties=("gradcheck",), options={"gradcheck": {"bogus": 1}})
    s = declare(properties=("drop_rate",), options={"drop_rate": {"p": 0.2, "n": 1000}})
    assert dict(s.options["drop_rate"]) == {"p": 0.2, "n": 1000}


# --------------------------------------------------------------------------- trained-looking parameters
def test_perturb_constant_parameters_replaces_only_constant_tensors(device):
    with netprops.seeded_global_rng(0):
        model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.BatchNorm1d(6)).to(device)
    with torch.no_grad():
        model[0].bias.zero_()
    linear_weight = model[0].weight.detach().clone()
    changed = perturb_constant_parameters_(model, seed=3)
    assert changed == [
        "0.bias",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
        "2.running_mean",
        "2.running_var",
    ]
    assert torch.equal(model[0].weight, linear_weight)  # drawn at random already: kept
    for ones in (model[1].weight, model[2].weight, model[2].running_var):
        assert ones.min() >= 0.5 and ones.max() <= 1.5 and ones.unique().numel() == 6
    for zeros in (model[0].bias, model[1].bias, model[2].running_mean):
        assert zeros.abs().max() <= 0.5 and zeros.unique().numel() == 6
    assert model[2].num_batches_tracked.item() == 0  # integer buffers are not statistics
    again = nn.LayerNorm(6).to(device)
    perturb_constant_parameters_(again, seed=3)
    assert torch.equal(again.weight.cpu(), model[1].weight.cpu()) is False  # other position
    twin = nn.LayerNorm(6).to(device)
    perturb_constant_parameters_(twin, seed=3)
    assert torch.equal(twin.weight, again.weight)  # a pure function of the seed


def test_spec_cases_get_trained_looking_parameters_unless_kept(device):
    s = declare(
        factory=lambda: nn.LayerNorm(3),
        name="LN",
        properties=("batch_independent", "symmetry_broken", "gradcheck"),
        keep_init=("gradcheck",),
    )
    perturbed = s.build(device, seed=1, for_property="batch_independent")
    assert not torch.equal(perturbed.weight, torch.ones(3, device=device))
    assert not torch.equal(perturbed.bias, torch.zeros(3, device=device))
    # checks about the initialization itself, and properties in keep_init, get it as built
    for prop in ("symmetry_broken", "gradcheck"):
        assert torch.equal(s.build(device, seed=1, for_property=prop).weight.cpu(), torch.ones(3))
    assert torch.equal(s.build(device, seed=1).weight.cpu(), torch.ones(3))
    assert s.perturbs("batch_independent") and not s.perturbs("gradcheck")
    every = declare(factory=lambda: nn.LayerNorm(3), name="LN2", keep_init=True)
    assert not every.perturbs("batch_independent")
    with pytest.raises(ValueError, match="keep_init\\[0\\] must be one of 'batch_independent'"):
        declare(factory=lambda: nn.LayerNorm(3), name="LN3", keep_init=("gradcheck",))


class IgnoresAffine(nn.LayerNorm):
    """A LayerNorm that never applies its weight and bias: invisible at ones and zeros."""

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, None, None, self.eps)


def test_trained_looking_parameters_tell_a_layer_that_ignores_them_apart(device):
    """At ones and zeros a LayerNorm that ignores its affine equals a correct one; the
    parameters every spec case gets make the two differ."""
    good = declare(factory=lambda: nn.LayerNorm(3), name="Good")
    bad = declare(factory=lambda: IgnoresAffine(3), name="Bad")
    x = good.make_input(device, seed=0)
    assert torch.equal(good.build(device)(x), bad.build(device)(x))
    tuned_good = good.build(device, seed=0, for_property="batch_independent")
    tuned_bad = bad.build(device, seed=0, for_property="batch_independent")
    tuned_bad.load_state_dict(tuned_good.state_dict())
    assert not torch.allclose(tuned_good(x), tuned_bad(x))


# --------------------------------------------------------------------------- the registry
def test_a_project_can_register_its_own_check_as_a_property():
    from netprops.checks.registry import _REGISTRY

    @netprops.checks.register_check("unit_rows_test_only")
    def check_unit_rows_test_only(module, x, *, seed=0, tol=1e-6):
        """Rows of module(x) have unit norm."""
        norms = module(x).norm(dim=-1)
        if (norms - 1).abs().max() > tol:
            netprops.checks.violation(
                "check_unit_rows_test_only",
                "a row is not a unit vector",
                statistic=float((norms - 1).abs().max()),
                bound=tol,
                seed=seed,
                reproduce="check_unit_rows_test_only(module, x)",
            )
        return netprops.checks.CheckResult("check_unit_rows_test_only", 0.0, tol, seed)

    try:
        assert "unit_rows_test_only" in PROPERTIES
        good = declare(
            factory=lambda: nn.Sequential(nn.Linear(3, 3), Normalize()),
            name="Unit",
            properties=("unit_rows_test_only",),
            options={"unit_rows_test_only": {"tol": 1e-5}},
        )
        assert good.check("unit_rows_test_only").check == "check_unit_rows_test_only"
        bad = declare(name="NotUnit", properties=("unit_rows_test_only",))
        with pytest.raises(netprops.PropertyViolation, match="not a unit vector"):
            bad.check("unit_rows_test_only")
        with pytest.raises(ValueError, match="unknown key"):
            declare(
                name="Typo",
                properties=("unit_rows_test_only",),
                options={"unit_rows_test_only": {"tolerance": 1}},
            )
        with pytest.raises(ValueError, match="already registered by"):
            netprops.checks.register_check("unit_rows_test_only")(lambda module, x, *, seed=0: None)
    finally:
        del _REGISTRY["unit_rows_test_only"]


class Normalize(nn.Module):
    def forward(self, x):
        return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "match"),
    [
        ("Bad-Name", {}, ValueError, "property must be a lower-case identifier"),
        ("ok_name", {"dtypes": torch.float64}, TypeError, "dtypes must be None or a non-empty"),
        ("ok_name", {"devices": ("cuda", 1)}, TypeError, r"devices\[1\] must be str"),
        ("ok_name", {"arguments": 3}, TypeError, "arguments must be callable"),
    ],
)
def test_register_check_validates_its_arguments(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        netprops.checks.register_check(name, **kwargs)


def test_get_check_lists_the_registered_names():
    with pytest.raises(ValueError, match=r"property must be one of .*'normalized'"):
        netprops.checks.get_check("normalised")
