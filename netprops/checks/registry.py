"""The check registry: every module-level check registers itself where it is defined.

A check that follows the common protocol ::

    check_x(module, x, *, seed=0, alpha=..., **options) -> CheckResult

is registered with :func:`register_check` under a *property name* (the name
used in ``netprops.spec(properties=...)``, in generated test ids and in the
ledger), together with its axes (which devices and dtypes a spec runs it on)
and what the spec must add to its arguments. :mod:`netprops.spec` derives its
property list from here; there is no second table to keep in step.

A project can register its own checks the same way::

    @netprops.checks.register_check("unit_norm_rows")
    def check_unit_norm_rows(module, x, *, seed=0):
        ...

Initializer and clipping checks (:func:`~netprops.checks.check_init_distribution`,
:func:`~netprops.checks.check_variance_preserved`,
:func:`~netprops.checks.check_grad_clipping`) keep their natural subject (an
initializer, a clipping function) and are not spec properties.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import check_type
from .results import CheckResult

__all__ = [
    "CheckCall",
    "RegisteredCheck",
    "get_check",
    "register_check",
    "registered_checks",
]

_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

#: Arguments the spec always sets itself; ``options`` may not name them.
RESERVED_OPTIONS = frozenset({"seed", "device", "dtype"})


@dataclass(frozen=True)
class CheckCall:
    """One call the spec is about to make: what an ``arguments`` hook can read.

    Attributes
    ----------
    module : the freshly built module (already on its device and dtype).
    x : the input batch.
    seed : the case's seed.
    device : the case's device (``cuda`` for a CUDA-only property even when the
        module was built on the CPU).
    dtype : the case's dtype.
    spec_arguments : spec-level arguments that are not check options
        (e.g. ``reference`` for ``expectation_equal``).
    """

    module: nn.Module
    x: torch.Tensor
    seed: int
    device: torch.device
    dtype: torch.dtype
    spec_arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredCheck:
    """A check and how :mod:`netprops.spec` runs it.

    Attributes
    ----------
    property : the property name (``properties=[...]``, test ids, the ledger).
    function : the check, ``function(module, x, *, seed=..., **options) -> CheckResult``.
    dtypes : fixed dtype axis (``gradcheck``: float64 only), or None for the spec's dtypes.
    devices : fixed device axis (``device_parity``: cuda only), or None for the selected devices.
    build_on_cpu : the spec builds module and input on the CPU whatever the case's device
        (the check moves copies itself).
    perturb_parameters : the spec gives the module trained-looking parameters first
        (seeded random affine weights and non-zero biases, see
        :func:`netprops.spec`); False for checks about the initialization itself.
    verified : whether a pass counts as *verified* in the ledger; False for a
        heuristic without a stated false-failure rate.
    arguments : ``CheckCall -> dict`` of keyword arguments the spec adds (e.g. the
        ``devices`` pair of ``device_parity``); None when ``seed`` is all it adds.
    """

    property: str
    function: Callable[..., CheckResult]
    dtypes: tuple[torch.dtype, ...] | None = None
    devices: tuple[str, ...] | None = None
    build_on_cpu: bool = False
    perturb_parameters: bool = True
    verified: bool = True
    arguments: Callable[[CheckCall], dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        """The check function's name, e.g. ``check_normalized``."""
        return self.function.__name__

    @property
    def summary(self) -> str:
        """The first line of the check's docstring."""
        doc = inspect.getdoc(self.function) or ""
        return doc.strip().splitlines()[0] if doc.strip() else self.name

    def option_names(self) -> frozenset[str] | None:
        """Keyword arguments ``options`` may set (None: the check takes ``**kwargs``)."""
        params = inspect.signature(self.function).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        names = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        return frozenset(names - RESERVED_OPTIONS)

    def call(
        self,
        module: nn.Module,
        x: torch.Tensor,
        *,
        seed: int,
        device: torch.device,
        dtype: torch.dtype,
        options: Mapping[str, Any] | None = None,
        spec_arguments: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        """Run the check as a spec case does: ``function(module, x, seed=seed, **extra, **options)``."""
        __tracebackhide__ = True
        kwargs: dict[str, Any] = {}
        if self.arguments is not None:
            call = CheckCall(module, x, seed, device, dtype, dict(spec_arguments or {}))
            kwargs.update(self.arguments(call))
        kwargs.update(options or {})
        return self.function(module, x, seed=seed, **kwargs)


_REGISTRY: dict[str, RegisteredCheck] = {}


def _check_axis(name: str, value: Any, kind: type) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise TypeError(f"{name} must be None or a non-empty sequence, got {value!r}")
    for i, item in enumerate(value):
        check_type(f"{name}[{i}]", item, kind)
    return tuple(value)


def register_check(
    property: str,
    *,
    dtypes: Sequence[torch.dtype] | None = None,
    devices: Sequence[str] | None = None,
    build_on_cpu: bool = False,
    perturb_parameters: bool = True,
    verified: bool = True,
    arguments: Callable[[CheckCall], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., CheckResult]], Callable[..., CheckResult]]:
    """Decorator: register a check under ``property`` (see :class:`RegisteredCheck`).

    The decorated function is returned unchanged. Registering the same function
    again (a module imported twice) is a no-op.

    Raises
    ------
    ValueError
        ``property`` is not a lower-case identifier, or is taken by another function.
    TypeError
        the decorated object is not callable, or an axis is not a sequence.
    """
    check_type("property", property, str)
    if not _PROPERTY_NAME.match(property):
        raise ValueError(
            "property must be a lower-case identifier (letters, digits, _; it is part of "
            f"test ids), got {property!r}"
        )
    dtype_axis = _check_axis("dtypes", dtypes, torch.dtype)
    device_axis = _check_axis("devices", devices, str)
    if arguments is not None and not callable(arguments):
        raise TypeError(f"arguments must be callable CheckCall -> dict, got {arguments!r}")

    def decorate(function: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        if not callable(function):
            raise TypeError(f"register_check decorates a callable, got {function!r}")
        old = _REGISTRY.get(property)
        if old is not None and _qualname(old.function) != _qualname(function):
            raise ValueError(
                f"property {property!r} is already registered by {_qualname(old.function)}; "
                f"choose another name for {_qualname(function)}"
            )
        _REGISTRY[property] = RegisteredCheck(
            property=property,
            function=function,
            dtypes=dtype_axis,
            devices=device_axis,
            build_on_cpu=build_on_cpu,
            perturb_parameters=perturb_parameters,
            verified=verified,
            arguments=arguments,
        )
        return function

    return decorate


def _qualname(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"


class _RegistryView(Mapping[str, RegisteredCheck]):
    """Read-only, live view of the registry in registration order."""

    def __getitem__(self, key: str) -> RegisteredCheck:
        return _REGISTRY[key]

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"registered_checks({sorted(_REGISTRY)})"


_VIEW = _RegistryView()


def registered_checks() -> Mapping[str, RegisteredCheck]:
    """Property name → :class:`RegisteredCheck`, a live read-only view."""
    return _VIEW


def get_check(property: str) -> RegisteredCheck:
    """The check registered under ``property``.

    Raises
    ------
    ValueError
        unknown name (the message lists the registered ones).
    """
    try:
        return _REGISTRY[property]
    except (KeyError, TypeError):
        raise ValueError(f"property must be one of {sorted(_REGISTRY)}, got {property!r}") from None
