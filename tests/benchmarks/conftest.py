"""Shared machinery of the benchmark suite: netprops/torch pairs and the ratio report.

Every paired benchmark puts a netprops implementation and torch's reference in
one pytest-benchmark group ``f"{layer}-{device}"`` (the ``impl`` fixture is
``"netprops"`` or ``"torch"``), so ``--benchmark-group-by=group`` and
``--benchmark-compare`` read as pairs. At the end of the run a table gives, per
group, the ratio netprops / torch of the median times (and of the minima and
means), the target and PASS/MISS judged on the medians. The table is printed,
never asserted: a timing that depends on the machine's load must not fail a
test; gating a PR on timing is ``--benchmark-compare-fail``'s job (README).

Run with ``tox -e bench`` or
``pytest tests/benchmarks -m benchmark --benchmark-only --benchmark-group-by=group``;
``--device all`` adds the CUDA pairs where a GPU is present. On a shared machine,
``--netprops-threads 1 --benchmark-timer time.thread_time`` times CPU work of the
one thread instead of wall time, which other processes inflate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
import torch

#: Target ratio netprops / torch (forward + backward) on the CPU, by layer name.
#: Pairs without a target (pooling, the MLP training step) are reported for information.
TARGETS: dict[str, float] = {
    "layer_norm": 1.5,
    "batch_norm1d": 1.5,
    "batch_norm2d": 1.5,
    "sigmoid": 1.5,
    "tanh": 1.5,
    "relu": 1.5,
    "leaky_relu": 1.5,
    "elu": 1.5,
    "silu": 1.5,
    "dropconnect_linear": 2.0,
    "cnn2_train_step": 1.3,
    "resnet20_train_step": 1.3,
}

IMPLS = ("netprops", "torch")


@dataclass
class _Timings:
    """(median, min, mean) seconds per group and implementation, filled as benchmarks finish."""

    by_group: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)


_TIMINGS = pytest.StashKey[_Timings]()


def _timings(config: pytest.Config) -> _Timings:
    timings = config.stash.get(_TIMINGS, None)
    if timings is None:
        timings = config.stash[_TIMINGS] = _Timings()
    return timings


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    """Which side of the pair a benchmark times: ``"netprops"`` or ``"torch"``."""
    return request.param


@pytest.fixture(autouse=True)
def _record_pair(request: pytest.FixtureRequest):
    """After a paired benchmark, keep its median, min and mean for the ratio report."""
    yield
    bench = request.node.funcargs.get("benchmark")
    callspec = getattr(request.node, "callspec", None)
    side = callspec.params.get("impl") if callspec is not None else None
    if bench is None or side is None or not bench.stats or bench.group is None:
        return  # benchmarks disabled (or not run), or not a netprops/torch pair
    stats = bench.stats.stats
    _timings(request.config).by_group.setdefault(bench.group, {})[side] = (
        stats.median,
        stats.min,
        stats.mean,
    )


@pytest.fixture
def forward_backward() -> Callable[..., Callable[[], None]]:
    """Build the timed closure: ``fn(*args)`` then the gradients of ``inputs``.

    ``forward_backward(fn, args, inputs, grad_out, device)`` returns a no-argument
    callable. It uses ``torch.autograd.grad`` (nothing accumulates into ``.grad``,
    so every round does the same work) and, on CUDA, synchronizes before
    returning so the time covers the kernels and not just their launch.
    """

    def build(
        fn: Callable[..., torch.Tensor],
        args: Sequence[torch.Tensor],
        inputs: Sequence[torch.Tensor],
        grad_out: torch.Tensor,
        device: str,
    ) -> Callable[[], None]:
        inputs = tuple(inputs)
        sync = torch.cuda.synchronize if device == "cuda" else None

        def step() -> None:
            out = fn(*args)
            torch.autograd.grad(out, inputs, grad_out)
            if sync is not None:
                sync()

        return step

    return build


@pytest.fixture
def adam_train_step() -> Callable[..., Callable[[], None]]:
    """Build the timed closure of one training step of a classifier.

    ``adam_train_step(model, x, target, device)`` returns a no-argument callable that
    zeroes the gradients, computes the cross-entropy of ``model(x)`` against ``target``,
    backpropagates and takes one Adam step (lr 1e-3, optimizer built once); on CUDA it
    synchronizes before returning.
    """

    def build(
        model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, device: str
    ) -> Callable[[], None]:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        sync = torch.cuda.synchronize if device == "cuda" else None

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
            if sync is not None:
                sync()

        return step

    return build


def _target(group: str) -> float | None:
    layer, _, device = group.rpartition("-")
    return TARGETS.get(layer) if device == "cpu" else None


def ratio_rows(by_group: dict[str, dict[str, tuple[float, float, float]]]) -> list[str]:
    """Lines of the ratio table for the groups that have both sides timed."""
    rows = [
        f"{'group':<24} {'netprops':>10} {'torch':>10} {'median':>7} {'min':>6} {'mean':>6} "
        f"{'target':>7}  verdict"
    ]
    for group in sorted(by_group):
        sides = by_group[group]
        if not all(side in sides for side in IMPLS):
            continue
        ours, theirs = sides["netprops"], sides["torch"]
        median, minimum, mean = (a / b for a, b in zip(ours, theirs, strict=True))
        target = _target(group)
        if target is None:
            shown, verdict = "-", "info"
        else:
            shown, verdict = f"{target:.1f}x", "PASS" if median <= target else "MISS"
        rows.append(
            f"{group:<24} {_us(ours[0]):>10} {_us(theirs[0]):>10} {median:>6.2f}x "
            f"{minimum:>5.2f}x {mean:>5.2f}x {shown:>7}  {verdict}"
        )
    return rows


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}us" if seconds < 0.1 else f"{seconds * 1e3:.0f}ms"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(_TIMINGS, None)
    if timings is None:
        return
    rows = ratio_rows(timings.by_group)
    if len(rows) < 2:
        return
    terminalreporter.write_sep("-", "netprops / torch time ratios")
    terminalreporter.write_line(
        f"medians per call and their ratio (also of minima and means); targets apply on the "
        f"CPU; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); "
        "printed for information, never asserted"
    )
    for row in rows:
        terminalreporter.write_line(row)
