"""The train/eval contract of a module, and the snapshot every check restores.

``check_train_eval_contract`` (docs/methods.md §Normalization contracts) runs a
module through eval → train → eval → train → eval and verifies what the switch
promises: no forward writes a parameter; eval forwards are deterministic, draw no
random numbers and change no buffer; dropout-like layers are the identity (or a
plain ``F.linear`` / ``F.conv*d`` with their weights) in eval; BatchNorm-like
layers compute the float64 normalization oracle with their batch statistics in
train mode and their running statistics in eval mode, and update those statistics
by torch's momentum formula with the unbiased batch variance; and a training
forward right after an eval forward reproduces the same forward before it.

:class:`ModuleSnapshot` records everything a forward may disturb (modes,
parameter and buffer values, gradients, module-held generators, public
attributes) and puts it back; the checks in :mod:`netprops.checks.normalization`
and this module run inside one, so a check never changes the module it checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from numbers import Real
from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice, check_int, check_type
from ..seeding import derive_seed
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
        self._parameter_names = {name for name, _ in module.named_parameters()}
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

    def changed_parameters(self) -> dict[str, float]:
        """Parameters whose values changed: name → max |after − before|."""
        return {k: v for k, v in self.changed_tensors().items() if k in self._parameter_names}

    def changed_buffers(self) -> dict[str, float]:
        """Buffers whose values changed: name → max |after − before|."""
        return {k: v for k, v in self.changed_tensors().items() if k not in self._parameter_names}

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


# --------------------------------------------------------------------------- what a layer is

#: What ``check_train_eval_contract(kind=...)`` may declare the module to be.
CONTRACT_KINDS = ("dropout", "batch", "instance")


def _has_running_stats(sub: nn.Module) -> bool:
    return isinstance(getattr(sub, "running_mean", None), torch.Tensor) and isinstance(
        getattr(sub, "running_var", None), torch.Tensor
    )


def _tracks_running_stats(sub: nn.Module) -> bool:
    """False only for a module that says ``track_running_stats = False`` (batch stats in eval)."""
    return getattr(sub, "track_running_stats", True) is not False


def _stats_kind(sub: nn.Module, declared: str | None) -> str | None:
    """``"batch"`` / ``"instance"`` for a BatchNorm-like layer, else None.

    Declared, recognized from torch's and netprops' classes, or (``"batch"``) from
    ``running_mean`` / ``running_var`` tensors.
    """
    if declared in ("batch", "instance"):
        return declared
    kind = _common.norm_kind(sub)
    if kind in ("batch", "instance"):
        return kind
    return "batch" if _has_running_stats(sub) else None


def _is_random_leaf_with_plain_layer(sub: nn.Module) -> bool:
    """A leaf holding a 2–5-dim ``weight``: its eval reference is its plain layer."""
    weight = getattr(sub, "weight", None)
    return isinstance(weight, torch.Tensor) and 2 <= weight.dim() <= 5


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
    sub: nn.Module, kind: str, inputs: list[torch.Tensor], before: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Float64 running mean/var after ``inputs`` by torch's rule, their bounds, and power.

    ``x̂ ← (1 − m)·x̂ + m·x_t`` with the unbiased batch variance; ``momentum=None``
    means ``m = 1/num_batches_tracked`` (a cumulative average). ``instance``: x_t is
    the mean over the examples of each example's statistics (torch's InstanceNorm
    updates once per example and averages), and ``momentum=None`` means no update.
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
        if kind == "instance":
            per_example = x.reshape(x.shape[0], x.shape[1], -1)
            n = per_example.shape[2]
            example_var, example_mean = torch.var_mean(per_example, dim=2, correction=1)
            batch_var, batch_mean = example_var.mean(0), example_mean.mean(0)
            momentum = sub.momentum if sub.momentum is not None else 0.0
        else:
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
    module: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
    n_repeats: int = 3,
    kind: str | None = None,
    eval_reference: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> CheckResult:
    """Check the train/eval contract of ``module`` on the batch ``x``: train → eval → train → eval.

    The sequence (docs/methods.md §Normalization contracts):

    1. **eval** — see 2 — then **train** (global RNG seeded from ``seed``): the reference
       training forward, and the same forward from the same state with other random
       draws (module-held generators re-seeded too). No forward may change a
       parameter (compared bitwise before and after each forward: e.g. a weight-drop
       mask written into the weight in place). Every BatchNorm-like layer's output
       equals float64 ``F.batch_norm(training=True)`` of its input with its weight,
       bias and ε (batch statistics, biased variance; per example for InstanceNorm)
       within ``atol·κ·|w| + rtol·(s·|w| + |b|)`` (see ``check_normalized``),
       and its running statistics follow ``x̂ ← (1 − m)·x̂ + m·x_t`` with the batch
       mean and the UNBIASED batch variance (``momentum=None``: ``m =
       1/num_batches_tracked``; InstanceNorm: the mean of the per-example statistics,
       no update for ``momentum=None``); ``num_batches_tracked`` grows by one per call
       (BatchNorm). A leaf whose output differs between the two forwards while its
       input does not is *random in train mode*; floating buffers that moved make a
       layer *stats-tracking* (``details``). The module's state is then put back.
    2. **eval** (``n_repeats`` forwards from the state the module came in with): no parameter or buffer changes (bitwise), no
       random number is drawn (torch's global CPU generator, CUDA generators when CUDA
       is initialized — the check never initializes it — and every ``torch.Generator``
       held by a submodule), the repeats agree (bitwise on CPU, within ``atol·rms(y) +
       rtol·|y|`` on CUDA); BatchNorm-like layers compute their running-statistics
       normalization (float64 oracle, elementwise ``κ = (|x| + |μ̂|)/√(σ̂² + ε)``) or,
       without tracked statistics, their batch-statistics one; dropout-like layers are
       the identity (bitwise) or, holding a ``weight``, ``F.linear`` /
       ``F.conv{1,2,3}d`` with it (dtype tolerance). Dropout-like means: a leaf with a
       probability ``p`` or a ``last_mask`` / ``sample_mask``, a leaf random in train
       mode holding a 2–5-dim ``weight``, or the module declared ``kind="dropout"``.
       Random leaves with no derivable reference (e.g. ``nn.RReLU``) are reported, not
       checked. ``eval_reference(x)``, when given, is what the module must compute in
       eval mode (dtype tolerance).
    3. **train again**, right after the eval forwards: the forward must not raise, and
       must reproduce step 1's output (bitwise on CPU, dtype tolerance on CUDA) and its
       buffers — a layer that caches something in eval, or switches a flag it never
       switches back, fails here.
    4. **eval again**: BatchNorm-like layers with their now-moved running statistics
       (which a layer ignoring them cannot match); a module whose buffers did not move
       must reproduce step 2's eval output.

    The module's modes, parameters, buffers, gradients, held generators and the
    global RNG states are restored afterwards, also when the check fails.

    Parameters
    ----------
    module : any ``nn.Module`` returning a tensor.
    x : floating-point input batch (batch-first), on the module's device.
        A biased ``running_var`` differs from the unbiased one by ``m·s²/n`` with
        ``n`` values per channel: keep ``n`` small (a few dozen) for power;
        ``details["batchnorm_like"]`` reports the score a biased update would get.
    seed : seed of the train-mode forwards' global RNG (dropout in train mode).
    n_repeats : number of eval forwards (>= 2).
    kind : declare ``module`` itself ``"dropout"`` (dropout-like: its eval output is
        ``eval_reference`` or, by default, the identity / its plain layer), ``"batch"``
        or ``"instance"`` (BatchNorm-like: channel dim 1, ``module.weight`` /
        ``module.bias`` / ``module.eps``); None: recognized as described above.
    eval_reference : ``x -> Tensor``, what ``module`` computes in eval mode.

    Returns
    -------
    CheckResult with ``statistic`` the largest normalized error of the
    tolerance-based comparisons (BatchNorm outputs and running-statistic updates,
    DropConnect and declared eval references, CUDA repeats; 0 when there are none),
    ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments (``x`` not a floating tensor with a batch dim, ``n_repeats`` < 2,
        an unknown ``kind``, ``eval_reference`` not callable); an exception of the first
        training forward propagates (the input does not suit the module).
    PropertyViolation
        when any of the above fails.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    n_repeats = check_int("n_repeats", n_repeats, min_value=2)
    if kind is not None:
        check_choice("kind", kind, CONTRACT_KINDS)
    if eval_reference is not None and not callable(eval_reference):
        raise TypeError(
            f"eval_reference must be a callable x -> Tensor or None, got {eval_reference!r}"
        )
    name = "check_train_eval_contract"
    options: dict[str, Any] = {"seed": seed, "n_repeats": n_repeats}
    if kind is not None:
        options["kind"] = kind
    reproduce = _common.reproduce(name, **options)
    if eval_reference is not None:
        reproduce = reproduce[:-1] + ", eval_reference=...)"

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

    leaves = [(n, m) for n, m in module.named_modules() if len(m._modules) == 0]
    watched = leaves if len(module._modules) == 0 else [("", module), *leaves]
    norms = [
        (n, m, k)
        for n, m in module.named_modules()
        if (k := _stats_kind(m, kind if m is module else None)) is not None
    ]
    running_norms = [(n, m, k) for n, m, k in norms if _has_running_stats(m)]
    tol = tolerance(x.dtype)
    scores: dict[str, float] = {}
    details: dict[str, Any] = {"x": _common.describe(x), "eval_forwards": n_repeats}
    rng_before = _global_rng_states()
    with ModuleSnapshot(module) as snapshot:
        try:
            # ---- 1. eval, from the state the module came in with
            module.eval()
            seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            with _recording(watched, seen), torch.no_grad():
                outputs = [
                    _common.output(module(x.clone()), "eval forward") for _ in range(n_repeats)
                ]
            rng_changed = [
                k
                for k, s in _global_rng_states().items()
                if k in rng_before and not torch.equal(s, rng_before[k])
            ]
            generators_changed = snapshot.changed_generators()
            tensors_changed = snapshot.changed_tensors()

            declared = _dropout_like(watched, module, kind, set())[0]
            dropout_report = _check_dropouts_in_eval(declared, seen, scores, fail)
            if eval_reference is not None:
                _check_eval_reference(eval_reference, x, outputs[0], scores, fail)
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
            for k, out in enumerate(outputs[1:], start=2):
                _check_repeat(
                    out,
                    outputs[0],
                    f"eval mode is not deterministic: forward {k} differs from forward 1",
                    "eval repeat",
                    tol,
                    scores,
                    fail,
                )
            eval_report: dict[str, str] = {}
            _check_norms_in_eval(norms, seen, "eval forward", scores, fail, eval_report)

            # ---- 2. train from the same state: the reference forward (state put back after)
            snapshot.restore()
            module.train()
            first: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            second: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            inputs: dict[str, list[torch.Tensor]] = {n: [] for n, _, _ in running_norms}
            before = _running_buffers(running_norms)
            with torch.no_grad(), _common.isolated_rng(seed, x.device):
                with _recording(watched, first, running_norms, inputs):
                    y_train = _common.output(module(x.clone()), "train forward")
                _check_parameters(snapshot, "the train-mode forward", fail)
                buffers_train = {n: b.detach().clone() for n, b in module.named_buffers()}
                tracking = _stats_tracking(snapshot)
                if running_norms:
                    details["batchnorm_like"] = _check_running_updates(
                        running_norms, inputs, before, scores, fail
                    )
                train_report: dict[str, str] = {}
                for sub_name, sub, sub_kind in norms:
                    label = sub_name or "module"
                    if sub_name not in first:
                        train_report[label] = "not called in train mode"
                        continue
                    inp, out = first[sub_name]
                    train_report[label] = _check_norm_output(
                        label, sub, sub_kind, inp, out, None, "train", scores, fail
                    )
                if train_report:
                    details["batchnorm_train"] = train_report
            if tracking:
                details["stats_tracking"] = tracking
            # the same forward from the same state with other random draws: a leaf whose
            # output changes while its input does not is random in train mode
            snapshot.restore()
            module.train()
            other = derive_seed(seed, name, "other draws")
            with (
                torch.no_grad(),
                _common.seeded_module(module, other, x.device),
                _recording(watched, second),
            ):
                module(x.clone())
            _check_parameters(snapshot, "the train-mode forward", fail)
            snapshot.restore()

            # ---- dropout-like layers and declared eval references
            random_leaves = {
                n
                for n in first.keys() & second.keys()
                if _same(first[n][0], second[n][0]) and not _same(first[n][1], second[n][1])
            }
            dropouts, stochastic = _dropout_like(watched, module, kind, random_leaves)
            if stochastic:
                details["random_in_train"] = stochastic
            found = [(n, m) for n, m in dropouts if (n or "module") not in dropout_report]
            dropout_report.update(_check_dropouts_in_eval(found, seen, scores, fail))
            details["dropout_like"] = dropout_report

            # an eval forward, so that the next train forward comes right after one
            module.eval()
            with torch.no_grad():
                module(x.clone())

            # ---- 3. train again, right after an eval forward (nothing restored)
            module.train()
            with torch.no_grad(), _common.isolated_rng(seed, x.device):
                try:
                    y_again = _common.output(module(x.clone()), "train forward after eval")
                except Exception as exc:
                    fail(
                        f"the train-mode forward after the eval-mode forwards raised "
                        f"{type(exc).__name__}: {exc} (the same forward before them ran)",
                        math.inf,
                        0.0,
                    )
            _check_parameters(snapshot, "the train-mode forward after eval", fail)
            _check_repeat(
                y_again,
                y_train,
                "the train-mode forward after the eval-mode forwards differs from the same "
                "forward before them (same input, parameters, buffers and seed): the layer "
                "keeps state across the switch to eval and back",
                "train after eval",
                tol,
                scores,
                fail,
            )
            moved = [
                n
                for n, b in module.named_buffers()
                if n in buffers_train and not _same(b, buffers_train[n])
            ]
            if moved:
                fail(
                    "the train-mode forward after the eval-mode forwards left buffers "
                    f"{moved} different from the same forward before them",
                    float(len(moved)),
                    0.0,
                )

            # ---- 4. eval again, now with running statistics moved by the train forward
            module.eval()
            seen = {}
            with _recording(watched, seen), torch.no_grad():
                y_eval = _common.output(module(x.clone()), "eval forward after training")
            if not snapshot.changed_buffers():
                _check_repeat(
                    y_eval,
                    outputs[0],
                    "the eval-mode forward after a train-mode forward differs from the one "
                    "before it although no buffer changed",
                    "eval after train",
                    tol,
                    scores,
                    fail,
                )
            _check_norms_in_eval(
                norms, seen, "eval forward after the train-mode forward", scores, fail, eval_report
            )
            if eval_report:
                details["batchnorm_eval"] = eval_report
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


# --------------------------------------------------------------------------- its steps


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


def _input_hook(store: list[torch.Tensor]) -> Any:
    def hook(sub: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            store.append(args[0].detach().clone())

    return hook


@contextmanager
def _recording(
    watched: list[tuple[str, nn.Module]],
    first: dict[str, tuple[torch.Tensor, torch.Tensor]],
    norms: list[tuple[str, nn.Module, str]] = (),  # type: ignore[assignment]
    inputs: dict[str, list[torch.Tensor]] | None = None,
) -> Iterator[None]:
    """Record each watched module's first (input, output), and every input of ``norms``."""
    hooks = [m.register_forward_hook(_first_call_hook(first, n)) for n, m in watched]
    if inputs is not None:
        hooks += [m.register_forward_pre_hook(_input_hook(inputs[n])) for n, m, _ in norms]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _check_parameters(snapshot: ModuleSnapshot, when: str, fail: Any) -> None:
    __tracebackhide__ = True
    changed = snapshot.changed_parameters()
    if changed:
        fail(
            f"{when} changed the module's parameters {sorted(changed)} (a forward must not "
            "write its weights, e.g. a weight-drop mask applied in place)",
            max(changed.values()),
            0.0,
            changed=changed,
        )


def _stats_tracking(snapshot: ModuleSnapshot) -> dict[str, list[str]]:
    """Submodule → its floating buffers that the train forward moved."""
    tracking: dict[str, list[str]] = {}
    for name in snapshot.changed_buffers():
        if snapshot.saved(name).is_floating_point():
            owner, _, buffer = name.rpartition(".")
            tracking.setdefault(owner or "module", []).append(buffer)
    return tracking


def _check_repeat(
    actual: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    key: str,
    tol: Any,
    scores: dict[str, float],
    fail: Any,
) -> None:
    """The same computation again: bitwise on CPU, within the dtype tolerance elsewhere."""
    __tracebackhide__ = True
    if actual.shape != expected.shape:
        fail(f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}", math.inf, 0.0)
    if expected.device.type == "cpu":
        if not _same(actual, expected):
            diff = (actual.double() - expected.double()).abs().nan_to_num(nan=math.inf)
            fail(f"{what} (bitwise on CPU)", float(diff.max()), 0.0)
        return
    bound = tol.atol * _common.scale(expected) + tol.rtol * expected.double().abs()
    score, index = _common.worst(_common.normalized_error(actual, expected, bound))
    scores[key] = max(scores.get(key, 0.0), score)
    if score > 1.0:
        fail(what, score, 1.0, index=index)


def _running_buffers(norms: list[tuple[str, nn.Module, str]]) -> dict[str, dict[str, torch.Tensor]]:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return {
        n: {
            b: getattr(m, b).detach().clone()
            for b in buffers
            if isinstance(getattr(m, b, None), torch.Tensor)
        }
        for n, m, _ in norms
    }


def _check_norm_output(
    label: str,
    sub: nn.Module,
    kind: str,
    inp: torch.Tensor,
    out: torch.Tensor,
    running: tuple[torch.Tensor, torch.Tensor] | None,
    when: str,
    scores: dict[str, float],
    fail: Any,
) -> str:
    """One BatchNorm-like output against the float64 oracle; returns what was checked."""
    __tracebackhide__ = True
    eps = getattr(sub, "eps", None)
    if not isinstance(eps, Real) or isinstance(eps, bool) or not math.isfinite(eps) or eps < 0:
        return "skipped (no numeric eps)"
    if not inp.is_floating_point() or inp.dim() < (3 if kind == "instance" else 2):
        return "skipped (input is not (N, C, *))"
    if out.shape != inp.shape:
        return "skipped (output shape differs from the input's)"
    channels = inp.shape[1]
    tensors = [getattr(sub, "weight", None), getattr(sub, "bias", None), *(running or ())]
    for t in tensors:
        if t is not None and not (
            isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() == channels
        ):
            return f"skipped (affine or statistics are not {channels}-channel vectors)"
    weight, bias = tensors[0], tensors[1]
    layout = _common.NormLayout(kind=kind, eps=float(eps))
    ref = _common.norm_reference(inp, layout, weight=weight, bias=bias, running=running)
    try:
        tol = _common.looser(*(t.dtype for t in (inp, out, *tensors) if t is not None))
    except ValueError:
        return "skipped (no tolerance for its dtypes)"
    bound = ref.bound(tol.rtol, layout.kappa_atol(inp.dtype, tol))
    valid = torch.isfinite(ref.expected) & torch.isfinite(bound)
    err = _common.normalized_error(out, ref.expected, bound)
    score, index = _common.worst(torch.where(valid, err, torch.zeros_like(err)))
    statistics = "running statistics" if running is not None else "batch statistics"
    scores[f"{label} {when} = F.{kind}_norm ({statistics})"] = score
    if score > 1.0:
        fail(
            f"BatchNorm-like layer {label!r} ({type(sub).__name__}) does not compute "
            f"F.{kind}_norm with its {statistics} in {when}: element {index} is "
            f"{float(out[index]):.6g}, expected {float(ref.expected[index]):.6g}",
            score,
            1.0,
            layer=label,
            index=index,
            actual=float(out[index]),
            expected=float(ref.expected[index]),
            input=float(inp[index]),
            running_mean=None if running is None else float(running[0][index[1]]),
            running_var=None if running is None else float(running[1][index[1]]),
            eps=float(eps),
        )
    return f"F.{kind}_norm with {statistics}"


def _check_norms_in_eval(
    norms: list[tuple[str, nn.Module, str]],
    seen: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    when: str,
    scores: dict[str, float],
    fail: Any,
    report: dict[str, str],
) -> None:
    """BatchNorm-like eval outputs: running statistics when tracked, batch statistics when the
    layer says ``track_running_stats = False``; skipped for statistics under other names."""
    __tracebackhide__ = True
    for sub_name, sub, kind in norms:
        label = sub_name or "module"
        if sub_name not in seen:
            report.setdefault(label, f"not called in the {when}")
            continue
        if len(sub._modules) > 0:
            report[label] = "skipped (not a leaf module)"
            continue
        running = None
        if _tracks_running_stats(sub) and _has_running_stats(sub):
            running = (sub.running_mean.detach().clone(), sub.running_var.detach().clone())
        elif _tracks_running_stats(sub):
            report[label] = "skipped (statistics not in running_mean / running_var)"
            continue
        inp, out = seen[sub_name]
        checked = _check_norm_output(label, sub, kind, inp, out, running, when, scores, fail)
        if running is None and not checked.startswith("skipped"):
            checked += " (track_running_stats=False)"
        report[label] = checked


def _dropout_like(
    watched: list[tuple[str, nn.Module]],
    module: nn.Module,
    kind: str | None,
    random_leaves: set[str],
) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """Dropout-like layers (declared, by attribute, or random with a plain layer), and the
    random leaves without a derivable eval reference."""
    dropouts, stochastic = [], {}
    for sub_name, sub in watched:
        declared = sub is module and kind == "dropout"
        if sub is module and not declared and len(sub._modules) > 0:
            continue
        label = sub_name or "module"
        if declared or _common.is_dropout_like(sub):
            dropouts.append((sub_name, sub))
        elif sub_name in random_leaves:
            if _is_random_leaf_with_plain_layer(sub):
                dropouts.append((sub_name, sub))
                stochastic[label] = "random in train mode: eval must be its plain layer"
            else:
                stochastic[label] = (
                    "random in train mode, no eval reference derivable (declare it with "
                    "kind='dropout' / eval_reference= to have it checked)"
                )
    return dropouts, stochastic


def _check_dropouts_in_eval(
    dropouts: list[tuple[str, nn.Module]],
    seen: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    scores: dict[str, float],
    fail: Any,
) -> dict[str, str]:
    __tracebackhide__ = True
    checked = {}
    for sub_name, sub in dropouts:
        label = sub_name or "module"
        if sub_name not in seen:
            checked[label] = "not called"
            continue
        inp, out = seen[sub_name]
        with torch.no_grad():
            ref = _eval_reference(sub, inp)
        if ref is None or ref[0].shape != out.shape:
            checked[label] = "skipped (no plain reference)"
            continue
        expected, reference = ref
        checked[label] = reference
        if reference == "identity":
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
        bound = layer_tol.atol * _common.scale(expected) + layer_tol.rtol * expected.double().abs()
        score, index = _common.worst(_common.normalized_error(out, expected, bound))
        scores[f"{label} eval = {reference}"] = score
        if score > 1.0:
            fail(
                f"weight-dropping layer {label!r} ({type(sub).__name__}) differs from "
                f"{reference} with its weights in eval mode",
                score,
                1.0,
                layer=label,
                index=index,
                actual=float(out[index]),
                expected=float(expected[index]),
            )
    return checked


def _check_eval_reference(
    eval_reference: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    out: torch.Tensor,
    scores: dict[str, float],
    fail: Any,
) -> None:
    __tracebackhide__ = True
    with torch.no_grad():
        expected = _common.output(eval_reference(x.clone()), "eval_reference")
    if expected.shape != out.shape:
        raise ValueError(
            f"eval_reference returned shape {tuple(expected.shape)}, the module's eval "
            f"output has shape {tuple(out.shape)}"
        )
    tol = _common.looser(out.dtype, expected.dtype)
    bound = tol.atol * _common.scale(expected) + tol.rtol * expected.double().abs()
    score, index = _common.worst(_common.normalized_error(out, expected, bound))
    scores["eval = eval_reference"] = score
    if score > 1.0:
        fail(
            f"the eval-mode output differs from eval_reference(x) at element {index}: "
            f"{float(out[index]):.6g} vs {float(expected[index]):.6g}",
            score,
            1.0,
            index=index,
        )


def _check_running_updates(
    norms: list[tuple[str, nn.Module, str]],
    inputs: Mapping[str, list[torch.Tensor]],
    before: Mapping[str, dict[str, torch.Tensor]],
    scores: dict[str, float],
    fail: Any,
) -> dict[str, str]:
    """Running statistics after the train forward (whose inputs are ``inputs``) vs torch's rule."""
    __tracebackhide__ = True
    report = {}
    for sub_name, sub, kind in norms:
        label = sub_name or "module"
        calls = inputs[sub_name]
        old = before[sub_name]
        if not calls:
            report[label] = "not called in train mode"
            continue
        if not _tracks_running_stats(sub):
            report[label] = "skipped (track_running_stats=False)"
            continue
        if "num_batches_tracked" in old and kind == "batch":
            grown = int(sub.num_batches_tracked) - int(old["num_batches_tracked"])
            if grown != len(calls):
                fail(
                    f"{label!r}.num_batches_tracked grew by {grown} in train mode, "
                    f"expected {len(calls)} (one per call)",
                    float(abs(grown - len(calls))),
                    0.0,
                )
        has_rule = hasattr(sub, "momentum") and (
            (sub.momentum is None and ("num_batches_tracked" in old or kind == "instance"))
            or isinstance(sub.momentum, Real)
        )
        min_dims = 3 if kind == "instance" else 2
        if not has_rule or any(c.dim() < min_dims for c in calls):
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
        mean, var, mean_bound, var_bound, power = _expected_running_stats(sub, kind, calls, old)
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
