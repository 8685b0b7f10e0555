"""What the installed netprops plugin costs a project that does not use it.

``pytest --co`` of a throw-away project (plain tests, one Hypothesis test, no
netprops) in a fresh process, with the plugin loaded as in any environment where
netprops is installed, and with ``-p no:netprops``. Both sides share one
pytest-benchmark group; ``test_collect_only_overhead`` runs the two interleaved
in pairs and stores the paired differences of wall and CPU time (median,
minimum, maximum, seconds) in the benchmark's ``extra_info`` (``--benchmark-json``). The target is at most 0.15 s
above ``-p no:netprops``; timings are reported, never asserted.

Run: ``pytest tests/benchmarks/test_plugin_overhead.py -m benchmark --benchmark-only
--benchmark-json=overhead.json``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

ROUNDS = 7

TEST_FILE = """
from hypothesis import given, strategies as st


@given(st.integers())
def test_hypothesis(n):
    assert isinstance(n, int)


class TestPlain:
    def test_a(self):
        assert True

    def test_b(self):
        assert 1 + 1 == 2

"""

MODULES = 40
PLAIN_PER_MODULE = 10


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unused-netprops")
    (root / "pytest.ini").write_text("[pytest]\n")
    plain = "".join(
        f"\n\ndef test_plain_{j}():\n    assert {j} >= 0\n" for j in range(PLAIN_PER_MODULE)
    )
    for i in range(MODULES):
        (root / f"test_mod{i}.py").write_text(TEST_FILE + plain)
    return root


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def collect(project: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``pytest --co -q`` of ``project`` in a fresh process
    (CPU time depends less on the other load of a shared machine)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start, _children_cpu() - cpu


@pytest.mark.parametrize("plugin", ["netprops", "no:netprops"])
def test_collect_only(benchmark, project: Path, plugin: str):
    benchmark.group = "pytest --co, netprops installed but unused"
    args = () if plugin == "netprops" else ("-p", "no:netprops")
    benchmark.pedantic(collect, args=(project, *args), rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_collect_only_overhead(benchmark, project: Path):
    """Interleaved pairs (without, with): the plugin's cost as the median paired difference."""
    benchmark.group = "pytest --co, netprops installed but unused"
    wall: list[float] = []
    cpu: list[float] = []

    def pair() -> None:
        without = collect(project, "-p", "no:netprops")
        with_plugin = collect(project)
        wall.append(with_plugin[0] - without[0])
        cpu.append(with_plugin[1] - without[1])

    benchmark.pedantic(pair, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    for name, values in (("wall", wall[1:]), ("cpu", cpu[1:])):  # [0]: the warm-up pair
        benchmark.extra_info[f"overhead_{name}_median_s"] = statistics.median(values)
        benchmark.extra_info[f"overhead_{name}_min_s"] = min(values)
        benchmark.extra_info[f"overhead_{name}_max_s"] = max(values)
