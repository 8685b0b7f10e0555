"""Run the studies: plan the trainings, run them, and collect the sections.

Each study (:mod:`netprops.study.studies`) states its claims and decides them
with the rules of :mod:`netprops.study.claims`; nothing here knows the
answer in advance.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from .. import __version__
from ..data import Data
from ..devices import resolve_device
from ..errors import check_type
from ..monitor import Monitor
from ..train import _show_progress as _show
from .config import QUICK, STUDIES, StudyConfig
from .results import StudyResult
from .runs import Context, Run
from .studies import REGISTRY, confusion_section, diagnostics_section

__all__ = ["run_study"]

log = logging.getLogger(__name__)


def _environment(data: Data, device: torch.device) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "netprops": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_start": list(load),
        "dataset": data.name,
        "dataset_source": data.source,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _outer_bar(show: bool, total: int) -> Any:
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="study", unit="run", file=sys.stderr, position=0)


def run_study(
    data: Data,
    *,
    config: StudyConfig = QUICK,
    only: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> StudyResult:
    """Run the studies on ``data`` and return their sections (no files written).

    Parameters
    ----------
    data : Data
        Fashion-MNIST (``load_dataset("fashion-mnist")``) or any 1×28×28,
        10-class :class:`Data` (e.g. :func:`netprops.data.synthetic_dataset` in tests).
    config : StudyConfig
        :data:`QUICK`, :data:`FULL` or your own.
    only : sequence of str, optional
        Names from :data:`STUDIES` to run (default: all), in report order.
        The confusion matrix of the best trained model is always added.
    device : str or torch.device
    progress : bool, optional
        Progress bars (one over the trainings, one per training); ``None``:
        only when stderr is a terminal and not under pytest or CI.

    Returns
    -------
    StudyResult

    Raises
    ------
    ValueError, TypeError
        for an unknown study name, a bad config or data of the wrong shape.
    """
    check_type("data", data, Data)
    check_type("config", config, StudyConfig)
    if data.image_shape != (1, 28, 28) or data.num_classes != 10:
        raise ValueError(
            f"data must be 1×28×28 images in 10 classes (Fashion-MNIST-like), got "
            f"{data.image_shape} with {data.num_classes} classes"
        )
    names = _resolve_only(only)
    dev = resolve_device(device)
    if progress is not None:
        check_type("progress", progress, bool)
    show = _show(progress)
    start = time.perf_counter()
    data = data.to(dev)
    environment = _environment(data, dev)
    plans = {name: REGISTRY[name].plan(config) for name in names}
    total = sum(len(p) for p in plans.values()) * len(config.seeds)
    monitor = None if config.monitor_every is None else Monitor(every=config.monitor_every)
    ctx = Context(config, data, dev, progress=show, bar=_outer_bar(show, total), monitor=monitor)
    sections = []
    trained: dict[str, dict[str, list[Run]]] = {}  # study -> scenario -> runs, for diagnostics
    # Saturated tanh units produce subnormal floats, which are ~100x slower on x86
    # CPUs; flushing them to zero changes no reported digit and keeps --quick quick.
    # torch has no getter for this switch: it is turned off again afterwards (the default).
    environment["flush_denormal"] = torch.set_flush_denormal(True)
    try:
        for name in names:
            t0 = time.perf_counter()
            runs = {sc.name: [ctx.run(sc, seed) for seed in config.seeds] for sc in plans[name]}
            trained[name] = runs
            section = REGISTRY[name].analyze(ctx, runs)
            section.elapsed_s = time.perf_counter() - t0
            sections.append(section)
            for rs in runs.values():  # free the models no one needs any more
                for r in rs:
                    if r is not ctx.best:
                        r.model = None
            log.info("study %s done in %.1f s", name, section.elapsed_s)
    finally:
        if environment["flush_denormal"]:
            torch.set_flush_denormal(False)
        if ctx.bar is not None:
            ctx.bar.close()
    if ctx.best is not None:
        sections.append(confusion_section(ctx.best, data.classes))
    if monitor is not None:
        sections.append(diagnostics_section(trained, monitor))
    environment["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return StudyResult(config.to_dict(), environment, sections, time.perf_counter() - start)


def _resolve_only(only: Sequence[str] | None) -> list[str]:
    if only is None:
        return list(STUDIES)
    if isinstance(only, str):
        only = [only]
    check_type("only", only, (list, tuple))
    unknown = [n for n in only if n not in STUDIES]
    if unknown or not only:
        raise ValueError(f"only must name studies from {', '.join(STUDIES)}; got {list(only)!r}")
    return [n for n in STUDIES if n in only]
