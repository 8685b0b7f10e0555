"""Measurements behind docs/methods.md §Live monitor (run from the repository root).

``overhead``: the monitor's cost on the engine epoch (one ``train()`` call at its defaults, one
epoch of the 784-500-100-100-10 MLP on Fashion-MNIST), monitor off and on alternated in one
process, in thread CPU time (the machine may be shared), at 1 thread::

    PYTHONPATH=. python tests/benchmarks/monitor_measure.py overhead --repeats 5 --every 50

``margins``: every scenario of the catalog (the gate's steps) under ``Monitor(every=10)``; per
scenario and seed the worst statistic of each check and every violation::

    PYTHONPATH=. python tests/benchmarks/monitor_measure.py margins --seeds 0,1 --every 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from netprops.data import load_dataset
from netprops.models import create
from netprops.monitor import Monitor, monitoring
from netprops.scenarios import list_scenarios, run_scenario
from netprops.train import train


def overhead(repeats: int, every: int) -> None:
    data = load_dataset("fashion-mnist")

    def once(monitor: Monitor | None) -> float:
        model = create("mlp-784-500-100-100-10", seed=0)
        start = time.thread_time()
        train(model, data, epochs=1, seed=0, monitor=monitor)
        return time.thread_time() - start

    once(Monitor(every=every))  # warm-up: conversions cached, the checks (and scipy) imported
    off, on = [], []
    for r in range(repeats):
        off.append(once(None))
        on.append(once(Monitor(every=every)))
        print(f"repeat {r}: off {off[-1]:.3f} s, on {on[-1]:.3f} s, ratio {on[-1] / off[-1]:.4f}")
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    print(
        f"every {every}: off median {statistics.median(off):.3f} s (best {min(off):.3f}), on "
        f"median {statistics.median(on):.3f} s (best {min(on):.3f}); median paired ratio "
        f"{statistics.median(ratios):.4f}, ratio of bests {min(on) / min(off):.4f}"
    )


def _worst(report, check: str) -> str:
    obs = report.series.get(check, ())
    return f"{max(o.statistic for o in obs):.3g}" if obs else "—"


def margins(seeds: list[int], every: int) -> None:
    print(
        "| scenario | seed | dead units (max) | saturated (max) | ‖Δw‖/‖w‖ range | loss₀ / ln C | violations |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in list_scenarios():
        for seed in seeds:
            with monitoring(Monitor(every=every)):
                report = run_scenario(name, seed).history.monitor

            ratios = [o.statistic for o in report.series.get("update_ratio", ())]
            band = f"[{min(ratios):.2g}, {max(ratios):.2g}]" if ratios else "—"
            found = "; ".join(str(v) for v in report.violations) or "none"
            print(
                f"| {name} | {seed} | {_worst(report, 'dead_units')} | "
                f"{_worst(report, 'saturation')} | {band} | {_worst(report, 'initial_loss')} | "
                f"{found} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--repeats", type=int, default=5)
    o.add_argument("--every", type=int, default=50)
    m = sub.add_parser("margins")
    m.add_argument("--seeds", default="0,1")
    m.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "overhead":
        overhead(args.repeats, args.every)
    else:
        margins([int(s) for s in args.seeds.split(",")], args.every)


if __name__ == "__main__":
    main()
