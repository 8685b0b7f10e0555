"""Margins of the normalization contracts: how far correct layers stay below the bound,
how far the mutants land above it.

Not a test (nothing here is collected): the measurement behind the tables of
docs/methods.md §Normalization contracts. Run from the repository root::

    PYTHONPATH=.:tests python -m quality.norm_margins --seeds 100

``check_normalized`` and ``check_train_eval_contract`` are deterministic comparisons
(no α): a correct layer passes when its worst ``|y − oracle|/B`` stays <= 1 on every
input, so the quantity to measure is that worst ratio over many inputs — the
false-alarm margin — and, for each mutant, the smallest ratio by which it is caught.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch import nn

from netprops import PropertyViolation, derive_seed, make_generator
from netprops.checks import check_normalized, check_train_eval_contract
from netprops.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm

from . import mutants  # the catalog (mutants_norm is appended to it on import)

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
OFFSETS = (0.0, 3.0, 30.0)

#: name -> (factory(C, T, device, dtype), rank of the input: 2 = (N, C), 3 = (N, C, L), ...)
Factory = Callable[[int, int, torch.dtype], nn.Module]
FAMILIES: dict[str, tuple[Factory, int]] = {
    "nn.LayerNorm(C)": (lambda c, t, dt: nn.LayerNorm(t, dtype=dt), 3),
    "nn.LayerNorm((C, L))": (lambda c, t, dt: nn.LayerNorm((c, t), dtype=dt), 3),
    "LayerNorm(C) (netprops)": (lambda c, t, dt: LayerNorm(t, dtype=dt), 3),
    "nn.RMSNorm(C)": (lambda c, t, dt: nn.RMSNorm(t, dtype=dt), 3),
    "nn.RMSNorm(C, eps=1e-6)": (lambda c, t, dt: nn.RMSNorm(t, eps=1e-6, dtype=dt), 3),
    "nn.GroupNorm": (lambda c, t, dt: nn.GroupNorm(_groups(c), 2 * c, dtype=dt), -3),
    "nn.InstanceNorm1d": (lambda c, t, dt: nn.InstanceNorm1d(c, affine=True, dtype=dt), 3),
    "nn.InstanceNorm2d": (lambda c, t, dt: nn.InstanceNorm2d(c, affine=True, dtype=dt), 4),
    "nn.BatchNorm1d (N, C)": (lambda c, t, dt: nn.BatchNorm1d(c, dtype=dt), 2),
    "nn.BatchNorm1d (N, C, L)": (lambda c, t, dt: nn.BatchNorm1d(c, dtype=dt), 3),
    "nn.BatchNorm2d": (lambda c, t, dt: nn.BatchNorm2d(c, dtype=dt), 4),
    "nn.BatchNorm3d": (lambda c, t, dt: nn.BatchNorm3d(c, dtype=dt), 5),
    "BatchNorm1d (netprops)": (lambda c, t, dt: BatchNorm1d(c, dtype=dt), 2),
    "BatchNorm2d (netprops)": (lambda c, t, dt: BatchNorm2d(c, dtype=dt), 4),
}


def _groups(c: int) -> int:
    return 2 if c > 1 else 1


@torch.no_grad()
def trained_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Affine weights N(1, 0.5²) (a few near 0 or negative), biases N(0, 0.5²), running
    means N(0, 1) and running variances exp(N(0, 1)): what a module looks like after training."""
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if not t.is_floating_point():
            continue
        z = torch.randn(t.shape, generator=generator, dtype=torch.float64)
        leaf = name.rpartition(".")[2]
        value = {
            "weight": 1 + 0.5 * z,
            "bias": 0.5 * z,
            "running_mean": z,
            "running_var": z.exp(),
        }.get(leaf)
        if value is not None:
            t.copy_(value.to(t.dtype))


def _input(rank: int, c: int, t: int, seed: int, dtype, offset: float) -> torch.Tensor:
    g = make_generator(seed)
    n = 2 + seed % 5
    channels = 2 * c if rank == -3 else c
    shape = {2: (n, c), 3: (n, channels, t), 4: (n, c, 3, t), 5: (n, c, 2, 2, t)}[abs(rank)]
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    return (offset + (1.0 + seed % 3) * z).to(dtype)


def false_alarm_margins(seeds: int) -> dict[tuple[str, str, str], tuple[float, int, int]]:
    """(family, dtype, check) -> (worst statistic/bound, runs, refusals)."""
    worst: dict[tuple[str, str, str], list] = defaultdict(lambda: [0.0, 0, 0])
    for family, (factory, rank) in FAMILIES.items():
        for dtype in DTYPES:
            dname = str(dtype).replace("torch.", "")
            for seed in range(seeds):
                g = make_generator(derive_seed(seed, family, dname))
                c = 1 + seed % 4
                t = 2 + seed % 7
                offset = OFFSETS[seed % len(OFFSETS)]
                module = factory(c, t, dtype)
                trained_parameters(module, g)
                x = _input(rank, c, t, seed, dtype, offset)
                runs = [("normalized train", True, check_normalized)]
                if "BatchNorm" in family:
                    runs.append(("normalized eval", False, check_normalized))
                if "BatchNorm" in family or "Instance" in family:
                    runs.append(("train_eval_contract", True, _contract))
                for label, training, check in runs:
                    cell = worst[(family, dname, label)]
                    cell[1] += 1
                    try:
                        result = check(module.train(training), x, seed=seed)
                    except ValueError as exc:  # an input too ill-conditioned to judge
                        if "cannot tell" not in str(exc):
                            raise
                        cell[2] += 1
                        continue
                    except PropertyViolation as exc:
                        raise AssertionError(f"FALSE ALARM {family} {dname} {label}") from exc
                    cell[0] = max(cell[0], result.statistic)
    return {k: tuple(v) for k, v in worst.items()}


def _contract(module, x, seed):
    return check_train_eval_contract(module, x, seed=seed)


_STAT = re.compile(r"statistic: (\S+)\n  bound:     <= (\S+)")


def mutant_margins(seeds: int) -> dict[str, tuple[str, str]]:
    """mutant -> (killing checks, smallest over seeds of the largest statistic/bound of a
    tolerance-based violation, or "bitwise rule" where only bitwise rules caught it)."""
    families = {"LayerNorm", "BatchNorm", "RMSNorm", "GroupNorm", "InstanceNorm"}
    extra = {
        "dropconnect_weight_drop_in_place",
        "dropconnect_stale_eval_cache",
        "dropout_sticky_eval",
        "dropout_in_eval",
        "dropconnect_mask_in_eval",
    }
    out = {}
    for mutant in mutants.CATALOG:
        if mutant.family not in families and mutant.name not in extra:
            continue
        per_seed, killers = [], set()
        for seed in range(seeds):
            tolerance_ratio, bitwise = 0.0, False
            for probe in mutant.probes:
                if probe.statistical:
                    continue
                try:
                    probe.run(mutant.build(seed, "cpu"), seed, "cpu")
                except PropertyViolation as exc:
                    killers.add(probe.check.removeprefix("check_"))
                    statistic, bound = (float(v) for v in _STAT.search(str(exc)).groups())
                    if bound == 0.0:  # a bitwise rule (or a raised forward): any difference
                        bitwise = True
                    else:
                        tolerance_ratio = max(tolerance_ratio, statistic / bound)
            per_seed.append((tolerance_ratio, bitwise))
        if all(r > 1.0 for r, _ in per_seed):
            shown = f"{min(r for r, _ in per_seed):.3g}"
        elif all(r > 1.0 or b for r, b in per_seed):
            shown = "bitwise rule"
        else:
            shown = "SURVIVES at some seed"
        out[mutant.name] = (", ".join(sorted(killers)), shown)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="inputs per family and dtype")
    parser.add_argument("--mutant-seeds", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    margins = false_alarm_margins(args.seeds)
    print("| layer | check | " + " | ".join(str(d).replace("torch.", "") for d in DTYPES) + " |")
    print("|---|---|" + "---|" * len(DTYPES))
    for family in FAMILIES:
        for label in ("normalized train", "normalized eval", "train_eval_contract"):
            cells = [margins.get((family, str(d).replace("torch.", ""), label)) for d in DTYPES]
            if cells[0] is None:
                continue
            text = [
                f"{w:.3g}" + (f" ({r} refused)" if r else "")
                for w, _, r in cells  # type: ignore[misc]
            ]
            print(f"| {family} | {label} | " + " | ".join(text) + " |")
    runs = sum(v[1] for v in margins.values())
    print(f"\n{runs} checks, none failed ({time.perf_counter() - start:.0f} s)\n")
    print("| mutant | killed by | smallest margin over seeds |")
    print("|---|---|---|")
    for name, (killers, shown) in mutant_margins(args.mutant_seeds).items():
        print(f"| {name} | {killers} | {shown} |")


if __name__ == "__main__":
    main()
