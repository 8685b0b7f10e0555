"""Declare a module once; pytest checks its properties on every selected device.

A *spec* names a module factory, an input and the properties (checks from
:mod:`netprops.checks`) the module must have. :func:`spec` returns a
:class:`ModuleSpec`; in a test module, the netprops pytest plugin collects it
like a test function, as one test per (property × device × dtype)::

    test_my_norm = netprops.spec(MyNorm, inputs=(6, 8), properties=["normalized"])

gives ``test_my_norm::MyNorm-normalized-cpu-float32``, ... A declaration made
by a module's top-level code (directly, in a loop or through a helper function
of that module) without binding it to a test name is collected too, as
``test_netprops::MyNorm-normalized-cpu-float32``: every such call is recorded in
the module's :data:`DECLARATIONS` list.

Each property is a name in the check registry (:data:`PROPERTIES`, a live view of
:func:`netprops.checks.registered_checks`): a check registered with
:func:`netprops.checks.register_check` is a property, with its axes and the
arguments the spec adds. Every case builds a fresh module and, unless the
check is about the initialization itself or the spec says ``keep_init``, gives
it *trained-looking* parameters first (:func:`perturb_constant_parameters_`):
a module that ignores its affine weight or bias cannot hide behind ones and
zeros.

Axes (see :meth:`ModuleSpec.cases`):

* ``gradcheck`` runs once per device in float64 whatever ``dtypes`` says
  (finite differences need double precision): its ids end in ``-float64``;
* ``device_parity`` compares CUDA against the CPU reference, so it has one
  device entry, ``cuda``, whatever ``--netprops-device`` says; without CUDA it is
  skipped with the reason "CUDA is not available";
* every other property runs on each selected device and each dtype of the spec.

Properties that do not apply to a module are declared in ``not_applicable``
with a reason: they get the same test ids, reported as skipped
("not applicable to MyNorm: <reason>") and counted as n/a in the run's ledger,
so what was not verified is visible rather than silently absent.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType, MappingProxyType
from typing import Any

import torch
from torch import nn

from .checks import registry as _checks_registry
from .checks.registry import RegisteredCheck
from .checks.results import CheckResult
from .checks.stochastic import default_reference
from .devices import resolve_device
from .errors import PropertyViolation, check_choice, check_int, check_positive_int, check_type
from .seeding import derive_seed, make_generator, seeded_global_rng

__all__ = [
    "PROPERTIES",
    "SPEC_DTYPES",
    "ModuleSpec",
    "SpecCase",
    "default_reference",
    "perturb_constant_parameters_",
    "spec",
]

#: Module attribute listing the specs declared at module level (the plugin collects them).
DECLARATIONS = "__netprops_specs__"

#: Floating dtypes a spec may run in (those :func:`netprops.tolerance` knows).
SPEC_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")

InputFactory = Callable[[torch.Generator, torch.device, torch.dtype], torch.Tensor]
Reference = Callable[[nn.Module, torch.Tensor], torch.Tensor]

#: Property name → :class:`~netprops.checks.registry.RegisteredCheck`: a live, read-only view
#: of the check registry (checks a project registers itself appear here too).
PROPERTIES: Mapping[str, RegisteredCheck] = _checks_registry.registered_checks()

#: Buffers :func:`perturb_constant_parameters_` treats like parameters (they are learned
#: from data, and their initial 0/1 values hide an eval that ignores them).
_LEARNED_BUFFERS = frozenset({"running_mean", "running_var"})


@torch.no_grad()
def perturb_constant_parameters_(module: nn.Module, *, seed: int = 0) -> list[str]:
    """Give every constant-valued parameter of ``module`` seeded random values, in place.

    A freshly built module holds parameters that no trained module has: LayerNorm
    weights of ones, biases of zeros, a ReZero gate of 0. A layer that ignores its
    affine parameters is indistinguishable from a correct one at those values. This
    replaces every floating parameter whose entries are all equal to one value ``c``
    (and BatchNorm-like ``running_mean`` / ``running_var`` buffers) by
    ``c + w·u`` with ``u ~ U(-1, 1)`` drawn elementwise and ``w = max(|c|, 1) / 2``
    (ones become U(0.5, 1.5), zeros U(-0.5, 0.5)). Parameters drawn at random
    already (Linear and conv weights) are left as they are.

    Parameters
    ----------
    module : the module to modify in place.
    seed : seed of the draws (a generator on the CPU; values are then cast and moved).

    Returns
    -------
    The names of the tensors that were changed, in ``named_parameters`` then
    ``named_buffers`` order.
    """
    seed = check_int("seed", seed, min_value=0)
    generator = make_generator(derive_seed(seed, "perturb-constant-parameters"))
    tensors = list(module.named_parameters())
    tensors += [
        (name, b)
        for name, b in module.named_buffers()
        if name.rpartition(".")[2] in _LEARNED_BUFFERS
    ]
    changed = []
    for name, tensor in tensors:
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        first = tensor.reshape(-1)[0]
        if not bool((tensor == first).all()) or not bool(torch.isfinite(first)):
            continue
        c = float(first)
        u = torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1
        tensor.copy_((c + 0.5 * max(abs(c), 1.0) * u).to(tensor.dtype))
        changed.append(name)
    return changed


# --------------------------------------------------------------------------- specs
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class SpecCase:
    """One generated test: a spec, a property, a device kind and a dtype.

    ``not_applicable`` holds the declared reason when the property does not
    apply (the plugin reports the case as skipped, n/a in the ledger).
    """

    spec: ModuleSpec
    property: str
    device: str
    dtype: torch.dtype
    seed: int = 0
    not_applicable: str | None = None

    @property
    def id(self) -> str:
        """``Name-property-device-dtype``, e.g. ``MyNorm-batch_independent-cpu-float32``."""
        return f"{self.spec.name}-{self.property}-{self.device}-{_dtype_name(self.dtype)}"

    @property
    def replay(self) -> str:
        """The Python call that runs this case again: ``spec.check(...)``, then how to
        build its module and input by hand."""
        return self.spec.replay(self.property, device=self.device, dtype=self.dtype, seed=self.seed)

    def run(self) -> CheckResult:
        """Run the check (see :meth:`ModuleSpec.check`)."""
        __tracebackhide__ = True
        if self.not_applicable is not None:
            raise ValueError(
                f"{self.id} is declared not applicable ({self.not_applicable}); nothing to run"
            )
        return self.spec.check(self.property, device=self.device, dtype=self.dtype, seed=self.seed)


@dataclass(frozen=True, eq=False)  # a declaration is itself: compared and hashed by identity
class ModuleSpec:
    """A user module declared once with the properties it must have (see :func:`spec`).

    Attributes
    ----------
    name : id used in test ids (letters, digits, ``_`` and ``.``).
    factory : zero-argument callable returning a fresh ``nn.Module``.
    inputs : input shape (batch first) or ``(generator, device, dtype) -> Tensor``.
    properties : names from :data:`PROPERTIES` the module must satisfy.
    dtypes : floating dtypes every (dtype-dependent) property runs in.
    reference : ``(module, x) -> Tensor``, the expected mean for ``expectation_equal``.
    not_applicable : property name → why it does not apply.
    options : property name → extra keyword arguments for its check.
    keep_init : properties checked on the factory's parameters as built (no
        :func:`perturb_constant_parameters_`).
    origin : ``"path:line"`` of the :func:`spec` call.
    """

    name: str
    factory: Callable[[], nn.Module]
    inputs: tuple[int, ...] | InputFactory
    properties: tuple[str, ...]
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    reference: Reference | None = None
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    keep_init: frozenset[str] = frozenset()
    origin: str = ""

    @property
    def origin_path(self) -> str:
        """The file of the :func:`spec` call."""
        return self.origin.rpartition(":")[0]

    def cases(self, devices: Sequence[str], *, seed: int = 0) -> list[SpecCase]:
        """Every (property × device × dtype) case, declared properties first, then n/a ones.

        ``devices`` are the selected device kinds; ``gradcheck`` and
        ``device_parity`` use their fixed axes (see the module docstring).
        """
        cases = []
        declared = [(name, None) for name in self.properties]
        declared += [
            (name, f"not applicable to {self.name}: {why}")
            for name, why in self.not_applicable.items()
        ]
        for name, why in declared:
            prop = _checks_registry.get_check(name)
            for device in prop.devices or devices:
                for dtype in prop.dtypes or self.dtypes:
                    cases.append(SpecCase(self, name, device, dtype, seed, why))
        return cases

    def build(
        self,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        seed: int = 0,
        for_property: str | None = None,
    ) -> nn.Module:
        """A fresh module from ``factory()``, moved to ``device`` and ``dtype``.

        The factory runs with torch's global RNG seeded from ``seed`` inside a fork
        (``nn.Linear`` draws its weights there): the module is a pure function of
        ``seed`` and the caller's RNG state is untouched. With ``for_property``, the
        module is prepared as that property's cases get it: trained-looking
        parameters (:func:`perturb_constant_parameters_`, seeded from ``seed``)
        unless the check is about the initialization or the property is in
        ``keep_init``.

        Raises
        ------
        TypeError
            if the factory does not return an ``nn.Module``.
        ValueError
            unknown ``for_property``.
        """
        dev = resolve_device(device)
        seed = check_int("seed", seed, min_value=0)
        with seeded_global_rng(derive_seed(seed, self.name, "module")):
            module = self.factory()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"factory of spec {self.name!r} must return a torch.nn.Module, "
                f"got {type(module).__name__}"
            )
        module = module.to(device=dev, dtype=dtype)
        if for_property is not None and self.perturbs(for_property):
            perturb_constant_parameters_(module, seed=derive_seed(seed, self.name, "perturb"))
        return module

    def perturbs(self, property: str) -> bool:
        """Whether cases of ``property`` run on trained-looking parameters."""
        return _checks_registry.get_check(property).perturb_parameters and (
            property not in self.keep_init
        )

    def make_input(
        self,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        seed: int = 0,
    ) -> torch.Tensor:
        """The input batch on ``device`` in ``dtype``, drawn from a generator seeded from ``seed``.

        A shape gives standard normal entries; a callable is called as
        ``inputs(generator, device, dtype)``.

        Raises
        ------
        TypeError / ValueError
            if the callable returns no tensor, or one on another device or in another floating dtype.
        """
        dev = resolve_device(device)
        seed = check_int("seed", seed, min_value=0)
        generator = make_generator(derive_seed(seed, self.name, "inputs"), dev)
        if not callable(self.inputs):
            return torch.randn(self.inputs, generator=generator, device=dev, dtype=dtype)
        x = self.inputs(generator, dev, dtype)
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"inputs of spec {self.name!r} must return a torch.Tensor, got {type(x).__name__}"
            )
        if x.device.type != dev.type or (x.is_floating_point() and x.dtype != dtype):
            raise ValueError(
                f"inputs of spec {self.name!r} was asked for {dev.type}/{dtype} but returned "
                f"{x.device.type}/{x.dtype}; create the tensor with device=device, dtype=dtype"
            )
        return x

    def check(
        self,
        property: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> CheckResult:
        """Check one property of a freshly built module on ``device`` in ``dtype``.

        This is exactly what a generated test runs (the plugin adds the
        reproducibility switches: deterministic algorithms, TF32 off). A
        violation's message ends with the spec, the case and how to replay it.

        Raises
        ------
        ValueError
            ``property`` not among this spec's properties, or a dtype outside the
            property's fixed axis (``gradcheck``: float64).
        PropertyViolation
            when the property does not hold.
        netprops.checks.parity.CheckSkipped
            ``device_parity`` without CUDA.
        """
        __tracebackhide__ = True
        check_choice("property", property, self.properties)
        prop = _checks_registry.get_check(property)
        if prop.dtypes is not None:
            check_choice(f"dtype for {property}", dtype, prop.dtypes)
        dev = torch.device(device)
        home = torch.device("cpu") if prop.build_on_cpu else dev
        module = self.build(home, dtype, seed=seed, for_property=property)
        x = self.make_input(home, dtype, seed=seed)
        spec_arguments = {"reference": self.reference} if self.reference is not None else {}
        try:
            return prop.call(
                module,
                x,
                seed=seed,
                device=dev,
                dtype=dtype,
                options=self.options.get(property, {}),
                spec_arguments=spec_arguments,
            )
        except PropertyViolation as exc:
            raise PropertyViolation(
                f"{exc}\n"
                f"  spec:      {self.name}, declared at {self.origin}\n"
                f"  case:      {property} on {dev.type}, torch.{_dtype_name(dtype)}, seed {seed}\n"
                f"  replay:    {self.replay(property, device=dev, dtype=dtype, seed=seed)}"
            ) from None

    def replay(
        self,
        property: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> str:
        """The Python line that replays one case: :meth:`check`, then :meth:`build` and
        :meth:`make_input` for the module and input it checks."""
        dev = torch.device(device)
        home = "cpu" if _checks_registry.get_check(property).build_on_cpu else dev.type
        dt = f"torch.{_dtype_name(dtype)}"
        return (
            f"spec.check({property!r}, device={dev.type!r}, dtype={dt}, seed={seed}); "
            f"module, x = spec.build({home!r}, {dt}, seed={seed}, for_property={property!r}), "
            f"spec.make_input({home!r}, {dt}, seed={seed})"
        )


# --------------------------------------------------------------------------- declarations
def _declared(module_spec: ModuleSpec) -> tuple[Any, ...]:
    """What a declaration says (everything but where it was made), for comparison."""
    return (
        module_spec.name,
        module_spec.factory,
        module_spec.inputs,
        module_spec.properties,
        module_spec.dtypes,
        module_spec.reference,
        dict(module_spec.not_applicable),
        dict(module_spec.options),
        module_spec.keep_init,
    )


def _importing_module(frame: FrameType | None) -> dict[str, Any] | None:
    """The globals of the module whose top-level code made the call in ``frame``, or None.

    Follows the calls made in one module (a loop, a comprehension, a helper function
    of the module) up to its top level; a call from anywhere else — a test function
    run by pytest, a helper of another module — has no declaring module.
    """
    namespace = frame.f_globals if frame is not None else None
    while frame is not None and frame.f_globals is namespace:
        if frame.f_code.co_name == "<module>":
            return namespace
        frame = frame.f_back
    return None


def _record_declaration(namespace: dict[str, Any], module_spec: ModuleSpec) -> None:
    """Append ``module_spec`` to the module's :data:`DECLARATIONS` list; the same
    declaration executed again (a reloaded module) replaces itself."""
    declared = namespace.setdefault(DECLARATIONS, [])
    for i, old in enumerate(declared):
        if old.origin == module_spec.origin and _declared(old) == _declared(module_spec):
            declared[i] = module_spec
            return
    declared.append(module_spec)


# --------------------------------------------------------------------------- spec()
def _check_names(arg: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise TypeError(
            f"{arg} must be a sequence of property names, e.g. ('batch_independent',), "
            f"got {names!r}"
        )
    for i, name in enumerate(names):
        check_type(f"{arg}[{i}]", name, str)
        check_choice(f"{arg}[{i}]", name, sorted(PROPERTIES))
    if len(set(names)) != len(names):
        raise ValueError(f"{arg} must not repeat a name, got {tuple(names)!r}")
    return tuple(names)


def _check_inputs(inputs: Any) -> tuple[int, ...] | InputFactory:
    if callable(inputs):
        return inputs
    if isinstance(inputs, (str, bytes, torch.Tensor)) or not isinstance(inputs, Sequence):
        raise TypeError(
            "inputs must be an input shape (batch first, e.g. (4, 8)) or a callable "
            f"(generator, device, dtype) -> Tensor, got {type(inputs).__name__}"
        )
    if not inputs:
        raise ValueError("inputs must be a non-empty shape (batch first), got ()")
    return tuple(check_positive_int(f"inputs[{i}]", d) for i, d in enumerate(inputs))


def _check_dtypes(dtypes: Any) -> tuple[torch.dtype, ...]:
    if isinstance(dtypes, torch.dtype) or not isinstance(dtypes, Sequence) or not dtypes:
        raise TypeError(
            f"dtypes must be a non-empty sequence of floating dtypes, e.g. (torch.float32,), "
            f"got {dtypes!r}"
        )
    for i, dtype in enumerate(dtypes):
        check_choice(f"dtypes[{i}]", dtype, SPEC_DTYPES)
    if len(set(dtypes)) != len(dtypes):
        raise ValueError(f"dtypes must not repeat a dtype, got {tuple(dtypes)!r}")
    return tuple(dtypes)


def _default_name(factory: Callable[[], nn.Module]) -> str:
    target = factory.func if isinstance(factory, functools.partial) else factory
    name = getattr(target, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ValueError(
            f"name= is required when the factory has no usable __name__ (got {factory!r}); "
            "e.g. netprops.spec(lambda: MyNorm(8), name='MyNorm8', ...)"
        )
    return name


def _check_not_applicable(not_applicable: Any, properties: tuple[str, ...]) -> dict[str, str]:
    check_type("not_applicable", not_applicable, Mapping)
    names = _check_names("not_applicable", list(not_applicable))
    result = {}
    for name in names:
        reason = not_applicable[name]
        check_type(f"not_applicable[{name!r}]", reason, str)
        if not reason.strip():
            raise ValueError(f"not_applicable[{name!r}] must give a reason, got {reason!r}")
        if name in properties:
            raise ValueError(
                f"{name!r} is both in properties and in not_applicable; a property either "
                "must hold or is declared not to apply"
            )
        result[name] = reason.strip()
    return result


def _check_options(options: Any, properties: tuple[str, ...]) -> dict[str, Mapping[str, Any]]:
    check_type("options", options, Mapping)
    result = {}
    for name, kwargs in options.items():
        check_choice("options key", name, properties)
        check_type(f"options[{name!r}]", kwargs, Mapping)
        reserved = {*_checks_registry.RESERVED_OPTIONS, "reference"} & set(kwargs)
        if reserved:
            raise ValueError(
                f"options[{name!r}] must not set {sorted(reserved)}: the plugin sets seed, "
                "device and dtype, and reference is an argument of netprops.spec"
            )
        check = _checks_registry.get_check(name)
        allowed = check.option_names()
        unknown = sorted(set(kwargs) - allowed) if allowed is not None else []
        if unknown:
            raise ValueError(
                f"options[{name!r}] has unknown key(s) {unknown}; "
                f"{check.name} accepts {sorted(allowed)}"
            )
        result[name] = MappingProxyType(dict(kwargs))
    return result


def _check_keep_init(keep_init: Any, properties: tuple[str, ...]) -> frozenset[str]:
    if keep_init is True:
        return frozenset(properties)
    if keep_init is False:
        return frozenset()
    names = _check_names("keep_init", keep_init)
    for i, name in enumerate(names):
        check_choice(f"keep_init[{i}]", name, properties)
    return frozenset(names)


def spec(
    factory: Callable[[], nn.Module],
    *,
    inputs: Sequence[int] | InputFactory,
    properties: Sequence[str],
    name: str | None = None,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    reference: Reference | None = None,
    not_applicable: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    keep_init: bool | Sequence[str] = False,
) -> ModuleSpec:
    """Declare a module and the properties it must have; pytest collects the declaration.

    In a test module, bind the result to a test name: ``test_my_norm =
    netprops.spec(...)`` is collected as one test per (property × device × dtype),
    ``test_my_norm::<name>-<property>-<device>-<dtype>``. A call made by the
    module's top-level code that is not bound to a test name is collected as
    ``test_netprops::<name>-<property>-<device>-<dtype>``. A declaration in a file
    pytest does not collect (``conftest.py``, a helper module) makes tests only
    where a test module binds it (``test_my_norm = helpers.MY_NORM``); otherwise the
    run warns. Outside pytest the returned :class:`ModuleSpec` runs cases by hand
    (:meth:`ModuleSpec.check`).

    Parameters
    ----------
    factory : zero-argument callable returning a fresh ``nn.Module`` (e.g. the class).
        It runs with torch's global RNG seeded (and forked) per test.
    inputs : input shape, batch first (standard normal entries), or a callable
        ``(generator, device, dtype) -> Tensor`` that draws through ``generator``.
    properties : names from :data:`PROPERTIES` that must hold.
    name : id in test ids; default the factory's ``__name__`` (required for lambdas).
    dtypes : floating dtypes to run in (``gradcheck`` always runs in float64).
    reference : ``(module, x) -> Tensor``, the expected mean for ``expectation_equal``
        when :func:`default_reference` cannot derive it.
    not_applicable : property name → reason, for properties that do not apply; they
        are reported as skipped/n-a with the reason, never silently left out.
    options : property name → extra keyword arguments for that check, e.g.
        ``{"normalized": {"eps": 1e-6}}``.
    keep_init : by default each case gives the module trained-looking parameters
        (every constant-valued parameter, e.g. a norm layer's ones and zeros, gets
        seeded random values: :func:`perturb_constant_parameters_`), except for
        checks about the initialization itself (``symmetry_broken``,
        ``model_variance``). ``True`` keeps the factory's parameters for every
        property, a sequence of property names for those only.

    Returns
    -------
    ModuleSpec (its :meth:`~ModuleSpec.check` runs one case by hand).

    Raises
    ------
    TypeError / ValueError
        bad arguments; an unknown property name (the message lists the valid ones);
        a property both required and not applicable.
    """
    if isinstance(factory, nn.Module) or not callable(factory):
        raise TypeError(
            "factory must be a callable returning a fresh nn.Module (the class, or a lambda), "
            f"got {type(factory).__name__}"
        )
    props = _check_names("properties", properties)
    if not props:
        raise ValueError("properties must name at least one property")
    if name is None:
        name = _default_name(factory)
    check_type("name", name, str)
    if not _NAME.match(name):
        raise ValueError(
            f"name must start with a letter or _ and contain only letters, digits, _ and . "
            f"(it is part of test ids), got {name!r}"
        )
    if reference is not None:
        if not callable(reference):
            raise TypeError(f"reference must be callable (module, x) -> Tensor, got {reference!r}")
        if "expectation_equal" not in props:
            raise ValueError(
                "reference is only used by 'expectation_equal', which is not in properties"
            )
    frame = sys._getframe(1)
    module_spec = ModuleSpec(
        name=name,
        factory=factory,
        inputs=_check_inputs(inputs),
        properties=props,
        dtypes=_check_dtypes(dtypes),
        reference=reference,
        not_applicable=MappingProxyType(
            _check_not_applicable({} if not_applicable is None else not_applicable, props)
        ),
        options=MappingProxyType(_check_options({} if options is None else options, props)),
        keep_init=_check_keep_init(keep_init, props),
        origin=f"{frame.f_code.co_filename}:{frame.f_lineno}",
    )
    namespace = _importing_module(frame)
    if namespace is not None:
        _record_declaration(namespace, module_spec)
    return module_spec
