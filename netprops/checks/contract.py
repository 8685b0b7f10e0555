"""The train/eval contract of a module, and the snapshot every check restores (METHODS.md §2–3).

``check_train_eval_contract`` verifies what switching a module to eval mode
promises: eval forwards are deterministic and draw no random numbers, they
change no parameter or buffer, dropout-like layers are the identity (or a plain
``F.linear`` / ``F.conv*d`` with their weights), BatchNorm-like layers compute
``F.batch_norm`` with their running statistics in eval mode and update those
statistics in train mode by torch's momentum formula with the unbiased batch
variance.

:class:`ModuleSnapshot` records everything a forward may disturb (modes,
parameter and buffer values, gradients, module-held generators, public
attributes) and puts it back; the checks in :mod:`netprops.checks.normalization`
and this module run inside one, so a check never changes the module it checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_int, check_type
from ..tolerances import tolerance
from . import _common
from .registry import register_check
from .results import CheckResult, violation

__all__ = ["ModuleSnapshot", "check_train_eval_contract"]


# --------------------------------------------------------------------------- snapshot


class ModuleSnapshot:
    """What a forward pass may change in ``module``, recorded so it can be put back.

    Records the ``training`` flag of every submodule, the values of all
    parameters and buffers (and which objects hold them), parameter gradients,
    the state of every ``torch.Generator`` held as a module attribute, and the
    other instance attributes (e.g. a ``last_mask``, a lazily created generator,
    a call counter): attributes a forward adds are removed again.
    :meth:`restore` writes back only what changed, so tensors that did not
    change keep their autograd version counters.

    Use as a context manager (restores on exit, also on error)::

        with ModuleSnapshot(module):
            module.train()(x)      # running statistics move ...
        # ... and are back here

    Raises
    ------
    TypeError
        ``module`` is not an ``nn.Module``.
    """

    def __init__(self, module: nn.Module) -> None:
        check_type("module", module, nn.Module)
        self.module = module
        subs = list(module.modules())
        self._slots = [
            (sub, dict(sub._parameters), dict(sub._buffers), dict(sub._modules)) for sub in subs
        ]
        self._attrs = [
            (sub, {k: v for k, v in vars(sub).items() if k not in _SLOTS}) for sub in subs
        ]
        self._tensors: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        seen: set[int] = set()
        named = [*module.named_parameters(), *module.named_buffers()]
        for name, tensor in named:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                self._tensors.append((name, tensor, tensor.detach().clone()))
        self._grads = [
            (p, None if p.grad is None else p.grad.detach().clone())
            for _, p in module.named_parameters()
        ]
        self._generators = [
            (_generator_name(module, sub, attr), gen, gen.get_state())
            for sub, attr, gen in _common.module_generators(module)
        ]

    def changed_tensors(self) -> dict[str, float]:
        """Parameters and buffers whose values changed: name → max |after − before|."""
        changed = {}
        for name, tensor, saved in self._tensors:
            if not _same(tensor, saved):
                diff = (tensor.detach().double() - saved.double()).abs()
                changed[name] = float(diff.nan_to_num(nan=math.inf).max()) if diff.numel() else 0.0
        return changed

    def changed_generators(self) -> list[str]:
        """Names (``"dropout.generator"``) of module-held generators whose state changed."""
        return [
            name for name, gen, state in self._generators if not torch.equal(gen.get_state(), state)
        ]

    def saved(self, name: str) -> torch.Tensor:
        """The recorded value of parameter or buffer ``name`` (KeyError if unknown)."""
        for key, _, value in self._tensors:
            if key == name:
                return value
        raise KeyError(name)

    def restore(self) -> None:
        """Put the recorded state back (only what changed is written)."""
        for sub, params, buffers, modules in self._slots:
            for current, saved in (
                (sub._parameters, params),
                (sub._buffers, buffers),
                (sub._modules, modules),
            ):
                if current.keys() != saved.keys() or any(
                    current[k] is not v for k, v in saved.items()
                ):
                    current.clear()
                    current.update(saved)
        for sub, attrs in self._attrs:
            state = vars(sub)
            for key in [k for k in state if k not in _SLOTS and k not in attrs]:
                del state[key]
            for key, value in attrs.items():
                if state.get(key, _MISSING) is not value:
                    state[key] = value
        with torch.no_grad():
            for _, tensor, saved in self._tensors:
                if not _same(tensor, saved):
                    tensor.copy_(saved)
        for param, grad in self._grads:
            if grad is None:
                param.grad = None
            elif param.grad is None or not _same(param.grad, grad):
                param.grad = grad.clone()
        for _, gen, state in self._generators:
            if not torch.equal(gen.get_state(), state):
                gen.set_state(state)

    def __enter__(self) -> ModuleSnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


_MISSING = object()
# restored by content (the dict objects stay the ones torch holds)
_SLOTS = frozenset({"_parameters", "_buffers", "_modules"})


def _generator_name(root: nn.Module, sub: nn.Module, attr: str) -> str:
    for name, candidate in root.named_modules():
        if candidate is sub:
            return f"{name}.{attr}" if name else attr
    return attr


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal values (NaN equals NaN), same shape."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))


# --------------------------------------------------------------------------- shared helpers
# (used by the sibling check modules too, so each rule is written once)


def _is_batchnorm_like(sub: nn.Module) -> bool:
    return isinstance(getattr(sub, "running_mean", None), torch.Tensor) and isinstance(
        getattr(sub, "running_var", None), torch.Tensor
    )


def _tracks_running_stats(sub: nn.Module) -> bool:
    """False only for a module that says ``track_running_stats = False`` (batch stats in eval)."""
    return getattr(sub, "track_running_stats", True) is not False


def _batchnorm_eval_skip(sub: nn.Module) -> str | None:
    """Why the eval output of BatchNorm-like ``sub`` has no F.batch_norm reference (None: it has)."""
    if len(sub._modules) > 0:
        return "skipped (not a leaf module)"
    if not _tracks_running_stats(sub):
        return "skipped (track_running_stats=False: batch statistics in eval)"
    eps = getattr(sub, "eps", None)
    if not isinstance(eps, Real) or isinstance(eps, bool) or not math.isfinite(eps) or eps < 0:
        return "skipped (no numeric eps)"
    mean, var = sub.running_mean, sub.running_var
    if not (mean.is_floating_point() and var.is_floating_point()):
        return "skipped (running statistics are not floating point)"
    if mean.dim() != 1 or var.shape != mean.shape:
        return "skipped (running statistics are not per-channel vectors)"
    for attr in ("weight", "bias"):
        value = getattr(sub, attr, None)
        if value is not None and (
            not isinstance(value, torch.Tensor)
            or not value.is_floating_point()
            or value.shape != mean.shape
        ):
            return f"skipped ({attr} is not a per-channel vector)"
    return None


# --------------------------------------------------------------------------- global RNG


def _global_rng_states() -> dict[str, torch.Tensor]:
    states = {"torch global CPU generator": torch.random.get_rng_state()}
    # Only an initialized CUDA runtime (any CUDA tensor or generator use initializes it):
    # get_rng_state_all() would initialize CUDA eagerly for a CPU-only check, and in a
    # forked child process fail with "Cannot re-initialize CUDA".
    if torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"torch global cuda:{index} generator"] = state
    return states


def _set_global_rng_states(states: Mapping[str, torch.Tensor]) -> None:
    torch.random.set_rng_state(states["torch global CPU generator"])
    cuda = [s for k, s in states.items() if k.startswith("torch global cuda:")]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------- the contract


def _eval_reference(sub: nn.Module, inp: torch.Tensor) -> tuple[torch.Tensor, str] | None:
    """What a dropout-like layer must compute in eval: the identity, or its plain layer."""
    weight = getattr(sub, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return inp, "identity"
    bias = getattr(sub, "bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    if weight.dim() == 2:
        return F.linear(inp, weight, bias), "F.linear"
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}.get(weight.dim())
    if conv is None or getattr(sub, "padding_mode", "zeros") != "zeros":
        return None
    kwargs = {
        key: getattr(sub, key)
        for key in ("stride", "padding", "dilation", "groups")
        if hasattr(sub, key)
    }
    return conv(inp, weight, bias, **kwargs), conv.__name__


def _expected_running_stats(
    sub: nn.Module, inputs: list[torch.Tensor], before: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Float64 running mean/var after ``inputs`` by torch's rule, their bounds, and power.

    ``x̂ ← (1 − m)·x̂ + m·x_t`` with the unbiased batch variance; ``momentum=None``
    means ``m = 1/num_batches_tracked`` (a cumulative average).
    """
    mean = before["running_mean"].double()
    var = before["running_var"].double()
    tracked = before.get("num_batches_tracked")
    count = None if tracked is None else int(tracked)
    tol = _common.looser(*(t.dtype for t in inputs), sub.running_var.dtype)
    mean_scale = mean.abs()
    var_scale = var.abs()
    biased_gap = torch.full_like(var, math.inf)
    for inp in inputs:
        x = inp.detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        batch_var, batch_mean = torch.var_mean(x, dim=dims, correction=1)
        if count is not None:
            count += 1
        momentum = sub.momentum if sub.momentum is not None else 1.0 / count
        mean = (1 - momentum) * mean + momentum * batch_mean
        var = (1 - momentum) * var + momentum * batch_var
        sd = batch_var.sqrt()
        # float32 batch statistics carry ~u·κ relative error, κ = (|μ| + σ)/σ: the
        # variance's absolute error scales like κ·σ² = (|μ| + σ)·σ; atol covers it with margin
        mean_scale = torch.maximum(mean_scale, batch_mean.abs() + sd)
        var_scale = torch.maximum(var_scale, (batch_mean.abs() + sd) * sd)
        biased_gap = torch.minimum(biased_gap, momentum * batch_var / n)
    mean_bound = tol.atol * mean_scale + tol.rtol * mean.abs()
    var_bound = tol.atol * var_scale + tol.rtol * var.abs()
    power = float((biased_gap / var_bound).min())
    return mean, var, mean_bound, var_bound, power


@register_check("train_eval_contract")
def check_train_eval_contract(
    module: nn.Module, x: torch.Tensor, *, seed: int = 0, n_repeats: int = 3
) -> CheckResult:
    """Check the train/eval contract of ``module`` on the batch ``x``.

    In eval mode (``n_repeats`` forwards of ``x``):

    * every dropout-like leaf (a leaf with a probability attribute ``p``, or with
      ``last_mask`` / ``sample_mask``) returns its input unchanged (bitwise) or, when
      it holds a ``weight`` (DropConnect), ``F.linear`` / ``F.conv{1,2,3}d`` of its
      input with its weights and bias (within the dtype tolerance);
    * no parameter or buffer changes (bitwise; e.g. BatchNorm running statistics);
    * no random number is drawn: torch's global CPU generator, every CUDA
      generator (when CUDA is already initialized; the check never initializes it)
      and every ``torch.Generator`` held as a submodule attribute keep their state;
    * every BatchNorm-like leaf (``running_mean`` / ``running_var`` tensors, a
      numeric ``eps``, ``track_running_stats`` not False) returns
      ``F.batch_norm(input, running_mean, running_var, weight, bias, training=False,
      eps=eps)`` of its (first) input, computed here in float64, within
      ``atol·κ + rtol·|y|`` with ``κ = (|x| + |running_mean|)·|weight|/√(running_var + ε)
      + |bias|`` elementwise (the float64 reference's conditioning) and the loosest
      tolerance of the dtypes involved. This is checked on the eval forward above
      and once more after the train-mode forward, when the running statistics are
      no longer torch's initial (0, 1), which a layer ignoring them reproduces;
    * the outputs of the repeats agree bitwise on CPU, within
      ``atol·rms(y) + rtol·|y|`` on CUDA (its kernels promise no bitwise repeatability).

    In train mode (one forward, global RNG seeded from ``seed``), every
    BatchNorm-like submodule (``running_mean`` and ``running_var`` tensors) updates
    ``x̂ ← (1 − m)·x̂ + m·x_t`` with the batch mean and the UNBIASED batch variance
    of the input it received (channel dim 1), ``m = momentum`` or, for
    ``momentum=None``, ``1/num_batches_tracked``; ``num_batches_tracked`` grows by
    one per call. The expected update is computed here in float64. A module with
    ``track_running_stats = False`` is exempt from both BatchNorm rules.

    The module's modes, parameters, buffers, gradients, held generators and the
    global RNG states are restored afterwards, also when the check fails.

    Parameters
    ----------
    module : any ``nn.Module`` returning a tensor.
    x : floating-point input batch (batch-first), on the module's device.
        A biased ``running_var`` differs from the unbiased one by ``m·s²/n`` with
        ``n`` values per channel: keep ``n`` small (a few dozen) for power;
        ``details["biased_var_score"]`` reports the score a biased update would get.
    seed : seed of the train-mode forward's global RNG (dropout in train mode).
    n_repeats : number of eval forwards (>= 2).

    Returns
    -------
    CheckResult with ``statistic`` the largest normalized error of the
    tolerance-based comparisons (running-statistic updates, BatchNorm and
    DropConnect eval outputs, CUDA repeats; 0 when there are none), ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments (``x`` not a floating tensor with a batch dim, ``n_repeats`` < 2).
    PropertyViolation
        when any of the above fails.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    n_repeats = check_int("n_repeats", n_repeats, min_value=2)
    name = "check_train_eval_contract"
    reproduce = _common.reproduce(name, seed=seed, n_repeats=n_repeats)

    def fail(what: str, statistic: float, bound: float, **details: Any) -> None:
        __tracebackhide__ = True
        violation(
            name,
            what,
            statistic=statistic,
            bound=bound,
            seed=seed,
            reproduce=reproduce,
            details={"x": _common.describe(x), **details},
        )

    dropouts = [(n, m) for n, m in module.named_modules() if _common.is_dropout_like(m)]
    norms = [(n, m) for n, m in module.named_modules() if _is_batchnorm_like(m)]
    bn_report: dict[str, str] = {}
    bn_eval = []
    for sub_name, sub in norms:
        skip = _batchnorm_eval_skip(sub)
        if skip is None:
            bn_eval.append((sub_name, sub))
        else:
            bn_report[sub_name or "module"] = skip
    tol = tolerance(x.dtype)
    scores: dict[str, float] = {}
    details: dict[str, Any] = {"x": _common.describe(x), "eval_forwards": n_repeats}
    rng_before = _global_rng_states()
    with ModuleSnapshot(module) as snapshot:
        try:
            # ---- eval
            module.eval()
            seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            bn_seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            hooks = [m.register_forward_hook(_first_call_hook(seen, n)) for n, m in dropouts]
            hooks += [m.register_forward_hook(_first_call_hook(bn_seen, n)) for n, m in bn_eval]
            try:
                with torch.no_grad():
                    outputs = [
                        _common.output(module(x.clone()), "eval forward") for _ in range(n_repeats)
                    ]
            finally:
                for hook in hooks:
                    hook.remove()
            rng_changed = [
                k
                for k, s in _global_rng_states().items()
                if k in rng_before and not torch.equal(s, rng_before[k])
            ]
            generators_changed = snapshot.changed_generators()
            tensors_changed = snapshot.changed_tensors()

            checked_dropouts = {}
            for sub_name, sub in dropouts:
                if sub_name not in seen:
                    checked_dropouts[sub_name or "module"] = "not called"
                    continue
                inp, out = seen[sub_name]
                with torch.no_grad():
                    ref = _eval_reference(sub, inp)
                label = sub_name or "module"
                if ref is None or ref[0].shape != out.shape:
                    checked_dropouts[label] = "skipped (no plain reference)"
                    continue
                expected, kind = ref
                checked_dropouts[label] = kind
                if kind == "identity":
                    if not _same(out, expected):
                        diff = float(
                            (out.double() - expected.double()).abs().nan_to_num(nan=math.inf).max()
                        )
                        fail(
                            f"dropout-like layer {label!r} ({type(sub).__name__}) is not the "
                            "identity in eval mode",
                            diff,
                            0.0,
                            layer=label,
                        )
                    continue
                layer_tol = _common.looser(out.dtype, expected.dtype)
                bound = (
                    layer_tol.atol * _common.scale(expected)
                    + layer_tol.rtol * expected.double().abs()
                )
                score, index = _common.worst(_common.normalized_error(out, expected, bound))
                scores[f"{label} eval = {kind}"] = score
                if score > 1.0:
                    fail(
                        f"weight-dropping layer {label!r} ({type(sub).__name__}) differs from "
                        f"{kind} with its weights in eval mode",
                        score,
                        1.0,
                        layer=label,
                        index=index,
                        actual=float(out[index]),
                        expected=float(expected[index]),
                    )
            details["dropout_like"] = checked_dropouts

            if tensors_changed:
                worst = max(tensors_changed.values())
                fail(
                    "eval-mode forward changed the module's parameters/buffers: "
                    + ", ".join(sorted(tensors_changed)),
                    worst,
                    0.0,
                    changed=tensors_changed,
                )
            if rng_changed or generators_changed:
                fail(
                    "eval-mode forward drew random numbers from "
                    + ", ".join(rng_changed + generators_changed),
                    float(len(rng_changed) + len(generators_changed)),
                    0.0,
                    generators_changed=rng_changed + generators_changed,
                )

            first = outputs[0]
            for k, out in enumerate(outputs[1:], start=2):
                if out.shape != first.shape:
                    fail(
                        f"eval forward {k} returned shape {tuple(out.shape)}, forward 1 "
                        f"{tuple(first.shape)}",
                        math.inf,
                        0.0,
                    )
                if first.device.type == "cpu":
                    if not _same(out, first):
                        diff = float(
                            (out.double() - first.double()).abs().nan_to_num(nan=math.inf).max()
                        )
                        fail(
                            f"eval mode is not deterministic: forward {k} differs from forward 1 "
                            "(bitwise on CPU)",
                            diff,
                            0.0,
                        )
                else:
                    bound = tol.atol * _common.scale(first) + tol.rtol * first.double().abs()
                    score, index = _common.worst(_common.normalized_error(out, first, bound))
                    scores["eval repeat"] = max(scores.get("eval repeat", 0.0), score)
                    if score > 1.0:
                        fail(
                            f"eval mode is not deterministic: forward {k} differs from forward 1",
                            score,
                            1.0,
                            index=index,
                        )

            # ---- eval: BatchNorm-like layers normalize with their running statistics
            # (unchanged by the eval forwards: checked above)
            stats = _batchnorm_references(bn_eval)
            _check_batchnorm_eval(bn_eval, bn_seen, stats, "eval forward", scores, fail, bn_report)

            # ---- train: running statistics follow torch's update rule
            if norms:
                details["batchnorm_like"] = _check_running_updates(
                    module, x, norms, seed, scores, fail
                )

            # ---- eval again, now with running statistics moved off torch's initial (0, 1)
            if bn_eval:
                stats = _batchnorm_references(bn_eval)
                bn_seen = {}
                hooks = [m.register_forward_hook(_first_call_hook(bn_seen, n)) for n, m in bn_eval]
                module.eval()
                try:
                    with torch.no_grad(), _common.isolated_rng(seed, x.device):
                        _common.output(module(x.clone()), "eval forward after the train forward")
                finally:
                    for hook in hooks:
                        hook.remove()
                _check_batchnorm_eval(
                    bn_eval,
                    bn_seen,
                    stats,
                    "eval forward after the train-mode forward",
                    scores,
                    fail,
                    bn_report,
                )
            if bn_report:
                details["batchnorm_eval"] = bn_report
        finally:
            _set_global_rng_states(rng_before)

    statistic = max(scores.values(), default=0.0)
    details["scores"] = scores
    return CheckResult(
        check=name,
        statistic=statistic,
        bound=1.0,
        seed=seed,
        details=details,
        reproduce=reproduce,
    )


def _first_call_hook(store: dict[str, tuple[torch.Tensor, torch.Tensor]], key: str) -> Any:
    def hook(sub: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if (
            key not in store
            and args
            and isinstance(args[0], torch.Tensor)
            and isinstance(out, torch.Tensor)
        ):
            store[key] = (args[0].detach().clone(), out.detach().clone())

    return hook


_BatchNormStats = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _batchnorm_references(norms: list[tuple[str, nn.Module]]) -> dict[str, _BatchNormStats]:
    """Copies of each layer's running mean / variance, weight and bias, as they are now."""

    def copy(t: Any) -> torch.Tensor | None:
        return t.detach().clone() if isinstance(t, torch.Tensor) else None

    return {
        n: (
            m.running_mean.detach().clone(),
            m.running_var.detach().clone(),
            copy(getattr(m, "weight", None)),
            copy(getattr(m, "bias", None)),
        )
        for n, m in norms
    }


def _check_batchnorm_eval(
    norms: list[tuple[str, nn.Module]],
    seen: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    stats: Mapping[str, _BatchNormStats],
    when: str,
    scores: dict[str, float],
    fail: Any,
    report: dict[str, str],
) -> None:
    """Each layer's eval output against float64 ``F.batch_norm`` with its running statistics.

    The bound is ``atol·κ + rtol·|y|`` with ``κ = (|x| + |μ̂|)·|w|/√(σ̂² + ε) + |b|``
    elementwise: the size of the terms a kernel in the layer's dtype adds up, so
    cancellation (x close to μ̂) is allowed its rounding and nothing more.
    """
    __tracebackhide__ = True
    for sub_name, sub in norms:
        label = sub_name or "module"
        if sub_name not in seen:
            report.setdefault(label, f"not called in the {when}")
            continue
        inp, out = seen[sub_name]
        mean, var, weight, bias = stats[sub_name]
        if inp.dim() < 2 or inp.shape[1] != mean.numel() or out.shape != inp.shape:
            report[label] = "skipped (input is not (N, C, *) with C channels, or output shape)"
            continue
        eps = float(sub.eps)
        dtypes = [t.dtype for t in (inp, out, mean, var, weight, bias) if t is not None]
        try:
            tol = _common.looser(*dtypes)
        except ValueError:
            report[label] = "skipped (no tolerance for its dtypes)"
            continue
        x64 = inp.detach().double()
        w64 = None if weight is None else weight.double().to(x64.device)
        b64 = None if bias is None else bias.double().to(x64.device)
        mean64, var64 = mean.double().to(x64.device), var.double().to(x64.device)
        with torch.no_grad():
            expected = F.batch_norm(x64, mean64, var64, w64, b64, training=False, eps=eps)
            shape = (1, -1) + (1,) * (x64.dim() - 2)
            gain = (var64 + eps).rsqrt()
            if w64 is not None:
                gain = gain * w64.abs()
            kappa = (x64.abs() + mean64.abs().reshape(shape)) * gain.reshape(shape)
            if b64 is not None:
                kappa = kappa + b64.abs().reshape(shape)
            bound = tol.atol * kappa + tol.rtol * expected.abs()
        score, index = _common.worst(_common.normalized_error(out, expected, bound))
        key = f"{label} eval = F.batch_norm ({when})"
        scores[key] = score
        report[label] = "F.batch_norm with running statistics"
        if score > 1.0:
            fail(
                f"BatchNorm-like layer {label!r} ({type(sub).__name__}) does not compute "
                f"F.batch_norm with its running statistics in eval mode ({when}): "
                f"element {index} is {float(out[index]):.6g}, expected {float(expected[index]):.6g}",
                score,
                1.0,
                layer=label,
                index=index,
                actual=float(out[index]),
                expected=float(expected[index]),
                input=float(inp[index]),
                running_mean=float(mean[index[1]]),
                running_var=float(var[index[1]]),
                eps=eps,
            )


def _input_hook(store: list[torch.Tensor]) -> Any:
    def hook(sub: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            store.append(args[0].detach().clone())

    return hook


def _check_running_updates(
    module: nn.Module,
    x: torch.Tensor,
    norms: list[tuple[str, nn.Module]],
    seed: int,
    scores: dict[str, float],
    fail: Any,
) -> dict[str, str]:
    __tracebackhide__ = True
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    before = {
        n: {
            b: getattr(m, b).detach().clone()
            for b in buffers
            if isinstance(getattr(m, b, None), torch.Tensor)
        }
        for n, m in norms
    }
    inputs: dict[str, list[torch.Tensor]] = {n: [] for n, _ in norms}
    hooks = [m.register_forward_pre_hook(_input_hook(inputs[n])) for n, m in norms]
    module.train()
    try:
        with torch.no_grad(), _common.isolated_rng(seed, x.device):
            module(x.clone())
    finally:
        for hook in hooks:
            hook.remove()

    report = {}
    for sub_name, sub in norms:
        label = sub_name or "module"
        calls = inputs[sub_name]
        old = before[sub_name]
        if not calls:
            report[label] = "not called in train mode"
            continue
        if not _tracks_running_stats(sub):
            report[label] = "skipped (track_running_stats=False)"
            continue
        if "num_batches_tracked" in old:
            grown = int(sub.num_batches_tracked) - int(old["num_batches_tracked"])
            if grown != len(calls):
                fail(
                    f"{label!r}.num_batches_tracked grew by {grown} in train mode, "
                    f"expected {len(calls)} (one per call)",
                    float(abs(grown - len(calls))),
                    0.0,
                )
        has_rule = hasattr(sub, "momentum") and (
            (sub.momentum is None and "num_batches_tracked" in old)
            or isinstance(sub.momentum, Real)
        )
        if not has_rule or any(c.dim() < 2 for c in calls):
            if _same(sub.running_mean, old["running_mean"]) and _same(
                sub.running_var, old["running_var"]
            ):
                fail(
                    f"{label!r} did not update its running statistics in train mode",
                    0.0,
                    0.0,
                )
            report[label] = "changed (update rule unknown: no numeric momentum)"
            continue
        mean, var, mean_bound, var_bound, power = _expected_running_stats(sub, calls, old)
        for buffer, expected, bound in (
            ("running_mean", mean, mean_bound),
            ("running_var", var, var_bound),
        ):
            actual = getattr(sub, buffer)
            score, index = _common.worst(_common.normalized_error(actual, expected, bound))
            scores[f"{label}.{buffer} update"] = score
            if score > 1.0:
                rule = "unbiased batch variance" if buffer == "running_var" else "batch mean"
                fail(
                    f"{label!r}.{buffer} after a train-mode forward does not follow "
                    f"(1 - m)·old + m·({rule}) with m = {sub.momentum}",
                    score,
                    1.0,
                    channel=index,
                    actual=float(actual[index]),
                    expected=float(expected[index]),
                    before=float(old[buffer][index]),
                    biased_var_score=power,
                )
        report[label] = f"momentum {sub.momentum}: biased running_var would score {power:.3g}"
    return report
