"""The live monitor's cost on the engine epoch: ``train()`` with ``monitor=None`` vs ``Monitor(every=50)``.

One whole ``train()`` call at its defaults (batch 128, Adam 1e-3, loss/accuracy/gradient-norm
tracking, the final evaluation) for one epoch (469 steps) of the 784-500-100-100-10 MLP on a
Fashion-MNIST-shaped synthetic set (60,000 + 10,000 images: the same shapes, so the same work).
Both sides sit in the group ``monitor_overhead-<device>``; the target, on for at most 1.05× off,
is read from the table, never asserted. ``tests/benchmarks/monitor_measure.py overhead``
measures the same ratio interleaved in one process (docs/methods.md §Live monitor).
"""

from __future__ import annotations

import pytest
import torch

from netprops.data import synthetic_dataset
from netprops.models import create
from netprops.monitor import Monitor
from netprops.train import train

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def fashion_shaped():
    return synthetic_dataset(n_train=60_000, n_test=10_000, seed=0)


@pytest.mark.parametrize("monitor", ["off", "on"])
def test_engine_epoch_monitor_overhead(benchmark, fashion_shaped, device, monitor):
    data = fashion_shaped.to(device)
    watch = Monitor(every=50) if monitor == "on" else None
    train(create("mlp-784-500-100-100-10", seed=0), data, steps=50, device=device, monitor=watch)

    def setup():
        return (create("mlp-784-500-100-100-10", seed=0),), {}

    def epoch(model: torch.nn.Module) -> None:
        history = train(model, data, epochs=1, seed=0, device=device, monitor=watch)
        assert (history.monitor is None) == (watch is None)

    benchmark.group = f"monitor_overhead-{device}"
    benchmark.pedantic(epoch, setup=setup, rounds=3, iterations=1)
