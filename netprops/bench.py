"""Training-speed benchmark: ``train()`` at its defaults against the matmul floor.

:func:`run_train_benchmark` measures, in one process and at each requested
number of CPU threads (default 1 and 2):

(a) what a user waits for: one whole :func:`netprops.train.train` call at its
    defaults — batch 128, Adam 1e-3, loss / accuracy / gradient-norm tracking,
    the final evaluation on the test split, set-up included — for one epoch of
    the MLP 784→500→100→100→10 (ReLU, fp32), against the *matmul floor*: the
    epoch's matrix products alone (per step and layer the forward, the weight
    gradient and, except for the first layer, the input gradient, last batch
    included) as back-to-back ``torch.mm`` calls on contiguous operands into
    preallocated outputs, best of several repeats (:func:`matmul_floor`). The
    call is split into its training loop, its final evaluation and the rest
    (set-up), and two costs that no loop overhead explains are timed alone:
    the epoch's optimizer steps (the fused Adam kernel the engine calls) and
    one evaluation of the test split. ``floor + optimizer + evaluation`` is a
    lower bound for the call, so its ratio to the floor says whether the
    target is reachable at all. Next to it, the *plain loop* the engine
    replaces: the same model on the same device-resident tensors (``x[idx]``
    gathers, torch's default Adam, ``zero_grad``/``backward``/``step``, no
    tracking or evaluation);
(b) the same epoch in the textbook pipeline (a torchvision-style dataset that
    returns PIL images through ``Compose([ToTensor(), Normalize])``, a shuffling
    ``DataLoader``, torch's default Adam), timed on its first batches and
    extrapolated to the epoch (at the first thread count);
(c) on CUDA, a batch-512 epoch with the whole training step captured in a CUDA
    graph (capture time reported separately), next to the same epoch run eagerly.

Floor, ``train()`` call and plain epoch alternate ``repeats`` times. Reported
are the best time of each and the median of the per-repeat ratios (each ratio
pairs runs seconds apart, so slow drift in the machine's speed cancels). The
target, ``train()`` within :data:`TARGET_RATIO` of the floor, is judged at one
thread on the CPU. ``netprops bench train`` prints the result;
:func:`add_bench_parser` registers that subcommand.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Data, DatasetCorruptError, DatasetNotFoundError, load_dataset, synthetic_dataset
from .devices import cuda_available, resolve_device
from .errors import check_positive_int, check_type
from .seeding import derive_seed, make_generator, seeded_global_rng
from .train import _engine_optimizer, evaluate, train

__all__ = [
    "TARGET_RATIO",
    "CudaGraphBench",
    "ThreadBench",
    "TrainBenchResult",
    "add_bench_parser",
    "bench_mlp",
    "matmul_floor",
    "run_train_benchmark",
]

#: ``train()`` at its defaults should take at most this multiple of the matmul floor
#: (CPU, fp32, one thread).
TARGET_RATIO = 1.3
THREADS = (1, 2)
HIDDEN = (500, 100, 100)
#: ``train()``'s default batch size and learning rate: the benchmark measures the defaults.
BATCH_SIZE: int = inspect.signature(train).parameters["batch_size"].default
LR: float = inspect.signature(train).parameters["lr"].default
CUDA_BATCH_SIZE = 512
TEXTBOOK_BATCHES = 100
FLOOR_REPEATS = 3


def bench_mlp(in_features: int = 784, num_classes: int = 10, seed: int = 0) -> nn.Sequential:
    """The benchmark MLP ``in→500→100→100→classes`` with ReLU, initialized from ``seed``.

    Input ``(B, C, H, W)`` (flattened inside), output logits ``(B, num_classes)``.
    """
    dims = (in_features, *HIDDEN, num_classes)
    layers: list[nn.Module] = [nn.Flatten()]
    with seeded_global_rng(seed):  # nn.Linear draws its init from the global RNG
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _batch_sizes(n: int, batch_size: int) -> list[int]:
    full, rest = divmod(n, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def matmul_floor(
    n: int,
    dims: Sequence[int],
    batch_size: int = BATCH_SIZE,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = FLOOR_REPEATS,
) -> float:
    """Seconds one epoch's matrix products of an MLP take as plain ``torch.mm`` calls.

    For every step (``ceil(n / batch_size)`` of them, the last one holding the
    remainder) and every layer ``W (out, in)``, with ``X (B, in)`` its input and
    ``G (B, out)`` its output gradient: the forward ``X @ Wᵀ``, the weight
    gradient ``Gᵀ @ X`` and, except for the first layer (whose input needs no
    gradient), the input gradient ``G @ W``. Every operand is a contiguous
    row-major matrix (transposes are materialized beforehand) and every output
    a preallocated buffer, so the calls are the GEMMs alone, back to back: the
    physical limit of the epoch's arithmetic on this machine and thread count.
    The best of ``repeats`` timed epochs is returned.

    Raises
    ------
    ValueError, TypeError
        for ``n``, ``batch_size`` or ``repeats`` below 1, fewer than two ``dims``.
    """
    n = check_positive_int("n", n)
    batch_size = check_positive_int("batch_size", batch_size)
    repeats = check_positive_int("repeats", repeats)
    dims = [check_positive_int("dims[i]", d) for d in dims]
    if len(dims) < 2:
        raise ValueError(f"dims must list at least an input and an output width, got {dims}")
    dev = resolve_device(device)
    g = make_generator(0)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g).to(dev, dtype)

    weights = [draw(o, i) for i, o in itertools.pairwise(dims)]
    weights_t = [w.t().contiguous() for w in weights]
    sizes = _batch_sizes(n, batch_size)
    plans = {}
    for b in set(sizes):
        xs = [draw(b, d) for d in dims[:-1]]
        gs = [draw(b, d) for d in dims[1:]]
        calls = []
        for layer, (x, grad) in enumerate(zip(xs, gs, strict=True)):
            w, w_t = weights[layer], weights_t[layer]
            calls.append((x, w_t, torch.empty(b, w.shape[0], device=dev, dtype=dtype)))
            calls.append((grad.t().contiguous(), x, torch.empty(w.shape, device=dev, dtype=dtype)))
            if layer > 0:
                calls.append((grad, w, torch.empty(b, w.shape[1], device=dev, dtype=dtype)))
        plans[b] = calls
    epoch = [call for b in sizes for call in plans[b]]
    best = math.inf
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        for a, b, out in epoch:
            torch.mm(a, b, out=out)
        _sync(dev)
        best = min(best, time.perf_counter() - start)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ textbook


def _plain_epoch(data: Data, device: torch.device, seed: int, steps: int | None = None) -> float:
    """Seconds for one epoch (or its first ``steps``) of the plain device-resident loop."""
    model = bench_mlp(math.prod(data.image_shape), data.num_classes, seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = data.train.float(), data.train.labels
    perm = torch.randperm(len(y), generator=make_generator(seed)).to(device)
    _sync(device)
    start = time.perf_counter()
    for index in perm.split(BATCH_SIZE)[:steps]:
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def _textbook_dataset(images: torch.Tensor, labels: torch.Tensor, mean, std):
    """A torchvision-style dataset over uint8 tensors: PIL image → ToTensor → Normalize.

    Mirrors ``torchvision.datasets.MNIST.__getitem__`` (which needs its raw
    folder layout, hence this stand-in over the same tensors).
    """
    from PIL import Image
    from torchvision import transforms
    from torchvision.datasets import VisionDataset

    class TensorImageDataset(VisionDataset):
        def __init__(self) -> None:
            super().__init__(
                root=None,
                transform=transforms.Compose(
                    [transforms.ToTensor(), transforms.Normalize(mean, std)]
                ),
            )
            # MNIST keeps (N, H, W); colour data is kept HWC like CIFAR10.
            self.data = images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)
            self.targets = labels

        def __getitem__(self, index: int):
            img, target = self.data[index], int(self.targets[index])
            img = Image.fromarray(img.numpy())
            return self.transform(img), target

        def __len__(self) -> int:
            return len(self.data)

    return TensorImageDataset()


def _textbook_epoch(
    data: Data, device: torch.device, batches: int, seed: int
) -> tuple[float, int, int]:
    """Time ``batches`` steps of the textbook loop; return (seconds, steps timed, steps/epoch)."""
    from torch.utils.data import DataLoader

    split = data.train.to("cpu")
    dataset = _textbook_dataset(split.images, split.labels, split.mean, split.std)
    loader = DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, generator=make_generator(seed)
    )
    model = bench_mlp(math.prod(data.image_shape), data.num_classes, seed).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    steps_per_epoch = len(loader)
    batches = min(batches, steps_per_epoch)
    warmup = 2 if steps_per_epoch > batches + 2 else 0
    running_loss = 0.0
    start = time.perf_counter()
    for i, (inputs, targets) in enumerate(loader):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        if i == warmup + batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    _sync(device)
    return time.perf_counter() - start, batches, steps_per_epoch


# ---------------------------------------------------------------------- CUDA


@dataclass(frozen=True)
class CudaGraphBench:
    """A CUDA batch-512 epoch: eager engine vs the whole step captured in a CUDA graph.

    ``capture_s`` is the one-off cost: three warm-up steps on a side stream plus
    the capture. Both epochs use the engine's shuffle stream for ``seed``.
    """

    batch_size: int
    steps: int
    eager_epoch_s: float
    graph_epoch_s: float
    capture_s: float
    test_accuracy: float
    device_name: str

    @property
    def speedup(self) -> float:
        return self.eager_epoch_s / self.graph_epoch_s


def _cuda_graph_epoch(data: Data, device: torch.device, seed: int) -> CudaGraphBench:
    """One epoch with forward, backward and fused Adam replayed from a CUDA graph.

    Full batches replay the graph (the batch gather is captured too, reading
    the indices from a static buffer); a final partial batch runs eagerly.
    """
    data = data.to(device)
    split = data.train
    x_all, y_all = split.float(), split.labels
    n = len(split)
    batch = min(CUDA_BATCH_SIZE, n)
    in_features = math.prod(data.image_shape)

    common = {"batch_size": batch, "seed": seed, "device": device, "track": (), "progress": False}
    train(bench_mlp(in_features, data.num_classes, seed), data, steps=5, **common)  # warm-up
    eager = train(
        bench_mlp(in_features, data.num_classes, seed),
        data,
        epochs=1,
        **common,
    )

    model = bench_mlp(in_features, data.num_classes, seed).to(device)
    params = list(model.parameters())
    initial = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=LR, capturable=True, fused=True)
    index = torch.zeros(batch, dtype=torch.long, device=device)
    x_static = torch.empty((batch, *x_all.shape[1:]), device=device)
    y_static = torch.empty(batch, dtype=torch.long, device=device)

    def step() -> torch.Tensor:
        torch.index_select(x_all, 0, index, out=x_static)
        torch.index_select(y_all, 0, index, out=y_static)
        loss = F.cross_entropy(model(x_static), y_static)
        loss.backward()
        opt.step()
        return loss

    _sync(device)
    t0 = time.perf_counter()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up (allocator, cuBLAS handles) off the capture stream
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    _sync(device)
    capture_s = time.perf_counter() - t0
    # Warm-up and capture ran real steps: restore the initial weights and a fresh
    # Adam state in place (the graph holds these addresses), so the timed epoch
    # trains from the same start as the eager one and the accuracies compare.
    with torch.no_grad():
        for p, p0 in zip(params, initial, strict=True):
            p.copy_(p0)
            for value in opt.state[p].values():
                if torch.is_tensor(value):
                    value.zero_()

    # the engine's shuffle stream, so the eager and graph epochs see the same batches
    perm = torch.randperm(n, generator=make_generator(derive_seed(seed, "shuffle"))).to(device)
    full, rest = divmod(n, batch)
    _sync(device)
    t0 = time.perf_counter()
    for b in range(full):
        index.copy_(perm[b * batch : (b + 1) * batch])
        graph.replay()
    if rest:
        # The graph has a fixed shape; the remainder runs eagerly, once, at the end.
        opt.zero_grad(set_to_none=True)
        tail = perm[full * batch :]
        loss = F.cross_entropy(model(x_all[tail]), y_all[tail])
        loss.backward()
        opt.step()
    _sync(device)
    graph_s = time.perf_counter() - t0
    _, accuracy = evaluate(model, data.test)
    return CudaGraphBench(
        batch_size=batch,
        steps=full + (1 if rest else 0),
        eager_epoch_s=eager.train_time_s,
        graph_epoch_s=graph_s,
        capture_s=capture_s,
        test_accuracy=accuracy,
        device_name=torch.cuda.get_device_name(device),
    )


# ------------------------------------------------------------- engine parts


def _optimizer_epoch(model: nn.Module, steps: int, device: torch.device, seed: int) -> float:
    """Seconds for ``steps`` steps of the optimizer :func:`train` uses, alone (fixed gradients)."""
    params = list(model.parameters())
    g = make_generator(seed)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=g) * 1e-3).to(device, p.dtype)
    optimizer, _ = _engine_optimizer("adam", params, lr=LR, weight_decay=0.0)
    optimizer.step()  # warm-up: first-touch of the optimizer state
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def _timed_evaluation(model: nn.Module, data: Data, device: torch.device) -> float:
    """Seconds for one :func:`~netprops.train.evaluate` of the test split (as train's final one)."""
    _sync(device)
    start = time.perf_counter()
    evaluate(model, data.test)
    _sync(device)
    return time.perf_counter() - start


# -------------------------------------------------------------------- result


def _median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class ThreadBench:
    """Part (a) of the benchmark at one CPU thread count (times in seconds, one entry per repeat).

    ``call_runs_s`` times the whole ``train()`` call at its defaults,
    ``loop_runs_s`` its :attr:`~netprops.train.History.train_time_s` (training
    steps only), ``floor_runs_s`` :func:`matmul_floor`, ``plain_runs_s`` the
    plain loop's epoch; ``evaluation_s`` (one evaluation of the test split) and
    ``optimizer_s`` (the epoch's optimizer steps alone) are the best of the repeats.
    """

    threads: int
    call_runs_s: tuple[float, ...]
    loop_runs_s: tuple[float, ...]
    floor_runs_s: tuple[float, ...]
    plain_runs_s: tuple[float, ...]
    evaluation_s: float
    optimizer_s: float

    @property
    def call_s(self) -> float:
        return min(self.call_runs_s)

    @property
    def loop_s(self) -> float:
        return min(self.loop_runs_s)

    @property
    def floor_s(self) -> float:
        return min(self.floor_runs_s)

    @property
    def ratio(self) -> float:
        """Best ``train()`` call over the best floor (the target's measure)."""
        return self.call_s / self.floor_s

    @property
    def paired_ratio(self) -> float:
        """Median over repeats of that repeat's call / floor (robust to drift)."""
        return _median_ratio(self.call_runs_s, self.floor_runs_s)

    @property
    def loop_ratio(self) -> float:
        """Median over repeats of the training loop alone / floor."""
        return _median_ratio(self.loop_runs_s, self.floor_runs_s)

    @property
    def plain_ratio(self) -> float:
        """Median over repeats of the plain loop's epoch / floor."""
        return _median_ratio(self.plain_runs_s, self.floor_runs_s)

    @property
    def setup_s(self) -> float:
        """What the call spends outside its loop and final evaluation (median over repeats)."""
        outside = statistics.median(
            c - lo for c, lo in zip(self.call_runs_s, self.loop_runs_s, strict=True)
        )
        return max(outside - self.evaluation_s, 0.0)

    @property
    def lower_bound_ratio(self) -> float:
        """``(floor + optimizer alone + evaluation alone) / floor``: the call cannot do better."""
        return (self.floor_s + self.optimizer_s + self.evaluation_s) / self.floor_s

    @property
    def overhead_removed(self) -> float:
        """Share of the plain loop's time above the floor that the engine's loop does not spend.

        ``(plain − loop) / (plain − floor)`` on the median paired ratios: 1 means
        the loop runs at the floor, 0 that it is no faster than the plain loop;
        NaN when the plain loop itself ran at or under the floor (tiny configurations).
        """
        if self.plain_ratio <= 1.0:
            return math.nan
        return (self.plain_ratio - self.loop_ratio) / (self.plain_ratio - 1.0)

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        for name in (
            "call_s",
            "loop_s",
            "floor_s",
            "ratio",
            "paired_ratio",
            "loop_ratio",
            "plain_ratio",
            "setup_s",
            "lower_bound_ratio",
        ):
            payload[name] = getattr(self, name)
        removed = self.overhead_removed
        payload["overhead_removed"] = None if math.isnan(removed) else removed
        return payload


@dataclass(frozen=True)
class TrainBenchResult:
    """What :func:`run_train_benchmark` measured (times in seconds).

    ``by_threads`` holds part (a) per CPU thread count; ``textbook_s`` is the
    textbook loop's time extrapolated from ``textbook_batches`` timed steps to
    the full epoch, at ``textbook_threads`` threads.
    """

    device: str
    dataset: str
    n_train: int
    batch_size: int
    steps: int
    by_threads: tuple[ThreadBench, ...]
    test_accuracy: float
    textbook_s: float
    textbook_batches: int
    textbook_threads: int
    cuda: CudaGraphBench | None
    cuda_skipped: str | None
    torch_version: str
    quick: bool
    load_average: float | None = None

    @property
    def judged(self) -> ThreadBench:
        """The thread count the target is judged at: one thread if measured, else the first."""
        return next((t for t in self.by_threads if t.threads == 1), self.by_threads[0])

    @property
    def ratio(self) -> float:
        """``train()`` call over the matmul floor at :attr:`judged` (target: :data:`TARGET_RATIO`)."""
        return self.judged.ratio

    @property
    def verdict(self) -> str:
        """``"met"``/``"missed"`` against :data:`TARGET_RATIO`, or why it does not apply."""
        if not self.device.startswith("cpu"):
            return "the target is set for CPU"
        if self.judged.threads != 1:
            return "not judged: the target is set for one thread"
        return "met" if self.ratio <= TARGET_RATIO else "missed"

    @property
    def speedup(self) -> float:
        """Textbook epoch time over the engine's training loop, at ``textbook_threads``."""
        same = next(t for t in self.by_threads if t.threads == self.textbook_threads)
        return self.textbook_s / same.loop_s

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["by_threads"] = [t.to_dict() for t in self.by_threads]
        payload["ratio"] = self.ratio
        payload["verdict"] = self.verdict
        payload["speedup"] = self.speedup
        payload["target_ratio"] = TARGET_RATIO
        if self.cuda is not None:
            payload["cuda"]["speedup"] = self.cuda.speedup
        return payload

    def __str__(self) -> str:
        def runs(values: tuple[float, ...]) -> str:
            return ", ".join(f"{v:.3f}" for v in values)

        lines = [
            f"netprops train benchmark — {self.dataset} ({self.n_train} train images), "
            f"MLP {'-'.join(map(str, HIDDEN))}, {self.steps} steps of batch {self.batch_size}, "
            f"Adam {LR:g}, fp32, {self.device}"
            + (" [quick: tiny synthetic configuration]" if self.quick else ""),
            "train() at its defaults (loss/accuracy/grad-norm tracking, final test evaluation), "
            f"whole call; torch {self.torch_version}; "
            f"{len(self.by_threads[0].call_runs_s)} interleaved repeats"
            + (
                f"; load average before the run {self.load_average:.1f}"
                if self.load_average is not None
                else ""
            ),
        ]
        if self.load_average is not None and self.load_average > 0.5:
            lines.append(
                f"  warning: the machine was busy (load average {self.load_average:.1f}): "
                "other processes share the cores, timings are unreliable (multi-threaded most)"
            )
        for t in self.by_threads:
            verdict = f"; target <= {TARGET_RATIO}x: {self.verdict}" if t is self.judged else ""
            lines += [
                "",
                f"  (a) {t.threads} thread{'s' if t.threads > 1 else ''}",
                f"      train() call                {t.call_s:8.3f} s   runs: {runs(t.call_runs_s)}",
                f"      matmul floor                {t.floor_s:8.3f} s   runs: {runs(t.floor_runs_s)}",
                f"      ratio call / floor          {t.ratio:8.2f} x   (best / best; median of "
                f"paired ratios {t.paired_ratio:.2f}x{verdict})",
                f"      of the call: loop {t.loop_s:.3f} s ({t.loop_ratio:.2f}x floor, median "
                f"paired), final evaluation {t.evaluation_s:.3f} s, set-up {t.setup_s:.3f} s",
                f"      timed alone: optimizer steps {t.optimizer_s:.3f} s, evaluation "
                f"{t.evaluation_s:.3f} s; floor + both = {t.lower_bound_ratio:.2f}x floor "
                "(no call can be faster)",
                f"      plain loop / floor          {t.plain_ratio:8.2f} x   (median paired; runs: "
                f"{runs(t.plain_runs_s)} s); "
                + (
                    "it ran at or under the floor (tiny configuration)"
                    if math.isnan(t.overhead_removed)
                    else f"the engine's loop removes {t.overhead_removed:.0%} of its time "
                    "above the floor"
                ),
            ]
        lines += [
            "",
            f"  (b) textbook DataLoader epoch   {self.textbook_s:8.3f} s   "
            f"(extrapolated from {self.textbook_batches} timed batches, "
            f"{self.textbook_threads} thread{'s' if self.textbook_threads > 1 else ''})",
            f"      speed-up engine loop / textbook {self.speedup:6.1f} x",
        ]
        if self.cuda is not None:
            c = self.cuda
            lines += [
                f"  (c) CUDA batch {c.batch_size} on {c.device_name} ({c.steps} steps): "
                f"eager {c.eager_epoch_s:.3f} s, CUDA graph {c.graph_epoch_s:.3f} s "
                f"({c.speedup:.1f}x), warm-up + capture {c.capture_s:.3f} s, "
                f"test accuracy {c.test_accuracy:.4f}",
            ]
        else:
            lines.append(f"  (c) CUDA graph epoch: skipped: {self.cuda_skipped}")
        return "\n".join(lines)


def _check_threads(threads: Any) -> tuple[int, ...]:
    check_type("threads", threads, (tuple, list))
    if not threads:
        raise ValueError("threads must list at least one thread count, got an empty sequence")
    return tuple(check_positive_int("threads[i]", t) for t in threads)


def _bench_threads(
    data: Data, device: torch.device, seed: int, repeats: int, quick: bool
) -> tuple[ThreadBench, float, int]:
    """Part (a) at the current thread count; also the last test accuracy and step count."""
    n = len(data.train)
    in_features = math.prod(data.image_shape)
    dims = (in_features, *HIDDEN, data.num_classes)
    steps = -(-n // BATCH_SIZE)

    def model() -> nn.Module:
        return bench_mlp(in_features, data.num_classes, seed)

    # Warm-up: thread pools, allocator, kernel selection.
    train(model(), data, steps=min(20, steps), seed=seed, device=device, progress=False)
    matmul_floor(min(n, 20 * BATCH_SIZE), dims, device=device, repeats=1)
    _plain_epoch(data, device, seed, steps=20)

    calls, loops, floors, plains, evals, optimizers = [], [], [], [], [], []
    accuracy = math.nan
    for _ in range(repeats):
        floors.append(matmul_floor(n, dims, device=device, repeats=1 if quick else FLOOR_REPEATS))
        net = model()
        _sync(device)
        start = time.perf_counter()
        # Everything at train()'s defaults; progress=False only keeps a bar off the terminal.
        history = train(net, data, epochs=1, seed=seed, device=device, progress=False)
        _sync(device)
        calls.append(time.perf_counter() - start)
        loops.append(history.train_time_s)
        accuracy = history.final_test_accuracy
        evals.append(_timed_evaluation(net, data, device))
        optimizers.append(_optimizer_epoch(model().to(device), steps, device, seed))
        plains.append(_plain_epoch(data, device, seed))
    result = ThreadBench(
        threads=torch.get_num_threads(),
        call_runs_s=tuple(calls),
        loop_runs_s=tuple(loops),
        floor_runs_s=tuple(floors),
        plain_runs_s=tuple(plains),
        evaluation_s=min(evals),
        optimizer_s=min(optimizers),
    )
    return result, accuracy, steps


def run_train_benchmark(
    device: str | torch.device = "cpu",
    *,
    data: Data | None = None,
    quick: bool = False,
    repeats: int | None = None,
    allow_download: bool = False,
    seed: int = 0,
    threads: Sequence[int] = THREADS,
) -> TrainBenchResult:
    """Measure the training engine's speed (see the module docstring for what and how).

    Parameters
    ----------
    device : str or torch.device
        Where (a) and (b) run. (c) runs whenever CUDA is available.
    data : Data, optional
        Defaults to Fashion-MNIST (:func:`netprops.data.load_dataset`), or to a
        small synthetic set when ``quick``.
    quick : bool
        A tiny configuration for tests: 512 synthetic images, a 1-batch
        textbook sample, one run, one floor repeat. Its numbers say nothing
        about performance.
    repeats : int, optional
        Interleaved (floor, call, plain) runs per thread count; the best of each
        is reported. Default 3 (1 when ``quick``).
    allow_download : bool
        Passed to :func:`~netprops.data.load_dataset` when ``data`` is None.
    seed : int
    threads : sequence of int
        CPU thread counts (``torch.set_num_threads``) to measure (a) at, in
        order; the caller's setting is restored afterwards. The target is
        judged at 1 thread.

    Raises
    ------
    DatasetNotFoundError, DatasetCorruptError
        when Fashion-MNIST is needed and cannot be loaded.
    ValueError, TypeError
        for a bad argument (the message names it).
    """
    load_before = _load_average()  # taken before this run adds its own load
    check_type("quick", quick, bool)
    dev = resolve_device(device)
    repeats = check_positive_int("repeats", repeats if repeats is not None else (1 if quick else 3))
    threads = _check_threads(threads)
    if data is None:
        data = (
            synthetic_dataset(n_train=512, n_test=256, seed=seed)
            if quick
            else load_dataset("fashion-mnist", allow_download=allow_download)
        )
    check_type("data", data, Data)
    data = data.to(dev)

    caller_threads = torch.get_num_threads()
    by_threads = []
    accuracy, steps = math.nan, 0
    try:
        for count in threads:
            torch.set_num_threads(count)
            part, accuracy, steps = _bench_threads(data, dev, seed, repeats, quick)
            by_threads.append(part)
        torch.set_num_threads(threads[0])
        textbook_s, timed, steps_per_epoch = _textbook_epoch(
            data, dev, 1 if quick else TEXTBOOK_BATCHES, seed
        )
    finally:
        torch.set_num_threads(caller_threads)
    textbook_epoch = textbook_s / timed * steps_per_epoch

    cuda, skipped = None, None
    if not cuda_available():
        skipped = "CUDA not available"
    else:
        cuda = _cuda_graph_epoch(data, torch.device("cuda"), seed)

    return TrainBenchResult(
        device=str(dev),
        dataset=data.name,
        n_train=len(data.train),
        batch_size=BATCH_SIZE,
        steps=steps,
        by_threads=tuple(by_threads),
        test_accuracy=accuracy,
        textbook_s=textbook_epoch,
        textbook_batches=timed,
        textbook_threads=by_threads[0].threads,
        cuda=cuda,
        cuda_skipped=skipped,
        torch_version=torch.__version__,
        quick=quick,
        load_average=load_before,
    )


def _load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


# ----------------------------------------------------------------------- CLI


def _thread_counts(text: str) -> tuple[int, ...]:
    """``--threads`` as a tuple of positive ints (``"1,2"`` → ``(1, 2)``)."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated thread counts >= 1 such as 1,2; got {text!r}"
        )
    return counts


def _cmd_bench_train(args: argparse.Namespace) -> int:
    """``netprops bench train``: 0 ok, 1 ratio above ``--max-ratio``, 2 data/usage error."""
    try:
        result = run_train_benchmark(
            args.device,
            quick=args.quick,
            repeats=args.repeats,
            allow_download=not args.no_download,
            threads=args.threads,
        )
    except (DatasetNotFoundError, DatasetCorruptError, ValueError) as exc:
        sys.stderr.write(f"netprops bench train: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(str(result) + "\n")
    if args.max_ratio is not None and result.ratio > args.max_ratio:
        sys.stderr.write(
            f"netprops bench train: train()/floor ratio {result.ratio:.2f} at "
            f"{result.judged.threads} thread(s) exceeds --max-ratio {args.max_ratio}\n"
        )
        return 1
    return 0


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` (with its ``train`` subcommand) on the CLI's subparsers.

    ``subparsers`` is what ``ArgumentParser.add_subparsers()`` returned; the
    ``train`` parser sets ``func`` to a handler returning the exit status.
    """
    bench = subparsers.add_parser("bench", help="performance benchmarks")
    commands = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    parser = commands.add_parser(
        "train",
        help="train() at its defaults vs the matmul floor (1 and 2 threads) and the textbook loop",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--device", default="cpu", help="device for the engine and textbook runs (default: cpu)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny synthetic configuration (a smoke test; the numbers mean nothing)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved runs, best reported (default 3)"
    )
    parser.add_argument(
        "--threads",
        type=_thread_counts,
        default=THREADS,
        help="comma-separated CPU thread counts to measure at (default: 1,2; the target is "
        "judged at 1)",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never download Fashion-MNIST (by default torchvision may fetch it when missing)",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=None,
        help=f"exit 1 when train()/floor at 1 thread exceeds this (the target is {TARGET_RATIO})",
    )
    parser.set_defaults(func=_cmd_bench_train)
    return parser
