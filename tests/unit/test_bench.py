"""netprops.bench: the training benchmark runs and reports sanely (no timing asserts)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math

import pytest
import torch
from torch import nn

from netprops import bench
from netprops import data as data_mod
from netprops.bench import (
    ThreadBench,
    TrainBenchResult,
    add_bench_parser,
    bench_mlp,
    matmul_floor,
    run_train_benchmark,
)
from netprops.data import synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_result() -> TrainBenchResult:
    return run_train_benchmark("cpu", quick=True, threads=(1,))


def cli(argv):
    parser = argparse.ArgumentParser(prog="netprops")
    add_bench_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def test_quick_benchmark_numbers_are_sane(quick_result):
    r = quick_result
    assert r.quick
    assert r.dataset.startswith("synthetic-")
    assert r.device == "cpu"
    assert r.steps == math.ceil(r.n_train / r.batch_size)
    assert r.batch_size == 128  # train()'s default
    (t,) = r.by_threads
    assert t.threads == 1
    assert r.judged is t
    assert _positive(t.call_s, t.loop_s, t.floor_s, t.evaluation_s, t.optimizer_s)
    assert _positive(r.textbook_s, r.ratio, r.speedup)
    assert t.call_s == min(t.call_runs_s)
    assert t.floor_s == min(t.floor_runs_s)
    assert len(t.call_runs_s) == len(t.loop_runs_s) == len(t.floor_runs_s) == 1
    assert len(t.plain_runs_s) == 1 and _positive(*t.plain_runs_s)
    # the loop and the final evaluation are parts of the call
    assert t.loop_runs_s[0] < t.call_runs_s[0]
    assert r.ratio == pytest.approx(t.call_s / t.floor_s)
    assert t.paired_ratio == pytest.approx(t.call_runs_s[0] / t.floor_runs_s[0])
    assert t.lower_bound_ratio > 1.0
    assert r.speedup == pytest.approx(r.textbook_s / t.loop_s)
    assert r.verdict in ("met", "missed")
    assert (r.verdict == "met") == (r.ratio <= bench.TARGET_RATIO)
    assert 0.0 <= r.test_accuracy <= 1.0
    assert r.torch_version == torch.__version__
    if not torch.cuda.is_available():
        assert r.cuda is None
        assert r.cuda_skipped == "CUDA not available"


def test_thread_bench_ratios_and_shares():
    t = ThreadBench(
        threads=1,
        call_runs_s=(2.0, 3.6, 1.8),
        loop_runs_s=(1.5, 3.0, 1.3),
        floor_runs_s=(1.0, 2.0, 1.0),
        plain_runs_s=(2.0, 6.0, 2.5),
        evaluation_s=0.1,
        optimizer_s=0.2,
    )
    assert t.ratio == pytest.approx(1.8)  # best call / best floor
    assert t.paired_ratio == pytest.approx(1.8)  # median of 2.0, 1.8, 1.8
    assert t.loop_ratio == pytest.approx(1.5)  # median of 1.5, 1.5, 1.3
    assert t.plain_ratio == pytest.approx(2.5)  # median of 2.0, 3.0, 2.5
    assert t.overhead_removed == pytest.approx((2.5 - 1.5) / (2.5 - 1.0))
    assert t.setup_s == pytest.approx(0.5 - 0.1)  # median of call - loop, less the evaluation
    assert t.lower_bound_ratio == pytest.approx((1.0 + 0.2 + 0.1) / 1.0)
    at_floor = dataclasses.replace(t, plain_runs_s=(1.0, 2.0, 0.5))
    assert math.isnan(at_floor.overhead_removed)
    assert json.loads(json.dumps(at_floor.to_dict()))["overhead_removed"] is None


def test_target_is_judged_at_one_thread(quick_result):
    one = quick_result.by_threads[0]
    two = dataclasses.replace(one, threads=2, call_runs_s=(one.call_runs_s[0] * 9,))
    r = dataclasses.replace(quick_result, by_threads=(two, one))
    assert r.judged is one
    assert r.ratio == pytest.approx(one.ratio)
    only_two = dataclasses.replace(quick_result, by_threads=(two,), textbook_threads=2)
    assert only_two.verdict.startswith("not judged")
    fast = dataclasses.replace(one, call_runs_s=(one.floor_s * 1.2,))
    assert dataclasses.replace(quick_result, by_threads=(fast,)).verdict == "met"
    slow = dataclasses.replace(one, call_runs_s=(one.floor_s * 1.4,))
    assert dataclasses.replace(quick_result, by_threads=(slow,)).verdict == "missed"
    assert dataclasses.replace(quick_result, device="cuda:0").verdict.endswith("for CPU")


def test_quick_benchmark_str_is_a_readable_table(quick_result):
    text = str(quick_result)
    for phrase in (
        "train() at its defaults",
        "train() call",
        "matmul floor",
        "ratio call / floor",
        "final evaluation",
        "set-up",
        "optimizer steps",
        "no call can be faster",
        "plain loop",
        "median",
        "textbook",
        "extrapolated",
        "speed-up",
        f"target <= {bench.TARGET_RATIO}x: {quick_result.verdict}",
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
    assert payload["verdict"] == quick_result.verdict
    (part,) = payload["by_threads"]
    assert part["call_runs_s"] == list(quick_result.by_threads[0].call_runs_s)
    assert part["lower_bound_ratio"] == pytest.approx(quick_result.by_threads[0].lower_bound_ratio)


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
    assert (
        sum(p.numel() for p in model.parameters()) == 453_710
    )  # 784·500+500 + 500·100+100 + 100·100+100 + 100·10+10
    again = bench_mlp()
    assert all(
        torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True)
    )


def test_matmul_floor_is_positive(device):
    seconds = matmul_floor(300, (64, 32, 10), batch_size=128, device=device)
    assert seconds > 0


def test_matmul_floor_times_the_epochs_products_on_contiguous_operands(monkeypatch):
    """Per step and layer: forward, weight gradient, input gradient (not the first layer's)."""
    calls = []
    real_mm = torch.mm

    def counting_mm(a, b, *, out):
        calls.append((tuple(a.shape), tuple(b.shape), a.is_contiguous() and b.is_contiguous()))
        return real_mm(a, b, out=out)

    monkeypatch.setattr(torch, "mm", counting_mm)
    dims = (12, 8, 6, 3)
    matmul_floor(300, dims, batch_size=128, repeats=2)
    assert all(contiguous for _, _, contiguous in calls)
    steps = [128, 128, 44]
    expected = []
    for b in steps:
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
            expected.append(((b, fan_in), (fan_in, fan_out)))  # X @ W^T
            expected.append(((fan_out, b), (b, fan_in)))  # G^T @ X
            if layer > 0:
                expected.append(((b, fan_out), (fan_out, fan_in)))  # G @ W
    assert [(a, b) for a, b, _ in calls] == expected * 2  # best of 2 repeats


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"repeats": 0}, ValueError, "repeats"),
        ({"dims": (5,)}, ValueError, "dims"),
    ],
)
def test_matmul_floor_validates_arguments(kwargs, error, match):
    args = {"n": 10, "dims": (5, 3), **kwargs}
    with pytest.raises(error, match=match):
        matmul_floor(**args)


def test_train_is_timed_at_its_defaults(monkeypatch):
    """The measured calls pass only what defines the run (epochs, seed, device), no tuning."""
    seen = []
    real_train = bench.train

    def spy(model, data, **kwargs):
        seen.append(kwargs)
        return real_train(model, data, **kwargs)

    monkeypatch.setattr(bench, "train", spy)
    data = synthetic_dataset(n_train=200, n_test=50, image_shape=(1, 6, 6), num_classes=3)
    run_train_benchmark("cpu", data=data, quick=True, threads=(1,))
    timed = [kw for kw in seen if kw.get("epochs") == 1]
    assert timed
    for kwargs in timed:
        assert set(kwargs) == {"epochs", "seed", "device", "progress"}
        assert kwargs["progress"] is False


def test_threads_are_measured_in_order_and_restored():
    data = synthetic_dataset(n_train=130, n_test=20, image_shape=(1, 4, 4), num_classes=2)
    before = torch.get_num_threads()
    result = run_train_benchmark("cpu", data=data, quick=True, threads=(2, 1))
    assert [t.threads for t in result.by_threads] == [2, 1]
    assert result.judged.threads == 1
    assert result.textbook_threads == 2
    assert torch.get_num_threads() == before


def test_benchmark_on_given_data():
    data = synthetic_dataset(n_train=256, n_test=64, image_shape=(1, 6, 6), num_classes=3)
    result = run_train_benchmark("cpu", data=data, quick=True, threads=(1,))
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
        ({"threads": ()}, ValueError, "threads"),
        ({"threads": (1, 0)}, ValueError, r"threads\[i\]"),
        ({"threads": 2}, TypeError, "threads"),
    ],
)
def test_run_train_benchmark_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        run_train_benchmark(**kwargs)


# ---------------------------------------------------------------------- CLI


def test_cli_json_prints_valid_json(capsys):
    args = cli(["bench", "train", "--quick", "--json", "--threads", "1"])
    assert args.func(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["quick"] is True
    assert payload["ratio"] > 0
    assert payload["speedup"] > 0
    assert [t["threads"] for t in payload["by_threads"]] == [1]


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
    args = cli(["bench", "train", "--device", "cpu", "--repeats", "5", "--threads", "2,1"])
    assert args.func(args) == 0
    assert seen == {
        "device": "cpu",
        "quick": False,
        "repeats": 5,
        "allow_download": True,
        "threads": (2, 1),
    }
    default = cli(["bench", "train"])
    assert default.threads == (1, 2)


@pytest.mark.parametrize("value", ["0", "a", "1,,2", ""])
def test_cli_rejects_bad_thread_counts(value, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["bench", "train", "--threads", value])
    assert info.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_cli_bench_requires_a_benchmark_name():
    with pytest.raises(SystemExit) as info:
        cli(["bench"])
    assert info.value.code == 2
