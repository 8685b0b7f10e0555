"""Checks for normalization layers: batch independence, normalized statistics, shift invariance.

The exact properties of LayerNorm (METHODS.md §2) hold in exact arithmetic; in
floating point each comparison allows ``|Δ| ≤ atol·κ·s + rtol·|y|`` with the
dtype's ``(rtol, atol)`` from :func:`netprops.tolerance`, the conditioning
``κ = (|μ| + σ)/√(σ² + ε)`` of the normalized slice of the input (see
:func:`conditioning`) and ``s`` the RMS of the reference output (1 for a
normalized output with unit affine). Inputs with a large offset (κ ~ 1e3) thus
get a proportionally larger — and still tight — tolerance. ``check_normalized``
compares each element with the float64 oracle ``(x − μ)/√(σ² + ε)`` (s = 1, the
``rtol`` term taken at the slice's largest expected value) and, for
float16/bfloat16 inputs, uses float32's ``atol`` (see its docstring).
Comparisons are never bitwise: PyTorch promises no bitwise equality between a
batched and a per-row computation, on CUDA in particular.

All checks run the module in its current mode, under ``torch.no_grad()``, with
torch's global RNG forked (and seeded from ``seed`` where there is one), and
restore the module's parameters, buffers and attributes afterwards
(:class:`netprops.checks.contract.ModuleSnapshot`): BatchNorm in train mode may
be checked without its running statistics moving.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

from ..errors import check_int, check_positive_float
from ..seeding import derive_seed, make_generator
from ..tolerances import Tolerance, tolerance
from . import _common
from .contract import ModuleSnapshot
from .registry import register_check
from .results import CheckResult, violation

__all__ = [
    "check_batch_independent",
    "check_normalized",
    "check_shift_invariant",
    "conditioning",
]

_HALF_DTYPES = (torch.float16, torch.bfloat16)

#: Rows checked one at a time (batch size 1) by ``check_batch_independent``.
_MAX_SINGLE_ROWS = 8


def conditioning(x: torch.Tensor, dims: int | Sequence[int] = -1, eps: float = 0.0) -> torch.Tensor:
    """Conditioning ``κ = (|μ| + σ)/√(σ² + ε)`` of normalizing ``x`` over ``dims``.

    μ and σ² are the mean and biased variance over ``dims`` (float64). The
    absolute rounding error of a normalization in a dtype with unit roundoff u is
    about ``u·κ``, so tolerances scale with κ (κ = 1 for a centred input, ~1e3
    for an offset of 1e3 standard deviations).

    Parameters
    ----------
    x : floating-point tensor.
    dims : dimension(s) normalized over.
    eps : the ε added to the variance (0 gives ``(|μ| + σ)/σ``).

    Returns
    -------
    float64 tensor with ``dims`` kept as size 1; ``inf`` where σ² + ε = 0.
    """
    xd = x.detach().double()
    var, mean = torch.var_mean(xd, dim=dims, keepdim=True, correction=0)
    kappa = (mean.abs() + var.sqrt()) / (var + eps).sqrt()
    return kappa.nan_to_num(nan=math.inf)


def _module_eps(module: nn.Module) -> float:
    eps = getattr(module, "eps", None)
    if isinstance(eps, Real) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0:
        return float(eps)
    return 0.0


def _normalized_shape_dims(module: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    shape = getattr(module, "normalized_shape", None)
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (tuple, list, torch.Size)) and 0 < len(shape) < x.dim():
        return tuple(range(x.dim() - len(shape), x.dim()))
    return None


def _row_kappa(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """κ of each normalized slice of ``x``, broadcastable against the output ``out``."""
    dims = _normalized_shape_dims(module, x) or tuple(range(1, x.dim()))
    kappa = conditioning(x, dims, _module_eps(module))
    if out.shape != x.shape:
        kappa = kappa.reshape(x.shape[0], -1).amax(dim=1)
        kappa = kappa.reshape(x.shape[0], *([1] * (out.dim() - 1)))
    return kappa


def _random_rows(x: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` rows shaped like ``x``'s, at a different offset and spread than ``x``."""
    xd = x.detach().double()
    finite = xd[torch.isfinite(xd)]
    mean = float(finite.mean()) if finite.numel() else 0.0
    std = float(finite.std()) if finite.numel() > 1 else 0.0
    std = std if std > 0 else 1.0
    z = torch.randn(
        (count, *x.shape[1:]), generator=generator, device=x.device, dtype=torch.float64
    )
    return (mean + std * (1.0 + 2.0 * z)).to(x.dtype)


def _default_batch_sizes(n: int) -> tuple[int, ...]:
    return tuple(sorted({1, max(2, n // 2), 2 * n + 1} - {n}, reverse=True))


def _check_batch_sizes(batch_sizes: Any, n: int) -> tuple[int, ...]:
    if batch_sizes is None:
        return _default_batch_sizes(n)
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence):
        raise TypeError(f"batch_sizes must be a sequence of ints >= 1 or None, got {batch_sizes!r}")
    sizes = [check_int(f"batch_sizes[{i}]", b, min_value=1) for i, b in enumerate(batch_sizes)]
    if not sizes:
        raise ValueError("batch_sizes must name at least one batch size, got an empty sequence")
    return tuple(sorted(set(sizes), reverse=True))


@register_check("batch_independent")
def check_batch_independent(
    module: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
    batch_sizes: Sequence[int] | None = None,
) -> CheckResult:
    """Check that output row i depends only on input row i, whatever the batch.

    With ``y = module(x)`` as reference, row i of the output must not change
    (up to ``atol·κ_i·s + rtol·|y_i|``, see the module docstring) when

    1. the rows of ``x`` are permuted (seeded permutation);
    2. the other half of the rows are replaced by seeded random rows at a
       different offset and spread (a batch-statistics layer sees other statistics);
    3. the batch is cut to its first ``b`` rows, or padded with ``b − N`` random
       rows, for each ``b`` in ``batch_sizes`` (default ``(2N+1, N//2, 1)``);
    4. row i is passed alone (batch size 1), for up to 8 seeded rows.

    The module is used in its CURRENT mode: LayerNorm passes in both modes,
    BatchNorm passes in eval mode and fails in train mode. Put stochastic
    modules (dropout) in eval mode first: their train-mode masks differ between
    forwards. A forward that raises for one of the batches above (e.g. BatchNorm
    in train mode with batch size 1) is reported as a violation.

    Parameters
    ----------
    module : any ``nn.Module`` mapping a batch-first tensor to a batch-first tensor.
    x : floating-point input, shape ``(N, *)`` with ``N >= 2``.
    seed : seed of the permutation, the random rows and the rows checked alone.
    batch_sizes : batch sizes to cut to / pad to (ints >= 1); ``None`` for the default.

    Returns
    -------
    CheckResult with ``statistic`` the largest normalized error ``|Δ| / bound`` over
    all variants and rows, ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments; a module whose output is not a tensor or has no batch axis
        of size ``N``.
    PropertyViolation
        when some row changes beyond the tolerance, or a variant forward raises.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x, min_batch=2)
    seed = check_int("seed", seed, min_value=0)
    n = x.shape[0]
    sizes = _check_batch_sizes(batch_sizes, n)
    name = "check_batch_independent"
    reproduce = _common.reproduce(name, seed=seed, batch_sizes=batch_sizes)
    mode = "train" if module.training else "eval"

    cpu = make_generator(derive_seed(seed, name, "indices"))
    rows = make_generator(derive_seed(seed, name, "rows"), x.device)
    perm = torch.randperm(n, generator=cpu)
    if torch.equal(perm, torch.arange(n)):
        perm = perm.roll(1)
    keep = torch.randperm(n, generator=cpu)[: max(1, n // 2)].sort().values
    singles = torch.randperm(n, generator=cpu)[:_MAX_SINGLE_ROWS].sort().values

    with ModuleSnapshot(module), torch.no_grad(), _common.isolated_rng(seed, x.device):
        y = _common.output(module(x.clone()), "reference forward")
        if y.dim() == 0 or y.shape[0] != n:
            raise ValueError(
                f"the module's output must keep the batch axis: x has {n} rows, "
                f"output has shape {tuple(y.shape)}"
            )
        kappa = _row_kappa(module, x, y)
        tol = tolerance(x.dtype)
        atol_scale = tol.atol * _common.scale(y)

        # (label, input batch, positions compared in its output, matching rows of y)
        variants: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        variants.append(("the rows are permuted", x[perm], torch.arange(n), perm))
        replaced = x.clone()
        others = torch.ones(n, dtype=torch.bool)
        others[keep] = False
        if others.any():
            replaced[others.to(x.device)] = _random_rows(x, int(others.sum()), rows)
            variants.append(("the other rows are replaced by random rows", replaced, keep, keep))
        for b in sizes:
            if b < n:
                variants.append(
                    (f"the batch is cut to its first {b} rows", x[:b], *[torch.arange(b)] * 2)
                )
            elif b > n:
                padded = torch.cat([x, _random_rows(x, b - n, rows)])
                label = f"the batch is padded to {b} rows with random rows"
                variants.append((label, padded, *[torch.arange(n)] * 2))
        for i in singles.tolist():
            variants.append(
                (
                    f"row {i} is passed alone (batch size 1)",
                    x[i : i + 1],
                    torch.tensor([0]),
                    torch.tensor([i]),
                )
            )

        worst = 0.0
        for label, batch, positions, ref_rows in variants:
            try:
                out = _common.output(module(batch.clone()), label)
            except Exception as exc:
                violation(
                    name,
                    f"the module raised {type(exc).__name__} when {label}: {exc}",
                    statistic=math.inf,
                    bound=1.0,
                    seed=seed,
                    reproduce=reproduce,
                    details={"x": _common.describe(x), "mode": mode},
                )
            if out.shape[0] != batch.shape[0] or out.shape[1:] != y.shape[1:]:
                violation(
                    name,
                    f"output shape {tuple(out.shape)} when {label} does not match "
                    f"the reference rows {tuple(y.shape[1:])}",
                    statistic=math.inf,
                    bound=1.0,
                    seed=seed,
                    reproduce=reproduce,
                    details={"x": _common.describe(x), "mode": mode},
                )
            actual = out[positions.to(out.device)]
            expected = y[ref_rows.to(y.device)]
            bound = (
                atol_scale * kappa[ref_rows.to(kappa.device)] + tol.rtol * expected.double().abs()
            )
            score, index = _common.worst(_common.normalized_error(actual, expected, bound))
            worst = max(worst, score)
            if score > 1.0:
                row = int(ref_rows[index[0]])
                violation(
                    name,
                    f"output row {row} changes when {label} (module in {mode} mode)",
                    statistic=score,
                    bound=1.0,
                    seed=seed,
                    reproduce=reproduce,
                    details={
                        "x": _common.describe(x),
                        "mode": mode,
                        "row": row,
                        "element": index[1:],
                        "actual": float(actual[index]),
                        "expected": float(expected[index]),
                        "kappa": float(kappa[row].max()),
                        "tolerance": f"atol·κ·s + rtol·|y| with {tol}, s = {_common.scale(y):.6g}",
                    },
                )
    return CheckResult(
        check=name,
        statistic=worst,
        bound=1.0,
        seed=seed,
        details={
            "x": _common.describe(x),
            "mode": mode,
            "variants": len(variants),
            "batch_sizes": sizes,
            "rows_alone": singles.tolist(),
            "max_kappa": float(kappa.max()),
        },
        reproduce=reproduce,
    )


# --------------------------------------------------------------------------- statistics


def _resolve_dims(normalized_dims: Any, module: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    if normalized_dims is None:
        return _normalized_shape_dims(module, x) or (x.dim() - 1,)
    if isinstance(normalized_dims, Integral) and not isinstance(normalized_dims, bool):
        normalized_dims = (normalized_dims,)
    if isinstance(normalized_dims, (str, bytes)) or not isinstance(normalized_dims, Sequence):
        raise TypeError(
            f"normalized_dims must be an int, a sequence of ints or None, got {normalized_dims!r}"
        )
    dims = []
    for i, d in enumerate(normalized_dims):
        d = check_int(f"normalized_dims[{i}]", d)
        resolved = d + x.dim() if d < 0 else d
        if not 1 <= resolved < x.dim():
            raise ValueError(
                f"normalized_dims must name non-batch dims of x (1..{x.dim() - 1} or "
                f"{-(x.dim() - 1)}..-1 for x of shape {tuple(x.shape)}), got {d}"
            )
        dims.append(resolved)
    if not dims or len(set(dims)) != len(dims):
        raise ValueError(f"normalized_dims must name distinct dims, got {normalized_dims!r}")
    return tuple(sorted(dims))


def _resolve_eps(eps: Any, module: nn.Module) -> float:
    if eps is not None:
        return check_positive_float("eps", eps, allow_zero=True)
    found = getattr(module, "eps", None)
    if isinstance(found, Real) and not isinstance(found, bool):
        return check_positive_float("module.eps", found, allow_zero=True)
    raise ValueError(
        f"eps is None and {type(module).__name__} has no numeric attribute `eps`: "
        "pass eps= (the ε the module adds to the variance)"
    )


def _check_unit_affine(module: nn.Module) -> None:
    for attr, value in (("weight", 1.0), ("bias", 0.0)):
        t = getattr(module, attr, None)
        if isinstance(t, torch.Tensor) and not bool((t.detach() == value).all()):
            raise ValueError(
                f"check_normalized needs a module with unit affine, but module.{attr} is not "
                f"all {value:g}: use a fresh module, elementwise_affine=False, or reset "
                f"module.{attr} to {value:g}"
            )


def _normalized_tolerance(dtype: torch.dtype) -> Tolerance:
    """``(rtol, atol)`` of ``check_normalized``'s per-element comparison for inputs of ``dtype``.

    float16/bfloat16 inputs keep their ``rtol`` (the rounding of the output to the
    dtype, ``≤ u·|y|``) but take float32's ``atol`` for the ``κ`` term: the input is
    exact in its dtype and torch's and netprops' LayerNorm normalize half inputs in
    float32, so the error proportional to κ is float32's (half's ``atol`` would let
    an all-zeros output pass from κ ≈ 100 on).
    """
    tol = tolerance(dtype)
    if dtype in _HALF_DTYPES:
        return Tolerance(rtol=tol.rtol, atol=tolerance(torch.float32).atol)
    return tol


# perturb_parameters=False until the oracle applies the module's own affine parameters
@register_check("normalized", perturb_parameters=False)
def check_normalized(
    module: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
    normalized_dims: int | Sequence[int] | None = None,
    eps: float | None = None,
) -> CheckResult:
    """Check ``module(x)`` against the float64 oracle ``(x − μ)/√(σ² + ε)``, and its moments.

    For each slice of ``x`` over ``normalized_dims`` (n elements, mean μ, biased
    variance σ², all in float64) every output element must be within
    ``B = atol·κ + rtol·max|ŷ|`` of the oracle ``ŷ = (x − μ)/√(σ² + ε)`` (κ from
    :func:`conditioning`, max over the slice; for float16/bfloat16 inputs ``atol``
    is float32's, see below). The output slice must also have mean 0 and biased
    variance ``σ²/(σ² + ε)`` — not 1 — within the bounds the element bound implies:
    ``B`` for the mean and ``2·B·√v + B²`` for the variance. The moments are checked
    first, as they name the likely bug: a LayerNorm dividing by the unbiased variance
    is off by a factor ``(n−1)/n`` (0.875 at n = 8, caught at any κ up to ~1e3 in
    float32; ``details["unbiased_score"]`` reports the score such a layer would get);
    one that normalizes over the batch axis has per-sample means ≠ 0. The element
    comparison catches the rest: a layer normalizing over fewer dims than
    ``normalized_dims``, a permuted or negated output.

    Half-precision inputs: the input is exact in its dtype and LayerNorm kernels
    (torch's, netprops') normalize it in float32, so the only half-precision error
    is the rounding of the output (``rtol·|y|``) and the κ term uses float32's
    ``atol``. A module that computes in float16/bfloat16 itself is off by ~u·κ
    and fails from moderate κ on: check it on float32 input.

    The module must have unit affine: a ``weight`` / ``bias`` attribute of the
    module, when present, must be all ones / zeros (ValueError otherwise).
    The module runs in its current mode; its state is restored afterwards.
    Slices with ``σ² + ε = 0`` or non-finite values in ``x`` are skipped.

    Parameters
    ----------
    module : any ``nn.Module`` with output of the shape of ``x``.
    x : floating-point input, shape ``(N, *)`` with at least 2 dims.
    normalized_dims : dim(s) of ``x`` the module normalizes over (not 0). Default:
        the trailing ``len(module.normalized_shape)`` dims, else the last dim.
    eps : the ε the module adds to the variance; default ``module.eps``.

    Returns
    -------
    CheckResult with ``statistic`` the largest of ``|mean|/bound``,
    ``|var − σ²/(σ²+ε)|/bound`` over slices and ``|y − ŷ|/B`` over elements,
    ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments, no ``eps`` found, non-unit affine, output shape ≠ input shape;
        an input so ill-conditioned that the tolerance cannot tell a normalized
        output from zeros (an all-zeros output would pass on every slice with
        ``σ²/(σ² + ε) ≥ 0.01``): pass a better-conditioned input or float64.
    PropertyViolation
        when a slice's mean or variance, or an output element, is off.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x)
    dims = _resolve_dims(normalized_dims, module, x)
    eps = _resolve_eps(eps, module)
    _check_unit_affine(module)
    name = "check_normalized"
    reproduce = _common.reproduce(name, normalized_dims=dims, eps=eps)

    n = math.prod(x.shape[d] for d in dims)
    xd = x.detach().double()
    var_x, mean_x = torch.var_mean(xd, dim=dims, keepdim=True, correction=0)
    oracle = (xd - mean_x) / (var_x + eps).sqrt()
    target = var_x / (var_x + eps)
    kappa = conditioning(x, dims, eps)
    tol = _normalized_tolerance(x.dtype)
    elem_bound = tol.atol * kappa + tol.rtol * oracle.abs().amax(dim=dims, keepdim=True)
    mean_bound = elem_bound
    var_bound = 2 * elem_bound * target.sqrt() + elem_bound.square()
    valid = torch.isfinite(target) & torch.isfinite(var_bound)
    _check_resolvable(x, dims, eps, oracle, elem_bound, kappa, valid & (target >= 0.01))

    with ModuleSnapshot(module), torch.no_grad(), _common.isolated_rng(0, x.device):
        y = _common.output(module(x.clone()), "forward")
    if y.shape != x.shape:
        raise ValueError(
            f"check_normalized needs an output of the input's shape {tuple(x.shape)}, "
            f"got {tuple(y.shape)}"
        )
    yd = y.detach().double()
    var_y, mean_y = torch.var_mean(yd, dim=dims, keepdim=True, correction=0)
    zero = torch.zeros_like(target)
    mean_score = torch.where(valid, _common.normalized_error(mean_y, zero, mean_bound), zero)
    var_score = torch.where(valid, _common.normalized_error(var_y, target, var_bound), zero)
    elem_score = _common.normalized_error(yd, oracle, elem_bound)
    elem_score = torch.where(valid, elem_score, torch.zeros_like(elem_score))

    unbiased = var_x / (var_x * n / (n - 1) + eps) if n > 1 else target
    power = torch.where(valid & (var_bound > 0), (unbiased - target).abs() / var_bound, math.inf)
    tolerance_text = f"|y − ŷ| ≤ atol·κ + rtol·max|ŷ| per slice with {tol}"
    details = {
        "x": _common.describe(x),
        "normalized_dims": dims,
        "n": n,
        "eps": eps,
        "slices": int(target.numel()),
        "slices_skipped": int((~valid).sum()),
        "max_kappa": float(kappa.max()),
        "unbiased_score": float(power.min()) if n > 1 else None,
        "tolerance": tolerance_text,
    }
    for label, score in (("mean", mean_score), ("biased variance", var_score)):
        value, index = _common.worst(score)
        if value > 1.0:
            expected = 0.0 if label == "mean" else float(target[index])
            actual = float((mean_y if label == "mean" else var_y)[index])
            violation(
                name,
                f"output {label} over dims {dims} is {actual:.6g} for slice {index}, "
                f"expected {expected:.6g}" + (" = σ²/(σ² + ε)" if label != "mean" else ""),
                statistic=value,
                bound=1.0,
                seed=None,
                reproduce=reproduce,
                details={**details, "slice": index, "actual": actual, "expected": expected},
            )
    value, index = _common.worst(elem_score)
    if value > 1.0:
        actual, expected = float(yd[index]), float(oracle[index])
        slice_index = tuple(0 if d in dims else i for d, i in enumerate(index))
        violation(
            name,
            f"output element {index} is {actual:.6g}, expected {expected:.6g} = "
            f"(x − μ)/√(σ² + ε) over dims {dims}",
            statistic=value,
            bound=1.0,
            seed=None,
            reproduce=reproduce,
            details={
                **details,
                "element": index,
                "actual": actual,
                "expected": expected,
                "kappa": float(kappa[slice_index]),
                "allowed": float(elem_bound[slice_index]),
            },
        )
    statistic = max(_common.worst(mean_score)[0], _common.worst(var_score)[0], value)
    return CheckResult(
        check=name, statistic=statistic, bound=1.0, seed=None, details=details, reproduce=reproduce
    )


def _check_resolvable(
    x: torch.Tensor,
    dims: tuple[int, ...],
    eps: float,
    oracle: torch.Tensor,
    elem_bound: torch.Tensor,
    kappa: torch.Tensor,
    informative: torch.Tensor,
) -> None:
    """ValueError when an all-zeros output would be within tolerance on every informative slice.

    Informative slices are those whose normalized output has RMS ``√(σ²/(σ²+ε)) ≥ 0.1``
    (constant or near-constant slices normalize to ~0, and zeros are right there).
    """
    if not bool(informative.any()):
        return
    zero_score = (oracle.abs() / elem_bound).amax(dim=dims, keepdim=True)
    zero_score = torch.where(informative, zero_score, torch.zeros_like(zero_score))
    best, index = _common.worst(zero_score)
    if best > 1.0:
        return
    raise ValueError(
        f"check_normalized cannot tell a normalized output from zeros for this "
        f"{str(x.dtype).replace('torch.', '')} input of shape {tuple(x.shape)}: even on its "
        f"best-conditioned slice {index} (κ = "
        f"{float(kappa[index]):.4g}, ε = {eps:g}) the tolerance atol·κ + rtol·max|ŷ| = "
        f"{float(elem_bound[index]):.4g} exceeds every expected output "
        f"|(x − μ)/√(σ² + ε)| ≤ {float(oracle.abs().amax(dim=dims, keepdim=True)[index]):.4g}. "
        "Pass a better-conditioned input (κ ≈ |μ|/σ: subtract most of each slice's "
        "mean) or a more precise dtype (float64)"
    )


# --------------------------------------------------------------------------- invariances

_SHIFT = "shift invariance f(x + c) = f(x)"
_NEGATION = "negation f(-x) = -f(x)"


def _bias_free(module: nn.Module) -> bool:
    bias = getattr(module, "bias", _ABSENT)
    if bias is _ABSENT:
        return False
    return bias is None or (isinstance(bias, torch.Tensor) and not bool(bias.detach().any()))


_ABSENT = object()


@register_check("shift_invariant")
def check_shift_invariant(
    module: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
    negation: bool | None = None,
) -> CheckResult:
    """Check ``f(x + c) = f(x)`` for a per-row constant c, and optionally ``f(−x) = −f(x)``.

    Each row i of ``x`` (all non-batch dims) gets a seeded constant
    ``c_i = 10·σ_i·u_i``, ``u_i ~ U(−1, 1)`` (σ_i the row's standard deviation), so
    every normalized slice is shifted by a constant. The outputs must agree within
    ``atol·κ·s + rtol·|y|`` where κ is the larger conditioning of the original and
    the shifted slice (the shifted input is rounded to the dtype, which perturbs it
    by ~u·κ). With ``negation`` the module must also be odd, as a bias-free
    LayerNorm is: default ``None`` checks it when the module has a ``bias``
    attribute that is None or all zeros.

    Parameters
    ----------
    module : any ``nn.Module`` (current mode; state restored afterwards).
    x : floating-point input, shape ``(N, *)`` with at least 2 dims.
    seed : seed of the constants.
    negation : check ``f(−x) = −f(x)`` too (None: auto, see above).

    Returns
    -------
    CheckResult with ``statistic`` the largest normalized error over the checked
    properties (``details["properties"]`` lists each), ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments; module output not a tensor.
    PropertyViolation
        naming the property that fails.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    if negation is not None and not isinstance(negation, bool):
        raise TypeError(f"negation must be a bool or None, got {negation!r}")
    negation = _bias_free(module) if negation is None else negation
    name = "check_shift_invariant"
    reproduce = _common.reproduce(name, seed=seed, negation=negation)

    xd = x.detach().double()
    row_std = xd.reshape(x.shape[0], -1).std(dim=1, correction=0)
    row_std = torch.where(row_std > 0, row_std, torch.ones_like(row_std))
    u = torch.rand(
        x.shape[0],
        generator=make_generator(derive_seed(seed, name), x.device),
        device=x.device,
        dtype=torch.float64,
    )
    c = (10.0 * row_std * (2.0 * u - 1.0)).reshape(x.shape[0], *([1] * (x.dim() - 1)))
    shifted = (xd + c).to(x.dtype)

    with ModuleSnapshot(module), torch.no_grad(), _common.isolated_rng(seed, x.device):
        y = _common.output(module(x.clone()), "forward")
        y_shift = _common.output(module(shifted.clone()), "shifted forward")
        y_neg = _common.output(module(-x), "negated forward") if negation else None

    tol = tolerance(x.dtype)
    atol_scale = tol.atol * _common.scale(y)
    kappa = torch.maximum(_row_kappa(module, x, y), _row_kappa(module, shifted, y))
    properties: dict[str, float | str] = {}
    checks = [(_SHIFT, y_shift, y, kappa)]
    if y_neg is not None:
        checks.append((_NEGATION, y_neg, -y, _row_kappa(module, x, y)))
    else:
        properties[_NEGATION] = "not checked"
    for label, actual, expected, k in checks:
        if actual.shape != expected.shape:
            violation(
                name,
                f"{label} fails: output shape {tuple(actual.shape)} vs {tuple(expected.shape)}",
                statistic=math.inf,
                bound=1.0,
                seed=seed,
                reproduce=reproduce,
                details={"x": _common.describe(x)},
            )
        bound = atol_scale * k + tol.rtol * expected.double().abs()
        score, index = _common.worst(_common.normalized_error(actual, expected, bound))
        properties[label] = score
        if score > 1.0:
            violation(
                name,
                f"{label} fails at output element {index}",
                statistic=score,
                bound=1.0,
                seed=seed,
                reproduce=reproduce,
                details={
                    "x": _common.describe(x),
                    "property": label,
                    "actual": float(actual[index]),
                    "expected": float(expected[index]),
                    "c": float(c.reshape(-1)[index[0]]) if label == _SHIFT else None,
                    "tolerance": f"atol·κ·s + rtol·|y| with {tol}, s = {_common.scale(y):.6g}",
                },
            )
    statistic = max(v for v in properties.values() if isinstance(v, float))
    return CheckResult(
        check=name,
        statistic=statistic,
        bound=1.0,
        seed=seed,
        details={
            "x": _common.describe(x),
            "properties": properties,
            "max_abs_c": float(c.abs().max()),
            "max_kappa": float(kappa.max()),
        },
        reproduce=reproduce,
    )
