"""netprops.bench: the training benchmark runs and reports sanely (no timing asserts)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from netprops import bench
from netprops import data as data_mod
from netprops.bench import (
    TrainBenchResult,
    add_bench_parser,
    bench_mlp,
    matmul_floor,
    run_train_benchmark,
)
from netprops.data import synthetic_dataset


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny workloads: one intra-op thread avoids OpenMP spinning on a busy shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick_result() -> TrainBenchResult:
    return run_train_benchmark("cpu", quick=True)


def cli(argv):
    parser = argparse.ArgumentParser(prog="netprops")
    add_bench_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_quick_benchmark_numbers_are_sane(quick_result):
    r = quick_result
    assert r.quick
    assert r.dataset.startswith("synthetic-")
    assert r.device == "cpu"
    assert r.steps == math.ceil(r.n_train / r.batch_size)
    for value in (r.epoch_s, r.floor_s, r.textbook_s, r.ratio, r.speedup):
        assert math.isfinite(value)
        assert value > 0
    assert r.epoch_s == min(r.epoch_runs_s)
    assert r.floor_s == min(r.floor_runs_s)
    assert r.ratio == pytest.approx(r.epoch_s / r.floor_s)
    assert len(r.plain_runs_s) == len(r.epoch_runs_s) == len(r.floor_runs_s) == 1
    assert all(math.isfinite(v) and v > 0 for v in r.plain_runs_s)
    assert r.paired_ratio == pytest.approx(r.epoch_runs_s[0] / r.floor_runs_s[0])
    assert r.plain_ratio == pytest.approx(r.plain_runs_s[0] / r.floor_runs_s[0])
    assert r.speedup == pytest.approx(r.textbook_s / r.epoch_s)
    assert 0.0 <= r.test_accuracy <= 1.0
    assert r.num_threads == torch.get_num_threads()
    assert r.torch_version == torch.__version__
    if not torch.cuda.is_available():
        assert r.cuda is None
        assert r.cuda_skipped == "CUDA not available"


def test_paired_ratios_and_overhead_removed(quick_result):
    r = dataclasses.replace(
        quick_result,
        floor_runs_s=(1.0, 2.0, 1.0),
        epoch_runs_s=(1.5, 3.2, 1.4),
        plain_runs_s=(2.0, 6.0, 2.5),
    )
    assert r.paired_ratio == pytest.approx(1.5)  # median of 1.5, 1.6, 1.4
    assert r.plain_ratio == pytest.approx(2.5)  # median of 2.0, 3.0, 2.5
    assert r.overhead_removed == pytest.approx((2.5 - 1.5) / (2.5 - 1.0))
    at_floor = dataclasses.replace(r, plain_runs_s=(1.0, 2.0, 0.5))
    assert math.isnan(at_floor.overhead_removed)
    assert json.loads(json.dumps(at_floor.to_dict()))["overhead_removed"] is None


def test_quick_benchmark_str_is_a_readable_table(quick_result):
    text = str(quick_result)
    for phrase in (
        "matmul floor",
        "ratio epoch / floor",
        "plain loop",
        "median",
        "textbook",
        "extrapolated",
        "speed-up",
    ):
        assert phrase in text
    assert f"{quick_result.ratio:.2f}" in text
    if quick_result.cuda is None:
        assert "skipped: CUDA not available" in text


def test_to_dict_is_json_ready(quick_result):
    payload = json.loads(json.dumps(quick_result.to_dict()))
    assert payload["ratio"] == pytest.approx(quick_result.ratio)
    assert payload["speedup"] == pytest.approx(quick_result.speedup)
    assert payload["target_ratio"] == bench.TARGET_RATIO
    assert payload["epoch_runs_s"] == list(quick_result.epoch_runs_s)


def test_bench_mlp_architecture():
    model = bench_mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 500),
        (500, 100),
        (100, 100),
        (100, 10),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in model) == 3
    assert sum(p.numel() for p in model.parameters()) == 453_710  # METHODS reference count
    again = bench_mlp()
    assert all(
        torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True)
    )


def test_matmul_floor_is_positive(device):
    seconds = matmul_floor(300, (64, 32, 10), batch_size=128, device=device)
    assert seconds > 0


def test_benchmark_on_given_data():
    data = synthetic_dataset(n_train=256, n_test=64, image_shape=(1, 6, 6), num_classes=3)
    result = run_train_benchmark("cpu", data=data, quick=True)
    assert result.dataset == data.name
    assert result.n_train == 256
    assert result.steps == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"device": "tpu"}, ValueError, "device"),
        ({"quick": "yes"}, TypeError, "quick"),
        ({"repeats": 0}, ValueError, "repeats"),
        ({"data": "fashion-mnist"}, TypeError, "data"),
    ],
)
def test_run_train_benchmark_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        run_train_benchmark(**kwargs)


# ---------------------------------------------------------------------- CLI


def test_cli_json_prints_valid_json(capsys):
    args = cli(["bench", "train", "--quick", "--json"])
    assert args.func(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["quick"] is True
    assert payload["ratio"] > 0
    assert payload["speedup"] > 0


def test_cli_table_and_max_ratio(capsys, monkeypatch, quick_result):
    monkeypatch.setattr(bench, "run_train_benchmark", lambda *a, **k: quick_result)
    args = cli(["bench", "train", "--quick"])
    assert args.func(args) == 0
    assert "matmul floor" in capsys.readouterr().out
    strict = cli(["bench", "train", "--quick", "--max-ratio", str(quick_result.ratio / 2)])
    assert strict.func(strict) == 1
    assert "exceeds --max-ratio" in capsys.readouterr().err
    lenient = cli(["bench", "train", "--max-ratio", str(quick_result.ratio * 2)])
    assert lenient.func(lenient) == 0


def test_cli_missing_dataset_exits_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    monkeypatch.delenv("NETPROPS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    args = cli(["bench", "train", "--no-download"])
    assert args.func(args) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_cli_options_reach_the_benchmark(monkeypatch, quick_result):
    seen = {}

    def fake(device, **kwargs):
        seen.update(device=device, **kwargs)
        return dataclasses.replace(quick_result)

    monkeypatch.setattr(bench, "run_train_benchmark", fake)
    args = cli(["bench", "train", "--device", "cpu", "--repeats", "5"])
    assert args.func(args) == 0
    assert seen == {"device": "cpu", "quick": False, "repeats": 5, "allow_download": True}


def test_cli_bench_requires_a_benchmark_name():
    with pytest.raises(SystemExit) as info:
        cli(["bench"])
    assert info.value.code == 2
