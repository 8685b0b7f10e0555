"""One training of a study, and the state shared while a study runs.

Every training is a scenario of :mod:`netprops.scenarios` (derived with
``Scenario.replace`` where a study needs other steps or batch sizes) trained
by :func:`netprops.train.train` exactly as :func:`netprops.scenarios.run_scenario`
does, with the same seeds, but keeping the trained model (for inference
timing and the confusion matrix) and showing a progress bar. With a
:class:`netprops.monitor.Monitor` the training is watched (its report is in
``Run.history.monitor``); monitoring does not change what is trained.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import Data, Split
from ..devices import resolve_device
from ..errors import check_int, check_positive_int, check_type
from ..monitor import Monitor, monitoring
from ..scenarios import Scenario, run_scenario
from ..train import History
from .config import StudyConfig

__all__ = ["Context", "Run", "inference_ms_per_1000", "predict", "restrict_test", "train_run"]

log = logging.getLogger(__name__)

# Expected, reportable failures: BatchNorm in training mode needs two values per channel.
_EXPECTED_FAILURES = ("Expected more than 1 value per channel",)
_EVAL_BATCH = 1000


@dataclass
class Run:
    """One seeded training of one scenario.

    ``metrics``: ``final_accuracy``, ``final_test_loss``, ``auc_log_loss``,
    ``train_time_s`` and, when the scenario trains on a subset of at most
    10,000 images, ``train_accuracy`` (a full pass in eval mode) and
    ``train_test_gap``. ``error`` holds the message of an expected failure
    (then ``history`` and ``model`` are None).
    """

    scenario: Scenario
    seed: int
    metrics: dict[str, float] = field(default_factory=dict)
    history: History | None = None
    model: nn.Module | None = None
    test: Split | None = None
    error: str | None = None

    @property
    def accuracy(self) -> float:
        return self.metrics["final_accuracy"]


def restrict_test(data: Data, n: int | None) -> Data:
    """``data`` with its test split cut to a fixed subset of ``n`` images (seed 0), as the scenarios do."""
    if n is None or n >= len(data.test):
        return data
    return dataclasses.replace(data, test=data.test.subset(n, seed=0))


@torch.no_grad()
def predict(model: nn.Module, split: Split) -> torch.Tensor:
    """Predicted classes of ``split`` in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    x = split.float(next(model.parameters()).dtype)
    preds = torch.cat(
        [model(x[i : i + _EVAL_BATCH]).argmax(1) for i in range(0, len(x), _EVAL_BATCH)]
    )
    model.train(was_training)
    return preds


def train_run(
    scenario: Scenario,
    seed: int,
    data: Data,
    *,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    monitor: Monitor | None = None,
) -> Run:
    """Train ``scenario`` with ``seed`` as ``run_scenario`` does, keeping the model.

    The model, its initialization, the batches and the evaluation subset are
    those of :func:`netprops.scenarios.run_scenario` for the same scenario and
    seed, so ``final_accuracy`` and ``auc_log_loss`` agree with it exactly on
    the CPU. ``progress`` is passed to :func:`netprops.train.train`;
    ``monitor`` watches the training (report in ``Run.history.monitor``).

    Raises
    ------
    ValueError, TypeError
        as :func:`netprops.train.train` and :func:`netprops.models.create`.
    """
    check_type("scenario", scenario, Scenario)
    seed = check_int("seed", seed, min_value=0)
    if monitor is not None:
        check_type("monitor", monitor, Monitor)
    # run_scenario takes no monitor: the block hands it to the train() call inside.
    with monitoring(monitor) if monitor is not None else nullcontext():
        result = run_scenario(
            scenario, seed, device=resolve_device(device), data=data, progress=progress
        )
    history = result.history
    metrics = {
        "final_accuracy": history.final_test_accuracy,
        "final_test_loss": history.test_loss[-1],
        "auc_log_loss": history.area_under_log_loss(),
        "train_time_s": history.train_time_s,
    }
    for key in ("train_accuracy", "train_test_gap"):
        if key in result.metrics:
            metrics[key] = result.metrics[key]
    return Run(scenario, seed, metrics, history, result.model, result.test)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def inference_ms_per_1000(
    model: nn.Module, x: torch.Tensor, *, repeats: int = 1, batch: int = 500
) -> float:
    """Median time of an eval-mode forward pass over ``x``, in ms per 1000 images.

    One warm-up pass on a few images first (lazy kernels, allocator). The model's
    mode is restored.
    """
    repeats = check_positive_int("repeats", repeats)
    batch = check_positive_int("batch", batch)
    was_training = model.training
    model.eval()
    dev = x.device
    model(x[: min(len(x), 32)])
    times = []
    for _ in range(repeats):
        _sync(dev)
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
        _sync(dev)
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return statistics.median(times) / len(x) * 1000 * 1000


@dataclass
class Context:
    """What a study needs while it runs: config, data, device, progress bars, best run so far.

    :meth:`run` trains one scenario; an expected failure (BatchNorm at batch
    size 1) becomes a :class:`Run` with ``error`` set, any other error propagates.
    """

    config: StudyConfig
    data: Data
    device: torch.device
    progress: bool | None
    bar: Any = None
    best: Run | None = None
    monitor: Monitor | None = None

    def run(self, scenario: Scenario, seed: int) -> Run:
        """Train ``scenario`` with ``seed``, update the progress bar and the best run."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{scenario.name} seed {seed}")
        log.info("training %s (seed %d, %d steps)", scenario.name, seed, scenario.steps)
        try:
            result = train_run(
                scenario,
                seed,
                self.data,
                device=self.device,
                progress=self.progress,
                monitor=self.monitor,
            )
        except ValueError as exc:
            # only batch size 1 is the expected BatchNorm failure the report discusses
            expected = scenario.batch_size == 1 and any(m in str(exc) for m in _EXPECTED_FAILURES)
            if not expected:
                raise
            log.info("%s (seed %d) cannot train: %s", scenario.name, seed, exc)
            result = Run(scenario, seed, error=str(exc))
        if self.bar is not None:
            self.bar.update()
        if result.error is None and (self.best is None or result.accuracy > self.best.accuracy):
            self.best = result
        return result
