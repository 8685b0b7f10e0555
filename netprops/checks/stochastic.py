"""Checks for stochastic layers: Monte Carlo expectation, per-example independence and drop
rate (docs/methods.md §Monte Carlo checks)."""

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
from .stats import (
    DEFAULT_ALPHA,
    bennett_log_tail,
    binom_interval,
    binom_two_sided_pvalue,
    mc_sample_size,
    nonnegative_log_lower_tail,
    nonnegative_mean_upper_bound,
)

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


#: α' of torch's alpha dropout (−λα of SELU, in magnitude): dropped entries go to −α'·a·(1 − p).
_SELU_ALPHA = 1.7580993408473766


def default_reference(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The deterministic layer whose output a stochastic ``module``'s mean must equal.

    A module with a 2-dimensional ``weight`` gives ``F.linear(x, weight, bias)``;
    a 3/4/5-dimensional ``weight`` gives ``F.conv1d/2d/3d`` with the module's
    ``stride``, ``padding``, ``dilation`` and ``groups`` (zero padding only);
    torch's ``AlphaDropout``/``FeatureAlphaDropout`` give ``a·(1 − p)·x``, the mean of
    their affine "SELU-preserving" output (``a = ((α²p + 1)(1 − p))^(−1/2)``,
    α = 1.7581); any other module without such a weight but with a probability
    attribute ``p`` in [0, 1] (dropout-like) gives the identity. Anything else gives None.
    """
    if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        factor = math.sqrt((1 - module.p) / (_SELU_ALPHA**2 * module.p + 1))
        return lambda x: x * factor
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

    Draws ``N`` training-mode forwards (every draw seeded from ``seed``). The
    draws are i.i.d. vectors; *within* a draw the outputs may depend on each
    other in any way (one mask per channel as in ``nn.Dropout2d``, per example as
    in drop-path, per weight row as in DropConnect), so every test below uses
    only the independence *across* draws (docs/methods.md §Monte Carlo checks):

    * **per output** (``alpha/2``, Bonferroni over the m outputs). An output that
      takes exactly two values over the draws (every weightless dropout kind) gets
      the exact binomial test of how often it took each value, against the
      frequency its expected mean implies. Any other output gets Bennett's
      inequality for the mean of N draws, with the largest observed deviation as
      the bound and the variance that ``output_variance(x)`` reports or, without
      it, an upper confidence bound on it. Both are valid for skewed draws (a
      drop probability of 0.01 or 0.99), where normal quantiles are not.
    * **spread over outputs** (``alpha/4`` with ``output_variance``, else
      ``alpha/2``): the first half of the draws gives a direction ``w_i = d_i/v_i``
      (mean deviation over variance); the projections ``Σ_i w_i (y_i − μ_i)`` of the
      second half's draws are i.i.d. with mean 0 whatever the dependence between
      outputs, and get Bennett's test. A bias too small to show on any one output
      but present on many (a rescale off by 2 %) fails here.
    * **reported variance** (``alpha/4``, only for modules with
      ``output_variance(x)``, as netprops' DropConnect layers have): the per-draw
      sum ``T = Σ_i (y_i − μ_i)²/v_i`` has mean m exactly; a mean of T far below m
      (over-reported variance, which would hide bias) or far above it fails.

    An output whose draws never varied proves nothing about its mean and is left
    out (``details["constant_in_every_draw"]``), unless the module never varied
    at all: then every output must equal the reference. An output declared
    deterministic (``output_variance`` 0) must never vary and equal the reference.
    Means within the dtype's comparison tolerance of the reference count as equal.

    Parameters
    ----------
    stochastic : module whose training forward is random (its mode is restored afterwards).
    x : input batch (floating point).
    reference : deterministic callable with the expected mean, e.g. ``lambda x: F.linear(x, W, b)``;
        None derives it from the module (:func:`default_reference`).
    n_samples : number of forwards N (>= 2); ``None`` picks N from the power calculation
        ``((z + z_0.99) / effect)²`` so that a shift of ``effect`` standard deviations on
        one output is caught with probability about 0.99.
    alpha : probability that a correct module fails.
    seed : seed of every draw; a failure replays from it.
    effect : see ``n_samples``.

    Returns
    -------
    CheckResult with statistic the smallest p-value of the tests, each scaled to the
    whole ``alpha`` (bound ``(alpha, 1)``), and ``details`` holding ``n_samples``,
    ``variance`` ("exact" with ``output_variance``, else "sample"), the counts of
    ``two_valued`` / ``multi_valued`` / ``constant_in_every_draw`` outputs and the
    statistics of the spread and variance tests.

    Raises
    ------
    PropertyViolation
        when a test rejects, an output is not finite, or a deterministic output
        differs from the reference.
    ValueError
        for a reference or ``output_variance`` of the wrong size, or negative variances.
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
    expected_out = reference(x).detach()
    expected = expected_out.double().flatten()
    m = expected.numel()
    if n_samples is None:
        n_samples = max(mc_sample_size(effect, alpha / 2, tests=max(m, 1)), 30)
    n_samples = check_int("n_samples", n_samples, min_value=2)
    reproduce = (
        f"netprops.checks.check_expectation_equal(module, x, reference=reference, "
        f"n_samples={n_samples}, alpha={alpha:g}, seed={seed})"
    )

    with _common.preserved_mode(stochastic):
        stochastic.train()
        reported = _reported_variance(stochastic, x, m)
        draws = _draw_outputs(stochastic, x, expected, reported, n_samples, seed)
    return _expectation_tests(draws, expected, reported, expected_out.dtype, alpha, seed, reproduce)


def _reported_variance(module: nn.Module, x: torch.Tensor, m: int) -> torch.Tensor | None:
    """``module.output_variance(x)`` flattened to float64, or None; validated."""
    if not hasattr(module, "output_variance"):
        return None
    var = module.output_variance(x).detach().double().flatten()
    if var.numel() != m:
        raise ValueError(
            f"{type(module).__name__}.output_variance(x) has {var.numel()} elements but the "
            f"reference has {m}"
        )
    if not bool(torch.isfinite(var).all()) or bool((var < 0).any()):
        raise ValueError(
            f"{type(module).__name__}.output_variance(x) must be finite and >= 0, got "
            f"min {float(var.min()):.6g}, max {float(var.max()):.6g}"
        )
    return var


class _Draws:
    """Running statistics of N draws of an m-vector around its expected mean μ.

    Per output: the first value, a second distinct value and how often it came,
    whether a third value came (``multi``), ``Σ(y − μ)``, ``Σ(y − μ)²``, min and
    max. Per draw: ``T = Σ_i (y_i − μ_i)²/v_i`` (reported variances) and, for
    the second half, the projection on the direction the first half points to.
    Draws arrive in blocks (rows), each within one half; memory is O(block·m + N).
    """

    def __init__(self, expected: torch.Tensor, n: int) -> None:
        self.n = n
        self.n_first = n // 2
        self.expected = expected
        zeros = torch.zeros_like(expected)
        self.first = torch.full_like(expected, math.nan)
        self.other = torch.full_like(expected, math.nan)
        self.count_other = zeros.clone()
        self.multi = torch.zeros_like(expected, dtype=torch.bool)
        self.sum = zeros.clone()
        self.sum_sq = zeros.clone()
        self.low = torch.full_like(expected, math.inf)
        self.high = torch.full_like(expected, -math.inf)
        self.half_sum = zeros.clone()
        self.half_sum_sq = zeros.clone()
        self.direction: torch.Tensor | None = None
        self.projections: list[torch.Tensor] = []
        self.variance_sums: list[torch.Tensor] = []
        self.finite = True
        self.dtype: torch.dtype = torch.float64

    def add_block(self, ys: torch.Tensor, start: int, reported: torch.Tensor | None) -> None:
        """Rows ``ys`` (draws ``start, start + 1, ...``, all in the same half)."""
        if start == 0:
            self.first = ys[0].clone()
        is_first = ys == self.first
        differs = ~is_first
        # the first value that differs from the first draw's, for outputs without one yet
        row = differs.to(torch.uint8).argmax(dim=0, keepdim=True)
        candidate = ys.gather(0, row).squeeze(0)
        new = torch.isnan(self.other) & differs.any(dim=0)
        self.other = torch.where(new, candidate, self.other)
        is_other = ys == self.other
        self.multi |= (~(is_first | is_other)).any(dim=0)
        self.count_other += is_other.sum(dim=0)
        self.finite &= bool(torch.isfinite(ys).all())
        d = ys - self.expected
        self.sum += d.sum(dim=0)
        self.sum_sq += (d * d).sum(dim=0)
        self.low = torch.minimum(self.low, ys.amin(dim=0))
        self.high = torch.maximum(self.high, ys.amax(dim=0))
        if reported is not None:
            positive = reported > 0
            self.variance_sums.append((d[:, positive] ** 2 / reported[positive]).sum(dim=1))
        if start < self.n_first:
            self.half_sum += d.sum(dim=0)
            self.half_sum_sq += (d * d).sum(dim=0)
        else:
            if self.direction is None:
                self.direction = self._direction(reported)
            self.projections.append(d @ self.direction)

    def _direction(self, reported: torch.Tensor | None) -> torch.Tensor:
        """``w_i = d̄_i / v_i`` from the first half (v: reported, else the mean of (y − μ)²)."""
        n = max(self.n_first, 1)
        mean = self.half_sum / n
        var = reported if reported is not None else self.half_sum_sq / n
        w = torch.where(var > 0, mean / torch.where(var > 0, var, 1.0), 0.0)
        return w.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


#: Draws processed together (rows × outputs at most about this many values).
_BLOCK_VALUES = 2**18


def _draw_outputs(
    module: nn.Module,
    x: torch.Tensor,
    expected: torch.Tensor,
    reported: torch.Tensor | None,
    n: int,
    seed: int,
) -> _Draws:
    draws = _Draws(expected, n)
    rows = max(1, min(256, _BLOCK_VALUES // max(expected.numel(), 1)))
    block: list[torch.Tensor] = []
    start = 0
    with _common.seeded_module(module, seed, x.device):
        for index in range(n):
            out = module(x)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"stochastic must return a tensor, got {type(out).__name__}")
            if out.numel() != expected.numel():
                raise ValueError(
                    f"stochastic output has {out.numel()} elements but reference has "
                    f"{expected.numel()}"
                )
            draws.dtype = out.dtype
            block.append(out.detach().flatten())
            if len(block) == rows or index + 1 in (draws.n_first, n):
                draws.add_block(torch.stack(block).double(), start, reported)
                start = index + 1
                block = []
    return draws


def _expectation_tests(
    draws: _Draws,
    expected: torch.Tensor,
    reported: torch.Tensor | None,
    reference_dtype: torch.dtype,
    alpha: float,
    seed: int,
    reproduce: str,
) -> CheckResult:
    """The per-output, spread and reported-variance tests on the draws (see the check)."""
    __tracebackhide__ = True
    name = "check_expectation_equal"
    n = draws.n
    m = expected.numel()
    mean = expected + draws.sum / n
    details: dict[str, Any] = {
        "n_samples": n,
        "outputs": m,
        "variance": "exact" if reported is not None else "sample",
    }
    report = {"seed": seed, "reproduce": reproduce}
    if not draws.finite:
        bad = int((~torch.isfinite(draws.low) | ~torch.isfinite(draws.high)).sum())
        violation(
            name,
            f"{bad} outputs were not finite in some draw",
            statistic=float(bad),
            bound=0.0,
            details=details,
            **report,
        )

    constant = ~draws.multi & torch.isnan(draws.other)
    tol_unit = _common.looser(draws.dtype, reference_dtype).rtol
    deviation_bound = torch.maximum(draws.high - expected, expected - draws.low).clamp_min(0)
    tol = tol_unit * (expected.abs() + deviation_bound)

    # Outputs declared deterministic, or every output when nothing ever varied: exact.
    deterministic = (reported == 0) if reported is not None else torch.zeros_like(constant)
    if reported is None and bool(constant.all()):
        deterministic = constant
    if bool((deterministic & ~constant).any()):
        i = int((deterministic & ~constant).nonzero()[0])
        violation(
            name,
            f"output {i} varied over the draws although output_variance reports 0",
            statistic=float(draws.high[i] - draws.low[i]),
            bound=0.0,
            details=details,
            **report,
        )
    if bool(deterministic.any()):
        scale = expected.abs().clamp_min(1.0)
        gap = (mean - expected).abs()[deterministic]
        bound = 1e-5 * scale[deterministic]
        if bool((gap > bound).any()):
            violation(
                name,
                "an output with zero variance differs from the reference",
                statistic=float(gap.max()),
                bound=float(bound.max()),
                details=details,
                **report,
            )

    tested = ~deterministic & ~constant
    two_valued = tested & ~draws.multi
    multi = tested & draws.multi
    details |= {
        "two_valued": int(two_valued.sum()),
        "multi_valued": int(multi.sum()),
        "constant_in_every_draw": int((constant & ~deterministic).sum()),
    }
    random_outputs = max(int((~deterministic).sum()), 1)
    a_output = alpha / 2 / random_outputs
    a_spread = alpha / 4 if reported is not None else alpha / 2
    a_variance = alpha / 4
    p_scaled: list[tuple[float, str]] = []

    # ---- per output: exact binomial for two values, Bennett otherwise
    p_out = torch.ones(m, dtype=torch.float64)
    if bool(two_valued.any()):
        idx = two_valued.nonzero().flatten()
        a, b = draws.first[idx], draws.other[idx]
        width = b - a
        p_lo = ((expected[idx] - tol[idx] - a) / width).cpu().numpy()
        p_hi = ((expected[idx] + tol[idx] - a) / width).cpu().numpy()
        k = draws.count_other[idx].cpu().numpy()
        p_out[idx.cpu()] = torch.from_numpy(binom_two_sided_pvalue(k, n, p_lo, p_hi))
    if bool(multi.any()):
        idx = multi.nonzero().flatten()
        d = draws.sum[idx] / n
        d_eff = (d.abs() - tol[idx]).clamp_min(0)
        side_bound = torch.where(
            d > 0, draws.high[idx] - expected[idx], expected[idx] - draws.low[idx]
        )
        if reported is not None:
            var, sides = reported[idx], 2.0
        else:
            # one third of the output's level for the variance bound, one third per side
            var = nonnegative_mean_upper_bound(
                draws.sum_sq[idx] / n, deviation_bound[idx] ** 2, n, a_output / 3
            )
            sides = 3.0
        log_tail = bennett_log_tail(d_eff, var, side_bound, n)
        p_out[idx.cpu()] = (sides * log_tail.exp()).clamp(max=1.0).cpu()
    if bool(tested.any()):
        worst = int(torch.argmin(torch.where(tested.cpu(), p_out, 2.0)))
        p_worst = float(p_out[worst])
        p_scaled.append((min(1.0, p_worst * alpha / a_output), "output"))
        details["worst_output"] = worst
        if p_worst <= a_output:
            kind = "exact binomial test" if bool(two_valued[worst]) else "Bennett bound"
            violation(
                name,
                f"Monte Carlo mean differs from the reference on output {worst} "
                f"(mean {float(mean[worst]):.6g} vs expected {float(expected[worst]):.6g}; "
                f"{kind}, p = {p_worst:.3g} <= {a_output:.3g} = alpha/2 over "
                f"{random_outputs} outputs)",
                statistic=p_worst * alpha / a_output,
                bound=(alpha, 1.0),
                alpha=alpha,
                details=details,
                **report,
            )

    # ---- spread: projections of the second half on the first half's direction
    s = torch.cat(draws.projections).cpu() if draws.projections else torch.zeros(0).double()
    if s.numel() >= 1 and bool((s != 0).any()):
        n_b = s.numel()
        s_mean = float(s.mean())
        # means within rounding of the reference shift E[s] by at most Σ|w_i|·tol_i
        slack = float((draws.direction.abs() * tol).sum()) if draws.direction is not None else 0.0
        spread_var = nonnegative_mean_upper_bound(
            (s * s).mean().view(1), (s.abs().max() ** 2).view(1), n_b, a_spread / 3
        )
        side = s.max() if s_mean > 0 else -s.min()
        log_tail = bennett_log_tail(
            torch.tensor([max(abs(s_mean) - slack, 0.0)], dtype=torch.float64),
            spread_var,
            side.view(1),
            n_b,
        )
        p_spread = min(1.0, 3.0 * float(log_tail.exp()))
        details["spread_p"] = p_spread
        p_scaled.append((min(1.0, p_spread * alpha / a_spread), "spread"))
        if p_spread <= a_spread:
            violation(
                name,
                "Monte Carlo means differ from the reference across outputs: the second half "
                f"of the draws deviates along the first half's direction (mean projection "
                f"{s_mean:.6g}; Bennett bound p = {p_spread:.3g} <= {a_spread:.3g})",
                statistic=p_spread * alpha / a_spread,
                bound=(alpha, 1.0),
                alpha=alpha,
                details=details,
                **report,
            )

    # ---- the reported variance: T = Σ (y − μ)²/v has mean m_v per draw
    m_v = int((reported > 0).sum()) if reported is not None else 0
    if m_v:
        t = torch.cat(draws.variance_sums)
        t_mean, t_max = t.mean().view(1), t.max().view(1)
        # rounding moves squared deviations and the reported variance by ~2·rtol each
        low_end = torch.full_like(t_mean, m_v * (1 - 4 * tol_unit))
        high_end = torch.full_like(t_mean, m_v * (1 + 4 * tol_unit))
        # T >= 0 and T <= max T: E T² <= max T · E T bounds both tails
        log_low = nonnegative_log_lower_tail(t_mean, low_end, t_max, n)
        log_high = bennett_log_tail(t_mean - high_end, t_max * high_end, t_max, n)
        over = float(log_low) < float(log_high)
        p_variance = min(1.0, 2.0 * float(torch.minimum(log_low, log_high).exp()))
        ratio = float(t_mean) / m_v
        details |= {"variance_ratio": round(ratio, 6), "variance_p": p_variance}
        p_scaled.append((min(1.0, p_variance * alpha / a_variance), "variance"))
        if p_variance <= a_variance:
            what = "over-reports" if over else "under-reports"
            violation(
                name,
                f"output_variance {what} the variance of the draws: Σ(y − μ)²/v averages "
                f"{float(t_mean):.6g} per draw over {m_v} outputs, expected {m_v} "
                f"(ratio {ratio:.4g}; p = {p_variance:.3g} <= {a_variance:.3g})",
                statistic=p_variance * alpha / a_variance,
                bound=(alpha, 1.0),
                alpha=alpha,
                details=details,
                **report,
            )
    statistic = min((p for p, _ in p_scaled), default=1.0)
    return CheckResult(name, statistic, (alpha, 1.0), seed, alpha, details, reproduce)


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
    (Dropout-like) are run in train mode on ones shaped like ``x`` with enough
    rows for ``n`` entries (a flat vector of ``n`` ones without ``x`` or for a 1-D
    ``x``), and every kept output must equal ``1/(1-p)``. One draw may zero
    several entries: ``nn.Dropout2d`` zeroes whole channels, drop-path whole
    examples. The check finds the largest block of trailing dimensions over which
    every row's zeros are constant (elementwise dropout: none) and counts dropped
    *blocks*, which are Bin(blocks, p) for independent draws; with shared draws it
    runs again with enough rows for ``n`` blocks (at most 2^24 entries). Shared
    draws along leading dimensions (one mask for the whole batch) are not
    recognized: :func:`check_masks_independent` is the check for those.

    Parameters
    ----------
    module : the stochastic layer (its mode is restored afterwards).
    x : an example input; its shape (from dim 1 on), device and dtype are used
        (default: the device and dtype of the module's parameters, CPU float32
        without any).
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
    if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        raise ValueError(
            f"check_drop_rate does not apply to {type(module).__name__}: it sets dropped entries "
            "to a negative saturation value and rescales affinely, not to 0 and 1/(1-p) "
            "(check its mean with check_expectation_equal; in netprops.spec declare "
            "not_applicable={'drop_rate': ...})"
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
            row = () if x is None or x.dim() <= 1 else tuple(x.shape[1:])
            out = _forward_ones(module, row, n, device, dtype)
            shared = _shared_trailing_dims(out == 0)
            block = math.prod(out.shape[out.dim() - shared :]) if shared else 1
            if shared and out.numel() // block < n:
                out = _forward_ones(module, row, min(n * block, _MAX_ENTRIES), device, dtype)
                shared = _shared_trailing_dims(out == 0)
                block = math.prod(out.shape[out.dim() - shared :]) if shared else 1
            zero = out == 0
            blocks = zero.flatten(out.dim() - shared)[..., 0] if shared else zero
            dropped = int(blocks.sum())
            total = blocks.numel()
            kept = out[out != 0].double()
            kept_err = (
                ((kept - scale).abs() / (scale * torch.finfo(dtype).eps)).max()
                if kept.numel()
                else None
            )
            source = "output on ones"
            shared_details = {"entries_per_draw": block, "shared_over_last_dims": shared}
    lo, hi = binom_interval(total, p, alpha)
    details = {
        "source": source,
        "entries": total,
        "dropped": dropped,
        "expected": round(total * p, 1),
    }
    if source == "output on ones":
        details |= shared_details
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


#: Most entries :func:`check_drop_rate` feeds a module to count ``n`` shared draws.
_MAX_ENTRIES = 2**24


def _forward_ones(
    module: nn.Module, row: tuple[int, ...], n: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The training output on ones: ``n`` of them, or enough rows of shape ``row`` for ``n``."""
    shape = (n,) if not row else (max(1, math.ceil(n / math.prod(row))), *row)
    ones = torch.ones(shape, device=device, dtype=dtype)
    out = module(ones)
    if not isinstance(out, torch.Tensor) or out.shape != ones.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"check_drop_rate counts the zeros of the training output on ones of shape "
            f"{shape}: the module must keep the shape, got {got}"
        )
    return out


def _shared_trailing_dims(zero: torch.Tensor) -> int:
    """The most trailing dimensions (not the first) over which ``zero`` is constant in every row."""
    for k in range(zero.dim() - 1, 0, -1):
        flat = zero.flatten(zero.dim() - k)
        if flat.shape[-1] > 1 and bool((flat == flat[..., :1]).all()):
            return k
    return 0


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
