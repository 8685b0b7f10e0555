"""Training-dynamics checks: what one optimizer step, one backward pass or the first
forward pass of a model must look like (docs/methods.md §Training dynamics and
structural properties).

Each check takes ``(model, x)``, a loss and an optimizer factory:

* the loss is the batch-mean cross-entropy on seeded uniform class targets for classifier
  logits ``(N, C)``, and mean ½‖output − target‖² on seeded standard normal targets
  otherwise (``target=`` and ``loss_fn=`` replace either);
* the optimizer is ``optimizer(model.parameters())``, by default
  ``torch.optim.Adam(params, lr=1e-3)``.

Checks run on the caller's model and put back everything they change (parameter values,
``.grad``, ``requires_grad``, buffers, training flags, module-held generators and torch's
global RNG state).

For a live training (a monitor called every k steps) each check has a building block that
works on the running ``(model, batch, optimizer)`` and restores nothing:
:class:`ParameterSnapshot` (take before ``optimizer.step()``, compare after:
``params_update`` and ``update_ratio``), :func:`gradient_problems` (after
``loss.backward()``: ``gradients_flow``), :class:`NonFiniteTracer` and
:class:`ActivationRecorder` (wrap the training forward: ``finite``, ``dead_units``,
``saturation``), :func:`expected_uniform_loss` (``initial_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from scipy import stats as _scipy_stats
from torch import nn

from ..errors import check_float_tensor, check_int, check_positive_float, check_probability
from ..init import calculate_gain, fans
from ..tolerances import tolerance
from . import _common
from .registry import register_check
from .results import CheckResult, violation
from .stats import DEFAULT_ALPHA, bernstein_upper, binom_upper, chi2_upper

__all__ = [
    "ACTIVATION_KINDS",
    "ActivationRecorder",
    "LayerActivity",
    "NonFiniteTracer",
    "ParameterSnapshot",
    "buffers_may_move",
    "check_can_overfit",
    "check_dead_units",
    "check_finite",
    "check_gradients_flow",
    "check_initial_loss",
    "check_params_update",
    "check_saturation",
    "check_update_ratio",
    "expected_uniform_loss",
    "gradient_problems",
    "logit_variance_limit",
    "max_init_scale",
    "overfit_optimizer",
    "saturation_limit",
]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OptimizerFactory = Callable[[Any], torch.optim.Optimizer]

#: Activation kinds :class:`ActivationRecorder` recognizes (torch's classes, or any class of that name).
ACTIVATION_KINDS: dict[str, tuple[str, ...]] = {
    "relu": ("ReLU", "ReLU6"),
    "tanh": ("Tanh",),
    "sigmoid": ("Sigmoid",),
}
_KIND_OF = {name: kind for kind, names in ACTIVATION_KINDS.items() for name in names}

#: Optimizers whose first step moves every coordinate by lr·|g|/(|g| + ε) <= lr.
_SIGN_LIKE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.Adagrad)

#: Modules whose weight rows are only updated when used (excluded from update ratios).
_SPARSE = (nn.Embedding, nn.EmbeddingBag)


def _seed(seed: Any) -> int:
    return check_int("seed", seed, min_value=0)


def _reproduce(check: str, seed: int, **options: Any) -> str:
    shown = {k: v for k, v in options.items() if v is not None}
    args = "".join(f", {k}={'…' if callable(v) else repr(v)}" for k, v in shown.items())
    return f"netprops.checks.{check}(model, x{args}, seed={seed})"


# =========================================================================== live building blocks
class ParameterSnapshot:
    """The values of a model's parameters and buffers at one moment.

    Take one before ``optimizer.step()`` and compare after it; nothing in the model is
    changed. Names are those of ``named_parameters`` / ``named_buffers``.

    Examples
    --------
    >>> snap = ParameterSnapshot(model)  # doctest: +SKIP
    >>> optimizer.step()  # doctest: +SKIP
    >>> snap.parameter_changes(model)["0.weight"]  # doctest: +SKIP
    0.001
    """

    def __init__(self, model: nn.Module) -> None:
        self.parameters = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().clone() for n, b in model.named_buffers()}

    @staticmethod
    def _changes(
        before: Mapping[str, torch.Tensor], now: Iterable[tuple[str, torch.Tensor]]
    ) -> dict[str, float]:
        changes = {}
        for name, value in now:
            old = before.get(name)
            if old is None or old.shape != value.shape:
                changes[name] = math.inf
            elif value.numel() == 0:
                changes[name] = 0.0
            else:
                diff = value.detach().double() - old.double()
                same = value.detach() == old  # inf == inf, and exact equality
                both_nan = torch.isnan(value.detach()) & torch.isnan(old)
                diff = torch.where(same | both_nan, torch.zeros_like(diff), diff.abs())
                changes[name] = float(diff.nan_to_num(nan=math.inf).max())
        return changes

    def parameter_changes(self, model: nn.Module) -> dict[str, float]:
        """Parameter name → largest absolute change of an entry since the snapshot."""
        return self._changes(self.parameters, model.named_parameters())

    def buffer_changes(self, model: nn.Module) -> dict[str, float]:
        """Buffer name → largest absolute change of an entry since the snapshot."""
        return self._changes(self.buffers, model.named_buffers())

    def update_ratios(self, model: nn.Module) -> dict[str, float]:
        """``‖w_now − w_then‖ / ‖w_then‖`` of every trainable weight with >= 2 dims.

        Embedding tables (rows move only when used) and weights that were exactly zero
        (the ratio is undefined) are left out.
        """
        sparse = {
            f"{name}.weight" if name else "weight"
            for name, sub in model.named_modules()
            if isinstance(sub, _SPARSE)
        }
        ratios = {}
        for name, p in model.named_parameters():
            old = self.parameters.get(name)
            if old is None or not p.requires_grad or p.dim() < 2 or name in sparse:
                continue
            norm = float(old.double().norm())
            if norm > 0:
                ratios[name] = float((p.detach().double() - old.double()).norm()) / norm
        return ratios


def gradient_problems(
    model: nn.Module, grads: Mapping[str, torch.Tensor | None] | None = None
) -> dict[str, str]:
    """Trainable parameter name → what is wrong with its gradient (only those with a problem).

    Reads ``p.grad`` (after the caller's ``loss.backward()``), or ``grads`` (name →
    gradient, e.g. from ``torch.autograd.grad``). A gradient is wrong when it is missing
    (None: the parameter is not on any path to the loss), all zeros, or has non-finite
    entries.
    """
    problems = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        grad = p.grad if grads is None else grads.get(name)
        if grad is None:
            problems[name] = "no gradient (not on any path from the loss)"
            continue
        finite = torch.isfinite(grad)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            problems[name] = f"non-finite gradient ({bad} of {grad.numel()} entries)"
        elif not bool((grad != 0).any()):
            problems[name] = "zero gradient in every entry"
    return problems


@dataclass(frozen=True)
class NonFiniteModule:
    """Where a forward pass first produced a non-finite value."""

    name: str
    type: str
    inputs_finite: bool
    bad: int
    size: int

    def __str__(self) -> str:
        origin = (
            "from finite inputs" if self.inputs_finite else "(its input was already non-finite)"
        )
        return (
            f"module {self.name or '<root>'} ({self.type}) output {self.bad} non-finite of "
            f"{self.size} values {origin}"
        )


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _non_finite(tensors: Sequence[torch.Tensor]) -> tuple[int, int]:
    bad = size = 0
    for t in tensors:
        if t.is_floating_point() or t.is_complex():
            bad += int((~torch.isfinite(t.detach())).sum())
            size += t.numel()
    return bad, size


class NonFiniteTracer:
    """Forward hooks that find the first module whose output is not finite.

    Use it around a forward pass (``with NonFiniteTracer(model) as tracer: model(x)``);
    ``tracer.first`` is then a :class:`NonFiniteModule` or None. Modules are visited in
    the order their forward passes finish (a child before its parent), so the first one
    reported with finite inputs is where the NaN or inf was made.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.first: NonFiniteModule | None = None
        self._origin: NonFiniteModule | None = None
        self._context: Any = None

    @property
    def origin(self) -> NonFiniteModule | None:
        """The first module that made a non-finite value from finite inputs (None if none)."""
        return self._origin

    def _hook(self, name: str, module: nn.Module, args: Any, out: Any) -> None:
        if self._origin is not None:
            return
        bad, size = _non_finite(_tensors(out))
        if bad == 0:
            return
        inputs_finite = _non_finite(_tensors(args))[0] == 0
        found = NonFiniteModule(name, type(module).__name__, inputs_finite, bad, size)
        if self.first is None:
            self.first = found
        if inputs_finite:
            self._origin = found

    def __enter__(self) -> NonFiniteTracer:
        self._context = _common.forward_hooks(self.model, self._hook)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)


def saturation_limit(kind: str, threshold: float = 0.01) -> float:
    """``|z|`` above which a ``"tanh"`` or ``"sigmoid"`` unit is saturated: where the
    activation's derivative falls below ``threshold`` × its maximum.

    tanh' = sech²(z) and sigmoid'(z)/sigmoid'(0) = sech²(z/2), so the limits are
    ``arccosh(1/√threshold)`` and twice that (2.993 and 5.987 for 1 %).
    """
    threshold = check_probability("threshold", threshold)
    if threshold <= 0:
        raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}")
    z = math.acosh(1.0 / math.sqrt(threshold))
    if kind == "tanh":
        return z
    if kind == "sigmoid":
        return 2.0 * z
    raise ValueError(f"kind must be one of 'tanh', 'sigmoid'; got {kind!r}")


@dataclass(frozen=True)
class LayerActivity:
    """One call of an activation module, seen through its input ``z`` (the pre-activation).

    A *unit* is a channel (dim 1) after a convolution or a 2-D input, the last dim after a
    Linear; each unit has ``entries`` values (examples × positions).

    Attributes
    ----------
    name : module name, with ``#k`` for its k-th call when it is called more than once.
    kind : ``"relu"``, ``"tanh"`` or ``"sigmoid"``.
    units, entries : number of units and values per unit.
    dead : units with ``z <= 0`` on every entry (a ReLU outputs 0 there, gradient 0).
    positive : units with ``z > 0`` on every entry (the mirror image of dead).
    saturated : fraction of entries with ``|z|`` above :func:`saturation_limit` (tanh/sigmoid).
    saturated_units : units saturated on every entry.
    """

    name: str
    kind: str
    units: int
    entries: int
    dead: int
    positive: int
    saturated: float
    saturated_units: int

    @property
    def dead_fraction(self) -> float:
        return self.dead / self.units


def _activation_kind(module: nn.Module) -> str | None:
    return _KIND_OF.get(type(module).__name__)


class ActivationRecorder:
    """Forward hooks that measure every ReLU-family, tanh and sigmoid module a forward calls.

    ``with ActivationRecorder(model) as rec: model(x)``; then ``rec.layers`` lists a
    :class:`LayerActivity` per activation call, in call order. Modules are recognized by
    class name (:data:`ACTIVATION_KINDS`: torch's and netprops' classes, or a user's class
    of the same name); functional calls (``F.relu``) are not seen.
    """

    def __init__(self, model: nn.Module, *, threshold: float = 0.01) -> None:
        self.model = model
        self.threshold = threshold
        self._limits = {k: saturation_limit(k, threshold) for k in ("tanh", "sigmoid")}
        self.layers: list[LayerActivity] = []
        self._calls: dict[str, int] = {}
        self._conv_last = False
        self._context: Any = None

    def _hook(self, name: str, module: nn.Module, args: Any, out: Any) -> None:
        if _common.is_weight_layer(module):
            self._conv_last = module.weight.dim() >= 3
            return
        kind = _activation_kind(module)
        if kind is None or not args or not isinstance(args[0], torch.Tensor):
            return
        z = args[0].detach()
        if z.dim() < 2 or not z.is_floating_point() or z.numel() == 0:
            return
        unit_dim = 1 if (z.dim() == 2 or self._conv_last) else z.dim() - 1
        units = z.movedim(unit_dim, 0).reshape(z.shape[unit_dim], -1).double()
        count = self._calls.get(name, 0)
        self._calls[name] = count + 1
        label = name or "<root>"
        if count:
            label = f"{label}#{count + 1}"
        if kind == "relu":
            saturated = torch.zeros_like(units, dtype=torch.bool)
        else:
            saturated = units.abs() > self._limits[kind]
        self.layers.append(
            LayerActivity(
                name=label,
                kind=kind,
                units=units.shape[0],
                entries=units.shape[1],
                dead=int((units <= 0).all(dim=1).sum()),
                positive=int((units > 0).all(dim=1).sum()),
                saturated=float(saturated.double().mean()),
                saturated_units=int(saturated.all(dim=1).sum()),
            )
        )

    def __enter__(self) -> ActivationRecorder:
        self._context = _common.forward_hooks(self.model, self._hook)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)


def expected_uniform_loss(out: torch.Tensor, loss_fn: Loss | None = None) -> float:
    """The batch-mean loss averaged over every class as the target of every example.

    This is the loss expected under uninformative (uniformly random) labels, computed
    exactly from the logits ``out`` (``(N, C)``): for cross-entropy it equals
    ``mean_n [logsumexp(z_n) − mean_c z_nc]`` >= ln C. ``loss_fn(output, target)`` receives
    class-index targets; default batch-mean cross-entropy (float64).
    """
    check_float_tensor("out", out)
    if not _common.is_classifier_output(out):
        raise ValueError(
            f"out must be classifier logits (N, C) with C >= 2, got {tuple(out.shape)}"
        )
    n, classes = out.shape
    if loss_fn is None:
        z = out.detach().double()
        return float((torch.logsumexp(z, dim=1) - z.mean(dim=1)).mean())
    total = 0.0
    for c in range(classes):
        target = torch.full((n,), c, dtype=torch.long, device=out.device)
        total += float(loss_fn(out.detach(), target))
    return total / classes


# =========================================================================== shared steps
def _prepare(model: Any, x: Any, seed: Any, device: Any) -> tuple[torch.Tensor, int]:
    _common.check_model_and_input(model, x)
    check_float_tensor("x", x)
    seed = _seed(seed)
    return _common.on_device(model, x, device), seed


#: Parameter dtypes whose optimizer step runs on an fp32 master copy (mixed precision).
_HALF_DTYPES = (torch.float16, torch.bfloat16)


class _Fp32Masters:
    """fp32 master weights for a model's float16/bfloat16 parameters, for one step.

    Mixed-precision training steps fp32 copies of half-precision parameters: an Adam
    step of ``lr = 1e-3`` is below half a unit of rounding of a bfloat16 weight near 1
    (spacing 2⁻⁷ ≈ 7.8e-3) and of many float16 ones (2⁻¹⁰ ≈ 9.8e-4), so stored in half
    precision a correct step would round away and look like "did not change".
    :meth:`promote` (after ``backward()``, before ``optimizer.step()``) makes each such
    parameter hold an exact fp32 copy of its value and gradient, so the step and what
    the checks compare afterwards (moved or not, ``‖Δw‖/‖w‖``) are those of the fp32
    master; the forward and backward ran in the parameter's own dtype. :meth:`restore`
    puts the half-precision storage back (its old value: the checks restore the model).
    """

    def __init__(self, model: nn.Module) -> None:
        self._halves = [(p, p.data) for p in model.parameters() if p.dtype in _HALF_DTYPES]

    def promote(self) -> None:
        for p, half in self._halves:
            grad = p.grad
            p.grad = None
            p.data = half.float()
            p.grad = None if grad is None else grad.float()

    def restore(self) -> None:
        for p, half in self._halves:
            p.grad = None
            p.data = half


@contextmanager
def _fp32_masters(model: nn.Module) -> Iterator[_Fp32Masters]:
    """An :class:`_Fp32Masters` of ``model`` whose half-precision storage is put back on exit."""
    masters = _Fp32Masters(model)
    try:
        yield masters
    finally:
        masters.restore()


@contextmanager
def _one_step(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None,
    loss_fn: Loss | None,
    optimizer: OptimizerFactory | None,
    seed: int,
) -> Iterator[tuple[ParameterSnapshot, torch.optim.Optimizer, float, str]]:
    """One training step of ``model`` that is undone on exit.

    Inside: the model's state and torch's RNG as they were restored on exit, the module's
    random draws seeded from ``seed``, half-precision parameters stepped as fp32 masters.
    A :class:`ParameterSnapshot` is taken, then zero_grad, forward, loss, backward and
    step run on the live model; yields (snapshot, optimizer, loss, loss description)
    with the stepped model still in place.
    """
    with (
        _common.restored(model),
        _common.seeded_module(model, seed, x.device),
        _fp32_masters(model) as masters,
    ):
        snapshot = ParameterSnapshot(model)
        opt = _common.make_optimizer(optimizer, model)
        opt.zero_grad()
        with torch.enable_grad():
            loss, description = _common.training_loss(model(x), target, seed, loss_fn)
            if loss.requires_grad:
                loss.backward()
        masters.promote()
        opt.step()
        yield snapshot, opt, float(loss.detach()), description


def buffers_may_move(model: nn.Module) -> dict[str, bool]:
    """Module name → whether its buffers may move in a training step.

    A module's buffers (e.g. BatchNorm running statistics) may move when the module is in
    training mode and not frozen (it has parameters, none of which requires grad).
    """
    allowed = {}
    for name, sub in model.named_modules():
        own = list(sub.parameters(recurse=False))
        frozen = bool(own) and not any(p.requires_grad for p in own)
        allowed[name] = sub.training and not frozen
    return allowed


def _buffer_owner(name: str) -> str:
    return name.rpartition(".")[0]


# =========================================================================== checks
@register_check("params_update")
def check_params_update(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    loss_fn: Loss | None = None,
    optimizer: OptimizerFactory | None = None,
    moving_buffers: Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that one optimizer step moves every trainable parameter and nothing else.

    One training step (``optimizer.zero_grad()``, forward, loss, ``backward()``,
    ``optimizer.step()``) on ``x``; then every parameter with ``requires_grad`` must have
    changed, every parameter with ``requires_grad=False`` must not have, and a buffer may
    change only where training moves it: in a module in training mode that is not frozen
    (one with parameters of its own, all frozen). ``moving_buffers`` names exactly the
    buffers allowed to move instead. The optimizer is built over ``model.parameters()``
    (frozen ones included, as ``Adam(model.parameters())`` is). Everything is restored
    afterwards.

    Catches a detached or unused submodule, a parameter the optimizer never sees, weight
    decay applied to frozen parameters, an optimizer built before freezing that keeps
    moving them (stale gradients zeroed in place), running statistics of a frozen or eval
    block that still move.

    Parameters
    ----------
    model, x : the model and an input batch (floating, batch first).
    target, loss_fn : the loss (module docstring); ``loss_fn(output, target) -> scalar``.
    optimizer : ``params -> torch.optim.Optimizer`` (default Adam, lr 1e-3).
    moving_buffers : buffer names allowed to change (None: the rule above).
    seed : seed of the default targets and of the forward's random draws.
    device : if given, ``x`` is moved there and the model must be there.

    Returns
    -------
    CheckResult with ``statistic`` = number of offending tensors (0), bound 0.

    Raises
    ------
    TypeError, ValueError
        bad arguments.
    PropertyViolation
        naming each parameter that did not move (and why) and each frozen parameter or
        buffer that did.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    if moving_buffers is not None:
        names = dict(model.named_buffers())
        for i, name in enumerate(moving_buffers):
            if name not in names:
                raise ValueError(
                    f"moving_buffers[{i}] must name a buffer of the model "
                    f"({sorted(names) or 'it has none'}), got {name!r}"
                )
    allowed = buffers_may_move(model)
    with _one_step(model, x, target=target, loss_fn=loss_fn, optimizer=optimizer, seed=seed) as (
        snapshot,
        _opt,
        loss,
        description,
    ):
        grad_state = {
            n: ("none" if p.grad is None else "zero" if not bool((p.grad != 0).any()) else "ok")
            for n, p in model.named_parameters()
        }
        moved = snapshot.parameter_changes(model)
        buffers = snapshot.buffer_changes(model)
        trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    offenders: dict[str, str] = {}
    reasons = {
        "none": "no gradient reached it (detached, unused or cut from the loss)",
        "zero": "its gradient is zero",
        "ok": "it has a gradient but the optimizer did not move it (not in its param groups?)",
    }
    for name, change in moved.items():
        if trainable[name] and change == 0:
            offenders[f"trainable {name}"] = f"did not change: {reasons[grad_state[name]]}"
        elif not trainable[name] and change != 0:
            offenders[f"frozen {name}"] = (
                f"changed by up to {change:.3g} although requires_grad=False "
                "(weight decay or momentum applied to a frozen parameter?)"
            )
    for name, change in buffers.items():
        may_move = (
            name in moving_buffers if moving_buffers is not None else allowed[_buffer_owner(name)]
        )
        if change != 0 and not may_move:
            owner = _buffer_owner(name) or "<root>"
            why = (
                "not in moving_buffers"
                if moving_buffers is not None
                else f"its module {owner} is "
                + (
                    "frozen"
                    if model.get_submodule(_buffer_owner(name)).training
                    else "in eval mode"
                )
            )
            offenders[f"buffer {name}"] = f"changed by up to {change:.3g} ({why})"
    reproduce = _reproduce(
        "check_params_update", seed, target=target, loss_fn=loss_fn, optimizer=optimizer
    )
    details: dict[str, Any] = {
        "loss": f"{description} = {loss:.6g}",
        "parameters": f"{sum(trainable.values())} trainable, "
        f"{len(trainable) - sum(trainable.values())} frozen",
        "buffers": len(buffers),
    }
    if offenders:
        violation(
            "check_params_update",
            f"{len(offenders)} tensor(s) broke the one-step contract (trainable ones move, "
            "frozen ones and resting buffers do not)",
            statistic=float(len(offenders)),
            bound=0.0,
            seed=seed,
            reproduce=reproduce,
            details={**details, **offenders},
        )
    return CheckResult("check_params_update", 0.0, 0.0, seed, 0.0, details, reproduce)


@register_check("gradients_flow")
def check_gradients_flow(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    loss_fn: Loss | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that every trainable parameter gets a finite, non-zero gradient from the loss.

    One forward pass on ``x`` and ``torch.autograd.grad`` of the loss (module docstring)
    with respect to every parameter with ``requires_grad`` (``.grad`` is not touched;
    buffers are restored). A parameter fails when its gradient is missing — an unused
    branch, a ``.detach()``, an integer cast, a ``torch.no_grad()`` block in forward — all
    zeros, or not finite; the report names each one.

    Parameters, returns and errors as :func:`check_params_update` (``statistic`` = number
    of parameters without a usable gradient).
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"model {type(model).__name__} has no trainable parameter")
    with (
        _common.model_untouched(model),
        _common.seeded_module(model, seed, x.device),
        torch.enable_grad(),
    ):
        loss, description = _common.training_loss(model(x), target, seed, loss_fn)
        params = [p for _, p in named]
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        else:
            grads = (None,) * len(params)
    problems = gradient_problems(model, {n: g for (n, _), g in zip(named, grads, strict=True)})
    reproduce = _reproduce("check_gradients_flow", seed, target=target, loss_fn=loss_fn)
    details: dict[str, Any] = {
        "loss": f"{description} = {float(loss.detach()):.6g}",
        "trainable parameters": len(named),
    }
    if problems:
        violation(
            "check_gradients_flow",
            f"{len(problems)} of {len(named)} trainable parameters get no usable gradient",
            statistic=float(len(problems)),
            bound=0.0,
            seed=seed,
            reproduce=reproduce,
            details={**details, **problems},
        )
    return CheckResult("check_gradients_flow", 0.0, 0.0, seed, 0.0, details, reproduce)


def _large_magnitude(dtype: torch.dtype) -> float:
    """RMS of the large edge input: 1e4, or less where its fourth power would overflow."""
    return min(1e4, torch.finfo(dtype).max ** 0.25)


@register_check("finite")
def check_finite(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    loss_fn: Loss | None = None,
    large: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that outputs, loss and gradients are finite for ``x`` and for edge inputs.

    Three inputs: the batch ``x``, zeros of its shape, and ``x`` rescaled to an RMS of
    ``large`` (default 1e4, or ``finfo(dtype).max ** ¼`` if smaller: float16 gets 16).
    For each, a forward pass (forward hooks watch every module), the loss and
    ``torch.autograd.grad`` of every trainable parameter; everything must be finite.
    The report names the input, and the first module whose output is not finite although
    its inputs were (a log of 0, a 0/0 of a norm without ε, an overflowing exp), or the
    parameters whose gradients are not. Nothing in the model changes.

    Parameters, returns and errors as :func:`check_params_update`; ``large`` is the RMS of
    the large-magnitude input (a finite number > 0).
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    magnitude = _large_magnitude(x.dtype) if large is None else check_positive_float("large", large)
    rms = _common.scale(x)
    edge = {
        "the batch x": x,
        "zeros": torch.zeros_like(x),
        f"x rescaled to RMS {magnitude:g}": x * (magnitude / rms)
        if bool((x != 0).any())
        else torch.full_like(x, magnitude),
    }
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    reproduce = _reproduce("check_finite", seed, target=target, loss_fn=loss_fn, large=large)
    details: dict[str, Any] = {"inputs": ", ".join(edge)}
    for label, inp in edge.items():
        with (
            _common.model_untouched(model),
            _common.seeded_module(model, seed, x.device),
            torch.enable_grad(),
            NonFiniteTracer(model) as tracer,
        ):
            out = _common.first_tensor(model(inp), "the model's output")
            loss, description = _common.training_loss(out, target, seed, loss_fn)
            grads: Sequence[torch.Tensor | None] = (None,) * len(named)
            if loss.requires_grad and named and bool(torch.isfinite(loss)):
                grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        where: dict[str, str] = {}
        origin = tracer.origin or tracer.first
        if origin is not None:
            where["first non-finite module"] = str(origin)
        if not bool(torch.isfinite(loss)):
            where["loss"] = f"{description} = {float(loss.detach())}"
        bad = [
            f"{n} ({_non_finite([g])[0]} of {g.numel()})"
            for (n, _), g in zip(named, grads, strict=True)
            if g is not None and _non_finite([g])[0]
        ]
        if bad:
            where["non-finite gradients"] = ", ".join(bad[:8]) + (" ..." if len(bad) > 8 else "")
        if where:
            violation(
                "check_finite",
                f"non-finite values for input {label}",
                # non-finite output entries, plus the loss and each parameter with a bad gradient
                statistic=float(_non_finite([out])[0] + ("loss" in where) + len(bad)),
                bound=0.0,
                seed=seed,
                reproduce=reproduce,
                details={**details, **where},
            )
    return CheckResult("check_finite", 0.0, 0.0, seed, 0.0, details, reproduce)


def _is_probability_rows(out: torch.Tensor) -> bool:
    """Every row non-negative and summing to 1 (to the dtype's tolerance): softmax outputs."""
    tol = tolerance(out.dtype)
    z = out.detach().double()
    sums = z.sum(dim=1)
    return bool((z >= -tol.atol).all()) and bool(
        ((sums - 1).abs() <= tol.atol * z.shape[1] + tol.rtol).all()
    )


class _OutputLayer:
    """Forward hooks keeping the input of the weight layer that produces the logits."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self._context: Any = None

    def _hook(self, name: str, module: nn.Module, args: Any, out: Any) -> None:
        if (
            _common.is_weight_layer(module)
            and args
            and isinstance(args[0], torch.Tensor)
            and isinstance(out, torch.Tensor)
        ):
            self.calls.append((module, args[0].detach(), out.detach()))

    def find(self, logits: torch.Tensor) -> tuple[nn.Module, torch.Tensor] | None:
        """The layer whose output is ``logits`` (else the last one with its shape) and its input."""
        for module, inp, out in reversed(self.calls):
            if out.data_ptr() == logits.data_ptr() and out.shape == logits.shape:
                return module, inp
        for module, inp, out in reversed(self.calls):
            if out.shape == logits.shape:
                return module, inp
        return None

    def __enter__(self) -> _OutputLayer:
        self._context = _common.forward_hooks(self.model, self._hook)
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)


def logit_variance_limit(
    feature_second_moment: float, fan_in: int, classes: int, alpha: float = DEFAULT_ALPHA
) -> float:
    """Upper ``alpha`` bound of the logits' variance across classes at a correct output-layer init.

    Logits ``z_c = w_c·h + b_c`` with rows ``(w_c, b_c)`` iid of variance at most
    ``s/fan_in`` per entry, ``s = max_init_scale() = 50/9`` (the largest standard init,
    Xavier with tanh's gain; a bias of torch's default law is within that): for features
    of mean square ``q`` the batch mean of the across-class variance is at most
    ``s·(q + 1/fan_in)·χ²_{C−1}/C``, whose upper ``alpha`` quantile this returns
    (docs/methods.md §Training dynamics and structural properties).
    """
    scale = max_init_scale()
    return scale * (feature_second_moment + 1.0 / fan_in) * chi2_upper(classes - 1, alpha) / classes


@register_check("initial_loss", perturb_parameters=False)
def check_initial_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    loss_fn: Loss | None = None,
    alpha: float = DEFAULT_ALPHA,
    max_logit_variance: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that a classifier's loss at initialization is near ln C for C classes.

    With ``E_y[L] = (1/C) Σ_c loss(output, c)``, the loss expected under uninformative
    labels (:func:`expected_uniform_loss`, exact, from the logits of one forward pass on
    ``x``), cross-entropy gives ``E_y[L] = ln C + mean_n ln mean_c exp(z_nc − z̄_n)``: never
    below ln C (Jensen), and ≈ ln C + v/2 for logits whose variance across classes is v
    (second-order expansion). The check therefore requires

    * ``E_y[L] >= ln C`` (to rounding): a loss below it is not the cross-entropy of the
      logits (NLL on raw logits, a wrong loss/target pairing);
    * ``v <= v_max`` (the batch mean of the logits' variance across classes): ``v_max``
      is the upper ``alpha`` quantile of that spread for a correctly initialized output
      layer on the features it actually receives (:func:`logit_variance_limit`: rows
      iid with at most the largest standard init's variance, a χ²_{C−1} law; the
      features are the input of the weight layer producing the logits, found by forward
      hooks, or taken to have unit mean square when there is none). A huge output-layer
      init fails here;
    * the outputs are not probabilities (every row >= 0 and summing to 1: a softmax before
      cross-entropy, a double softmax, whose loss stays near ln C but can never fall below
      ``ln(e + C − 1) − 1``).

    Parameters
    ----------
    model, x : a classifier returning logits ``(N, C)``, ``C >= 2``, and an input batch.
    loss_fn : ``loss_fn(logits, class_indices) -> scalar``, batch-mean (default cross-entropy).
    alpha : false-failure probability of the spread limit for a correct output layer.
    max_logit_variance : ``v_max`` itself, instead of the derived one.
    seed : seed of the forward's random draws (dropout).
    device : as :func:`check_params_update`.

    Returns
    -------
    CheckResult with ``statistic`` = v and ``bound`` = v_max; ``details`` hold ``E_y[L]``,
    ln C and the second-order prediction ln C + v/2.

    Raises
    ------
    TypeError, ValueError
        bad arguments, or an output that is not ``(N, C)`` logits.
    PropertyViolation
        a loss below ln C, logits spread beyond v_max, or probability outputs.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    alpha = _alpha(alpha)
    if max_logit_variance is not None:
        check_positive_float("max_logit_variance", max_logit_variance)
    with (
        _common.model_untouched(model),
        _common.seeded_module(model, seed, x.device),
        torch.no_grad(),
        _OutputLayer(model) as layers,
    ):
        out = _common.first_tensor(model(x), "the model's output")
    if not _common.is_classifier_output(out):
        raise ValueError(
            "check_initial_loss needs classifier logits of shape (N, C) with C >= 2, got "
            f"output {tuple(out.shape)} {out.dtype}"
        )
    expected = expected_uniform_loss(out, loss_fn)
    classes = out.shape[1]
    ln_c = math.log(classes)
    spread = float(out.detach().double().var(dim=1, correction=0).mean())
    found = layers.find(out)
    if found is None:
        q, fan_in, source = 1.0, 1, "no weight layer produces the logits: unit mean square assumed"
    else:
        module, features = found
        fan_in = fans(module.weight)[0]
        q = float(features.double().square().mean())
        source = f"input of {type(module).__name__} (fan_in {fan_in})"
    v_max = (
        max_logit_variance
        if max_logit_variance is not None
        else logit_variance_limit(q, fan_in, classes, alpha)
    )
    tol = tolerance(out.dtype)
    low = ln_c * (1 - tol.rtol) - tol.atol
    reproduce = _reproduce(
        "check_initial_loss",
        seed,
        loss_fn=loss_fn,
        alpha=alpha,
        max_logit_variance=max_logit_variance,
    )
    details: dict[str, Any] = {
        "classes": classes,
        "expected initial loss E_y[L]": round(expected, 6),
        "ln C": round(ln_c, 6),
        "second-order prediction ln C + v/2": round(ln_c + 0.5 * spread, 6),
        "features' mean square": f"{q:.6g} ({source})",
        "loss": "cross-entropy" if loss_fn is None else "loss_fn",
    }
    if _is_probability_rows(out):
        violation(
            "check_initial_loss",
            "the outputs are probabilities (every row >= 0 and summing to 1), not logits: "
            "cross-entropy applies its own softmax (a double softmax; the loss can never "
            f"fall below ln(e + C − 1) − 1 = {math.log(math.e + classes - 1) - 1:.4g})",
            statistic=expected,
            bound=(low, math.inf),
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    if expected < low:
        violation(
            "check_initial_loss",
            f"the expected initial loss under uniform labels {expected:.6g} is below ln C = "
            f"{ln_c:.6g}, which the cross-entropy of logits never is: the loss is not the "
            "cross-entropy of these outputs (NLL on raw logits? wrong loss/target pairing?)",
            statistic=expected,
            bound=(low, math.inf),
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    if spread > v_max:
        violation(
            "check_initial_loss",
            f"the logits are more spread across classes (variance {spread:.6g}) than a "
            f"correctly initialized output layer makes them (<= {v_max:.6g}): the initial loss "
            f"{expected:.6g} is far above ln C = {ln_c:.6g} (output-layer init too large?)",
            statistic=spread,
            bound=v_max,
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    return CheckResult("check_initial_loss", spread, v_max, seed, alpha, details, reproduce)


#: Step size of :func:`check_can_overfit`'s default optimizer.
OVERFIT_LR = 3e-3


def overfit_optimizer(params: Any) -> torch.optim.Optimizer:
    """``torch.optim.Adam(params, lr=OVERFIT_LR)``: :func:`check_can_overfit`'s default optimizer."""
    return torch.optim.Adam(params, lr=OVERFIT_LR)


@register_check("can_overfit", verified=False)
def check_can_overfit(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    loss_fn: Loss | None = None,
    optimizer: OptimizerFactory | None = None,
    steps: int = 500,
    fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that training on the fixed batch ``x`` drives its loss below ``fraction`` × its
    initial value within ``steps`` optimizer steps.

    The targets are drawn once (module docstring: random labels, which the model must
    memorize), the optimizer is built once — by default Adam at lr 3e-3
    (:func:`overfit_optimizer`, three times the other checks' step: the question is only
    whether the loss *can* go down; at 1e-2 some correct CNNs stall) — and the loop stops
    at the first step whose loss is at most ``fraction · L₀``. ``fraction = 0.1`` lies below what a double softmax can ever
    reach (its loss stays above ``ln(e + C − 1) − 1``, at least 45 % of ln C for any
    C >= 2). Correct models need 2–185 steps (docs/methods.md §Training dynamics and
    structural properties), so 500 leaves a margin of 2.7. Fails labels shuffled between steps, a loss that does not
    match the targets, a step size that is effectively 0, a head that cannot express the
    targets. The model needs the capacity to interpolate the batch (a single linear conv
    cannot fit random target maps). The model is restored afterwards. A heuristic (a
    stated budget, no false-failure rate): not counted as verified in the ledger.

    Parameters
    ----------
    optimizer : ``params -> torch.optim.Optimizer`` (default :func:`overfit_optimizer`).
    steps : the step budget (>= 1).
    fraction : the target fraction of the initial loss, in (0, 1).
    Others as :func:`check_params_update`.

    Raises
    ------
    ValueError
        an initial loss that is not finite and > 0 (a fraction of it means nothing).
    PropertyViolation
        the loss stayed above the target, or became non-finite.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    steps = check_int("steps", steps, min_value=1)
    fraction = check_probability("fraction", fraction)
    if fraction <= 0:
        raise ValueError(f"fraction must be a probability in (0, 1), got {fraction!r}")
    reproduce = _reproduce(
        "check_can_overfit",
        seed,
        target=target,
        loss_fn=loss_fn,
        optimizer=optimizer,
        steps=steps,
        fraction=fraction,
    )
    history: list[float] = []
    with _common.restored(model), _common.seeded_module(model, seed, x.device):
        opt = _common.make_optimizer(optimizer or overfit_optimizer, model)
        fixed = target
        with torch.enable_grad():
            for _ in range(steps + 1):
                opt.zero_grad()
                out = model(x)
                if fixed is None:
                    fixed = _common.default_target(_common.first_tensor(out, "output"), seed)
                loss, description = _common.training_loss(out, fixed, seed, loss_fn)
                value = float(loss.detach())
                history.append(value)
                if len(history) == 1 and not (math.isfinite(value) and value > 0):
                    raise ValueError(
                        f"check_can_overfit needs a finite initial loss > 0, got {value!r} "
                        f"({description})"
                    )
                if not math.isfinite(value) or value <= fraction * history[0]:
                    break
                if len(history) > steps:
                    break
                loss.backward()
                opt.step()
    initial, final = history[0], history[-1]
    target_loss = fraction * initial
    details: dict[str, Any] = {
        "loss": description,
        "initial loss": round(initial, 6),
        "best loss": round(min(history), 6),
        "steps taken": len(history) - 1,
        "step budget": steps,
    }
    if not math.isfinite(final):
        violation(
            "check_can_overfit",
            f"the loss became non-finite ({final}) at step {len(history) - 1}",
            statistic=final,
            bound=target_loss,
            seed=seed,
            reproduce=reproduce,
            details=details,
        )
    if final > target_loss:
        violation(
            "check_can_overfit",
            f"{steps} steps on one fixed batch left the loss at {final:.6g} = "
            f"{final / initial:.3g} × its initial value (target <= {fraction:g} ×): the model "
            "cannot fit this batch (targets changing between steps? loss/target mismatch? "
            "step size ~0?)",
            statistic=final,
            bound=target_loss,
            seed=seed,
            reproduce=reproduce,
            details=details,
        )
    return CheckResult("check_can_overfit", final, target_loss, seed, 0.0, details, reproduce)


def _record_activity(
    model: nn.Module, x: torch.Tensor, seed: int, threshold: float = 0.01
) -> list[LayerActivity]:
    with (
        _common.model_untouched(model),
        _common.seeded_module(model, seed, x.device),
        torch.no_grad(),
        ActivationRecorder(model, threshold=threshold) as recorder,
    ):
        model(x)
    return recorder.layers


def _alpha(alpha: Any) -> float:
    alpha = check_probability("alpha", alpha)
    if alpha <= 0:
        raise ValueError(f"alpha must be a probability in (0, 1), got {alpha!r}")
    return alpha


def _per_layer_result(
    check: str,
    what: str,
    failures: Mapping[str, str],
    *,
    statistic: float,
    bound: float,
    seed: int,
    alpha: float,
    reproduce: str,
    details: dict[str, Any],
) -> CheckResult:
    """The result of a check judged layer by layer; raises when any layer failed.

    ``failures`` maps each failed layer to its line, repeated in the report as
    ``FAILED <layer>`` after ``details``; ``what`` follows the count of failed layers.
    """
    __tracebackhide__ = True
    if failures:
        violation(
            check,
            f"{len(failures)} {what}",
            statistic=statistic,
            bound=bound,
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details={**details, **{f"FAILED {k}": v for k, v in failures.items()}},
        )
    return CheckResult(check, statistic, bound, seed, alpha, details, reproduce)


@register_check("dead_units", perturb_parameters=False)
def check_dead_units(
    model: nn.Module,
    x: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that no ReLU layer has more units dead on the whole batch than a correct init allows.

    A ReLU-family unit (``nn.ReLU``, ``nn.ReLU6`` modules, :class:`ActivationRecorder`) is
    *dead* on ``x`` when its pre-activation is <= 0 on every example (and position): it
    outputs 0 and passes no gradient. Under a correct initialization — the rows (weights
    and bias) of the layer feeding it drawn independently from a law symmetric about 0:
    He, Xavier, LeCun, torch's default — a unit's pre-activations on a fixed input are as
    likely to be all negative as all positive. So among the ``k`` units whose sign is
    constant over the batch, the number of dead ones is Bin(k, ½) whatever the batch, the
    width or the depth; a layer fails when it exceeds the binomial upper
    ``alpha / layers`` quantile (Bonferroni over the activation calls). A large negative
    bias, all-positive weights on positive inputs, or a zero-initialized layer fail;
    BatchNorm before the ReLU leaves no constant-sign unit at all.

    Parameters
    ----------
    model, x : the model at initialization and an input batch (one forward pass, no grad).
    alpha : false-failure probability for a correctly initialized model.
    seed, device : as :func:`check_params_update`.

    Returns
    -------
    CheckResult with ``statistic`` = the dead fraction of the worst layer (largest dead count
    relative to its limit) and ``bound`` = that layer's limit as a fraction.

    Raises
    ------
    ValueError
        the forward pass calls no ReLU-family module.
    PropertyViolation
        naming every layer over its limit with dead / constant-sign / total units.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    alpha = _alpha(alpha)
    layers = [a for a in _record_activity(model, x, seed) if a.kind == "relu"]
    if not layers:
        raise ValueError(
            f"model {type(model).__name__} calls no ReLU-family module (nn.ReLU, nn.ReLU6) on "
            "this input; dead units are only defined for those"
        )
    per_layer = alpha / len(layers)
    worst: tuple[float, float, float] = (-math.inf, 0.0, 0.0)
    failures: dict[str, str] = {}
    summary: dict[str, str] = {}
    for layer in layers:
        constant = layer.dead + layer.positive
        limit = binom_upper(constant, 0.5, per_layer)
        text = (
            f"{layer.dead} dead of {layer.units} units ({100 * layer.dead_fraction:.1f} %); "
            f"{constant} constant-sign; limit {limit}"
        )
        summary[layer.name] = text
        score = (layer.dead - limit) / max(layer.units, 1)
        if score > worst[0]:
            worst = (score, layer.dead_fraction, limit / layer.units)
        if layer.dead > limit:
            failures[layer.name] = text
    reproduce = _reproduce("check_dead_units", seed, alpha=alpha)
    details: dict[str, Any] = {"entries per unit": layers[0].entries, **summary}
    return _per_layer_result(
        "check_dead_units",
        "ReLU layer(s) have more units dead on the whole batch than a symmetric "
        "initialization explains (dead vs all-positive units: Bin(k, ½))",
        failures,
        statistic=worst[1],
        bound=worst[2],
        seed=seed,
        alpha=alpha,
        reproduce=reproduce,
        details=details,
    )


def max_init_scale(nonlinearity: str = "tanh") -> float:
    """The largest ``fan_in · Var(w)`` a standard initialization gives a layer: ``2·gain²``.

    Xavier's ``gain²·2/(fan_in + fan_out)`` times ``fan_in`` approaches ``2·gain²`` when
    ``fan_out ≪ fan_in``; He and LeCun give ``gain²`` and less. ``gain`` is torch's
    :func:`~netprops.init.calculate_gain` for ``nonlinearity``; the default, tanh's 5/3, is
    the largest gain torch recommends (relu: √2), so ``max_init_scale()`` = 50/9 bounds
    every standard init of any layer.
    """
    return 2.0 * calculate_gain(nonlinearity) ** 2


@register_check("saturation", perturb_parameters=False)
def check_saturation(
    model: nn.Module,
    x: torch.Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = 0.01,
    max_preactivation_variance: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that tanh and sigmoid layers are not saturated at initialization.

    An entry of a tanh/sigmoid pre-activation is *saturated* when the derivative there
    is below ``threshold`` × its maximum (``|z| > 2.993`` for tanh, ``5.987`` for sigmoid
    at 1 %, :func:`saturation_limit`). Under a correct initialization on inputs of unit
    second moment, each pre-activation is ≈ N(0, q) with q at most
    ``max_preactivation_variance`` (default :func:`max_init_scale` of the activation:
    50/9 for tanh with torch's gain 5/3, 2 for sigmoid), so an entry is saturated with probability at most
    ``p = 2·Φ(−limit/√q_max)`` (0.204 for tanh, 2.3e-5 for sigmoid). A layer's units are
    independent given its input, so its saturated fraction is an average of ``units``
    independent [0, 1] variables with mean <= p: a layer fails above Bernstein's upper
    ``alpha / layers`` bound (:func:`netprops.checks.bernstein_upper`). N(0, 1) weights,
    unnormalized inputs, a missing 1/√fan_in fail.

    Parameters
    ----------
    alpha : false-failure probability for a correctly initialized model.
    threshold : derivative fraction defining saturation, in (0, 1).
    max_preactivation_variance : q_max (default per activation, above).
    Others as :func:`check_dead_units`.

    Raises
    ------
    ValueError
        the forward pass calls no tanh or sigmoid module.
    PropertyViolation
        naming every layer over its limit.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    alpha = _alpha(alpha)
    if max_preactivation_variance is not None:
        check_positive_float("max_preactivation_variance", max_preactivation_variance)
    layers = [
        a for a in _record_activity(model, x, seed, threshold) if a.kind in ("tanh", "sigmoid")
    ]
    if not layers:
        raise ValueError(
            f"model {type(model).__name__} calls no tanh or sigmoid module (nn.Tanh, "
            "nn.Sigmoid) on this input; saturation is only checked for those"
        )
    per_layer = alpha / len(layers)
    failures: dict[str, str] = {}
    summary: dict[str, str] = {}
    worst: tuple[float, float, float] = (-math.inf, 0.0, 0.0)
    for layer in layers:
        q_max = max_preactivation_variance or max_init_scale(layer.kind)
        z_limit = saturation_limit(layer.kind, threshold)
        p = float(2 * _scipy_stats.norm.sf(z_limit / math.sqrt(q_max)))
        bound = bernstein_upper(p, layer.units, per_layer)
        text = (
            f"{100 * layer.saturated:.2f} % of entries saturated (|z| > {z_limit:.4g}), "
            f"{layer.saturated_units} of {layer.units} units on every entry; limit "
            f"{100 * min(bound, 1.0):.2f} % (p = {p:.3g})"
        )
        summary[layer.name] = text
        if layer.saturated - bound > worst[0]:
            worst = (layer.saturated - bound, layer.saturated, bound)
        if layer.saturated > bound:
            failures[layer.name] = text
    reproduce = _reproduce(
        "check_saturation",
        seed,
        alpha=alpha,
        threshold=threshold,
        max_preactivation_variance=max_preactivation_variance,
    )
    return _per_layer_result(
        "check_saturation",
        "tanh/sigmoid layer(s) are saturated beyond what a correct initialization allows",
        failures,
        statistic=worst[1],
        bound=worst[2],
        seed=seed,
        alpha=alpha,
        reproduce=reproduce,
        details=summary,
    )


def _decades_outside(value: float, low: float, high: float) -> float:
    """How many powers of ten ``value`` lies outside ``[low, high]`` (negative inside)."""
    if value < low:
        return math.log10(low / value) if value > 0 else math.inf
    if value > high:
        return math.log10(value / high) if high > 0 else math.inf
    return -1.0


def _group_lrs(opt: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): float(group["lr"]) for group in opt.param_groups for p in group["params"]}


@register_check("update_ratio", perturb_parameters=False, verified=False)
def check_update_ratio(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    loss_fn: Loss | None = None,
    optimizer: OptimizerFactory | None = None,
    decades: float = 1.0,
    band: tuple[float, float] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that one optimizer step changes each weight by a sensible relative amount.

    After one training step, for every trainable weight with >= 2 dims (Linear, conv,
    attention projections; embedding tables and all-zero weights left out) the ratio
    ``ρ = ‖Δw‖ / ‖w‖`` must lie in a range derived from the optimizer's step size: Adam's
    (and AdamW's, Adamax's, Adagrad's) first step moves each coordinate by
    ``lr·|g|/(|g| + ε) ≈ lr``, and a variance-preserving init has ``rms(w) ≈ 1/√fan_in``,
    so ``ρ ≈ ρ̂ = lr·√fan_in``; ``ρ`` must lie within ``decades`` powers of ten of ``ρ̂``
    (``lr`` of the weight's param group). Too small: the layer is stalled (an init far too
    large, gradients below Adam's ε); too large: unstable (an init far too small). For
    other optimizers pass ``band=(low, high)``, an absolute range for ρ. The model is
    restored afterwards. A stated range, not a false-failure rate (not counted as
    verified in the ledger).

    Parameters
    ----------
    decades : half-width of the accepted range around ρ̂, in powers of ten (> 0).
    band : absolute ``(low, high)`` range for every weight instead (0 <= low < high).
    Others as :func:`check_params_update`.

    Raises
    ------
    ValueError
        no weight to measure, or an optimizer outside Adam/AdamW/Adamax/Adagrad without ``band``.
    PropertyViolation
        naming every weight outside its range.
    """
    __tracebackhide__ = True
    x, seed = _prepare(model, x, seed, device)
    _common.check_loss_fn(loss_fn)
    decades = check_positive_float("decades", decades)
    if band is not None:
        if not (isinstance(band, (tuple, list)) and len(band) == 2):
            raise TypeError(f"band must be a (low, high) pair, got {band!r}")
        low, high = (
            check_positive_float(f"band[{i}]", b, allow_zero=True) for i, b in enumerate(band)
        )
        if not low < high:
            raise ValueError(f"band must have low < high, got {band!r}")
    with _one_step(model, x, target=target, loss_fn=loss_fn, optimizer=optimizer, seed=seed) as (
        snapshot,
        opt,
        loss,
        description,
    ):
        ratios = snapshot.update_ratios(model)
        params = dict(model.named_parameters())
        lrs = _group_lrs(opt)
        fan_in = {name: fans(params[name])[0] for name in ratios}
        lr_of = {name: lrs.get(id(params[name]), 0.0) for name in ratios}
    if not ratios:
        raise ValueError(
            f"model {type(model).__name__} has no trainable non-zero weight with >= 2 dims "
            "to measure"
        )
    if band is None and not isinstance(opt, _SIGN_LIKE):
        raise ValueError(
            f"update_ratio derives its range from a sign-like first step (Adam, AdamW, Adamax, "
            f"Adagrad); for {type(opt).__name__} pass band=(low, high)"
        )
    failures: dict[str, str] = {}
    summary: dict[str, str] = {}
    worst = (-math.inf, 0.0, (0.0, 0.0))
    for name, rho in ratios.items():
        if band is not None:
            lo, hi = float(band[0]), float(band[1])
        else:
            expected = lr_of[name] * math.sqrt(fan_in[name])
            lo, hi = expected * 10.0**-decades, expected * 10.0**decades
        text = f"ρ = {rho:.3g}, range [{lo:.3g}, {hi:.3g}]"
        summary[name] = text
        off = _decades_outside(rho, lo, hi)
        if off > worst[0]:
            worst = (off, rho, (lo, hi))
        if not lo <= rho <= hi:
            kind = "stalled" if rho < lo else "unstable"
            failures[name] = f"{kind}: {text}"
    reproduce = _reproduce(
        "check_update_ratio",
        seed,
        target=target,
        loss_fn=loss_fn,
        optimizer=optimizer,
        decades=decades,
        band=band,
    )
    details: dict[str, Any] = {
        "loss": f"{description} = {loss:.6g}",
        "optimizer": type(opt).__name__,
    }
    return _per_layer_result(
        "check_update_ratio",
        "weight(s) moved by a relative amount outside their range in one step",
        failures,
        statistic=worst[1],
        bound=worst[2],
        seed=seed,
        alpha=0.0,
        reproduce=reproduce,
        details={**details, **summary},
    )
