"""Training-speed benchmark: the engine against the matmul floor and the textbook loop.

:func:`run_train_benchmark` measures, in one process:

(a) one epoch of the MLP 784→500→100→100→10 (ReLU) with :func:`netprops.train.train`
    (batch 128, Adam 1e-3, fp32), against the *matmul floor*: the time
    ``torch.mm`` takes for exactly the epoch's matrix products (per step:
    forward, weight gradient, and input gradient of every layer but the first,
    on the same shapes, last batch included);
    Next to it, the *plain loop* the engine replaces: the same model on the
    same device-resident tensors (``x[idx]`` gathers, torch's default Adam,
    ``zero_grad``/``backward``/``step``), which shows how much of the plain
    loop's non-matmul time the engine removes;
(b) the same epoch in the textbook pipeline (a torchvision-style dataset that
    returns PIL images through ``Compose([ToTensor(), Normalize])``, a shuffling
    ``DataLoader``, torch's default Adam), timed on its first batches and
    extrapolated to the epoch;
(c) on CUDA, a batch-512 epoch with the whole training step captured in a CUDA
    graph (capture time reported separately), next to the same epoch run eagerly.

Floor, engine epoch and plain epoch alternate ``repeats`` times. Reported are
the best time of each and the median of the per-repeat ratios (each ratio
pairs runs seconds apart, so slow drift in the machine's speed cancels). ``netprops bench train``
prints the result; :func:`add_bench_parser` registers that subcommand.
"""

from __future__ import annotations

import argparse
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
from .train import evaluate, train

__all__ = [
    "TARGET_RATIO",
    "CudaGraphBench",
    "TrainBenchResult",
    "add_bench_parser",
    "bench_mlp",
    "matmul_floor",
    "run_train_benchmark",
]

#: The engine's epoch should take at most this multiple of the matmul floor (CPU, fp32).
TARGET_RATIO = 1.3
HIDDEN = (500, 100, 100)
BATCH_SIZE = 128
CUDA_BATCH_SIZE = 512
TEXTBOOK_BATCHES = 100
LR = 1e-3


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
) -> float:
    """Seconds ``torch.mm`` takes for one epoch's matrix products of an MLP.

    For every step (``ceil(n / batch_size)`` of them, the last one holding the
    remainder) and every layer ``W (out, in)``: the forward ``X @ W.T``, the
    weight gradient ``G.T @ X`` and, except for the first layer (whose input
    needs no gradient), the input gradient ``G @ W`` — the layouts autograd
    uses for ``nn.Linear``. Outputs go to preallocated buffers.
    """
    dev = resolve_device(device)
    g = make_generator(0)
    weights = [torch.randn(o, i, generator=g).to(dev, dtype) for i, o in itertools.pairwise(dims)]
    sizes = _batch_sizes(n, batch_size)
    acts, outs = {}, {}
    for b in set(sizes):
        acts[b] = [torch.randn(b, d, generator=g).to(dev, dtype) for d in dims]
        outs[b] = (
            [torch.empty(b, o, device=dev, dtype=dtype) for o in dims[1:]],
            [torch.empty(w.shape, device=dev, dtype=dtype) for w in weights],
            [torch.empty(b, i, device=dev, dtype=dtype) for i in dims[:-1]],
        )
    _sync(dev)
    start = time.perf_counter()
    for b in sizes:
        xs = acts[b]
        fwd, wgrad, igrad = outs[b]
        for layer, w in enumerate(weights):
            torch.mm(xs[layer], w.t(), out=fwd[layer])
            torch.mm(xs[layer + 1].t(), xs[layer], out=wgrad[layer])
            if layer > 0:
                torch.mm(xs[layer + 1], w, out=igrad[layer])
    _sync(dev)
    return time.perf_counter() - start


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


# -------------------------------------------------------------------- result


@dataclass(frozen=True)
class TrainBenchResult:
    """What :func:`run_train_benchmark` measured (times in seconds).

    ``epoch_s`` is :attr:`netprops.train.History.train_time_s` of a one-epoch
    :func:`~netprops.train.train` run (steps only: setup and the final
    evaluation excluded); ``floor_s`` is :func:`matmul_floor` for that epoch;
    ``textbook_s`` is the textbook loop's time extrapolated from
    ``textbook_batches`` timed steps to the full epoch.
    """

    device: str
    dataset: str
    n_train: int
    batch_size: int
    steps: int
    epoch_s: float
    floor_s: float
    epoch_runs_s: tuple[float, ...]
    floor_runs_s: tuple[float, ...]
    plain_runs_s: tuple[float, ...]
    test_accuracy: float
    textbook_s: float
    textbook_batches: int
    cuda: CudaGraphBench | None
    cuda_skipped: str | None
    torch_version: str
    num_threads: int
    quick: bool
    load_average: float | None = None

    @property
    def ratio(self) -> float:
        """Epoch time over the matmul floor (target: at most :data:`TARGET_RATIO`)."""
        return self.epoch_s / self.floor_s

    @property
    def paired_ratio(self) -> float:
        """Median over repeats of that repeat's epoch / floor (robust to drift)."""
        return statistics.median(
            e / f for e, f in zip(self.epoch_runs_s, self.floor_runs_s, strict=True)
        )

    @property
    def plain_ratio(self) -> float:
        """Median over repeats of the plain loop's epoch / floor."""
        return statistics.median(
            p / f for p, f in zip(self.plain_runs_s, self.floor_runs_s, strict=True)
        )

    @property
    def overhead_removed(self) -> float:
        """Share of the plain loop's time above the floor that the engine does not spend.

        ``(plain − engine) / (plain − floor)`` on the median paired ratios: 1 means
        the engine runs at the floor, 0 that it is no faster than the plain loop;
        NaN when the plain loop itself ran at or under the floor (tiny configurations).
        """
        if self.plain_ratio <= 1.0:
            return math.nan
        return (self.plain_ratio - self.paired_ratio) / (self.plain_ratio - 1.0)

    @property
    def speedup(self) -> float:
        """Textbook epoch time over the engine's epoch time."""
        return self.textbook_s / self.epoch_s

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["ratio"] = self.ratio
        payload["paired_ratio"] = self.paired_ratio
        payload["plain_ratio"] = self.plain_ratio
        removed = self.overhead_removed
        payload["overhead_removed"] = None if math.isnan(removed) else removed
        payload["speedup"] = self.speedup
        payload["target_ratio"] = TARGET_RATIO
        if self.cuda is not None:
            payload["cuda"]["speedup"] = self.cuda.speedup
        return payload

    def __str__(self) -> str:
        def runs(values: tuple[float, ...]) -> str:
            return ", ".join(f"{v:.3f}" for v in values)

        if not self.device.startswith("cpu"):
            verdict = "the target is set for CPU"
        elif self.ratio <= TARGET_RATIO:
            verdict = "met"
        else:
            verdict = "missed"
        lines = [
            f"netprops train benchmark — {self.dataset} ({self.n_train} train images), "
            f"MLP {'-'.join(map(str, HIDDEN))}, batch {self.batch_size}, Adam {LR:g}, fp32, "
            f"{self.device}" + (" [quick: tiny synthetic configuration]" if self.quick else ""),
            f"torch {self.torch_version}, {self.num_threads} threads; "
            f"{len(self.epoch_runs_s)} interleaved repeats"
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
        lines += [
            "",
            f"  (a) engine epoch ({self.steps} steps)   {self.epoch_s:8.3f} s   "
            f"runs: {runs(self.epoch_runs_s)}; test accuracy {self.test_accuracy:.4f}",
            f"      matmul floor                {self.floor_s:8.3f} s   "
            f"runs: {runs(self.floor_runs_s)}",
            f"      ratio epoch / floor         {self.ratio:8.2f} x   "
            f"(best / best; median of paired ratios {self.paired_ratio:.2f}x; "
            f"target <= {TARGET_RATIO}x: {verdict})",
            f"      plain loop / floor          {self.plain_ratio:8.2f} x   "
            f"(median paired; runs: {runs(self.plain_runs_s)} s); the engine removes "
            f"{self.overhead_removed:.0%} of its time above the floor",
            f"  (b) textbook DataLoader epoch   {self.textbook_s:8.3f} s   "
            f"(extrapolated from {self.textbook_batches} timed batches)",
            f"      speed-up engine / textbook  {self.speedup:8.1f} x",
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


def run_train_benchmark(
    device: str | torch.device = "cpu",
    *,
    data: Data | None = None,
    quick: bool = False,
    repeats: int | None = None,
    allow_download: bool = False,
    seed: int = 0,
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
        textbook sample, one run. Its numbers say nothing about performance.
    repeats : int, optional
        Interleaved (floor, epoch) runs; the best of each is reported.
        Default 3 (1 when ``quick``).
    allow_download : bool
        Passed to :func:`~netprops.data.load_dataset` when ``data`` is None.
    seed : int

    Raises
    ------
    DatasetNotFoundError, DatasetCorruptError
        when Fashion-MNIST is needed and cannot be loaded.
    """
    load_before = _load_average()  # taken before this run adds its own load
    check_type("quick", quick, bool)
    dev = resolve_device(device)
    repeats = check_positive_int("repeats", repeats if repeats is not None else (1 if quick else 3))
    if data is None:
        data = (
            synthetic_dataset(n_train=512, n_test=256, seed=seed)
            if quick
            else load_dataset("fashion-mnist", allow_download=allow_download)
        )
    check_type("data", data, Data)
    data = data.to(dev)
    n = len(data.train)
    in_features = math.prod(data.image_shape)
    dims = (in_features, *HIDDEN, data.num_classes)

    def engine_epoch() -> tuple[float, float, int]:
        history = train(
            bench_mlp(in_features, data.num_classes, seed),
            data,
            epochs=1,
            batch_size=BATCH_SIZE,
            optimizer="adam",
            lr=LR,
            seed=seed,
            device=dev,
            track=("loss",),
            progress=False,
        )
        return history.train_time_s, history.final_test_accuracy, history.steps

    # Warm-up: thread pools, allocator, kernel selection.
    train(
        bench_mlp(in_features, data.num_classes, seed),
        data,
        steps=min(20, -(-n // BATCH_SIZE)),
        seed=seed,
        device=dev,
        track=(),
        progress=False,
    )
    matmul_floor(min(n, 20 * BATCH_SIZE), dims, device=dev)

    _plain_epoch(data, dev, seed, steps=20)

    floors, epochs, plains = [], [], []
    accuracy, steps = math.nan, 0
    for _ in range(repeats):
        floors.append(matmul_floor(n, dims, device=dev))
        seconds, accuracy, steps = engine_epoch()
        epochs.append(seconds)
        plains.append(_plain_epoch(data, dev, seed))

    textbook_s, timed, steps_per_epoch = _textbook_epoch(
        data, dev, 1 if quick else TEXTBOOK_BATCHES, seed
    )
    textbook_epoch = textbook_s / timed * steps_per_epoch

    cuda, skipped = None, None
    if not cuda_available():
        skipped = "CUDA not available"
    else:
        cuda = _cuda_graph_epoch(data, torch.device("cuda"), seed)

    return TrainBenchResult(
        device=str(dev),
        dataset=data.name,
        n_train=n,
        batch_size=BATCH_SIZE,
        steps=steps,
        epoch_s=min(epochs),
        floor_s=min(floors),
        epoch_runs_s=tuple(epochs),
        floor_runs_s=tuple(floors),
        plain_runs_s=tuple(plains),
        test_accuracy=accuracy,
        textbook_s=textbook_epoch,
        textbook_batches=timed,
        cuda=cuda,
        cuda_skipped=skipped,
        torch_version=torch.__version__,
        num_threads=torch.get_num_threads(),
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


def _cmd_bench_train(args: argparse.Namespace) -> int:
    """``netprops bench train``: 0 ok, 1 ratio above ``--max-ratio``, 2 data/usage error."""
    try:
        result = run_train_benchmark(
            args.device,
            quick=args.quick,
            repeats=args.repeats,
            allow_download=not args.no_download,
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
            f"netprops bench train: epoch/floor ratio {result.ratio:.2f} exceeds "
            f"--max-ratio {args.max_ratio}\n"
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
        help="training-engine speed vs the matmul floor and the textbook DataLoader loop",
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
        "--no-download",
        action="store_true",
        help="never download Fashion-MNIST (by default torchvision may fetch it when missing)",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=None,
        help=f"exit 1 when epoch/floor exceeds this (the target is {TARGET_RATIO})",
    )
    parser.set_defaults(func=_cmd_bench_train)
    return parser
