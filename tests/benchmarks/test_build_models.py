"""Build time of every registry model on the CPU (target: under 0.5 s each).

Run with ``pytest tests/benchmarks/test_build_models.py -m benchmark --benchmark-only``;
the default run deselects the ``benchmark`` marker.
"""

from __future__ import annotations

import pytest
from torch import nn

from netprops.models import create, list_models

pytestmark = pytest.mark.benchmark


@pytest.mark.parametrize("name", list_models())
def test_build(benchmark, name):
    benchmark.group = "build"
    model = benchmark(create, name, seed=0)
    assert isinstance(model, nn.Module)
    assert model.count_parameters() > 0
