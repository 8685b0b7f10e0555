"""How big a study run is: :class:`StudyConfig`, and the :data:`QUICK` and :data:`FULL` presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import check_int, check_positive_float, check_positive_int, check_type

__all__ = ["FULL", "NORM_BATCH_SIZES", "QUICK", "STUDIES", "StudyConfig"]

#: The studies, in report order (``--only`` takes these names).
STUDIES: tuple[str, ...] = ("init", "regularization", "normalization", "depth", "architecture")

#: Batch sizes of the normalization study.
NORM_BATCH_SIZES: tuple[int, ...] = (1, 4, 32, 128)


@dataclass(frozen=True)
class StudyConfig:
    """How big a study run is.

    Attributes
    ----------
    name : str
        ``"quick"``, ``"full"`` or a name of your own.
    seeds : tuple of int
        Seeds every training runs with (>= 3 switches the verdicts to a t-test).
    profile_networks : int
        Independent networks per init scheme for the variance profiles.
    profile_batch : int
        Test images the profiles are measured on.
    init_steps, reg_steps, depth_steps, arch_steps : int
        Training steps of the init, regularization, depth and architecture runs.
    norm_steps : mapping of int to int
        Steps per batch size in the normalization study (keys: 1, 4, 32, 128).
    arch_batch_size : int
        Batch size of every architecture run (the same for all, as the coursework asks).
    test_subset : int or None
        Test images for the fully connected runs (None: the whole test split).
    conv_test_subset : int or None
        Test images for the convolutional runs (their evaluation is costly on a CPU).
    evals : int
        Evaluations per training (test curves have this many points).
    infer_images, infer_repeats : int
        Inference timing: images per pass, passes (the median is reported).
    accuracy_margin, gap_margin : float
        Smallest difference in test accuracy / train–test gap a claim counts.
    monitor_every : int or None
        Every training runs the live monitor (:class:`netprops.monitor.Monitor`) on
        every this many steps, for the report's diagnostics section; None: no monitor.
    """

    name: str
    seeds: tuple[int, ...]
    profile_networks: int
    profile_batch: int
    init_steps: int
    reg_steps: int
    norm_steps: Mapping[int, int]
    depth_steps: int
    arch_steps: int
    arch_batch_size: int
    test_subset: int | None
    conv_test_subset: int | None
    evals: int
    infer_images: int
    infer_repeats: int
    accuracy_margin: float = 0.02
    gap_margin: float = 0.02
    monitor_every: int | None = 50

    def __post_init__(self) -> None:
        check_type("name", self.name, str)
        check_type("seeds", self.seeds, tuple)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"seeds must be a non-empty tuple of distinct ints, got {self.seeds!r}"
            )
        for s in self.seeds:
            check_int("seeds[i]", s, min_value=0)
        for name in (
            "profile_networks",
            "profile_batch",
            "init_steps",
            "reg_steps",
            "depth_steps",
            "arch_steps",
            "arch_batch_size",
            "evals",
            "infer_images",
            "infer_repeats",
        ):
            check_positive_int(name, getattr(self, name))
        for name in ("test_subset", "conv_test_subset", "monitor_every"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_type("norm_steps", self.norm_steps, Mapping)
        missing = sorted(set(NORM_BATCH_SIZES) - set(self.norm_steps))
        if missing:
            raise ValueError(
                f"norm_steps must give steps for batch sizes {NORM_BATCH_SIZES}, missing {missing}"
            )
        for bs in NORM_BATCH_SIZES:
            check_positive_int(f"norm_steps[{bs}]", self.norm_steps[bs])
        check_positive_float("accuracy_margin", self.accuracy_margin, allow_zero=True)
        check_positive_float("gap_margin", self.gap_margin, allow_zero=True)

    def replace(self, **overrides: Any) -> StudyConfig:
        """A copy with fields replaced; unknown fields raise ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(
                f"unknown config field(s) {unknown}; valid: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        out["norm_steps"] = {str(k): v for k, v in self.norm_steps.items()}
        return out


QUICK = StudyConfig(
    name="quick",
    seeds=(0, 1),
    profile_networks=4,
    profile_batch=512,
    init_steps=150,
    reg_steps=150,
    norm_steps={1: 400, 4: 200, 32: 150, 128: 100},
    depth_steps=40,
    arch_steps=100,
    arch_batch_size=32,
    test_subset=1000,
    conv_test_subset=500,
    evals=4,
    infer_images=250,
    infer_repeats=1,
)
"""The quick study (``netprops study --quick``): two seeds, short trainings."""

FULL = StudyConfig(
    name="full",
    seeds=(0, 1, 2, 3, 4),
    profile_networks=16,
    profile_batch=1000,
    init_steps=469,
    reg_steps=400,
    norm_steps={1: 2000, 4: 1000, 32: 400, 128: 300},
    depth_steps=200,
    arch_steps=900,
    arch_batch_size=64,
    test_subset=None,
    conv_test_subset=2000,
    evals=6,
    infer_images=1000,
    infer_repeats=3,
)
"""The full study: five seeds (verdicts by t-test), longer trainings."""
