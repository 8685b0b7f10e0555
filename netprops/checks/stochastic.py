"""Checks for stochastic layers: Monte Carlo expectation and drop rate (METHODS.md §3)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from ..errors import (
    check_float_tensor,
    check_int,
    check_positive_int,
    check_probability,
    check_type,
)
from . import _common
from .registry import CheckCall, register_check
from .results import CheckResult, violation
from .stats import DEFAULT_ALPHA, binom_interval, chi2_upper, mc_sample_size, z_two_sided

__all__ = [
    "check_drop_rate",
    "check_expectation_equal",
    "check_masks_independent",
    "default_reference",
]

#: Kept values must match 1/(1-p) to this many units of rounding (one multiply and one add).
_ULPS = 8.0

#: Smallest mean shift, in standard deviations of one draw, that ``n_samples=None`` is powered to catch.
DEFAULT_EFFECT = 0.2


def default_reference(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The deterministic layer whose output a stochastic ``module``'s mean must equal.

    A module with a 2-dimensional ``weight`` gives ``F.linear(x, weight, bias)``;
    a 3/4/5-dimensional ``weight`` gives ``F.conv1d/2d/3d`` with the module's
    ``stride``, ``padding``, ``dilation`` and ``groups`` (zero padding only); a
    module without such a weight but with a probability attribute ``p`` in [0, 1]
    (dropout-like) gives the identity. Anything else gives None.
    """
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and 2 <= weight.dim() <= 5:
        bias = getattr(module, "bias", None)
        bias = bias if isinstance(bias, torch.Tensor) else None
        if weight.dim() == 2:
            return lambda x: F.linear(x, weight, bias)
        if getattr(module, "padding_mode", "zeros") != "zeros" or getattr(
            module, "transposed", False
        ):
            return None
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[weight.dim()]
        kwargs = {
            key: getattr(module, key)
            for key in ("stride", "padding", "dilation", "groups")
            if hasattr(module, key)
        }
        return lambda x: conv(x, weight, bias, **kwargs)
    p = getattr(module, "p", None)
    if isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1:
        return lambda x: x
    return None


def _spec_reference(call: CheckCall) -> dict[str, Any]:
    """A spec's ``reference(module, x)`` becomes the check's ``reference(x)``."""
    reference = call.spec_arguments.get("reference")
    return {} if reference is None else {"reference": functools.partial(reference, call.module)}


def _alpha_arg(alpha: float) -> float:
    alpha = check_probability("alpha", alpha)
    if alpha == 0:
        raise ValueError("alpha must be a probability in (0, 1), got 0.0")
    return alpha


@register_check("expectation_equal", arguments=_spec_reference)
@torch.no_grad()
def check_expectation_equal(
    stochastic: nn.Module,
    x: torch.Tensor,
    *,
    reference: Callable[[torch.Tensor], torch.Tensor] | None = None,
    n_samples: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    effect: float = DEFAULT_EFFECT,
) -> CheckResult:
    """Check that the Monte Carlo mean of ``stochastic(x)`` in train mode equals ``reference(x)``.

    Draws ``N`` training-mode forwards with all randomness seeded from ``seed``
    and forms, per output element i, ``Z_i = sqrt(N) (ȳ_i - μ_i) / σ_i`` where μ is
    the reference output. σ_i is exact when the module provides
    ``output_variance(x)`` (netprops DropConnect layers do) and the sample standard
    deviation otherwise. Two statistics share ``alpha`` (α/2 each):
    ``max |Z_i|`` (bias on a few outputs, Bonferroni over the m outputs) and
    ``Σ Z_i²`` against χ²_m (bias spread over all outputs; only over outputs that
    are independent, see ``_independent_outputs``). With the sample variance, an
    output that stays constant in all N draws is left out (reported as
    ``constant_in_every_draw``) unless the module never varied at all.

    The tail probabilities use the normal (exact variance) or Student-t (sample
    variance) approximation of the mean of N draws. For skewed draws (drop
    probabilities below 0.1 or above 0.9 at N ≈ 2000) the true false-failure
    rate can exceed ``alpha`` by one to two orders of magnitude; raise
    ``n_samples`` there.

    Parameters
    ----------
    stochastic : module whose training forward is random (its mode is restored afterwards).
    x : input batch (floating point).
    reference : deterministic callable with the expected mean, e.g. ``lambda x: F.linear(x, W, b)``;
        None derives it from the module (:func:`default_reference`).
    n_samples : number of forwards N; ``None`` picks N from the power calculation
        ``((z + z_0.99) / effect)²`` so a shift of ``effect`` standard deviations on one
        output is caught with probability 0.99.
    alpha : probability that a correct module fails.
    seed : seed of every draw; a failure replays from it.
    effect : see ``n_samples``.

    Returns
    -------
    CheckResult with statistic ``max |Z|`` and ``details`` holding ``sum_z2``, ``n_samples``,
    ``variance`` ("exact" or "sample").

    Raises
    ------
    PropertyViolation
        when either statistic is outside its bound, or an output with zero variance
        differs from the reference.
    """
    __tracebackhide__ = True
    check_type("stochastic", stochastic, nn.Module)
    if reference is None:
        reference = default_reference(stochastic)
        if reference is None:
            raise ValueError(
                f"reference is needed for {type(stochastic).__name__}: netprops derives the "
                "expected mean only for layers with a 2-5 dimensional `weight` (F.linear / "
                "F.conv1d-3d) or a dropout-like probability `p` (identity); pass "
                "reference=lambda x: ... (in netprops.spec: reference=lambda module, x: ...)"
            )
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    check_float_tensor("x", x)
    alpha = _alpha_arg(alpha)
    seed = check_int("seed", seed, min_value=0)
    expected = reference(x).detach().double().flatten()
    m = expected.numel()
    if n_samples is None:
        n_samples = max(mc_sample_size(effect, alpha / 2, tests=m), 30)
    n_samples = check_int("n_samples", n_samples, min_value=2)

    exact_var = None
    with _common.preserved_mode(stochastic):
        stochastic.train()
        if hasattr(stochastic, "output_variance"):
            exact_var = stochastic.output_variance(x).detach().double().flatten()
        # Sums of deviations from the first draw: exact zeros for outputs that never
        # vary, and no cancellation in the variance of outputs with a large mean.
        first = None
        total = torch.zeros(m, dtype=torch.float64, device=x.device)
        total_sq = torch.zeros(m, dtype=torch.float64, device=x.device)
        with _common.seeded_module(stochastic, seed, x.device):
            for _ in range(n_samples):
                y = stochastic(x).detach().double().flatten()
                if y.numel() != m:
                    raise ValueError(
                        f"stochastic output has {y.numel()} elements but reference has {m}"
                    )
                if first is None:
                    first = y
                d = y - first
                total += d
                total_sq += d * d
    mean = first + total / n_samples
    if exact_var is not None:
        var = exact_var
        kind = "exact"
        z_crit = z_two_sided(alpha / 2, tests=m)
    else:
        var = (total_sq - total * total / n_samples).clamp_min(0) / (n_samples - 1)
        kind = "sample"
        z_crit = float(stats.t.isf(alpha / (4 * m), n_samples - 1))

    reproduce = (
        f"netprops.checks.check_expectation_equal(module, x, reference=reference, "
        f"n_samples={n_samples}, alpha={alpha:g}, seed={seed})"
    )
    scale = expected.abs().clamp_min(1.0)
    degenerate = var <= (1e-12 * scale) ** 2
    details = {"n_samples": n_samples, "outputs": m, "variance": kind, "effect": effect}
    # With an estimated variance, an output that happened to be constant over all N
    # draws (a rarely dropped unit) proves nothing: it is only compared exactly when
    # the module never varied at all. With the exact variance, zero means deterministic.
    exact_compare = (
        degenerate if kind == "exact" or bool(degenerate.all()) else torch.zeros_like(degenerate)
    )
    if exact_compare.any():
        gap = (mean[exact_compare] - expected[exact_compare]).abs()
        tol = 1e-5 * scale[exact_compare]
        if (gap > tol).any():
            violation(
                "check_expectation_equal",
                "an output with zero variance differs from the reference",
                statistic=float(gap.max()),
                bound=float(tol.max()),
                seed=seed,
                reproduce=reproduce,
            )
    if kind == "sample" and not bool(degenerate.all()):
        details["constant_in_every_draw"] = int(degenerate.sum())
    live = ~degenerate
    m_live = int(live.sum())
    if m_live == 0:
        return CheckResult("check_expectation_equal", 0.0, 0.0, seed, alpha, details, reproduce)
    z = math.sqrt(n_samples) * (mean[live] - expected[live]) / var[live].sqrt()
    max_z = float(z.abs().max())
    independent = _independent_outputs(stochastic, x, live)
    z_indep = z[independent[live]]
    sum_z2 = float((z_indep * z_indep).sum())
    sum_bound = chi2_upper(max(int(independent.sum()), 1), alpha / 2)
    details["sum_z2_outputs"] = int(independent.sum())
    if kind == "sample":
        # Z_i² ~ F(1, N-1) with mean (N-1)/(N-3): scale the χ² bound to that mean.
        sum_bound *= (n_samples - 1) / max(n_samples - 3, 1)
    worst = int(z.abs().argmax())
    details |= {
        "sum_z2": round(sum_z2, 4),
        "sum_z2_bound": round(sum_bound, 4),
        "z_bound": round(z_crit, 4),
    }
    if max_z > z_crit:
        violation(
            "check_expectation_equal",
            f"Monte Carlo mean differs from the reference on output {worst} "
            f"(mean {float(mean[live][worst]):.6g} vs expected {float(expected[live][worst]):.6g})",
            statistic=max_z,
            bound=z_crit,
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    if independent.any() and sum_z2 > sum_bound:
        violation(
            "check_expectation_equal",
            f"Monte Carlo means differ from the reference across outputs (sum of Z² = {sum_z2:.6g})",
            statistic=sum_z2,
            bound=sum_bound,
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    return CheckResult("check_expectation_equal", max_z, z_crit, seed, alpha, details, reproduce)


def _independent_outputs(module: nn.Module, x: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Which live outputs enter the ΣZ² statistic, a χ² only for independent outputs.

    Masks shared across the batch (DropConnect with one mask per forward) correlate
    the rows, and convolution outputs share kernel entries: then only the first
    row of a Linear-like layer (whose outputs use disjoint mask rows) is used, and
    none for convolution-like weights. Per-example masks and weight-free
    (elementwise) dropout give independent outputs everywhere. The max-|Z| test,
    a Bonferroni bound, needs no independence and always uses every output.
    """
    chosen = live.clone()
    weight = getattr(module, "weight", None)
    if getattr(module, "per_sample", False) or not isinstance(weight, torch.Tensor):
        return chosen
    if weight.dim() == 2 and x.dim() >= 2:
        per_row = live.numel() // x.shape[0]
        chosen[per_row:] = False
        return chosen
    return torch.zeros_like(live)


#: Copies of one example per draw: two for the within-draw distance, two for the across-draw one.
_COPIES = 4


@register_check("masks_independent")
@torch.no_grad()
def check_masks_independent(
    stochastic: nn.Module,
    x: torch.Tensor,
    *,
    n_samples: int = 256,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> CheckResult:
    """Check that a training forward draws independent randomness for each example of a batch.

    For modules that claim per-example masks (Dropout, DropConnect with
    ``per_sample=True``, Wan 2013): one mask shared by the batch keeps every
    other check passing, because each output's distribution is unchanged.

    The first example of ``x`` is fed as a batch of 4 identical copies, ``N``
    times in train mode (every draw seeded from ``seed``). With independent
    per-example randomness the copies of a draw are i.i.d., so the squared
    distance between copies 1 and 2 of draw n (*within*) has the same
    distribution as that between copy 3 of draw n and copy 4 of draw n+1
    (*across*; the last draw pairs with the first), and the N comparisons use
    disjoint outputs, hence are independent. Among the comparisons that are not
    tied, the number with within < across is then exactly Binomial(k, 1/2),
    whatever the output distribution: an exact two-sided sign test
    (``scipy.stats.binomtest``). Randomness shared between examples makes the
    within distances smaller (zero when fully shared); complementary masks make
    them larger. Modules that mix examples in train mode (BatchNorm after the
    dropout) make the copies dependent and fail too.

    Parameters
    ----------
    stochastic : module whose training forward is random (its mode is restored afterwards).
    x : input batch ``(B, ...)``, floating point; only ``x[:1]`` is used. The
        output must keep the batch dimension first.
    n_samples : number of draws N.
    alpha : probability that a module with independent per-example randomness fails.
    seed : seed of every draw; a failure replays from it.

    Returns
    -------
    CheckResult with statistic the two-sided p-value, bound ``(alpha, 1)``, and
    ``details`` holding ``informative`` (untied comparisons k), ``within_smaller``
    and ``n_samples``.

    Raises
    ------
    PropertyViolation
        when the p-value is below ``alpha``.
    ValueError
        when the output does not keep the batch dimension, when the training
        output never varies (nothing random to test), or when fewer than the
        ``ceil(log2(2 / alpha))`` untied comparisons needed to ever reject were
        drawn (the message says how many draws to ask for).
    """
    __tracebackhide__ = True
    check_type("stochastic", stochastic, nn.Module)
    check_float_tensor("x", x)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must be a batch (B, ...) with B >= 1, got shape {tuple(x.shape)}")
    alpha = _alpha_arg(alpha)
    seed = check_int("seed", seed, min_value=0)
    n_samples = check_int("n_samples", n_samples, min_value=2)
    batch = x[:1].expand(_COPIES, *x.shape[1:]).contiguous()

    outputs = []
    with _common.preserved_mode(stochastic), _common.seeded_module(stochastic, seed, x.device):
        stochastic.train()
        for _ in range(n_samples):
            y = stochastic(batch)
            if not isinstance(y, torch.Tensor) or y.dim() < 1 or y.shape[0] != _COPIES:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ValueError(
                    f"stochastic must return a tensor with the batch dimension first: a batch "
                    f"of {_COPIES} gave {shape}"
                )
            outputs.append(y.detach().double().reshape(_COPIES, -1))
    y = torch.stack(outputs)  # (N, copies, m)
    within = (y[:, 0] - y[:, 1]).square().sum(-1)
    across = (y[:, 2] - y[:, 3].roll(-1, dims=0)).square().sum(-1)
    smaller = int((within < across).sum())
    larger = int((within > across).sum())
    informative = smaller + larger

    reproduce = (
        f"netprops.checks.check_masks_independent(module, x, n_samples={n_samples}, "
        f"alpha={alpha:g}, seed={seed})"
    )
    details = {"n_samples": n_samples, "informative": informative, "within_smaller": smaller}
    if informative == 0 and bool((y == y[:1, :1]).all()):
        raise ValueError(
            f"{type(stochastic).__name__}'s training output never varied over {n_samples} "
            "draws: there is no randomness to test"
        )
    needed = math.ceil(math.log2(2.0 / alpha))
    if informative < needed:
        rate = max(informative, 1) / n_samples
        raise ValueError(
            f"only {informative} of n_samples={n_samples} draws were informative (the rest "
            f"tied); at least {needed} are needed before a test at alpha={alpha:g} can reject: "
            f"use n_samples >= {math.ceil(1.5 * needed / rate)} or an input on which the "
            "randomness shows more often"
        )
    p_value = float(stats.binomtest(smaller, informative, 0.5).pvalue)
    details["p_value"] = p_value
    if p_value < alpha:
        direction = "smaller" if smaller > larger else "larger"
        violation(
            "check_masks_independent",
            f"copies of one example differ {direction} within a draw than across draws "
            f"({smaller} of {informative} untied draws had within < across; 1/2 expected): "
            "the examples of a batch do not get independent randomness",
            statistic=p_value,
            bound=(alpha, 1.0),
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    return CheckResult(
        "check_masks_independent", p_value, (alpha, 1.0), seed, alpha, details, reproduce
    )


def _mask_draw(module: nn.Module, n: int, device: torch.device) -> torch.Tensor:
    """Keep-masks with at least ``n`` entries from a module exposing ``sample_mask``."""
    per_mask = module.sample_mask(()).numel()
    draws = max(1, math.ceil(n / per_mask))
    return module.sample_mask((draws,)).to(device)


@register_check("drop_rate")
@torch.no_grad()
def check_drop_rate(
    module: nn.Module,
    x: torch.Tensor | None = None,
    *,
    p: float | None = None,
    seed: int = 0,
    n: int = 100_000,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """Check that ``module`` drops entries with probability ``p`` and rescales kept ones by 1/(1-p).

    Modules exposing ``sample_mask(batch_shape)`` (netprops DropConnect layers) are
    tested on their weight keep-masks: the number of zeros among ``n`` or more mask
    entries is exactly Bin(n, p), and a training forward on the identity matrix
    (Linear-like modules) reproduces ``W ⊙ mask / (1 - p)``. Other modules
    (Dropout-like) are run in train mode on a tensor of ones with ``n`` entries:
    zeros ~ Bin(n, p) and every kept output equals ``1/(1-p)``.

    Parameters
    ----------
    module : the stochastic layer (its mode is restored afterwards).
    x : an example input; only its device and dtype are used (default: those of the
        module's parameters, CPU float32 without any).
    p : the drop probability; default the module's attribute ``p``.
    seed, n, alpha : seed of every draw, number of entries counted, false-failure probability.

    Raises
    ------
    PropertyViolation
        when the count of zeros leaves its two-sided binomial interval at ``alpha``,
        or kept values are not ``1/(1-p)`` (to float rounding).
    """
    __tracebackhide__ = True
    check_type("module", module, nn.Module)
    if p is None:
        p = getattr(module, "p", None)
        if p is None:
            raise ValueError(
                f"p is needed: {type(module).__name__} has no attribute `p`; pass p=... "
                "(in netprops.spec: options={'drop_rate': {'p': ...}})"
            )
    p = check_probability("p", p)
    seed = check_int("seed", seed, min_value=0)
    n = check_positive_int("n", n)
    alpha = _alpha_arg(alpha)
    if x is not None:
        check_float_tensor("x", x)
        device, dtype = x.device, x.dtype
    else:
        params = list(module.parameters())
        device = params[0].device if params else torch.device("cpu")
        dtype = params[0].dtype if params else torch.float32
    reproduce = (
        f"netprops.checks.check_drop_rate(module, p={p}, seed={seed}, n={n}, alpha={alpha:g})"
    )
    scale = 1.0 / (1.0 - p)
    with _common.preserved_mode(module), _common.seeded_module(module, seed, device):
        module.train()
        if hasattr(module, "sample_mask"):
            mask = _mask_draw(module, n, device)
            dropped = int((mask == 0).sum())
            total = mask.numel()
            kept_err = _kept_weight_error(module, scale, device, dtype)
            source = "weight mask"
        else:
            ones = torch.ones(n, device=device, dtype=dtype)
            out = module(ones).flatten()
            dropped = int((out == 0).sum())
            total = out.numel()
            kept = out[out != 0].double()
            kept_err = (
                ((kept - scale).abs() / (scale * torch.finfo(dtype).eps)).max()
                if kept.numel()
                else None
            )
            source = "output on ones"
    lo, hi = binom_interval(total, p, alpha)
    details = {
        "source": source,
        "entries": total,
        "dropped": dropped,
        "expected": round(total * p, 1),
    }
    if not lo <= dropped <= hi:
        violation(
            "check_drop_rate",
            f"{dropped} of {total} entries dropped ({dropped / total:.5f}), expected p={p}",
            statistic=float(dropped),
            bound=(float(lo), float(hi)),
            seed=seed,
            alpha=alpha,
            reproduce=reproduce,
            details=details,
        )
    if kept_err is not None and float(kept_err) > _ULPS:
        violation(
            "check_drop_rate",
            f"kept entries are not rescaled by 1/(1-p) = {scale:.6g} "
            f"(worst error {float(kept_err):.3g} units of rounding)",
            statistic=float(kept_err),
            bound=_ULPS,
            seed=seed,
            reproduce=reproduce,
            details=details,
        )
    return CheckResult(
        "check_drop_rate", float(dropped), (float(lo), float(hi)), seed, alpha, details, reproduce
    )


def _kept_weight_error(
    module: nn.Module, scale: float, device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """Worst error, in units of rounding, of the effective kept weights against ``W / (1 - p)``.

    The effective weight comes from a training forward on the identity matrix
    (Linear-like modules only; None otherwise): row b of the output is
    ``(W ⊙ M_b)[:, b] / (1 - p) + bias``.
    """
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return None
    eye = torch.eye(weight.shape[1], device=device, dtype=dtype)
    out = module(eye).double()
    bias = getattr(module, "bias", None)
    bias64 = (
        bias.detach().double() if isinstance(bias, torch.Tensor) else torch.zeros((), device=device)
    )
    effective = (out - bias64).T
    target = weight.detach().double() * scale
    kept = (effective != 0) & (target != 0)
    if not kept.any():
        return None
    rounding = torch.finfo(dtype).eps * (target.abs() + bias64.abs().view(-1, 1))
    return ((effective - target).abs() / rounding)[kept].max()
