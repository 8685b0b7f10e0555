"""Short, reproducible training runs over device-resident tensors.

:func:`train` runs a classifier on a :class:`netprops.data.Data` and returns a
:class:`History` (per-step train loss, evaluations, per-layer gradient norms,
timing) that round-trips through JSON, so convergence gates can store it.

The loop is built for short runs where per-step overhead matters: batches are
gathered with ``index_select`` from the normalized training tensor (already on
the device, converted once per split and dtype and cached by
:class:`netprops.data.Split`, subsets included) into a preallocated buffer, in
a per-epoch permutation drawn from a seeded CPU generator (the same batches on
every device; each epoch's labels are gathered once). The optimizer is the
fused (single-kernel) torch implementation where available. Tracking costs one
device op per step and quantity (the loss, one ``_foreach_norm`` over the
gradients, the batch's argmax); grouping the norms by layer and counting
correct predictions run in batch when values are read back, once per
evaluation. No DataLoader, PIL, per-sample Python, host sync inside an epoch or
global RNG. With the same ``seed`` and an identically initialized model, two
CPU runs give the same History bit for bit (timings aside).

A :class:`netprops.monitor.Monitor` (``monitor=``) runs the training-dynamics
checks on every k-th step of the live training and leaves its report in
``History.monitor``; without one, the loop does no monitoring work at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Data, Split
from .devices import resolve_device
from .errors import (
    check_choice,
    check_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_type,
)
from .monitor import Monitor, MonitorReport, active_monitor
from .seeding import derive_seed, make_generator

__all__ = ["OPTIMIZERS", "TRACKABLE", "History", "evaluate", "make_optimizer", "train"]

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd_momentum")
TRACKABLE = ("loss", "accuracy", "grad_norms")

_HISTORY_FORMAT = "netprops.history"
_HISTORY_VERSION = 1
_EVAL_BATCH = 1000
_SGD_MOMENTUM = 0.9
_TINY = torch.finfo(torch.float32).tiny  # floor for log(loss) when a loss underflows to 0


@dataclass
class History:
    """What happened during one :func:`train` run.

    Attributes
    ----------
    train_loss : list of float
        Mini-batch training loss at every step (empty unless ``"loss"`` was tracked).
    eval_steps : list of int
        Step count at each evaluation; the last one is the end of training.
    test_accuracy, test_loss : list of float
        Test-set accuracy and mean cross-entropy at each evaluation.
    train_accuracy : list of float
        Accuracy on the training batches seen since the previous evaluation
        (a running estimate, not a full pass), at each evaluation, when
        ``"accuracy"`` was tracked.
    grad_norms : dict of str to list of float
        For every module owning parameters (by qualified name), the L2 norm of
        its parameters' gradients at every step, before clipping, when
        ``"grad_norms"`` was tracked.
    steps : int
        Optimizer steps taken.
    wall_time_s : float
        Time of the whole call (setup and evaluations included).
    train_time_s : float
        Time spent in training steps only (setup and evaluations excluded).
    samples_per_s : float
        Training examples processed per second of ``train_time_s``.
    seed : int
    config : dict
        The arguments and environment of the run (JSON-serializable).
    monitor : MonitorReport or None
        What the live monitor saw (:mod:`netprops.monitor`), when the run had one.
    """

    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    grad_norms: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    samples_per_s: float = 0.0
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    monitor: MonitorReport | None = None

    @property
    def final_test_accuracy(self) -> float:
        """Test accuracy at the end of training."""
        if not self.test_accuracy:
            raise ValueError("this History holds no evaluation")
        return self.test_accuracy[-1]

    def area_under_log_loss(self) -> float:
        """Mean of ``log(train_loss)`` over all steps: a low-noise convergence metric.

        ``(1/S) Σ_s log L_s`` (docs/methods.md §Convergence gate); losses that underflow to 0 are
        floored at the smallest normal float32.

        Raises
        ------
        ValueError
            if no training loss was recorded (``"loss"`` not tracked).
        """
        if not self.train_loss:
            raise ValueError("no training loss recorded: train with track including 'loss'")
        return math.fsum(math.log(max(loss, _TINY)) for loss in self.train_loss) / len(
            self.train_loss
        )

    def steps_to_target(self, accuracy: float) -> int | float:
        """First evaluation step whose test accuracy reaches ``accuracy``; ``math.inf`` if none.

        ``inf`` for a run that never converged ranks it after every run that
        did (a rank test then compares them, docs/methods.md §Convergence gate).
        """
        accuracy = check_probability("accuracy", accuracy, allow_one=True)
        for step, acc in zip(self.eval_steps, self.test_accuracy, strict=True):
            if acc >= accuracy:
                return step
        return math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, tagged with a format name and version."""
        payload = asdict(self)
        payload["monitor"] = None if self.monitor is None else self.monitor.to_dict()
        return {"format": _HISTORY_FORMAT, "version": _HISTORY_VERSION, **payload}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            if the payload is not a History of a version this code reads.
        """
        check_type("payload", payload, dict)
        if payload.get("format") != _HISTORY_FORMAT or payload.get("version") != _HISTORY_VERSION:
            raise ValueError(
                f"payload must be a {_HISTORY_FORMAT!r} of version {_HISTORY_VERSION}, got "
                f"format={payload.get('format')!r}, version={payload.get('version')!r}"
            )
        fields = {k: v for k, v in payload.items() if k not in ("format", "version")}
        known = set(cls.__dataclass_fields__)
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"payload has unknown History fields {sorted(unknown)}")
        fields["grad_norms"] = {k: list(v) for k, v in fields.get("grad_norms", {}).items()}
        if fields.get("monitor") is not None:
            fields["monitor"] = MonitorReport.from_dict(fields["monitor"])
        return cls(**fields)

    def to_json(self, **kwargs: Any) -> str:
        """Serialize to JSON (floats round-trip exactly)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        parts = [f"History: {self.steps} steps, seed {self.seed}"]
        if self.test_accuracy:
            parts.append(
                f"test accuracy {self.test_accuracy[-1]:.4f}, test loss {self.test_loss[-1]:.4f}"
            )
        if self.train_loss:
            parts.append(f"last train loss {self.train_loss[-1]:.4f}")
        parts.append(f"{self.train_time_s:.3f} s training ({self.samples_per_s:,.0f} samples/s)")
        if self.monitor is not None:
            parts.append(self.monitor.summary())
        return "; ".join(parts)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], *, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Build one of :data:`OPTIMIZERS`, fused when the parameters allow it.

    ``"sgd_momentum"`` is SGD with momentum 0.9. Fused kernels update all
    parameters in one pass (the per-parameter Python loop of the default
    implementation dominates short CPU steps); when torch refuses them for
    these parameters, the ``foreach`` implementation is used.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    lr = check_positive_float("lr", lr)
    weight_decay = check_positive_float("weight_decay", weight_decay, allow_zero=True)
    params = list(params)
    builders: dict[str, Callable[..., torch.optim.Optimizer]] = {
        "adam": lambda **kw: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kw),
        "adamw": lambda **kw: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **kw),
        "sgd": lambda **kw: torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, **kw),
        "sgd_momentum": lambda **kw: torch.optim.SGD(
            params, lr=lr, momentum=_SGD_MOMENTUM, weight_decay=weight_decay, **kw
        ),
    }
    try:
        return builders[name](fused=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        log.debug("fused %s unavailable (%s); using foreach", name, exc)
        return builders[name](foreach=True)


class _DirectFusedAdam:
    """Adam/AdamW as one call to torch's fused kernel per step.

    The same kernel, arguments and state as ``torch.optim.Adam(fused=True)``
    (so the same numbers, bit for bit), minus the optimizer's per-step Python
    bookkeeping (parameter grouping, state lookups, hooks), which costs about
    as much as the kernel itself for a small model on a CPU.
    """

    def __init__(
        self, params: list[nn.Parameter], *, lr: float, weight_decay: float, decoupled: bool
    ):
        self.params = params
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        # Every parameter has taken the same number of steps: one shared counter,
        # incremented once per step (torch keeps one per parameter and pays a
        # per-tensor scalar add for it).
        self.step_count = torch.zeros((), dtype=torch.float32, device=params[0].device)
        self.state_steps = [self.step_count] * len(params)
        self.shared_steps = True
        self.kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        self.options = {
            "lr": lr,
            "beta1": 0.9,
            "beta2": 0.999,
            "weight_decay": weight_decay,
            "eps": 1e-8,
            "amsgrad": False,
            "maximize": False,
        }

    @classmethod
    def supports(cls, params: list[nn.Parameter]) -> bool:
        if not (hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")):
            return False
        first = params[0]
        return first.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) and all(
            p.device == first.device and p.dtype == first.dtype and p.layout == torch.strided
            for p in params
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.shared_steps and all(g is not None for g in grads):
            self.step_count.add_(1)
            self.kernel(
                self.params,
                grads,
                self.exp_avg,
                self.exp_avg_sq,
                [],
                self.state_steps,
                **self.options,
            )
            return
        # Some parameter got no gradient (unused by this forward): like torch,
        # skip it and keep per-parameter step counts from now on.
        if self.shared_steps:
            self.state_steps = [self.step_count.clone() for _ in self.params]
            self.shared_steps = False
        keep = [i for i, g in enumerate(grads) if g is not None]
        if not keep:
            return
        groups = (self.params, grads, self.exp_avg, self.exp_avg_sq, self.state_steps)
        params, grads, exp_avg, exp_avg_sq, steps = ([x[i] for i in keep] for x in groups)
        torch._foreach_add_(steps, 1)
        self.kernel(params, grads, exp_avg, exp_avg_sq, [], steps, **self.options)


def _engine_optimizer(
    name: str, params: list[nn.Parameter], *, lr: float, weight_decay: float
) -> tuple[Any, str]:
    """The optimizer :func:`train` steps, and a label for the implementation used."""
    if name in ("adam", "adamw") and _DirectFusedAdam.supports(params):
        return (
            _DirectFusedAdam(params, lr=lr, weight_decay=weight_decay, decoupled=name == "adamw"),
            "fused kernel (direct)",
        )
    opt = make_optimizer(name, params, lr=lr, weight_decay=weight_decay)
    return opt, "torch.optim fused" if opt.defaults.get("fused") else "torch.optim foreach"


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def _progress_bar(show: bool, total: int, desc: str) -> Any:
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is an optional extra
        log.info("progress requested but tqdm is not installed")
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)


def _layer_params(model: nn.Module) -> tuple[list[str], list[nn.Parameter], torch.Tensor]:
    """Trainable parameters grouped by owning module: (names, params, layer index per param)."""
    names: list[str] = []
    params: list[nn.Parameter] = []
    owner: list[int] = []
    seen: set[int] = set()  # a parameter shared by two modules is trained once
    for name, module in model.named_modules():
        own = []
        for p in module.parameters(recurse=False):
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                own.append(p)
        if not own:
            continue
        names.append(name or type(module).__name__)
        params.extend(own)
        owner.extend([len(names) - 1] * len(own))
    return names, params, torch.tensor(owner, dtype=torch.long)


def _has_batch_norm(model: nn.Module) -> bool:
    from .layers.norm import BatchNorm1d, BatchNorm2d

    kinds = (nn.modules.batchnorm._BatchNorm, BatchNorm1d, BatchNorm2d)
    return any(isinstance(m, kinds) and m.training for m in model.modules())


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], _EVAL_BATCH):
        logits = model(x[start : start + _EVAL_BATCH]).float()
        target = y[start : start + _EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(dim=1) == target).sum()
    model.train(was_training)
    n = x.shape[0]
    return loss_sum.item() / n, correct.item() / n


def evaluate(model: nn.Module, split: Split) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split``, as :func:`train` evaluates.

    The model runs in eval mode under ``no_grad`` (its mode is restored), on
    the split's normalized images in the model's parameter dtype, in batches
    of 1000. ``split`` must be on the model's device.

    Returns
    -------
    (loss, accuracy) : tuple of float
    """
    check_type("model", model, nn.Module)
    check_type("split", split, Split)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return _evaluate(model, split.float(dtype), split.labels)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    model: nn.Module,
    data: Data,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    grad_clip: float | None = None,
    track: Iterable[str] = ("loss", "accuracy", "grad_norms"),
    progress: bool | None = None,
    train_subset: int | None = None,
    monitor: Monitor | None = None,
) -> History:
    """Train ``model`` (in place) on ``data`` with cross-entropy; return its :class:`History`.

    Parameters
    ----------
    model : nn.Module
        Maps a float batch ``(B, C, H, W)`` (normalized, in the model's
        parameter dtype) to logits ``(B, num_classes)``. Moved to ``device``
        and trained in place.
    data : Data
        Moved to ``device`` if needed (the tensors are copied once).
    epochs, steps : int
        Exactly one. An epoch is ``ceil(N / batch_size)`` steps over a fresh
        permutation; the last batch holds the remainder (no example dropped).
        With ``steps``, epochs follow one another and training stops after
        ``steps`` optimizer steps, possibly mid-epoch.
    batch_size : int
    optimizer : {"adam", "adamw", "sgd", "sgd_momentum"}
        See :func:`make_optimizer`.
    lr, weight_decay : float
    seed : int
        Seeds the batch order (a CPU generator, so every device sees the same
        batches). Model initialization is the caller's business.
    device : str or torch.device
    eval_every : int, optional
        Evaluate on the test split every this many steps; the end of training
        is always evaluated (and is the last entry).
    grad_clip : float, optional
        Clip the global gradient L2 norm to this value before each step.
    track : iterable of {"loss", "accuracy", "grad_norms"}
        What to record besides test metrics (see :class:`History`).
    progress : bool, optional
        Show a tqdm bar. ``None``: only when stderr is a terminal and not
        under pytest or CI.
    train_subset : int, optional
        Train on this many training examples, a fixed subset (seed 0, the
        same for every ``seed``) drawn with :meth:`Split.subset`.
    monitor : Monitor, optional
        Run the training-dynamics checks on every ``monitor.every``-th step of this
        training (:class:`netprops.monitor.Monitor`); the report goes to
        ``History.monitor``. ``None``: the monitor of an enclosing
        :func:`netprops.monitor.monitoring` block, if any, else no monitoring (no
        hooks, no extra work). Monitoring only reads: the run trains exactly as
        without it.

    Returns
    -------
    History

    Raises
    ------
    ValueError, TypeError
        for a bad argument (the message names it, its value and what is allowed).
    """
    check_type("model", model, nn.Module)
    check_type("data", data, Data)
    if (epochs is None) == (steps is None):
        raise ValueError(
            f"exactly one of epochs and steps must be given, got epochs={epochs!r}, steps={steps!r}"
        )
    if epochs is not None:
        epochs = check_positive_int("epochs", epochs)
    if steps is not None:
        steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_positive_float("lr", lr)
    weight_decay = check_positive_float("weight_decay", weight_decay, allow_zero=True)
    seed = check_int("seed", seed, min_value=0)
    dev = resolve_device(device)
    if eval_every is not None:
        eval_every = check_positive_int("eval_every", eval_every)
    if grad_clip is not None:
        grad_clip = check_positive_float("grad_clip", grad_clip)
    if isinstance(track, str):
        raise TypeError(
            f"track must be a collection of names from {TRACKABLE}, got the string {track!r}"
        )
    check_type("track", track, (tuple, list, set, frozenset))
    chosen = {check_choice("track item", t, TRACKABLE) for t in track}
    tracked = tuple(t for t in TRACKABLE if t in chosen)  # canonical order, no repeats
    if progress is not None:
        check_type("progress", progress, bool)
    if train_subset is not None:
        train_subset = check_positive_int("train_subset", train_subset)
        if train_subset > len(data.train):
            raise ValueError(
                f"train_subset must be an int in [1, {len(data.train)}] (the training split's "
                f"size), got {train_subset}"
            )

    if monitor is None:
        monitor = active_monitor()
    else:
        check_type("monitor", monitor, Monitor)

    t_start = time.perf_counter()
    model.to(dev)
    names, params, owner = _layer_params(model)
    if not params:
        raise ValueError(f"model must have trainable parameters, {type(model).__name__} has none")
    dtype = params[0].dtype
    if not dtype.is_floating_point:
        raise ValueError(f"model parameters must be floating point, got {dtype}")

    data = data.to(dev)
    split = data.train if train_subset is None else data.train.subset(train_subset, seed=0)
    x_all, y_all = split.float(dtype), split.labels
    x_test, y_test = data.test.float(dtype), data.test.labels
    n = len(split)
    for what, size in (("training", n), ("test", len(data.test))):
        if size < 1:
            raise ValueError(f"data must have at least 1 {what} example, its {what} split is empty")
    if n % batch_size == 1 and model.training and _has_batch_norm(model):
        raise ValueError(
            f"batch_size={batch_size} leaves a last batch of 1 example out of {n}, which "
            "BatchNorm cannot train on (one value per channel); choose a batch_size or "
            "train_subset that leaves a remainder other than 1"
        )
    steps_per_epoch = -(-n // batch_size)
    total_steps = steps if steps is not None else epochs * steps_per_epoch  # type: ignore[operator]

    opt, optimizer_impl = _engine_optimizer(optimizer, params, lr=lr, weight_decay=weight_decay)
    track_loss = "loss" in tracked
    track_acc = "accuracy" in tracked
    track_norms = "grad_norms" in tracked
    owner = owner.to(dev)

    x_buf = torch.empty((batch_size, *x_all.shape[1:]), dtype=dtype, device=dev)
    shuffle = make_generator(derive_seed(seed, "shuffle"))

    history = History(seed=seed)
    # Tracking stays on the device and costs one op per step: the loss tensor,
    # the per-parameter gradient norms (one foreach kernel) and the predicted
    # classes (argmax). Grouping norms by layer and
    # counting correct predictions run in batch when the values are read back
    # (each evaluation, and at the end of each epoch for the predictions).
    losses: list[torch.Tensor] = []
    norms: list[torch.Tensor] = []  # per step, one 0-d norm per parameter
    zero_norm = torch.zeros((), dtype=dtype, device=dev)  # a parameter without gradient
    predictions: list[torch.Tensor] = []  # argmax of each batch not yet counted
    y_epoch = y_all  # labels in this epoch's order (set per epoch)
    correct: list[torch.Tensor] = []
    counted = 0  # this epoch's examples before this position are counted in `correct`
    seen_since_eval = 0
    train_time = 0.0
    bar = _progress_bar(_show_progress(progress), total_steps, f"train {data.name}")

    def count_correct(upto: int) -> None:
        nonlocal counted
        if predictions:
            correct.append(torch.eq(torch.cat(predictions), y_epoch[counted:upto]).sum())
            predictions.clear()
        counted = upto

    def evaluate(step: int, position: int) -> None:
        nonlocal seen_since_eval
        if track_loss and losses:
            history.train_loss.extend(torch.stack(losses).tolist())
            losses.clear()
        if track_norms and norms:
            squares = torch.stack(norms).view(-1, len(params)).double().square()
            per_layer = torch.zeros(
                (squares.shape[0], len(names)), dtype=torch.float64, device=dev
            ).index_add_(1, owner, squares)
            for name, values in zip(names, per_layer.sqrt_().T.tolist(), strict=True):
                history.grad_norms.setdefault(name, []).extend(values)
            norms.clear()
        if track_acc:
            count_correct(position)
            hits = int(torch.stack(correct).sum()) if correct else 0
            history.train_accuracy.append(hits / max(seen_since_eval, 1))
            correct.clear()
            seen_since_eval = 0
        test_loss, test_acc = _evaluate(model, x_test, y_test)
        history.eval_steps.append(step)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_acc)
        if bar is not None:
            bar.set_postfix(test_acc=f"{test_acc:.4f}")

    model.train()
    session = None if monitor is None else monitor.start(model)
    step = samples = 0
    try:
        while step < total_steps:
            perm = torch.randperm(n, generator=shuffle)
            if dev.type == "cuda":
                perm = perm.pin_memory().to(dev, non_blocking=True)
            t_seg = time.perf_counter()
            y_epoch = y_all.index_select(0, perm)  # each batch's labels are then a view
            counted = 0
            for start in range(0, n, batch_size):
                index = perm[start : start + batch_size]
                m = index.shape[0]
                xb = x_buf if m == batch_size else x_buf[:m]
                torch.index_select(x_all, 0, index, out=xb)
                yb = y_epoch[start : start + m]

                probe = None if session is None else session.probe(step)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                if probe is not None:
                    probe.after_forward(logits, loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if probe is not None:
                    probe.after_backward()
                if track_norms:
                    grads = [p.grad for p in params]
                    if any(g is None for g in grads):  # unused this step: norm 0
                        present = iter(torch._foreach_norm([g for g in grads if g is not None]))
                        norms.extend(zero_norm if g is None else next(present) for g in grads)
                    else:
                        norms.extend(torch._foreach_norm(grads))
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
                opt.step()
                if probe is not None:
                    probe.after_step()

                if track_loss:
                    losses.append(loss.detach())
                if track_acc:
                    predictions.append(logits.detach().argmax(dim=1))
                    seen_since_eval += m
                samples += m
                step += 1
                if bar is not None:
                    bar.update()
                if step == total_steps or (eval_every is not None and step % eval_every == 0):
                    _sync(dev)
                    train_time += time.perf_counter() - t_seg
                    evaluate(step, start + m)
                    t_seg = time.perf_counter()
                if step == total_steps:
                    break
            else:
                count_correct(n)
                _sync(dev)
                train_time += time.perf_counter() - t_seg
    finally:
        if session is not None:
            session.close()
        if bar is not None:
            bar.close()

    history.steps = total_steps
    history.train_time_s = train_time
    history.samples_per_s = samples / train_time if train_time > 0 else math.inf
    history.wall_time_s = time.perf_counter() - t_start
    if session is not None:
        history.monitor = session.report()
    history.config = {
        "dataset": data.name,
        "n_train": n,
        "n_test": len(data.test),
        "model": type(model).__name__,
        "n_params": sum(p.numel() for p in params),
        "epochs": epochs,
        "steps": steps,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "optimizer_impl": optimizer_impl,
        "lr": lr,
        "weight_decay": weight_decay,
        "eval_every": eval_every,
        "grad_clip": grad_clip,
        "track": list(tracked),
        "train_subset": train_subset,
        "device": str(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
    }
    return history
