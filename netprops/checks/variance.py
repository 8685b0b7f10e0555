"""Variance propagation at initialization: weight draws, one-step and depth tests, profiles.

Four public entry points (docs/methods.md §Initializers, §Variance preservation, §Model variance):

* :func:`check_init_distribution` — draws one weight tensor and tests its law
  exactly: ``Σw²/σ² ~ χ²_N`` for normal weights; ``max|w|`` against the bound
  ``b = σ√3`` (both sides, exactly), ``Σw²`` against its mean and variance, and a
  Kolmogorov–Smirnov test for uniform weights.
* :func:`check_variance_preserved` — builds independent stacks of square layers
  with a user initializer and tests that every layer's weights have the
  variance-preserving scale (the exact one-step χ² test T2) and, for positively
  homogeneous activations, that the signal neither explodes nor vanishes with
  depth (test T3).
* :func:`variance_profile` — per-layer second moments of pre-activations,
  activations and gradients of ANY ``nn.Module`` on a batch.
* :func:`check_model_variance` — that profile against bands derived from the finite-width
  law of plain stacks (a heuristic elsewhere).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import optimize, special, stats
from torch import nn

from ..devices import resolve_device
from ..errors import (
    check_choice,
    check_finite_float,
    check_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_type,
)
from ..init import calculate_gain
from ..seeding import make_generator
from . import _common
from .registry import register_check
from .results import CheckResult, violation
from .stats import DEFAULT_ALPHA, chi2_interval, z_two_sided

__all__ = [
    "DISTRIBUTIONS",
    "VARIANCE_NONLINEARITIES",
    "LayerVariance",
    "VarianceProfile",
    "check_init_distribution",
    "check_model_variance",
    "check_variance_preserved",
    "variance_profile",
]

DISTRIBUTIONS: tuple[str, ...] = ("normal", "uniform", "truncated_normal")
"""Weight laws :func:`check_init_distribution` tests."""

VARIANCE_NONLINEARITIES: tuple[str, ...] = ("linear", "relu", "leaky_relu", "tanh", "sigmoid")
"""Activations :func:`check_variance_preserved` builds its stacks with."""

# Positively homogeneous activations f(a·z) = a·f(z), a > 0: the depth test T3 is exact
# for them, and the signal can be renormalized every layer without changing any statistic.
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")

# Kurtosis E[w⁴]/E[w²]² of zero-mean laws, and the asymptotic variance × N of its
# sample estimate (delta method: 24 for the normal law, 1.317 for the uniform).
_KURTOSIS = {"normal": 3.0, "uniform": 1.8}
_KURTOSIS_VAR = {"normal": 24.0, "uniform": 1.3175}
_KURTOSIS_THRESHOLD = 2.4

_GAUSS_HERMITE_POINTS = 101


# --------------------------------------------------------------------------- small helpers
def _check_alpha(alpha: Any) -> float:
    alpha = check_probability("alpha", alpha)
    if alpha == 0:
        raise ValueError("alpha must be a probability in (0, 1), got 0.0")
    return alpha


def _check_callable(name: str, value: Any) -> Callable[..., Any]:
    if not callable(value):
        raise TypeError(
            f"{name} must be callable as {name}(weight, generator=g), got {value!r} "
            f"({type(value).__name__})"
        )
    return value


def _check_shape(shape: Any) -> tuple[int, ...]:
    check_type("shape", shape, (tuple, list, torch.Size))
    dims = tuple(check_positive_int(f"shape[{i}]", d) for i, d in enumerate(shape))
    if len(dims) < 2:
        raise ValueError(
            f"shape must have at least 2 dimensions (out, in, *kernel) so that fans are "
            f"defined, got {tuple(shape)!r}"
        )
    return dims


def _check_float_dtype(dtype: Any) -> torch.dtype:
    check_type("dtype", dtype, torch.dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
    return dtype


def _fn_name(fn: Callable[..., Any]) -> str:
    """A name for ``fn`` in a reproduction line: ``module.qualname``, or ``init_fn``."""
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if not isinstance(qualname, str) or "<" in qualname:
        return "init_fn"
    return f"{module}.{qualname}" if module and module != "__main__" else qualname


def _call(name: str, *args: str, **kwargs: Any) -> str:
    parts = list(args) + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"netprops.checks.{name}({', '.join(parts)})"


def _draw(
    init_fn: Callable[..., Any],
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """A NaN-filled tensor handed to ``init_fn``: anything it does not fill stays non-finite."""
    weight = torch.full(shape, math.nan, dtype=dtype, device=device)
    with torch.no_grad():
        init_fn(weight, generator=generator)
    return weight


# --------------------------------------------------------------------------- check_init_distribution
def _min_elements_for_detection(alpha: float) -> int:
    """Draws needed before the law can be recognized (normal vs bounded) at level ``alpha``.

    Sized by the kurtosis separation of the normal (3) and uniform (1.8) laws,
    ``N >= 24·(z_alpha/0.6)²``: from that size on a uniform law is recognized as
    bounded with certainty (``P(max|w| < σ√3·...) ~ 0.917^N``), and a truncated
    normal that is not (truncation beyond ~2.6σ) differs from the normal law less
    than the normal law's own tests can see (docs/methods.md §Initializers).
    """
    z = float(stats.norm.isf(alpha))
    return max(
        math.ceil(_KURTOSIS_VAR[law] * (z / abs(_KURTOSIS[law] - _KURTOSIS_THRESHOLD)) ** 2)
        for law in ("normal", "uniform")
    )


def _squared_uniform_cgf(t: float) -> tuple[float, float]:
    """``K(t) = log E exp(tY)`` and ``K'(t)`` for ``Y = U²``, U ~ U(0, 1) (Y ~ Beta(1/2, 1)).

    ``M(t) = ∫₀¹ exp(tu²) du`` is ``exp(t)·D(√t)/√t`` (Dawson's D) for t > 0 and
    ``√π·erf(√−t)/(2√−t)`` for t < 0; integrating by parts, ``M'(t) = (eᵗ − M)/(2t)``.
    """
    if abs(t) < 1e-8:
        return t / 3 + 2 * t * t / 45, 1 / 3 + 4 * t / 45
    if t > 0:
        s = math.sqrt(t)
        dawson = float(special.dawsn(s))
        log_m, ratio = t + math.log(dawson / s), s / dawson  # ratio = eᵗ/M
    else:
        s = math.sqrt(-t)
        erf = float(special.erf(s))
        log_m = math.log(math.sqrt(math.pi) * erf / (2 * s))
        ratio = 2 * s * math.exp(-s * s) / (math.sqrt(math.pi) * erf)
    return log_m, (ratio - 1) / (2 * t)


def _normal_mass(lo: float, hi: float) -> float:
    """``P(lo <= Z <= hi)`` for Z ~ N(0, 1), without cancellation in either tail."""
    if lo >= 0:
        return float(special.ndtr(-lo) - special.ndtr(-hi))
    if hi <= 0:
        return float(special.ndtr(hi) - special.ndtr(lo))
    return float(1.0 - special.ndtr(lo) - special.ndtr(-hi))


def _phi_times(x: float) -> float:
    """``x·φ(x)``, 0 at ±inf."""
    return 0.0 if math.isinf(x) else x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _squared_truncated_normal_cgf(lo: float, hi: float) -> Callable[[float], tuple[float, float]]:
    """``t -> (K(t), K'(t))`` for ``Y = Z²``, Z ~ N(0, 1) truncated to ``[lo, hi]``, ``t < 1/2``.

    ``E exp(tZ²) = (1 − 2t)^(−1/2)·P(lo·s <= Z <= hi·s)/P(lo <= Z <= hi)`` with
    ``s = √(1 − 2t)`` (complete the square), so
    ``K'(t) = 1/(1 − 2t) + (lo·φ(lo·s) − hi·φ(hi·s))/(s·P(lo·s <= Z <= hi·s))``.
    """
    log_mass = math.log(_normal_mass(lo, hi))

    def cgf(t: float) -> tuple[float, float]:
        s = math.sqrt(1 - 2 * t)
        mass = _normal_mass(lo * s, hi * s)
        value = -0.5 * math.log(1 - 2 * t) + math.log(mass) - log_mass
        slope = 1 / (1 - 2 * t) + (_phi_times(lo * s) - _phi_times(hi * s)) / (s * s * mass)
        return value, slope

    return cgf


def _chernoff_mean_band(
    cgf: Callable[[float], tuple[float, float]],
    n: int,
    alpha_side: float,
    t_max: float,
    t_min: float = -math.inf,
) -> tuple[float, float]:
    """``(lo, hi)`` with ``P(Ȳ < lo) <= alpha_side`` and ``P(Ȳ > hi) <= alpha_side``.

    ``Ȳ`` is the mean of ``n`` i.i.d. copies of Y with ``cgf(t) = (K(t), K'(t))``
    (defined for ``t_min < t < t_max``). The bounds are the Chernoff ones,
    ``P(Ȳ >= x) <= exp(−n·I(x))`` with the rate ``I(x) = sup_t (tx − K(t))``,
    solved for ``I(x) = log(1/alpha_side)/n`` along the saddle point ``x = K'(t)``.
    They hold for every n (no normal approximation). Where the rate cannot reach
    the target inside the domain that end is ``±inf`` (no test on that side).
    """
    target = math.log(1 / alpha_side) / n

    def t_of(u: float, sign: float) -> float:
        end = t_max if sign > 0 else t_min
        if math.isinf(end):
            return sign * math.exp(u)
        return -end * math.expm1(-math.exp(u))  # strictly between 0 and end, reaching it as u grows

    band = []
    for sign in (-1.0, 1.0):
        # beyond u_max, t is the domain's end to double precision, or astronomically large
        u_max = 60.0 if math.isinf(t_max if sign > 0 else t_min) else math.log(25.0)

        def excess(u: float, sign: float = sign) -> float:
            value, slope = cgf(t_of(u, sign))
            return t_of(u, sign) * slope - value - target

        upper = min(1.0, u_max)
        while excess(upper) < 0 and upper < u_max:
            upper = min(upper + 2.0, u_max)
        if excess(upper) < 0:
            band.append(math.inf if sign > 0 else -math.inf)
            continue
        u = optimize.brentq(excess, -30.0, upper, xtol=1e-13, rtol=1e-13)
        band.append(cgf(t_of(u, sign))[1])
    return band[0], band[1]


@functools.lru_cache(maxsize=256)
def _squared_uniform_mean_band(n: int, alpha_side: float) -> tuple[float, float]:
    """Chernoff band of the mean of ``n`` i.i.d. ``U²``, U ~ U(0, 1) (see :func:`_chernoff_mean_band`).

    At n = 32 the normal approximation is 3.3× too thin in the upper tail; these
    bounds are about 6% wider than the normal quantiles at alpha_side = 1e-10 as n → ∞.
    """
    return _chernoff_mean_band(_squared_uniform_cgf, n, alpha_side, math.inf)


@functools.lru_cache(maxsize=256)
def _ks_bound(alpha: float, n: int) -> float:
    """The Kolmogorov–Smirnov distance exceeded with probability ``alpha`` by n draws."""
    return float(stats.kstwo.isf(alpha, n))


@functools.lru_cache(maxsize=256)
def _truncated_normal_mean_band(
    lo: float, hi: float, n: int, alpha_side: float
) -> tuple[float, float]:
    """Chernoff band of the mean of ``n`` i.i.d. ``Z²``, Z ~ N(0, 1) truncated to ``[lo, hi]``."""
    return _chernoff_mean_band(_squared_truncated_normal_cgf(lo, hi), n, alpha_side, 0.5)


def _round_down_to(value: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value <= ``value`` (for value >= 0)."""
    x = torch.tensor(value, dtype=torch.float64).to(dtype)
    if float(x) > value:
        x = torch.nextafter(x, torch.zeros_like(x))
    return float(x)


def _max_atom_probability(pdf: Callable[[Any], Any], top: float, dtype: torch.dtype) -> float:
    """Largest probability one ``dtype`` rounding step holds on ``(0, top]`` (≈ pdf·spacing)."""
    x = np.linspace(top / 400, top, 400)
    spacing = np.exp2(np.floor(np.log2(x))) * torch.finfo(dtype).eps
    return float(np.max(pdf(x) * spacing))


def _check_truncation(truncation: Any) -> tuple[float, float]:
    check_type("truncation", truncation, (tuple, list))
    if len(truncation) != 2:
        raise ValueError(f"truncation must be a pair (a, b), got {truncation!r}")
    lo = check_finite_float("truncation[0]", truncation[0])
    hi = check_finite_float("truncation[1]", truncation[1])
    if not lo < 0 < hi:
        raise ValueError(
            f"truncation must satisfy a < 0 < b (the law is centred at 0), got {truncation!r}"
        )
    return lo, hi


def _recognize_law(w: np.ndarray, alpha_law: float) -> tuple[str, tuple[float, float] | None, str]:
    """The law of ``w`` from its shape alone (never from σ): normal, uniform or truncated normal.

    * **bounded?** For N(0, σ²) draws, ``P(max|w| <= r·σ) = (2Φ(r) − 1)^N``. With
      σ replaced by its χ² lower confidence bound, the weights are called bounded
      when that probability is below ``alpha_law/2``: a normal law is called
      bounded with probability <= alpha_law.
    * **uniform or truncated normal?** For U(−b, b), ``max|w| <= b`` and
      ``mean(w²) >= b²·y_lo`` (Chernoff), so ``max|w|/rms <= 1/√y_lo`` with
      probability >= 1 − alpha_law/2; a truncated normal has a larger ratio
      (2.27 at ±2σ against √3 = 1.73) and its truncation is estimated as (min w, max w).
    """
    n = w.size
    max_abs = float(np.max(np.abs(w)))
    sum_sq = float(np.sum(w * w))
    a = alpha_law / 2
    sigma_low = math.sqrt(sum_sq / float(stats.chi2.isf(a / 2, n)))
    log_p_normal = n * float(np.log1p(-2 * stats.norm.sf(max_abs / sigma_low)))
    if log_p_normal >= math.log(a / 2):
        return "normal", None, "shape: max|w| as far out as a normal law's"
    y_lo, _ = _squared_uniform_mean_band(n, a)
    ratio = max_abs / math.sqrt(sum_sq / n)
    if ratio <= 1 / math.sqrt(y_lo):
        return "uniform", None, f"shape: bounded, max|w|/rms = {ratio:.4g} <= √3 (flat)"
    return (
        "truncated_normal",
        (float(np.min(w)), float(np.max(w))),
        f"shape: bounded, max|w|/rms = {ratio:.4g} > √3: truncation estimated as (min w, max w)",
    )


def check_init_distribution(
    init_fn: Callable[..., Any],
    shape: Sequence[int],
    *,
    expected_std: float,
    distribution: str | None = None,
    truncation: tuple[float, float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """Check that ``init_fn`` draws i.i.d. weights of a normal, uniform or truncated normal law.

    With σ = ``expected_std``: ``N(0, σ²)``, ``U(-σ√3, σ√3)``, or ``N(0, σ²)``
    truncated to ``truncation = (a, b)`` (absolute bounds, as
    ``torch.nn.init.trunc_normal_(w, std=σ, a=a, b=b)`` and timm's ``trunc_normal_``
    take them; σ is the std of the normal *before* truncation, the weights' own
    std is smaller and reported as ``details["law_std"]``).

    One tensor of ``shape`` (NaN-filled, so an initializer that does not fill it
    in place fails) is drawn with ``init_fn(w, generator=make_generator(seed, device))``
    and tested in float64:

    * **law** — unless ``distribution`` (or ``truncation``) names it, the law is
      recognized from the draw's shape, never from σ (so a wrong scale is
      reported as a wrong scale, not as a wrong law): *normal* when ``max|w|``
      lies as far out as N(0, σ²) draws reach; otherwise *uniform* when
      ``max|w|/rms`` is at most √3 (to its Chernoff margin), else *truncated
      normal* with the truncation estimated as (min w, max w). Each error has
      probability <= alpha/8 (``details["law_from"]`` says why). This needs
      N >= 2,588 draws at alpha = 1e-9; smaller shapes need ``distribution=``.
    * **normal** — ``Σw²/σ² ~ χ²_N`` exactly (two-sided), and a Kolmogorov–Smirnov
      test against ``N(0, σ²)``.
    * **uniform** — with ``b = σ√3``: ``max|w| <= b`` (up to 4 ulp of ``dtype``);
      ``max|w| >= b·t`` where ``P(max|w| < b·t) = t^N`` exactly, so a bound even
      0.1% too small fails at N ≈ 30,000; ``Σw²`` two-sided, with Chernoff
      bounds on the exact law of ``Σ(w/b)²`` (each term Beta(1/2, 1)), valid for
      every N; and a KS test against ``U(-b, b)``.
    * **truncated normal** — every draw in ``[a, b]`` (4 ulp); ``max w`` and
      ``min w`` reach as close to ``b`` and ``a`` as the exact law of the extremes
      requires (``P(max w < t) = F(t)^N``: a bound at ±σ instead of ±2σ fails);
      ``Σ(w/σ)²`` within Chernoff bounds from its exact moment generating function;
      and a KS test against the truncated normal law.

    In float16/bfloat16 the draws are rounded: the extreme-value tests compare
    with the neighbouring ``dtype`` values; the KS bound is widened by the
    probability one rounding step holds (≈ pdf·spacing), and the KS test is
    skipped (``details["ks_skipped"]`` says why) when that exceeds the KS bound
    itself (e.g. bfloat16 at 4096 × 4096).

    The statistical tests share ``alpha`` equally (after the alpha/4 of the law
    recognition), so a correct initializer fails with probability <= alpha. On a
    non-square shape a fan_in/fan_out swap, a wrong gain or a wrong uniform bound
    changes σ by a large factor and fails.

    Parameters
    ----------
    init_fn : callable
        ``init_fn(weight, generator=g)`` fills ``weight`` in place, e.g.
        ``netprops.init.he_normal_`` or ``torch.nn.init.xavier_uniform_``.
    shape : sequence of int
        At least 2 dimensions, each >= 1 (``(out, in, *kernel)``).
    expected_std : float
        σ (> 0): the std for this shape (of the normal before truncation, for a
        truncated normal).
    distribution : {"normal", "uniform", "truncated_normal"}, optional
        Skip the recognition and test this law.
    truncation : (float, float), optional
        ``(a, b)`` with ``a < 0 < b``: the truncated normal's bounds (implies
        ``distribution="truncated_normal"``).
    seed : int
        Seed of the draw (>= 0).
    device : str or torch.device
        Where the tensor and the generator live.
    dtype : torch.dtype
        Floating dtype of the drawn tensor (statistics are float64 regardless).
    alpha : float
        False-failure probability for a correct initializer, in (0, 1).

    Returns
    -------
    CheckResult
        ``statistic`` = ``mean(w²)/σ²`` with its acceptance interval; ``details``
        has the law, why, kurtosis, max|w|, the KS statistic and its bound.

    Raises
    ------
    TypeError
        non-callable ``init_fn``, non-int dims or seed, non-float dtype.
    ValueError
        a shape with < 2 dims or a zero dim, ``expected_std <= 0``, unknown
        ``distribution``, a truncated normal without ``truncation`` (or
        ``truncation`` with another law), alpha outside (0, 1), or a shape too
        small to recognize the law without ``distribution=``.
    PropertyViolation
        when the draw is not finite or a test rejects.

    Examples
    --------
    >>> from netprops.init import he_normal_
    >>> result = check_init_distribution(he_normal_, (64, 128), expected_std=(2 / 128) ** 0.5)
    >>> result.details["distribution"]
    'normal'
    """
    __tracebackhide__ = True
    _check_callable("init_fn", init_fn)
    shape = _check_shape(shape)
    sigma = check_positive_float("expected_std", expected_std)
    if distribution is not None:
        check_choice("distribution", distribution, DISTRIBUTIONS)
    if truncation is not None:
        truncation = _check_truncation(truncation)
        if distribution not in (None, "truncated_normal"):
            raise ValueError(
                f"truncation is only used by distribution='truncated_normal', got "
                f"distribution={distribution!r}"
            )
        distribution = "truncated_normal"
    elif distribution == "truncated_normal":
        raise ValueError(
            "distribution='truncated_normal' needs truncation=(a, b), the absolute bounds "
            "(e.g. truncation=(-2 * std, 2 * std) for torch.nn.init.trunc_normal_(w, std=std, "
            "a=-2 * std, b=2 * std))"
        )
    seed = check_int("seed", seed, min_value=0)
    dev = resolve_device(device)
    dtype = _check_float_dtype(dtype)
    alpha = _check_alpha(alpha)

    n = math.prod(shape)
    alpha_law = 0.0 if distribution is not None else alpha / 4
    if distribution is None and n < _min_elements_for_detection(alpha_law):
        raise ValueError(
            f"shape {shape} has {n} elements, too few to recognize the weights' law at "
            f"alpha={alpha:g} (needs >= {_min_elements_for_detection(alpha_law)}); pass "
            "distribution='normal', 'uniform' or 'truncated_normal' (with truncation=(a, b))"
        )

    reproduce = _call(
        "check_init_distribution",
        _fn_name(init_fn),
        repr(shape),
        expected_std=sigma,
        **({"distribution": distribution} if distribution is not None else {}),
        **({"truncation": truncation} if truncation is not None else {}),
        seed=seed,
        device=str(dev),
        **({"dtype": dtype} if dtype != torch.float32 else {}),
        **({"alpha": alpha} if alpha != DEFAULT_ALPHA else {}),
    )
    name = "check_init_distribution"
    report = {"seed": seed, "reproduce": reproduce, "alpha": alpha}

    w = _draw(init_fn, shape, make_generator(seed, dev), dev, dtype).detach()
    w = w.to(torch.float64).flatten().cpu().numpy()
    n_bad = int(np.count_nonzero(~np.isfinite(w)))
    if n_bad:
        violation(
            name,
            f"{n_bad} of {n} drawn weights are not finite (does init_fn fill the tensor in place?)",
            statistic=float(n_bad),
            bound=0.0,
            **report,
        )
    m2 = float(np.mean(w**2))
    if m2 == 0.0:
        violation(
            name,
            f"every drawn weight is 0, expected std {sigma:.6g}",
            statistic=0.0,
            bound=None,
            **report,
        )
    kurtosis = float(np.mean(w**4)) / m2**2
    if distribution is None:
        law, truncation, why = _recognize_law(w, alpha_law)
    else:
        law, why = distribution, "argument"
    ratio = m2 / sigma**2
    details: dict[str, Any] = {
        "distribution": law,
        "law_from": why,
        "n": n,
        "kurtosis": round(kurtosis, 4),
        "max_abs": float(np.max(np.abs(w))),
    }
    alpha_tests = alpha - alpha_law
    test = {"normal": _normal_tests, "uniform": _uniform_tests}.get(law, _truncated_normal_tests)
    ms_bound, law_cdf, law_pdf, pdf_top, a = test(
        w, sigma, truncation, dtype, alpha_tests, details, name, report
    )

    ks_bound = _ks_bound(a, n)
    atom = _max_atom_probability(law_pdf, pdf_top, dtype)
    details["ks_bound"] = ks_bound
    if atom > ks_bound:
        # KS assumes a continuous law: the rounded draws put mass ~atom on single values.
        details["ks_statistic"] = None
        details["ks_skipped"] = (
            f"one {str(dtype).removeprefix('torch.')} rounding step holds probability "
            f"{atom:.3g} > the KS bound {ks_bound:.3g}"
        )
    else:
        # Rounding moves each draw by at most one dtype step, which shifts the empirical
        # CDF by at most the probability such a step holds: widen the bound by that much.
        ks_bound += atom
        details["ks_bound"] = ks_bound
        details["ks_rounding_allowance"] = atom
        ks = stats.kstest(w, law_cdf)
        details["ks_statistic"] = float(ks.statistic)
        if ks.statistic > ks_bound:
            violation(
                name,
                f"Kolmogorov–Smirnov distance D = {ks.statistic:.4g} from the "
                f"{law.replace('_', ' ')} law with std {sigma:.6g} (p = {ks.pvalue:.3g})",
                statistic=float(ks.statistic),
                bound=ks_bound,
                details=details,
                **report,
            )
    return CheckResult(
        check=name,
        statistic=ratio,
        bound=ms_bound,
        seed=seed,
        alpha=alpha,
        details=details,
        reproduce=reproduce,
    )


_LawTests = tuple[tuple[float, float], Callable[[Any], Any], Callable[[Any], Any], float, float]


def _normal_tests(
    w: np.ndarray,
    sigma: float,
    truncation: Any,
    dtype: torch.dtype,
    alpha: float,
    details: dict[str, Any],
    name: str,
    report: dict[str, Any],
) -> _LawTests:
    """Σw²/σ² ~ χ²_N (half of ``alpha``); returns the band, the law for KS and KS's level."""
    __tracebackhide__ = True
    n = w.size
    ratio = float(np.mean(w**2)) / sigma**2
    a = alpha / 2
    lo, hi = chi2_interval(n, a)
    if not lo <= ratio * n <= hi:
        violation(
            name,
            f"mean(w²)/σ² = {ratio:.6g}: the weights' variance is {ratio:.4g}× the expected "
            f"σ² = {sigma**2:.6g} (Σw²/σ² ~ χ²_{n} for N(0, σ²) weights)",
            statistic=ratio,
            bound=(lo / n, hi / n),
            details=details,
            **report,
        )
    law = stats.norm(0.0, sigma)
    return (lo / n, hi / n), law.cdf, law.pdf, 4 * sigma, a


def _uniform_tests(
    w: np.ndarray,
    sigma: float,
    truncation: Any,
    dtype: torch.dtype,
    alpha: float,
    details: dict[str, Any],
    name: str,
    report: dict[str, Any],
) -> _LawTests:
    """The bound, the reach of max|w| and the Σw² band (a third of ``alpha`` each with KS)."""
    __tracebackhide__ = True
    n = w.size
    ratio = float(np.mean(w**2)) / sigma**2
    b = math.sqrt(3.0) * sigma
    a = alpha / 3
    details["bound_b"] = b
    max_ratio = details["max_abs"] / b
    slack = 4 * torch.finfo(dtype).eps
    # P(max|w| < b·t) = t^N for the continuous draw; rounding to dtype is monotone,
    # so the rounded maximum is >= the largest dtype value <= b·t.
    t_lo = _round_down_to(b * a ** (1.0 / n), dtype) / b
    if max_ratio > 1 + slack:
        violation(
            name,
            f"max|w| = {details['max_abs']:.6g} exceeds the uniform bound b = σ√3 = {b:.6g}",
            statistic=details["max_abs"],
            bound=b,
            details=details,
            **report,
        )
    y_lo, y_hi = _squared_uniform_mean_band(n, a / 2)  # mean((w/b)²) = ratio/3
    ms_bound = (3 * y_lo, 3 * y_hi)
    if not ms_bound[0] <= ratio <= ms_bound[1]:
        violation(
            name,
            f"mean(w²)/σ² = {ratio:.6g} for U(-b, b) weights, b = {b:.6g} "
            f"(E w² = b²/3, Var w² = 4b⁴/45)",
            statistic=ratio,
            bound=ms_bound,
            details=details,
            **report,
        )
    if max_ratio < t_lo:
        violation(
            name,
            f"max|w|/b = {max_ratio:.6g} is too small: the draws stop short of the bound "
            f"b = {b:.6g} (P(max|w|/b < t) = t^N)",
            statistic=max_ratio,
            bound=(t_lo, 1.0),
            details=details,
            **report,
        )
    law = stats.uniform(-b, 2 * b)
    return ms_bound, law.cdf, lambda x: np.full_like(x, 0.5 / b), b, a


def _truncated_normal_tests(
    w: np.ndarray,
    sigma: float,
    truncation: tuple[float, float],
    dtype: torch.dtype,
    alpha: float,
    details: dict[str, Any],
    name: str,
    report: dict[str, Any],
) -> _LawTests:
    """Support, the reach of the extremes and the Σ(w/σ)² band (a third of ``alpha`` each)."""
    __tracebackhide__ = True
    n = w.size
    ratio = float(np.mean(w**2)) / sigma**2
    lo_b, hi_b = truncation
    alpha_lo, alpha_hi = lo_b / sigma, hi_b / sigma
    law = stats.truncnorm(alpha_lo, alpha_hi, loc=0.0, scale=sigma)
    a = alpha / 3
    details |= {
        "truncation": (lo_b, hi_b),
        "truncation_in_std": (round(alpha_lo, 4), round(alpha_hi, 4)),
        "law_std": float(law.std()),
    }
    w_min, w_max = float(np.min(w)), float(np.max(w))
    slack = 4 * torch.finfo(dtype).eps
    if w_max > hi_b + slack * abs(hi_b) or w_min < lo_b - slack * abs(lo_b):
        outside = w_max if w_max > hi_b else w_min
        violation(
            name,
            f"a weight {outside:.6g} lies outside the truncation [{lo_b:.6g}, {hi_b:.6g}]",
            statistic=outside,
            bound=(lo_b, hi_b),
            details=details,
            **report,
        )
    # P(max w < t) = F(t)^N exactly: each extreme gets a/2. Rounding to dtype is monotone.
    reach = (a / 2) ** (1.0 / n)
    q_hi, q_lo = float(law.ppf(reach)), float(law.isf(reach))
    t_hi = _round_down_to(q_hi, dtype) if q_hi > 0 else q_hi
    t_lo = -_round_down_to(-q_lo, dtype) if q_lo < 0 else q_lo
    if w_max < t_hi or w_min > t_lo:
        side, value, bound = ("max", w_max, hi_b) if w_max < t_hi else ("min", w_min, lo_b)
        violation(
            name,
            f"{side} w = {value:.6g} stops short of the truncation bound {bound:.6g} "
            f"(the {side} of {n} draws of the truncated normal reaches beyond "
            f"{t_hi if side == 'max' else t_lo:.6g} with probability 1 − {a / 2:.3g})",
            statistic=value,
            bound=(float(t_hi), hi_b) if side == "max" else (lo_b, float(t_lo)),
            details=details,
            **report,
        )
    ms_bound = _truncated_normal_mean_band(alpha_lo, alpha_hi, n, a / 2)
    if not ms_bound[0] <= ratio <= ms_bound[1]:
        violation(
            name,
            f"mean(w²)/σ² = {ratio:.6g} for N(0, σ²) truncated to [{lo_b:.6g}, {hi_b:.6g}], "
            f"σ = {sigma:.6g} (E w²/σ² = {law.var() / sigma**2:.6g})",
            statistic=ratio,
            bound=ms_bound,
            details=details,
            **report,
        )
    return ms_bound, law.cdf, law.pdf, min(max(abs(lo_b), hi_b), 4 * sigma), a


# --------------------------------------------------------------------------- check_variance_preserved
def _log_ratio_moments(
    nonlinearity: str, negative_slope: float, width: int
) -> tuple[float, float, float]:
    """``c = E f(Z)²`` and the mean and variance of ``log(‖f(z)‖²/(width·c))``, z ~ N(0, I_width).

    For f linear, ReLU or leaky ReLU (positively homogeneous).
    With ``Y = f(Z)²`` (mean c, central moments v, μ3) and ``S̄`` the mean of
    ``width`` copies, the delta method to second order gives
    ``E log(S̄/c) = −v/(2nc²) + μ3/(3n²c³) − 3v²/(4n²c⁴)`` and
    ``Var log(S̄/c) = v/(nc²) − μ3/(n²c³) + 5v²/(2n²c⁴)``. For f linear these are
    the expansions of the exact ``ψ(n/2) + log(2/n)`` and ``ψ'(n/2)``; ReLU gives
    ``−5/(2n) − 4.08/n²`` and ``5/n + 18.5/n²`` (docs/methods.md §Variance preservation keeps the 1/n terms).
    """
    a = {"linear": 1.0, "relu": 0.0, "leaky_relu": negative_slope}[nonlinearity]
    # E[f(Z)^(2k)] = (1 + a^(2k))/2 · (2k − 1)!!
    m1, m2, m3 = ((1 + a ** (2 * k)) / 2 * d for k, d in ((1, 1), (2, 3), (3, 15)))
    c, v, mu3, n = m1, m2 - m1**2, m3 - 3 * m2 * m1 + 2 * m1**3, width
    mean = -v / (2 * n * c**2) + mu3 / (3 * n**2 * c**3) - 3 * v**2 / (4 * n**2 * c**4)
    var = v / (n * c**2) - mu3 / (n**2 * c**3) + 5 * v**2 / (2 * n**2 * c**4)
    return c, mean, var


def _log_norm_ratio_cgf(
    nonlinearity: str, gain: float, width: int, k_min: int = 1
) -> tuple[Callable[[float], tuple[float, float]], float]:
    """``(t -> (K(t), K'(t)), t_min)`` for one layer's ``log(‖f(z_l)‖²/‖h_(l−1)‖²)``.

    For Gaussian weights of variance σ² = gain²/width the ratio is exactly σ²·χ²_k,
    with k = width (linear) or k ~ Bin(width, ½) (ReLU: the positive coordinates),
    here conditioned on k >= ``k_min`` (the caller accounts for P(k < k_min)). With
    ``E (χ²_k)^t = 2^t·Γ(k/2 + t)/Γ(k/2)``, ``K(t) = t·log σ² + log Σ_k P(k)·E(χ²_k)^t``
    for ``t > −min(k)/2``, and ``K'(t)`` is the P(k)·E(χ²_k)^t-weighted mean of
    ``log σ² + log 2 + ψ(k/2 + t)``.
    """
    log_var = math.log(gain**2 / width)
    if nonlinearity == "linear":
        k = np.array([float(width)])
        log_w = np.zeros(1)
    else:
        k = np.arange(k_min, width + 1, dtype=np.float64)
        log_w = stats.binom.logpmf(k, width, 0.5) - float(stats.binom.logsf(k_min - 1, width, 0.5))

    def cgf(t: float) -> tuple[float, float]:
        terms = log_w + t * math.log(2.0) + special.gammaln(k / 2 + t) - special.gammaln(k / 2)
        total = float(special.logsumexp(terms))
        weights = np.exp(terms - total)
        slope = log_var + math.log(2.0) + float(np.sum(weights * special.digamma(k / 2 + t)))
        return t * log_var + total, slope

    return cgf, -float(k.min()) / 2


@functools.lru_cache(maxsize=256)
def _depth_band(
    nonlinearity: str,
    negative_slope: float,
    gain: float,
    width: int,
    depth: int,
    n_networks: int,
    alpha: float,
) -> tuple[tuple[float, float], float, str]:
    """Band for the mean over networks of ``log(‖h_L‖²/‖x‖²)`` at level ``alpha`` (two-sided).

    That mean is ``depth`` times the mean of D = depth·n_networks i.i.d. per-layer
    log-ratios. Linear and ReLU layers (leaky slope 0) use the exact per-layer law
    (:func:`_log_norm_ratio_cgf`) with Chernoff bounds, valid at every width. For
    ReLU the log-ratio's left tail is heavy (``log χ²_k`` for small k, whose moment
    generating function stops at t = −k/2): the law is conditioned on every layer
    keeping at least ``k_min`` positive units, the largest k_min with
    ``D·P(k < k_min) <= alpha/10``, and the Chernoff bounds share the rest of
    ``alpha``. Leaky ReLU with a slope > 0 uses the normal approximation with the
    delta-method moments of :func:`_log_ratio_moments`. Returns the band, its
    centre and which law.
    """
    terms = depth * n_networks
    if nonlinearity == "linear" or negative_slope == 0 or nonlinearity == "relu":
        kind = "linear" if nonlinearity == "linear" else "relu"
        k_min, alpha_tails = 1, alpha
        if kind == "relu":
            # D·P(1 <= k < k_min) <= alpha/10 (k = 0, a dead layer, is the width rule's)
            def cut(k: int) -> float:
                dead = stats.binom.pmf(0, width, 0.5)
                return terms * float(stats.binom.cdf(k - 1, width, 0.5) - dead)

            k_min = max(1, int(stats.binom.ppf(alpha / (10 * terms), width, 0.5)))
            while k_min > 1 and cut(k_min) > alpha / 10:
                k_min -= 1
            alpha_tails = alpha - cut(k_min)
        cgf, t_min = _log_norm_ratio_cgf(kind, gain, width, k_min)
        lo, hi = _chernoff_mean_band(cgf, terms, alpha_tails / 2, math.inf, t_min)
        return (depth * lo, depth * hi), depth * cgf(0.0)[1], f"exact (Chernoff, k >= {k_min})"
    c, step_mean, step_var = _log_ratio_moments(nonlinearity, negative_slope, width)
    mean = depth * (math.log(gain**2 * c) + step_mean)
    sd = math.sqrt(depth * step_var / n_networks)
    z = z_two_sided(alpha)
    return (mean - z * sd, mean + z * sd), mean, "normal approximation"


def _activation(nonlinearity: str, negative_slope: float) -> Callable[[Any], Any]:
    """The activation, valid for both torch tensors and numpy arrays."""
    if nonlinearity == "linear":
        return lambda z: z
    if nonlinearity == "relu":
        return lambda z: z * (z > 0)
    if nonlinearity == "leaky_relu":
        return lambda z: z * ((z > 0) + negative_slope * (z <= 0))
    if nonlinearity == "tanh":
        return lambda z: z.tanh() if isinstance(z, torch.Tensor) else np.tanh(z)
    return lambda z: z.sigmoid() if isinstance(z, torch.Tensor) else 1 / (1 + np.exp(-z))


@functools.lru_cache(maxsize=1)
def _gauss_hermite() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and probability weights of Gauss–Hermite quadrature for N(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(_GAUSS_HERMITE_POINTS)
    return nodes, weights / weights.sum()


def _mean_field(f: Callable[[Any], Any], gain: float, depth: int) -> list[float]:
    """Infinite-width E[z_l²], l = 1..depth, for ``‖x‖² = n`` and weight variance gain²/n.

    ``q_1 = gain²``, ``q_{l+1} = gain² · E[f(√q_l Z)²]`` (Gauss–Hermite quadrature).
    """
    nodes, weights = _gauss_hermite()
    q = gain**2
    out = [q]
    for _ in range(depth - 1):
        q = gain**2 * float(np.sum(weights * f(math.sqrt(q) * nodes) ** 2))
        out.append(q)
    return out


def check_variance_preserved(
    init_fn: Callable[..., Any],
    *,
    nonlinearity: str,
    negative_slope: float = 0.01,
    gain: float | None = None,
    depth: int = 16,
    width: int = 256,
    n_networks: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    alpha: float = DEFAULT_ALPHA,
) -> CheckResult:
    """Check that ``init_fn`` gives square layers the variance-preserving weight scale.

    Builds ``n_networks`` independent plain stacks of ``depth`` square
    ``width × width`` layers ``z_l = W_l h_{l-1}``, ``h_l = f(z_l)`` (no biases),
    each weight filled by ``init_fn(W, generator=g)`` (``dtype``), and feeds each
    network one input ``x`` drawn uniformly on the sphere ``‖x‖² = width``. All
    propagation is float64; for positively homogeneous ``f`` the signal is
    renormalized every layer (exactly, through logs), so even ``N(0, 1)``
    weights at any depth do not overflow.

    The target scale is ``σ*² = gain²/width`` with ``gain`` defaulting to
    ``netprops.init.calculate_gain(nonlinearity, negative_slope)``:

    ==============  ==========  =================================================
    nonlinearity    gain        what that scale does
    ==============  ==========  =================================================
    linear          1           preserves E[z²] exactly (Glorot & Bengio 2010)
    relu            √2          preserves E[z²] exactly (He et al. 2015)
    leaky_relu      √(2/(1+a²)) preserves E[z²] exactly
    tanh            5/3         keeps E[z²] at a non-zero fixed point (≈ 1.18);
                                with Glorot's gain 1 (pass ``gain=1``) E[z²]
                                decays like ~1/(2L) instead (docs/methods.md §Variance preservation)
    sigmoid         1           torch's convention; nothing is preserved
    ==============  ==========  =================================================

    Tests (they share ``alpha``):

    * **T2, one step (all activations)** — for every layer and network,
      ``T = ‖z_l‖² / (σ*² ‖h_{l-1}‖²)``. For Gaussian weights of variance σ*²,
      ``T ~ χ²_width`` exactly and independently of everything before, so
      ``ΣT ~ χ²_D``, ``D = width·depth·n_networks``, tested two-sided. For other
      zero-mean i.i.d. weights ``E[T] = width`` still holds exactly and
      ``Var T = 2·width + κ·width·Σh⁴/‖h‖⁴`` (κ = excess kurtosis of w): the test
      is conservative for uniform weights (κ = −1.2) and only approximate for
      heavy-tailed ones. Square layers have ``fan_in = fan_out``, so fan-mode
      swaps are invisible here: use :func:`check_init_distribution` on a
      non-square shape for those.
    * **T3, depth (linear, relu, leaky_relu only)** — ``Y = log(‖h_L‖²/‖x‖²)``
      averaged over the networks. For Gaussian weights each layer multiplies
      ``‖h‖²`` by ``(gain²/width)·χ²_k`` independently of everything before, with
      k = width (linear) or k ~ Bin(width, ½) (ReLU: the positive units). For
      linear and ReLU the band comes from that exact law: Chernoff bounds from its
      moment generating function ``E(χ²_k)^t = 2^t·Γ(k/2 + t)/Γ(k/2)``, valid at
      every width (the normal approximation used before was too thin in the lower
      tail: 2.6e-8 instead of 1e-9 at width 16). ReLU's left tail is heavy (small
      k), so its law is conditioned on every layer keeping at least k_min positive
      units, with ``depth·n_networks·P(k < k_min) <= alpha/20`` spent on that.
      Leaky ReLU with a slope > 0 keeps the normal approximation with the
      delta-method moments (mean ``log(gain²c) − v/(2c²n)``, variance ``v/(c²n)``,
      c = E f(Z)², v = Var f(Z)², plus the 1/n² terms). ``details["depth_band_law"]``
      says which. For ReLU (and leaky_relu with slope 0) every layer of every
      network is all zero with probability 2^-width, which is reported as
      degenerate, so
      configurations with ``depth·n_networks·2^-width > alpha/10`` raise
      ``ValueError`` (width >= 42 at the defaults). For tanh and sigmoid no depth test is made:
      the measured profile and its mean-field prediction are reported in
      ``details`` (``pre_second_moment`` vs ``mean_field``).

    Parameters
    ----------
    init_fn : callable
        ``init_fn(weight, generator=g)`` fills a ``(width, width)`` tensor in place.
    nonlinearity : str
        One of ``VARIANCE_NONLINEARITIES``.
    negative_slope : float
        Slope of ``leaky_relu`` for x < 0 (ignored otherwise), >= 0.
    gain : float, optional
        Override of the target gain (> 0).
    depth, width, n_networks : int
        Stack depth L >= 1, layer width n >= 2, number of independent networks K >= 1.
    seed : int
        Seed of every draw (inputs and, through the generator, the weights).
    device : str or torch.device
        Where weights are drawn and propagated.
    dtype : torch.dtype
        Floating dtype of the weight tensors handed to ``init_fn``.
    alpha : float
        False-failure probability for a correct Gaussian initializer.

    Returns
    -------
    CheckResult
        ``statistic`` = ``ΣT/D`` with its interval; ``details`` hold the depth
        statistic and band (homogeneous f), the per-layer mean of ``T/width``,
        the per-layer geometric mean over networks of ``E[z_l²] = ‖z_l‖²/width``
        and its mean-field prediction.

    Raises
    ------
    TypeError, ValueError
        for bad arguments (a bad ``nonlinearity`` lists the valid names).
    PropertyViolation
        when a test rejects, or the signal becomes 0 or non-finite.

    Examples
    --------
    >>> from netprops.init import he_normal_
    >>> result = check_variance_preserved(he_normal_, nonlinearity="relu", depth=4, n_networks=4)
    """
    __tracebackhide__ = True
    _check_callable("init_fn", init_fn)
    check_type("nonlinearity", nonlinearity, str)
    check_choice("nonlinearity", nonlinearity, VARIANCE_NONLINEARITIES)
    negative_slope = check_positive_float("negative_slope", negative_slope, allow_zero=True)
    default_gain = calculate_gain(nonlinearity, negative_slope)
    gain = default_gain if gain is None else check_positive_float("gain", gain)
    depth = check_positive_int("depth", depth)
    width = check_int("width", width, min_value=2)
    n_networks = check_positive_int("n_networks", n_networks)
    seed = check_int("seed", seed, min_value=0)
    dev = resolve_device(device)
    dtype = _check_float_dtype(dtype)
    alpha = _check_alpha(alpha)
    if nonlinearity == "relu" or (nonlinearity == "leaky_relu" and negative_slope == 0):
        # A ReLU layer outputs all zeros with probability 2^-width (every z_i <= 0), which
        # the check reports as degenerate: keep that false failure below alpha/10.
        p_dead = depth * n_networks * 2.0**-width
        if p_dead > alpha / 10:
            min_width = math.ceil(math.log2(10 * depth * n_networks / alpha))
            raise ValueError(
                f"width={width} is too small for depth={depth}, n_networks={n_networks} at "
                f"alpha={alpha:g}: a ReLU layer is all zero with probability 2^-width, so "
                f"depth·n_networks·2^-width = {p_dead:.3g} > alpha/10 would be a false "
                f"failure; use width >= {min_width} (or fewer layers/networks, larger alpha)"
            )

    name = "check_variance_preserved"
    extra: dict[str, Any] = {}
    if nonlinearity == "leaky_relu" and negative_slope != 0.01:
        extra["negative_slope"] = negative_slope
    if gain != default_gain:
        extra["gain"] = gain
    for key, value, default in (("depth", depth, 16), ("width", width, 256)):
        if value != default:
            extra[key] = value
    if n_networks != 16:
        extra["n_networks"] = n_networks
    reproduce = _call(
        name,
        _fn_name(init_fn),
        nonlinearity=nonlinearity,
        **extra,
        seed=seed,
        device=str(dev),
        **({"dtype": dtype} if dtype != torch.float32 else {}),
        **({"alpha": alpha} if alpha != DEFAULT_ALPHA else {}),
    )
    report = {"seed": seed, "reproduce": reproduce, "alpha": alpha}

    homogeneous = nonlinearity in _HOMOGENEOUS
    f = _activation(nonlinearity, negative_slope)
    var_star = gain**2 / width
    generator = make_generator(seed, dev)

    x = torch.randn(n_networks, width, generator=generator, device=dev, dtype=torch.float64)
    h = x * (math.sqrt(width) / x.norm(dim=1, keepdim=True))
    log_scale = torch.zeros(n_networks, dtype=torch.float64, device=dev)  # log of true ‖h‖² / ‖h‖²
    t_stats = torch.empty(depth, n_networks, dtype=torch.float64, device=dev)
    log_q = torch.empty(depth, n_networks, dtype=torch.float64, device=dev)
    # One buffer reused for every layer: fresh allocations page-fault and dominate the cost.
    drawn = torch.empty(n_networks, width, width, dtype=dtype, device=dev)
    weights = drawn if dtype == torch.float64 else torch.empty_like(drawn, dtype=torch.float64)
    for layer in range(depth):
        drawn.fill_(math.nan)  # whatever init_fn does not fill stays non-finite
        with torch.no_grad():
            for k in range(n_networks):
                init_fn(drawn[k], generator=generator)
        if weights is not drawn:
            weights.copy_(drawn)
        z = torch.bmm(weights, h.unsqueeze(-1)).squeeze(-1)
        if not torch.isfinite(z).all():  # h is finite here, so some weight is not
            bad = int((~torch.isfinite(drawn)).sum())
            violation(
                name,
                f"init_fn left {bad} non-finite weights in layer {layer + 1} "
                "(does it fill the tensor in place?)"
                if bad
                else f"the weights of layer {layer + 1} are so large that z overflows float64",
                statistic=float(bad),
                bound=0.0,
                **report,
            )
        h_sq = (h * h).sum(dim=1)
        z_sq = (z * z).sum(dim=1)
        t_stats[layer] = z_sq / (var_star * h_sq)
        log_q[layer] = z_sq.log() + log_scale - math.log(width)
        h = f(z)
        if homogeneous:
            norm_sq = (h * h).sum(dim=1)
            log_scale = log_scale + (norm_sq / h_sq).log()
            h = h / norm_sq.sqrt().unsqueeze(1) * math.sqrt(width)
        bad_net = ~(torch.isfinite(t_stats[layer]) & torch.isfinite(h).all(dim=1))
        bad_net |= (h == 0).all(dim=1)
        if bad_net.any():
            k = int(bad_net.nonzero()[0])
            violation(
                name,
                f"the signal of network {k} became 0 or non-finite after layer {layer + 1} "
                f"(‖z‖² = {float(z_sq[k]):.6g}): the weights' scale is degenerate",
                statistic=float(z_sq[k]),
                bound=(0.0, math.inf),
                **report,
            )

    dof = width * depth * n_networks
    alpha_one_step = alpha / 2 if homogeneous else alpha
    lo, hi = chi2_interval(dof, alpha_one_step)
    t_ratio = float(t_stats.sum()) / dof
    per_layer = (t_stats.mean(dim=1) / width).tolist()
    details: dict[str, Any] = {
        "target_std": math.sqrt(var_star),
        "dof": dof,
        "per_layer_variance_factor": [round(v, 4) for v in per_layer],
        "pre_second_moment": [round(v, 6) for v in log_q.mean(dim=1).exp().tolist()],
        "mean_field": [round(v, 6) for v in _mean_field(f, gain, depth)],
    }
    if not lo <= t_ratio * dof <= hi:
        violation(
            name,
            f"ΣT/D = {t_ratio:.6g}: the weights' variance is about {t_ratio:.4g}× the "
            f"variance-preserving σ*² = gain²/width = {gain**2:.4g}/{width} for {nonlinearity} "
            f"(T = ‖z_l‖²/(σ*²‖h_(l-1)‖²) ~ χ²_{width} per layer; "
            f"per-layer factors {details['per_layer_variance_factor'][:4]}...)",
            statistic=t_ratio,
            bound=(lo / dof, hi / dof),
            details=details,
            **report,
        )
    if homogeneous:
        band, mean, law = _depth_band(
            nonlinearity, negative_slope, gain, width, depth, n_networks, alpha / 2
        )
        y = float(log_scale.mean())  # ‖x‖² = width, so log_scale = log(‖h_L‖²/‖x‖²)
        details["depth_log_ratio"] = y
        details["depth_band"] = band
        details["depth_band_law"] = law
        if not band[0] <= y <= band[1]:
            violation(
                name,
                f"after {depth} layers the signal's squared norm changed by a factor "
                f"exp({y:.4g}) = {math.exp(y):.4g} (mean over {n_networks} networks of "
                f"log(‖h_L‖²/‖x‖²)); expected exp({mean:.4g}) within the band",
                statistic=y,
                bound=band,
                details=details,
                **report,
            )
    return CheckResult(
        check=name,
        statistic=t_ratio,
        bound=(lo / dof, hi / dof),
        seed=seed,
        alpha=alpha,
        details=details,
        reproduce=reproduce,
    )


# --------------------------------------------------------------------------- variance_profile
_ACTIVATION_MODULES = ("torch.nn.modules.activation", "netprops.layers.activations")


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__ in _ACTIVATION_MODULES and not any(
        True for _ in module.parameters(recurse=False)
    )


def _second_moment(t: torch.Tensor) -> float:
    return float(t.detach().to(torch.float64).square().mean()) if t.numel() else math.nan


def _variance(t: torch.Tensor) -> float:
    return float(t.detach().to(torch.float64).var(unbiased=False)) if t.numel() else math.nan


@dataclass(frozen=True)
class LayerVariance:
    """Statistics of one call of one weight layer (float64, over all elements of the batch).

    Attributes
    ----------
    name : the module's name in ``model.named_modules()`` (``"#k"`` appended for its k-th call).
    kind : the module's class name.
    shape : shape of the layer's output ``z``.
    pre_second_moment : ``E[z²]``, the pre-activation second moment.
    act_variance : ``Var[a]`` of the activations that follow (NaN if none is identifiable).
    grad_second_moment : ``E[(∂loss/∂z)²]`` (NaN if no gradient reached ``z``).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    pre_second_moment: float
    act_variance: float
    grad_second_moment: float

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values (NaN becomes None)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.shape),
            "pre_second_moment": clean(self.pre_second_moment),
            "act_variance": clean(self.act_variance),
            "grad_second_moment": clean(self.grad_second_moment),
        }


@dataclass(frozen=True)
class VarianceProfile:
    """Per-layer second moments of a model on one batch, in forward order.

    Attributes
    ----------
    layers : one :class:`LayerVariance` per call of a weight layer.
    loss : the loss whose gradients were measured.
    seed : the seed of the random targets (and of any dropout in the forward pass).
    """

    layers: tuple[LayerVariance, ...]
    loss: str
    seed: int

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerVariance]:
        return iter(self.layers)

    def __str__(self) -> str:
        def num(v: float) -> str:
            return "—" if math.isnan(v) else f"{v:.4g}"

        header = ("#", "layer", "type", "output shape", "E[z²]", "Var[act]", "E[g²]")
        rows = [
            (
                str(i),
                r.name or "<root>",
                r.kind,
                "×".join(map(str, r.shape)),
                num(r.pre_second_moment),
                num(r.act_variance),
                num(r.grad_second_moment),
            )
            for i, r in enumerate(self.layers)
        ]
        widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
        lines = [f"VarianceProfile: {len(self.layers)} layers; loss: {self.loss}; seed {self.seed}"]
        for row in [header, *rows]:
            cells = [
                cell.ljust(w) if j < 4 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """``{"loss", "seed", "layers": [...]}`` with JSON-ready values."""
        return {"loss": self.loss, "seed": self.seed, "layers": [r.to_dict() for r in self]}


class _Recorder:
    """Forward hooks on weight layers and activations; tensor hooks on layer outputs."""

    def __init__(self, model: nn.Module) -> None:
        self.rows: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.pending: tuple[int, torch.Tensor] | None = None
        self.handles: list[Any] = []
        for name, module in model.named_modules():
            if hasattr(module, "weight"):
                self.handles.append(module.register_forward_pre_hook(self._layer_input))
                self.handles.append(module.register_forward_hook(self._layer_hook(name)))
            elif _is_activation(module):
                self.handles.append(module.register_forward_hook(self._activation_hook))

    def finish(self, output: Any) -> None:
        """After the forward pass: the output layer's activations are the model's outputs."""
        if self.pending is not None and output is self.pending[1]:
            self._close_pending(output)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _close_pending(self, tensor: Any) -> None:
        if self.pending is not None and isinstance(tensor, torch.Tensor):
            self.rows[self.pending[0]]["act"] = _variance(tensor)
        self.pending = None

    def _layer_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if _common.is_weight_layer(module) and self.pending is not None:
            self._close_pending(args[0] if args else None)

    def _layer_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not (_common.is_weight_layer(module) and isinstance(output, torch.Tensor)):
                return
            count = self.calls.get(name, 0) + 1
            self.calls[name] = count
            index = len(self.rows)
            self.rows.append(
                {
                    "name": name if count == 1 else f"{name}#{count}",
                    "kind": type(module).__name__,
                    "shape": tuple(output.shape),
                    "pre": _second_moment(output),
                    "act": math.nan,
                    "grad": math.nan,
                }
            )
            if output.requires_grad:
                output.register_hook(self._grad_hook(index))
            self.pending = (index, output)

        return hook

    def _activation_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self.pending is not None and args and args[0] is self.pending[1]:
            self._close_pending(output)

    def _grad_hook(self, index: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self.rows[index]["grad"] = _second_moment(grad)

        return hook


def variance_profile(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    seed: int = 0,
) -> VarianceProfile:
    """Measure per-layer second moments of any ``nn.Module`` on the batch ``x``.

    A row is recorded for every call of a *weight layer* — a module whose
    ``weight`` is a tensor with >= 2 dims (``nn.Linear``, ``nn.ConvNd``,
    ``nn.Embedding``, custom layers) — in forward order:

    * ``pre_second_moment`` — ``E[z²]`` of the layer's output ``z``;
    * ``act_variance`` — ``Var`` of the activations that follow: the output of an
      activation module (``torch.nn`` or ``netprops.layers.activations``) called
      directly on ``z``; else the input of the next weight layer; for the
      model's last layer, when ``z`` is the model output, ``z`` itself;
    * ``grad_second_moment`` — ``E[(∂L/∂z)²]`` (tensor hooks, so in-place
      activations after ``z`` are handled), for the loss ``L``: with
      ``target=None``, cross-entropy (sum over the batch) on seeded random
      class targets when the output is 2-D, else ``Σ output·ε`` with seeded
      ``ε ~ N(0, 1)``; an integer ``target`` gives cross-entropy, a floating one
      ``½Σ(output − target)²``.

    All statistics are float64 over every element of the batch (batch, features
    and spatial positions). The model runs in its current train/eval mode, with
    torch's global RNG seeded by ``seed`` inside a fork (so dropout is
    reproducible and the caller's RNG state is unchanged). Parameters, their
    ``.grad`` and the buffers are left as they were, and every hook is removed,
    also when the forward pass raises.

    Parameters
    ----------
    model : nn.Module
        Any module returning one floating tensor.
    x : torch.Tensor
        The input batch, on the model's device.
    target : torch.Tensor, optional
        Class indices ``(N, *)`` or a floating tensor of the output's shape.
    seed : int
        Seed of the random targets and of the forward pass's global RNG.

    Returns
    -------
    VarianceProfile

    Raises
    ------
    TypeError
        if ``model`` is not an ``nn.Module``, ``x``/``target`` not tensors, or the
        output is not one floating tensor.
    ValueError
        for a target of the wrong shape, or a model with no weight layer called.
    """
    _common.check_model_and_input(model, x)
    seed = check_int("seed", seed, min_value=0)
    rec, description, _ = _common.run_probe(model, x, target, seed, recorder=_Recorder)
    if not rec.rows:
        raise ValueError(
            f"model {type(model).__name__} called no weight layer (a module whose weight has "
            ">= 2 dimensions, e.g. nn.Linear or nn.Conv2d) on this input"
        )
    rows = tuple(
        LayerVariance(r["name"], r["kind"], r["shape"], r["pre"], r["act"], r["grad"])
        for r in rec.rows
    )
    return VarianceProfile(rows, description, seed)


# --------------------------------------------------------------------------- check_model_variance
def _check_band(band: Any) -> tuple[float, float]:
    check_type("band", band, (tuple, list))
    if len(band) != 2:
        raise ValueError(f"band must be a pair (low, high), got {band!r}")
    lo = check_positive_float("band[0]", band[0])
    hi = check_positive_float("band[1]", band[1])
    if not lo <= 1.0 <= hi:
        raise ValueError(f"band must satisfy 0 < low <= 1 <= high, got {band!r}")
    return lo, hi


#: Per-layer variance of the log of a second moment at width n (ReLU: 2/n for the χ² step
#: and 3/n for the fraction of units kept; the largest of the usual activations).
_LOG_VARIANCE_PER_WIDTH = 5.0
#: Per-layer mean drift of that log at width n (ReLU: −5/(2n)), allowed on either side.
_LOG_DRIFT_PER_WIDTH = 2.5


def _layer_width(row: LayerVariance) -> int:
    """Units of a layer: the channels of a convolution-like output, else the last dimension."""
    shape = row.shape
    if len(shape) >= 3 and row.kind.startswith("Conv"):
        return max(int(shape[1]), 1)
    return max(int(shape[-1]), 1) if shape else 1


def _effective_batch(x: torch.Tensor) -> float:
    """``tr(S)²/tr(S²)`` for the Gram matrix S of the flattened examples (1 to B)."""
    flat = x.detach().to(torch.float64).reshape(x.shape[0], -1)
    gram = flat @ flat.T
    denominator = float(gram.square().sum())
    return float(torch.trace(gram)) ** 2 / denominator if denominator > 0 else 1.0


@dataclass(frozen=True)
class _Ratio:
    what: str  # "pre-activation E[z²]" or "gradient E[g²]"
    layer: str
    reference: str
    value: float
    band: tuple[float, float]


def _derived_bands(
    layers: Sequence[LayerVariance],
    x: torch.Tensor,
    input_moment: float | None,
    gradients: bool,
    alpha: float,
    gain_allowance: float,
) -> tuple[list[tuple[str, int, int, str, bool]], float, dict[str, Any]]:
    """Which ratios are compared and the fluctuation unit of each (see check_model_variance)."""
    widths = [_layer_width(r) for r in layers]
    last = len(layers) - 1
    # (what, layer index, reference index (-1: the input), reference name, gain allowance?)
    plan: list[tuple[str, int, int, str, bool]] = []
    if input_moment is not None:
        plan.append(("pre", 0, -1, "input E[x²]", True))
    for i in range(1, len(layers)):
        plan.append(("pre", i, 0, "first layer", i == last))
    if gradients:
        for i in range(last - 1):
            plan.append(("grad", i, last - 1, "last hidden layer", False))
    info = {
        "widths": widths,
        "effective_batch": round(_effective_batch(x), 3) if input_moment is not None else None,
    }
    return plan, z_two_sided(alpha, tests=max(len(plan), 1)), info


def _log_half_width(
    what: str,
    index: int,
    reference: int,
    widths: Sequence[int],
    effective_batch: float | None,
    z: float,
    allowance: float,
) -> float:
    if what == "pre" and reference == -1:  # first layer vs input: one χ² step over the batch
        var = 2.0 / (widths[0] * (effective_batch or 1.0))
        drift = 1.0 / widths[0]
    else:
        span = range(reference + 1, index + 1) if what == "pre" else range(index, reference + 1)
        var = sum(_LOG_VARIANCE_PER_WIDTH / widths[k] for k in span)
        drift = sum(_LOG_DRIFT_PER_WIDTH / widths[k] for k in span)
    return z * math.sqrt(var) + drift + math.log(allowance)


@register_check("model_variance", perturb_parameters=False, verified=False)
def check_model_variance(
    model: nn.Module,
    x: torch.Tensor,
    *,
    band: tuple[float, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    gain_allowance: float = 4.0,
    target: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that second moments neither explode nor vanish through the layers of ``model``.

    Computes :func:`variance_profile` and compares, for the weight-layer calls
    l = 1..L in forward order (the last one is the output layer):

    * **first layer vs input** — ``E[z_1²]/E[x²]`` (floating ``x`` only): a layer
      that preserves second moments multiplies them by its gain² (1 linear, 2 He
      with ReLU, 25/9 tanh, 1/3 torch's default init), so the band allows a factor
      ``gain_allowance`` (4) either way;
    * **every later layer vs the first** — ``E[z_l²]/E[z_1²]``, including the
      output layer (which also gets the ``gain_allowance`` for its readout scale);
    * **gradients** — ``E[g_l²]/E[g_{L−1}²]`` against the last hidden layer (the
      output layer's gradient is the loss's own scale).

    With ``band=None`` each ratio's band is derived from the finite-width law of
    a plain stack with Gaussian weights and zero biases, where each layer of
    width n multiplies the log of a second moment by an independent factor of
    variance at most 5/n (ReLU: 2/n for the χ²_n step, 3/n for the share of
    active units; less for smoother activations) and mean drift −5/(2n)
    (docs/methods.md §Model variance): ``|log ratio| <= z·√(Σ 5/n_k) + Σ 5/(2n_k)
    (+ log gain_allowance)``, summed over the layers between the ratio's two
    ends. The first layer against the input gets the exact one-step law of a
    batch, variance ``2/(n_1·B_eff)`` with ``B_eff = tr(S)²/tr(S²)`` for the
    Gram matrix S of the examples. z is the two-sided normal quantile at
    ``alpha`` Bonferroni-corrected over the ratios. So the band depends on
    depth, widths, batch and alpha; it is wide at small widths (width 16, depth
    4: a factor ~e^5 at alpha = 1e-9) and narrows as 1/√width.

    ``alpha`` is the false-failure probability *for such plain stacks* under the
    normal approximation of the log-fluctuations; for other architectures
    (normalization, attention, residual sums, biased or non-Gaussian weights)
    the band is a heuristic. That is why the property is registered with
    ``verified=False``. An explicit ``band=(low, high)`` replaces every derived
    band by that fixed one (no stated alpha).

    Parameters
    ----------
    model, x, target, seed
        As :func:`variance_profile`.
    band : (float, float), optional
        ``0 < low <= 1 <= high``: a fixed band for every ratio instead of the derived ones.
    alpha : float
        False-failure probability of the derived bands (for plain Gaussian stacks).
    gain_allowance : float
        Factor (>= 1) the first layer may apply to the input's second moment and
        the output layer to the hidden ones.
    device : str or torch.device, optional
        If given, ``x`` is moved there and the model must already be there.

    Returns
    -------
    CheckResult
        ``statistic`` = the ratio farthest (in log, relative to its band's
        half-width) from 1, ``bound`` = its band; ``details["ratios"]`` lists every
        ratio with its band, ``details["profile"]`` is the :class:`VarianceProfile`.

    Raises
    ------
    TypeError, ValueError
        bad arguments (as :func:`variance_profile`; a bad band, alpha or
        gain_allowance; a model on another device).
    PropertyViolation
        when a ratio leaves its band or a reference moment is 0 or not finite.
    """
    __tracebackhide__ = True
    _common.check_model_and_input(model, x)
    fixed = _check_band(band) if band is not None else None
    alpha = _check_alpha(alpha)
    gain_allowance = check_positive_float("gain_allowance", gain_allowance)
    if gain_allowance < 1:
        raise ValueError(f"gain_allowance must be a number >= 1, got {gain_allowance!r}")
    seed = check_int("seed", seed, min_value=0)
    x = _common.on_device(model, x, device)
    profile = variance_profile(model, x, target=target, seed=seed)
    name = "check_model_variance"
    reproduce = _call(
        name,
        "model",
        "x",
        **({"band": fixed} if fixed is not None else {}),
        **({"alpha": alpha} if alpha != DEFAULT_ALPHA else {}),
        **({"gain_allowance": gain_allowance} if gain_allowance != 4.0 else {}),
        **({"target": "target"} if target is not None else {}),
        seed=seed,
    ).replace("target='target'", "target=target")
    stated_alpha = 0.0 if fixed is not None else alpha
    report = {"seed": seed, "reproduce": reproduce, "alpha": stated_alpha}

    layers = profile.layers
    input_moment = _second_moment(x) if x.is_floating_point() and x.numel() else None
    grad_ref = layers[-2].grad_second_moment if len(layers) > 1 else math.nan
    gradients = len(layers) > 2 and not math.isnan(grad_ref)
    plan, z, info = _derived_bands(layers, x, input_moment, gradients, alpha, gain_allowance)
    details: dict[str, Any] = {
        "band": "fixed" if fixed is not None else "derived (plain Gaussian stack law)",
        "alpha_holds_for": "plain stacks with Gaussian weights and zero biases"
        if fixed is None
        else "nothing (fixed band)",
        **info,
    }
    if len(layers) > 1 and math.isnan(grad_ref):
        details["gradient_band"] = "skipped: no gradient reaches the last hidden layer"
    references = {
        "input E[x²]": input_moment,
        "first layer": layers[0].pre_second_moment,
        "last hidden layer": grad_ref,
    }
    for ref_name in {p[3] for p in plan}:
        ref = references[ref_name]
        if ref is None or not (math.isfinite(ref) and ref > 0):
            violation(
                name,
                f"the {ref_name}'s second moment is {ref}: nothing can be compared to it",
                statistic=math.nan if ref is None else ref,
                bound=(0.0, math.inf),
                details={**details, "profile": profile},
                **report,
            )
    ratios: list[_Ratio] = []
    for what, index, reference, ref_name, allowed in plan:
        attr = "pre_second_moment" if what == "pre" else "grad_second_moment"
        value = getattr(layers[index], attr)
        if math.isnan(value):
            continue
        ratio = value / references[ref_name]
        if fixed is not None:
            bounds = fixed
        else:
            half = _log_half_width(
                what,
                index,
                reference,
                info["widths"],
                info["effective_batch"],
                z,
                gain_allowance if allowed else 1.0,
            )
            bounds = (math.exp(-half), math.exp(half))
        label = "pre-activation E[z²]" if what == "pre" else "gradient E[g²]"
        ratios.append(_Ratio(label, layers[index].name, ref_name, ratio, bounds))

    def excess(r: _Ratio) -> float:
        if not r.value > 0:
            return math.inf
        lo, hi = math.log(r.band[0]), math.log(r.band[1])
        log_r = math.log(r.value)
        return (log_r / hi) if log_r >= 0 else (log_r / lo)

    details["ratios"] = [
        f"{r.layer} {r.what} / {r.reference}: {r.value:.4g} in [{r.band[0]:.4g}, {r.band[1]:.4g}]"
        for r in ratios
    ]
    details["profile"] = profile
    worst = max(ratios, key=excess)
    outside = [r for r in ratios if not r.band[0] <= r.value <= r.band[1]]
    if outside:
        listed = "; ".join(
            f"{r.layer!r} {r.what} ×{r.value:.4g} vs the {r.reference} "
            f"(band [{r.band[0]:.4g}, {r.band[1]:.4g}])"
            for r in outside[:6]
        )
        violation(
            name,
            f"{len(outside)} layer ratio(s) outside their band: {listed}"
            + (" ..." if len(outside) > 6 else ""),
            statistic=worst.value,
            bound=worst.band,
            details=details,
            **report,
        )
    return CheckResult(
        check=name,
        statistic=worst.value,
        bound=worst.band,
        seed=seed,
        alpha=stated_alpha,
        details=details,
        reproduce=reproduce,
    )
