"""Helpers shared by the check modules (private: one place for each rule).

Argument validation of a check's subject and input, the state a check must
restore (training flags, module-held generators, buffers), the probe loss and
backward pass that several checks share, and the tolerance-scaled comparison of
an output with its reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import resolve_device
from ..errors import check_float_tensor, check_min_dims, check_type
from ..seeding import make_generator, seeded_global_rng
from ..tolerances import Tolerance, tolerance


def module_generators(module: nn.Module) -> list[tuple[nn.Module, str, torch.Generator]]:
    """Every ``torch.Generator`` held as an attribute by ``module`` or its submodules."""
    found = []
    for sub in module.modules():
        for name, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                found.append((sub, name, value))
    return found


@contextmanager
def preserved_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Restore the ``training`` flag of every submodule on exit."""
    modes = [(sub, sub.training) for sub in module.modules()]
    try:
        yield module
    finally:
        for sub, mode in modes:
            sub.training = mode


@contextmanager
def seeded_module(module: nn.Module, seed: int, device: torch.device) -> Iterator[nn.Module]:
    """Make every draw of ``module`` inside the block a pure function of ``seed``.

    Module-held generators are re-seeded from ``seed`` (their object and state are
    restored afterwards); draws from torch's global RNG (e.g. ``nn.Dropout``) are
    seeded through ``fork_rng``, so the caller's RNG state is untouched too.
    """
    from ..seeding import derive_seed, seeded_global_rng

    held = module_generators(module)
    saved = [(sub, name, gen, gen.get_state()) for sub, name, gen in held]
    try:
        for index, (_sub, _name, gen) in enumerate(held):
            gen.manual_seed(derive_seed(seed, "module-generator", index))
        devices = (device,) if device.type == "cuda" else ()
        with seeded_global_rng(seed, devices):
            yield module
    finally:
        for sub, name, gen, state in saved:
            setattr(sub, name, gen)
            gen.set_state(state)


def check_module(module: Any) -> nn.Module:
    return check_type("module", module, nn.Module)


def check_batch_input(x: Any, min_batch: int = 1) -> torch.Tensor:
    check_float_tensor("x", x)
    check_min_dims("x", x, 2)
    if x.shape[0] < min_batch:
        raise ValueError(
            f"x must be batch-first with at least {min_batch} rows (dim 0), "
            f"got shape {tuple(x.shape)}"
        )
    return x


def describe(x: torch.Tensor) -> str:
    return f"{str(x.dtype).replace('torch.', '')} {tuple(x.shape)} on {x.device}"


def reproduce(check: str, **kwargs: Any) -> str:
    args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
    return f"netprops.checks.{check}(module, x{args})"


@contextmanager
def isolated_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG for the block (for nn.Dropout & co.) and restore it after."""
    with seeded_global_rng(seed, (device,) if device.type == "cuda" else ()):
        yield


def output(result: Any, what: str) -> torch.Tensor:
    if not isinstance(result, torch.Tensor):
        raise TypeError(
            f"the module must return a torch.Tensor, got {type(result).__name__} ({what})"
        )
    return result


def looser(*dtypes: torch.dtype) -> Tolerance:
    """The loosest tolerance among ``dtypes`` (the comparison is as good as its worst side)."""
    tols = [tolerance(d) for d in dtypes]
    return Tolerance(rtol=max(t.rtol for t in tols), atol=max(t.atol for t in tols))


def scale(t: torch.Tensor) -> float:
    """RMS of the finite entries of ``t`` (1 when there are none or all are 0): atol's unit."""
    values = t.detach().double()
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return 1.0
    rms = float(values.square().mean().sqrt())
    return rms if rms > 0 else 1.0


def normalized_error(
    actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor
) -> torch.Tensor:
    """Elementwise ``|actual − expected| / bound`` in float64.

    Equal values (NaN with NaN, inf with the same inf) score 0; a NaN
    on one side only, or any difference where the bound is 0, scores inf.
    """
    a = actual.detach().double()
    e = expected.detach().double().to(a.device)
    bound = torch.as_tensor(bound, dtype=torch.float64, device=a.device)
    same = (a == e) | (torch.isnan(a) & torch.isnan(e))
    ratio = (a - e).abs() / bound
    ratio = torch.where(same, torch.zeros_like(ratio), ratio)
    return ratio.nan_to_num(nan=math.inf, posinf=math.inf)


def worst(ratio: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    """Largest entry of ``ratio`` and its index (0.0 and () for an empty tensor)."""
    if ratio.numel() == 0:
        return 0.0, ()
    values = ratio.reshape(-1)
    flat = int(values.argmax())
    index = []
    for size in reversed(ratio.shape):
        flat, rest = divmod(flat, size)
        index.append(rest)
    return float(values.max()), tuple(reversed(index))


def is_dropout_like(sub: nn.Module) -> bool:
    """A leaf module with a probability attribute ``p``, or one exposing a mask."""
    if len(sub._modules) > 0:
        return False
    p = getattr(sub, "p", None)
    if isinstance(p, Real) and not isinstance(p, bool) and 0 <= p <= 1:
        return True
    return hasattr(sub, "last_mask") or hasattr(sub, "sample_mask")


def is_weight_layer(module: nn.Module) -> bool:
    """A module whose ``weight`` is a materialized tensor with >= 2 dims (Linear, ConvNd, ...)."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, torch.Tensor)
        and not isinstance(weight, nn.parameter.UninitializedParameter)
        and weight.dim() >= 2
    )


def probe_loss(output: Any, target: torch.Tensor | None, seed: int) -> tuple[torch.Tensor, str]:
    """The loss whose gradients the profile and the symmetry check measure (computed in float64)."""
    if not (isinstance(output, torch.Tensor) and output.is_floating_point()):
        raise TypeError(
            "the model's output must be a floating-point torch.Tensor, got "
            f"{type(output).__name__}; wrap the model so that it returns one tensor"
        )
    out = output.to(torch.float64)
    if target is None:
        generator = make_generator(seed, output.device)
        if output.dim() == 2:
            classes = output.shape[1]
            y = torch.randint(
                0, classes, (output.shape[0],), generator=generator, device=output.device
            )
            return (
                F.cross_entropy(out, y, reduction="sum"),
                f"cross-entropy (sum) on random targets in [0, {classes})",
            )
        noise = torch.randn(
            out.shape, generator=generator, device=output.device, dtype=torch.float64
        )
        return (out * noise).sum(), "sum(output · N(0, 1) noise)"
    check_type("target", target, torch.Tensor)
    target = target.to(output.device)
    if target.is_floating_point():
        if target.shape != output.shape:
            raise ValueError(
                f"a floating-point target must have the output's shape {tuple(output.shape)}, "
                f"got {tuple(target.shape)}"
            )
        return 0.5 * (out - target.to(torch.float64)).square().sum(), "½·Σ(output − target)²"
    if output.dim() < 2 or target.shape != output.shape[:1] + output.shape[2:]:
        raise ValueError(
            f"an integer (class index) target must have shape (N, *) = "
            f"{tuple(output.shape[:1] + output.shape[2:])} for output {tuple(output.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return F.cross_entropy(out, target.long(), reduction="sum"), "cross-entropy (sum) on target"


@contextmanager
def model_untouched(model: nn.Module) -> Iterator[None]:
    """Restore the model's buffers (e.g. BatchNorm running statistics) after the block."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def check_model_and_input(model: Any, x: Any) -> torch.Tensor:
    check_type("model", model, nn.Module)
    check_type("x", x, torch.Tensor)
    return x


def run_probe(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | None,
    seed: int,
    recorder: Callable[[nn.Module], Any],
    grad_params: Sequence[torch.Tensor] = (),
) -> tuple[Any, str, tuple[torch.Tensor | None, ...]]:
    """Forward ``x`` (seeded global RNG for dropout-like layers) and back-propagate the probe loss.

    Returns the recorder (hooks already removed), the loss description and the
    gradients of ``grad_params`` (model parameters; None for frozen or unused
    ones). Nothing in the model changes: gradients are
    taken with ``torch.autograd.grad`` (no ``.grad`` is written) and buffers are
    restored.
    """
    rec = recorder(model)
    try:
        # seeded_module: module-held generators (DropConnect) too, restored afterwards
        with model_untouched(model), seeded_module(model, seed, x.device), torch.enable_grad():
            leaf = x.detach().requires_grad_(x.is_floating_point())
            output = model(leaf.clone() if x.is_floating_point() else leaf)
            loss, description = probe_loss(output, target, seed)
            # x and every trainable parameter: all layer outputs lie on a path to one of them
            inputs = ([leaf] if x.is_floating_point() else []) + [
                p for p in model.parameters() if p.requires_grad
            ]
            grads: tuple[torch.Tensor | None, ...] = (None,) * len(inputs)
            if loss.requires_grad and inputs:
                grads = torch.autograd.grad(loss, inputs, allow_unused=True)
            rec.finish(output)
    finally:
        rec.remove()
    by_id = {id(t): g for t, g in zip(inputs, grads, strict=True)}
    return rec, description, tuple(by_id.get(id(p)) for p in grad_params)


def on_device(model: nn.Module, x: torch.Tensor, device: Any) -> torch.Tensor:
    """Move ``x`` to ``device`` (if given) and check that the model lives there too."""
    if device is None:
        return x
    dev = resolve_device(device)
    for name, p in model.named_parameters():
        if p.device.type != dev.type:
            raise ValueError(
                f"device={str(dev)!r} but parameter {name!r} of the model is on {p.device}; "
                "move the model first (model.to(device))"
            )
    return x.to(dev)


# --------------------------------------------------------------------------- normalization oracle
# One float64 oracle for every normalization family, used by check_normalized (the module's
# output) and check_train_eval_contract (BatchNorm-like outputs in train and eval mode).

#: The normalization families the oracle knows, by the statistics each output element uses.
NORM_KINDS = ("layer", "rms", "group", "instance", "batch")


def _classes(module: Any, *names: str) -> tuple[type, ...]:
    return tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))


def _norm_classes() -> dict[str, tuple[type, ...]]:
    from ..layers import norm as ours

    return {
        "layer": (nn.LayerNorm, ours.LayerNorm),
        "rms": _classes(nn, "RMSNorm"),
        "group": (nn.GroupNorm,),
        "instance": _classes(
            nn,
            "InstanceNorm1d",
            "InstanceNorm2d",
            "InstanceNorm3d",
            "LazyInstanceNorm1d",
            "LazyInstanceNorm2d",
            "LazyInstanceNorm3d",
        ),
        "batch": (
            *_classes(
                nn,
                "BatchNorm1d",
                "BatchNorm2d",
                "BatchNorm3d",
                "SyncBatchNorm",
                "LazyBatchNorm1d",
                "LazyBatchNorm2d",
                "LazyBatchNorm3d",
            ),
            ours.BatchNorm1d,
            ours.BatchNorm2d,
        ),
    }


def norm_kind(module: nn.Module) -> str | None:
    """The family (:data:`NORM_KINDS`) of torch's and netprops' norm layers; None for others."""
    for kind, classes in _norm_classes().items():
        if isinstance(module, classes):
            return kind
    return None


#: Families whose torch/netprops kernels form ``x − μ`` in float32 for float16/bfloat16
#: input (measured); torch's CPU BatchNorm/InstanceNorm fold the statistics into a
#: scale and shift rounded to the half dtype, so their error grows with the dtype's u·κ.
_FLOAT32_KERNELS = frozenset({"layer", "rms", "group"})


def uses_running_stats(module: nn.Module) -> bool:
    """Whether a batch/instance norm ``module`` normalizes with running statistics now.

    torch's rule: in eval mode, with ``track_running_stats`` not False and
    ``running_mean`` / ``running_var`` tensors present.
    """
    return (
        not module.training
        and getattr(module, "track_running_stats", True) is not False
        and isinstance(getattr(module, "running_mean", None), torch.Tensor)
        and isinstance(getattr(module, "running_var", None), torch.Tensor)
    )


@dataclass(frozen=True)
class NormLayout:
    """Which statistics each output element of a normalization layer uses.

    Attributes
    ----------
    kind : one of :data:`NORM_KINDS`.
    eps : the ε added to the variance (to the mean square for ``rms``).
    dims : ``layer`` / ``rms``: the normalized dims of x (not 0).
    groups : ``group``: the number of contiguous channel groups.
    centre : subtract the mean (False for ``rms``).
    correction : 0 for the biased variance (every kind); 1 describes a bug.
    eps_outside : ``(x − μ)/(σ + ε)`` (a bug) instead of ``/√(σ² + ε)``.
    interleaved : ``group``: groups of channels ``g, g + G, ...`` (a bug).
    per_position : ``batch``: statistics per (channel, position) over the batch only (a bug).
    stat_dims : ``layer`` / ``rms``: statistics over these dims instead of ``dims`` (a bug;
        the affine parameters keep the shape ``dims`` gives them).
    """

    kind: str
    eps: float
    dims: tuple[int, ...] = ()
    groups: int = 1
    centre: bool = True
    correction: int = 0
    eps_outside: bool = False
    interleaved: bool = False
    per_position: bool = False
    stat_dims: tuple[int, ...] | None = None

    def kappa_atol(self, dtype: torch.dtype, tol: Tolerance) -> float:
        """The ``atol`` that multiplies κ for input of ``dtype`` compared with ``tol``.

        float16/bfloat16 input is exact in its dtype; the kinds in ``_FLOAT32_KERNELS``
        form ``x − μ`` in float32, so their cancellation error is float32's.
        """
        if dtype in (torch.float16, torch.bfloat16) and self.kind in _FLOAT32_KERNELS:
            return tolerance(torch.float32).atol
        return tol.atol


@dataclass(frozen=True)
class NormReference:
    """The float64 oracle of a normalization layer's output and its tolerance terms.

    ``bound(rtol, kappa_atol) = kappa_atol·kappa_term + rtol·rtol_term`` elementwise:
    ``kappa_term = κ·|w|`` (the cancellation error of ``x − μ``, scaled by the weight)
    and ``rtol_term = s·|w| + |b|`` (rounding relative to the output's size, ``s`` the
    largest ``|ŷ|`` of the slice; with running statistics ``κ`` and ``s`` are elementwise).
    """

    expected: torch.Tensor
    normalized: torch.Tensor
    kappa: torch.Tensor
    kappa_term: torch.Tensor
    rtol_term: torch.Tensor
    informative: torch.Tensor

    def bound(self, rtol: float, kappa_atol: float) -> torch.Tensor:
        return kappa_atol * self.kappa_term + rtol * self.rtol_term


def _stat_view(x: torch.Tensor, layout: NormLayout) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A view of ``x`` and the dims of that view each statistic is taken over."""
    n = x.shape[0]
    if layout.kind in ("layer", "rms"):
        return x, layout.stat_dims if layout.stat_dims is not None else layout.dims
    c = x.shape[1]
    if layout.kind == "group":
        g = layout.groups
        if layout.interleaved:
            return x.reshape(n, c // g, g, -1), (1, 3)
        return x.reshape(n, g, c // g, -1), (2, 3)
    view = x.reshape(n, c, -1)
    if layout.kind == "instance":
        return view, (2,)
    return view, ((0,) if layout.per_position else (0, 2))


def _affine_shape(x: torch.Tensor, layout: NormLayout) -> list[int]:
    """Shape a weight/bias is viewed in to broadcast over ``x``."""
    if layout.kind in ("layer", "rms"):
        return [x.shape[d] if d in layout.dims else 1 for d in range(x.dim())]
    return [x.shape[1] if d == 1 else 1 for d in range(x.dim())]


def affine_numel(x: torch.Tensor, layout: NormLayout) -> int:
    """Entries a weight/bias of this layout has for input ``x``."""
    return math.prod(_affine_shape(x, layout))


def conditioning_of(mean: torch.Tensor, var: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """``κ = (|μ| + σ)/denom`` (``denom = √(σ² + ε)``): the size of the terms whose
    difference ``x − μ`` a normalization forms, relative to its output scale (inf where
    ``denom = 0``)."""
    return ((mean.abs() + var.sqrt()) / denom).nan_to_num(nan=math.inf)


def norm_reference(
    x: torch.Tensor,
    layout: NormLayout,
    *,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    running: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> NormReference:
    """Float64 oracle ``ŷ·w + b`` of a normalization layer on ``x`` (see :class:`NormLayout`).

    ``ŷ = (x − μ)/√(σ² + ε)`` with μ, σ² the mean and (biased) variance over the
    layout's slices, or the per-channel ``running = (running_mean, running_var)``;
    ``rms``: ``ŷ = x/√(mean(x²) + ε)``. ``weight`` / ``bias`` (any shape with
    :func:`affine_numel` entries, or None) are applied per element of the slice
    (``layer`` / ``rms``) or per channel (dim 1, the other kinds).
    """
    xd = x.detach().double()
    view, dims = _stat_view(xd, layout)
    if running is None:
        if layout.centre:
            var, mean = torch.var_mean(view, dim=dims, keepdim=True, correction=layout.correction)
        else:
            mean = torch.zeros((), dtype=torch.float64, device=xd.device)
            var = view.square().mean(dim=dims, keepdim=True)
        outside = layout.eps_outside
        denom = var.sqrt() + layout.eps if outside else (var + layout.eps).sqrt()
        yhat = (view - mean) / denom
        kappa = conditioning_of(mean, var, denom).expand_as(view)
        scale = yhat.abs().nan_to_num(nan=math.inf).amax(dim=dims, keepdim=True)
        # a slice carries information when its normalized output has RMS >= 0.1
        # (constant slices normalize to ~0, which a zero output matches)
        informative = (var / denom.square() >= 0.01).expand_as(view)
        yhat, kappa = yhat.reshape(xd.shape), kappa.reshape(xd.shape)
        scale = scale.expand_as(view).reshape(xd.shape)
        informative = informative.reshape(xd.shape)
    else:
        shape = [xd.shape[1] if d == 1 else 1 for d in range(xd.dim())]
        mean = running[0].detach().double().to(xd.device).reshape(shape)
        denom = (running[1].detach().double().to(xd.device).reshape(shape) + layout.eps).sqrt()
        yhat = (xd - mean) / denom
        kappa = (xd.abs() + mean.abs()) / denom
        scale = yhat.abs()
        informative = torch.zeros_like(xd, dtype=torch.bool)
    shape = _affine_shape(xd, layout)
    gain = torch.ones((), dtype=torch.float64, device=xd.device)
    expected = yhat
    if weight is not None:
        w = weight.detach().double().to(xd.device).reshape(shape)
        expected = expected * w
        gain = w.abs()
    shift = torch.zeros((), dtype=torch.float64, device=xd.device)
    if bias is not None:
        b = bias.detach().double().to(xd.device).reshape(shape)
        expected = expected + b
        shift = b.abs()
    return NormReference(
        expected=expected,
        normalized=yhat * gain,
        kappa=kappa,
        kappa_term=kappa * gain,
        rtol_term=scale * gain + shift,
        informative=informative,
    )


# --------------------------------------------------------------------------- training dynamics
#: Step size of the default optimizer of the training-dynamics checks (Adam's usual default).
DEFAULT_LR = 1e-3


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """``torch.optim.Adam(params, lr=DEFAULT_LR)``: the dynamics checks' optimizer factory."""
    return torch.optim.Adam(params, lr=DEFAULT_LR)


def first_tensor(result: Any, what: str) -> torch.Tensor:
    """The module's output tensor, or the first element of a tuple/list output
    (``nn.RNN``/``nn.LSTM``/``nn.MultiheadAttention`` return ``(output, extra)``)."""
    if isinstance(result, (tuple, list)) and result:
        result = result[0]
    return output(result, what)


def is_classifier_output(out: torch.Tensor) -> bool:
    """Logits of a classifier: a floating ``(N, C)`` tensor with ``C >= 2``."""
    return out.dim() == 2 and out.shape[1] >= 2 and out.is_floating_point()


def default_target(out: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded targets for ``out``: uniform class indices in ``[0, C)`` for classifier logits
    (the draw of :func:`probe_loss`), standard normal values of ``out``'s shape otherwise."""
    generator = make_generator(seed, out.device)
    if is_classifier_output(out):
        return torch.randint(
            0, out.shape[1], (out.shape[0],), generator=generator, device=out.device
        )
    return torch.randn(out.shape, generator=generator, device=out.device, dtype=torch.float64)


def training_loss(
    out: Any,
    target: torch.Tensor | None,
    seed: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, str]:
    """The batch-mean loss the dynamics checks train on, and its description.

    Without ``loss_fn``: :func:`probe_loss` on ``target`` (default: :func:`default_target`),
    divided by the batch size — mean cross-entropy for classifier logits, mean ½‖output −
    target‖² per example otherwise. With ``loss_fn``: ``loss_fn(output, target)``, which
    must return a floating-point scalar tensor.
    """
    out = first_tensor(out, "the model's output")
    if target is None:
        target = default_target(out, seed)
    if loss_fn is None:
        loss, description = probe_loss(out, target, seed)
        return loss / out.shape[0], f"{description}, divided by the batch size"
    loss = loss_fn(out, target)
    if not (isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.is_floating_point()):
        raise TypeError(
            "loss_fn(output, target) must return a floating-point scalar tensor, got "
            f"{type(loss).__name__} {getattr(loss, 'shape', '')}"
        )
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    return loss, f"loss_fn {name}"


def check_loss_fn(loss_fn: Any) -> Any:
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable (output, target) -> scalar tensor, got {loss_fn!r}"
        )
    return loss_fn


def make_optimizer(factory: Any, model: nn.Module) -> torch.optim.Optimizer:
    """``factory(model.parameters())`` (default :func:`default_optimizer`), type-checked."""
    factory = default_optimizer if factory is None else factory
    if not callable(factory):
        raise TypeError(
            f"optimizer must be a callable params -> torch.optim.Optimizer, got {factory!r}"
        )
    opt = factory(model.parameters())
    if not hasattr(opt, "step") or not hasattr(opt, "zero_grad"):
        raise TypeError(
            "optimizer(params) must return an optimizer with step() and zero_grad(), got "
            f"{type(opt).__name__}"
        )
    return opt


@contextmanager
def restored(model: nn.Module) -> Iterator[None]:
    """Put back, on exit, everything a training step changes in ``model``: parameter
    values, ``.grad`` and ``requires_grad``, buffers and training flags."""
    params = [(p, p.detach().clone(), p.grad, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    with preserved_mode(model):
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value, grad, flag in params:
                    p.copy_(value)
                    p.grad = grad
                    p.requires_grad_(flag)
                for b, value in buffers:
                    b.copy_(value)


@contextmanager
def forward_hooks(
    model: nn.Module, hook: Callable[[str, nn.Module, Any, Any], None]
) -> Iterator[None]:
    """Call ``hook(name, module, args, output)`` after every submodule's forward in the block."""
    handles = []
    for name, sub in model.named_modules():
        handles.append(
            sub.register_forward_hook(
                lambda module, args, out, _name=name: hook(_name, module, args, out)
            )
        )
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
