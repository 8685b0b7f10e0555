"""Checks for normalization layers: batch independence, normalized statistics, shift invariance.

The exact properties of normalization layers (docs/methods.md §Normalization
contracts) hold in exact arithmetic; in floating point each comparison allows
``|Δ| ≤ atol·κ·s + rtol·|y|`` with the dtype's ``(rtol, atol)`` from
:func:`netprops.tolerance`, the conditioning ``κ = (|μ| + σ)/√(σ² + ε)`` of the
normalized slice of the input (see :func:`conditioning`) and ``s`` the RMS of the
reference output. Inputs with a large offset (κ ~ 1e3) thus get a proportionally
larger — and still tight — tolerance. ``check_normalized`` compares each element
with a float64 oracle of the layer's family (LayerNorm, RMSNorm, GroupNorm,
InstanceNorm, BatchNorm) that applies the module's own affine parameters, with
the same rule (its docstring gives the terms). Comparisons are never bitwise:
PyTorch promises no bitwise equality between a batched and a per-row
computation, on CUDA in particular.

All checks run the module in its current mode, under ``torch.no_grad()``, with
torch's global RNG forked (and seeded from ``seed`` where there is one), and
restore the module's parameters, buffers and attributes afterwards
(:class:`netprops.checks.contract.ModuleSnapshot`): BatchNorm in train mode may
be checked without its running statistics moving.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

from ..errors import check_choice, check_int, check_positive_float, check_positive_int
from ..seeding import derive_seed, make_generator
from ..tolerances import tolerance
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
    return _common.conditioning_of(mean, var, (var + eps).sqrt())


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
    """κ of each normalized slice of ``x``, broadcastable against the output ``out``.

    A recognized normalization layer (see ``check_normalized``) gets the κ of the slices
    it actually normalizes (an InstanceNorm slice is one channel of one example); any
    other module the κ of its ``normalized_shape`` or of each whole row.
    """
    kappa = None
    if _common.norm_kind(module) is not None and out.shape == x.shape:
        try:
            layout = _layout(module, x, None, None, None, None)
        except ValueError:  # e.g. an input a channel norm cannot take: row κ below
            layout = None
        if layout is not None:
            kappa = _common.norm_reference(x, layout, running=_running(module, layout)).kappa
    if kappa is None:
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


# --------------------------------------------------------------------------- the normalization oracle


def _resolve_dims(dims: Any, module: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    if dims is None:
        return _normalized_shape_dims(module, x) or (x.dim() - 1,)
    if isinstance(dims, Integral) and not isinstance(dims, bool):
        dims = (dims,)
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        raise TypeError(f"dims must be an int, a sequence of ints or None, got {dims!r}")
    resolved = []
    for i, d in enumerate(dims):
        d = check_int(f"dims[{i}]", d)
        r = d + x.dim() if d < 0 else d
        if not 1 <= r < x.dim():
            raise ValueError(
                f"dims must name non-batch dims of x (1..{x.dim() - 1} or "
                f"{-(x.dim() - 1)}..-1 for x of shape {tuple(x.shape)}), got {d}"
            )
        resolved.append(r)
    if not resolved or len(set(resolved)) != len(resolved):
        raise ValueError(f"dims must name distinct dims, got {dims!r}")
    return tuple(sorted(resolved))


def _resolve_eps(eps: Any, module: nn.Module, kind: str, dtype: torch.dtype) -> float:
    if eps is not None:
        return check_positive_float("eps", eps, allow_zero=True)
    found = getattr(module, "eps", _ABSENT)
    if found is None and kind == "rms":
        # torch.nn.RMSNorm(eps=None): the machine epsilon of the dtype it computes in
        return torch.finfo(torch.float32 if dtype in _HALF_DTYPES else dtype).eps
    if isinstance(found, Real) and not isinstance(found, bool):
        return check_positive_float("module.eps", found, allow_zero=True)
    raise ValueError(
        f"eps is None and {type(module).__name__} has no numeric attribute `eps`: "
        "pass eps= (the ε the module adds to the variance)"
    )


def _layout(
    module: nn.Module, x: torch.Tensor, kind: Any, dims: Any, groups: Any, eps: Any
) -> _common.NormLayout:
    """The declared or recognized normalization layout of ``module`` for input ``x``."""
    if kind is None:
        # another class is checked as a LayerNorm; a failure names the family it matches
        kind = _common.norm_kind(module) or "layer"
    check_choice("kind", kind, _common.NORM_KINDS)
    if dims is not None and kind not in ("layer", "rms"):
        raise ValueError(f"dims applies to kind 'layer' or 'rms' only, got dims={dims!r}")
    if groups is not None and kind != "group":
        raise ValueError(f"groups applies to kind 'group' only, got groups={groups!r}")
    if kind in ("instance", "batch", "group") and x.dim() < (3 if kind == "instance" else 2):
        raise ValueError(
            f"kind {kind!r} needs x of shape (N, C, *) with at least "
            f"{3 if kind == 'instance' else 2} dims, got {tuple(x.shape)}"
        )
    resolved_dims: tuple[int, ...] = ()
    if kind in ("layer", "rms"):
        resolved_dims = _resolve_dims(dims, module, x)
    if kind == "group":
        if groups is None:
            groups = getattr(module, "num_groups", None)
            if groups is None:
                raise ValueError(
                    f"groups is None and {type(module).__name__} has no attribute "
                    "`num_groups`: pass groups= (the number of channel groups)"
                )
        groups = check_positive_int("groups", groups)
        if x.shape[1] % groups:
            raise ValueError(
                f"groups={groups} must divide the {x.shape[1]} channels of x "
                f"(shape {tuple(x.shape)})"
            )
    eps = _resolve_eps(eps, module, kind, x.dtype)
    return _common.NormLayout(
        kind=kind,
        eps=eps,
        dims=resolved_dims,
        groups=groups or 1,
        centre=kind != "rms",
    )


def _affine(
    module: nn.Module, x: torch.Tensor, layout: _common.NormLayout
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``module.weight`` and ``module.bias`` (None when absent), checked against the layout."""
    others = [
        n
        for n, p in module.named_parameters()
        if n not in ("weight", "bias") and p.is_floating_point()
    ]
    if others:
        raise ValueError(
            f"check_normalized applies module.weight and module.bias as the affine, but "
            f"{type(module).__name__} also has parameters {others}: expose the affine "
            "parameters as `weight` / `bias` (a property will do)"
        )
    numel = _common.affine_numel(x, layout)
    found = []
    for attr in ("weight", "bias"):
        t = getattr(module, attr, None)
        if t is not None and not (isinstance(t, torch.Tensor) and t.is_floating_point()):
            raise TypeError(
                f"module.{attr} must be a floating-point tensor or None, got {type(t).__name__}"
            )
        if t is not None and t.numel() != numel:
            where = (
                f"dims {layout.dims}" if layout.kind in ("layer", "rms") else "the channels (dim 1)"
            )
            raise ValueError(
                f"module.{attr} has shape {tuple(t.shape)}, but a {layout.kind!r} norm over "
                f"{where} of x {tuple(x.shape)} needs {numel} entries"
            )
        found.append(t)
    return found[0], found[1]


def _running(module: nn.Module, layout: _common.NormLayout) -> tuple[torch.Tensor, ...] | None:
    if layout.kind in ("batch", "instance") and _common.uses_running_stats(module):
        return (module.running_mean, module.running_var)
    return None


def _formula(layout: _common.NormLayout, running: Any, affine: bool) -> str:
    tail = "·w + b" if affine else ""
    if running is not None:
        return f"(x − running_mean)/√(running_var + ε){tail} per channel"
    if layout.kind == "rms":
        return f"x/√(mean(x²) + ε){tail} over dims {layout.dims}"
    where = {
        "layer": f"over dims {layout.dims}",
        "group": f"over each of {layout.groups} contiguous channel groups of each example",
        "instance": "over the positions of each (example, channel)",
        "batch": "per channel over the batch and positions",
    }[layout.kind]
    return f"(x − μ)/√(σ² + ε){tail} {where} (biased σ²)"


def _candidates(
    layout: _common.NormLayout,
    x: torch.Tensor,
    module: nn.Module,
    affine: bool,
    running: Any,
) -> list[tuple[str, _common.NormLayout, bool, Any]]:
    """Known bugs of this kind: (what the layer does, its layout, applies affine, statistics)."""
    r = dataclasses.replace
    out: list[tuple[str, _common.NormLayout, bool, Any]] = []
    if affine:
        out.append(("ignores its weight and bias", layout, False, running))
    if running is not None:
        ones, zeros = torch.ones_like(running[1]), torch.zeros_like(running[0])
        out += [
            ("normalizes with the batch statistics in eval mode", layout, True, None),
            ("ignores running_var", layout, True, (running[0], ones)),
            ("ignores running_mean", layout, True, (zeros, running[1])),
        ]
        return out
    if layout.centre and _slice_size(x, layout) > 1:
        out.append(("divides by the unbiased variance", r(layout, correction=1), True, None))
    if layout.eps > 0:
        out.append(("adds ε outside the square root", r(layout, eps_outside=True), True, None))
        out.append(("ignores ε", r(layout, eps=0.0), True, None))
    every = tuple(range(1, x.dim()))
    if layout.kind == "layer":
        out.append(("does not subtract the mean (RMSNorm)", r(layout, centre=False), True, None))
        if layout.dims != every:
            out.append(
                ("normalizes over every non-batch dim", r(layout, stat_dims=every), True, None)
            )
        if len(layout.dims) > 1:
            last = (layout.dims[-1],)
            out.append(("normalizes over its last dim only", r(layout, stat_dims=last), True, None))
        if x.shape[0] > 1:
            out.append(("normalizes over the batch axis", r(layout, stat_dims=(0,)), True, None))
    elif layout.kind == "rms":
        out.append(("subtracts the mean (LayerNorm)", r(layout, centre=True), True, None))
    elif layout.kind == "group":
        channels = x.shape[1]
        if 1 < layout.groups < channels:
            out.append(("interleaves its channel groups", r(layout, interleaved=True), True, None))
        if layout.groups < channels and x.dim() > 2:
            out.append(("normalizes each channel alone", r(layout, kind="instance"), True, None))
        if layout.groups > 1:
            out.append(("normalizes all channels as one group", r(layout, groups=1), True, None))
    elif layout.kind == "instance":
        out.append(("uses batch statistics (BatchNorm)", r(layout, kind="batch"), True, None))
    elif layout.kind == "batch":
        if x.dim() > 2:
            out.append(
                (
                    "takes statistics per (channel, position)",
                    r(layout, per_position=True),
                    True,
                    None,
                )
            )
            out.append(
                (
                    "normalizes each example alone (InstanceNorm)",
                    r(layout, kind="instance"),
                    True,
                    None,
                )
            )
        if isinstance(getattr(module, "running_mean", None), torch.Tensor) and isinstance(
            getattr(module, "running_var", None), torch.Tensor
        ):
            stats = (module.running_mean, module.running_var)
            out.append(("normalizes with its running statistics", layout, True, stats))
    return out


@register_check("normalized")
def check_normalized(
    module: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
    kind: str | None = None,
    dims: int | Sequence[int] | None = None,
    groups: int | None = None,
    eps: float | None = None,
) -> CheckResult:
    """Check ``module(x)`` element by element against a float64 normalization oracle.

    The oracle applies the module's own affine parameters (``module.weight``,
    ``module.bias``; either may be absent or None) to ``ŷ``, where, with μ and the
    BIASED variance σ² in float64:

    * ``layer`` (``nn.LayerNorm``, netprops' ``LayerNorm``): ``ŷ = (x − μ)/√(σ² + ε)``
      over ``dims`` (default: the trailing ``len(normalized_shape)`` dims, else the last
      dim); weight and bias have the shape of those dims.
    * ``rms`` (``nn.RMSNorm``): ``ŷ = x/√(mean(x²) + ε)`` over ``dims``, no centring;
      ``eps=None`` on the module means the machine epsilon of the dtype it computes in.
    * ``group`` (``nn.GroupNorm``): statistics of each example over each of ``groups``
      contiguous channel groups (and all positions); per-channel affine.
    * ``instance`` (``nn.InstanceNorm1d/2d/3d``): statistics of each (example, channel)
      over the positions; per-channel affine (optional).
    * ``batch`` (``nn.BatchNorm1d/2d/3d``, ``nn.SyncBatchNorm``, netprops' BatchNorm):
      statistics of each channel over the batch and the positions.

    ``batch`` and ``instance`` layers in eval mode that track running statistics
    are compared with ``(x − running_mean)/√(running_var + ε)·w + b`` instead, as
    torch computes them. The kind and its arguments are read from torch's and
    netprops' classes; a module of another class is checked as ``layer`` (over its
    ``normalized_shape``, else the last dim) unless declared with ``kind=``, ``dims=``,
    ``groups=``, ``eps=`` — when it fails, the report names the family its output
    matches (e.g. "does not subtract the mean (RMSNorm)").

    Tolerance (docs/methods.md §Normalization contracts): every element must be within
    ``B = atol·κ·|w| + rtol·(s·|w| + |b|)`` of the oracle, ``κ = (|μ| + σ)/√(σ² + ε)``
    the conditioning of its slice (see :func:`conditioning`; ``√(m₂)/√(m₂ + ε)`` for
    ``rms``), ``s`` the slice's largest ``|ŷ|`` and ``(rtol, atol)`` the loosest of the
    input's, output's and parameters' dtypes. With running statistics κ and s are
    taken per element, ``κ = (|x| + |running_mean|)/√(running_var + ε)``. For
    float16/bfloat16 input of the kinds whose kernels form ``x − μ`` in float32
    (``layer``, ``rms``, ``group``) the κ term uses float32's ``atol``: the input is
    exact in its dtype and only the output's rounding is half-precision (a module
    computing in half precision itself fails at large offsets: check it on float32).
    torch's CPU BatchNorm/InstanceNorm round their folded scale and shift to the
    half dtype, so those kinds keep the dtype's own ``atol``.

    When an element is off, the report names the known bugs whose output matches
    the module's (``details["matches"]``): an ignored affine, the unbiased variance,
    ε outside the square root, statistics over the wrong dims, interleaved groups,
    a centring RMSNorm, per-position BatchNorm statistics, ...;
    ``details["power"]`` gives, for each such bug, the score it would get on this
    input (> 1: caught). The module runs in its current mode under ``no_grad``;
    its state is restored afterwards. Elements whose oracle or bound is not finite
    (``σ² + ε = 0``, non-finite inputs in the slice) are skipped.

    Parameters
    ----------
    module : the normalization layer; output of the shape of ``x``.
    x : floating-point input, batch first: ``(N, *)`` (``(N, C, *)`` for the
        channel kinds, ``(N, C, L, ...)`` for ``instance``).
    seed : unused by the comparison (deterministic); seeds torch's global RNG for the
        forward.
    kind : ``"layer"``, ``"rms"``, ``"group"``, ``"instance"`` or ``"batch"``; default
        from the module's class (``"layer"`` for a class netprops does not know).
    dims : ``layer`` / ``rms``: the normalized dims of x (not 0).
    groups : ``group``: the number of channel groups; default ``module.num_groups``.
    eps : the ε; default ``module.eps``.

    Returns
    -------
    CheckResult with ``statistic`` the largest ``|y − oracle|/B`` over elements,
    ``bound`` 1.0.

    Raises
    ------
    TypeError / ValueError
        bad arguments; no ``eps``; affine
        parameters of the wrong size, or floating parameters other than ``weight`` /
        ``bias``; output shape ≠ input shape; an input so ill-conditioned that the
        tolerance cannot tell a normalized output from ``b`` alone (zeros without
        bias) on any slice: pass a better-conditioned input or float64.
    PropertyViolation
        when an output element is off.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    layout = _layout(module, x, kind, dims, groups, eps)
    weight, bias = _affine(module, x, layout)
    running = _running(module, layout)
    name = "check_normalized"
    declared = {"kind": layout.kind, "eps": layout.eps}
    if layout.kind in ("layer", "rms"):
        declared["dims"] = layout.dims
    if layout.kind == "group":
        declared["groups"] = layout.groups
    reproduce = _common.reproduce(name, **declared)

    with ModuleSnapshot(module), torch.no_grad(), _common.isolated_rng(seed, x.device):
        y = _common.output(module(x.clone()), "forward")
    if y.shape != x.shape:
        raise ValueError(
            f"check_normalized needs an output of the input's shape {tuple(x.shape)}, "
            f"got {tuple(y.shape)}"
        )
    ref = _common.norm_reference(x, layout, weight=weight, bias=bias, running=running)
    dtypes = [x.dtype, y.dtype] + [t.dtype for t in (weight, bias) if t is not None]
    tol = _common.looser(*dtypes)
    kappa_atol = layout.kappa_atol(x.dtype, tol)
    bound = ref.bound(tol.rtol, kappa_atol)
    valid = torch.isfinite(ref.expected) & torch.isfinite(bound)
    _check_resolvable(x, layout, ref, bound, valid)

    def score(actual: torch.Tensor, expected: torch.Tensor = ref.expected) -> torch.Tensor:
        err = _common.normalized_error(actual, expected, bound)
        return torch.where(valid, err, torch.zeros_like(err))

    affine = weight is not None or bias is not None
    power, matches = {}, []
    elem_score = score(y)
    value, index = _common.worst(elem_score)
    for what, variant, with_affine, stats in _candidates(layout, x, module, affine, running):
        candidate = _common.norm_reference(
            x,
            variant,
            weight=weight if with_affine else None,
            bias=bias if with_affine else None,
            running=stats,
        ).expected
        power[what] = _common.worst(score(candidate))[0]
        if value > 1.0 and _common.worst(score(y, candidate))[0] <= 1.0:
            matches.append(what)
    slice_size = _slice_size(x, layout)
    details: dict[str, Any] = {
        "x": _common.describe(x),
        **declared,
        "statistics": "running" if running is not None else "batch",
        "n": slice_size,
        "affine": {
            "weight": None if weight is None else tuple(weight.shape),
            "bias": None if bias is None else tuple(bias.shape),
        },
        "elements_skipped": int((~valid).sum()),
        "max_kappa": float(ref.kappa[valid].max()) if bool(valid.any()) else None,
        "power": power,
        "tolerance": (
            f"|y − oracle| ≤ atol·κ·|w| + rtol·(s·|w| + |b|) with rtol = {tol.rtol:g}, "
            f"atol = {kappa_atol:g}"
        ),
    }
    if value > 1.0:
        actual, expected = float(y[index]), float(ref.expected[index])
        text = (
            f"output element {index} is {actual:.6g}, expected {expected:.6g} = "
            f"{_formula(layout, running, affine)}"
        )
        if matches:
            text += f"; the output matches a {layout.kind} norm that " + " / ".join(matches)
        violation(
            name,
            text,
            statistic=value,
            bound=1.0,
            seed=None,
            reproduce=reproduce,
            details={
                **details,
                "matches": matches,
                "element": index,
                "actual": actual,
                "expected": expected,
                "kappa": float(ref.kappa[index]),
                "allowed": float(bound[index]),
            },
        )
    return CheckResult(
        check=name, statistic=value, bound=1.0, seed=None, details=details, reproduce=reproduce
    )


def _slice_size(x: torch.Tensor, layout: _common.NormLayout) -> int:
    """Values per statistic (per slice) in ``x``."""
    if layout.kind in ("layer", "rms"):
        return math.prod(x.shape[d] for d in layout.dims)
    positions = math.prod(x.shape[2:])
    if layout.kind == "group":
        return x.shape[1] // layout.groups * positions
    if layout.kind == "instance":
        return positions
    return x.shape[0] * positions


def _check_resolvable(
    x: torch.Tensor,
    layout: _common.NormLayout,
    ref: _common.NormReference,
    bound: torch.Tensor,
    valid: torch.Tensor,
) -> None:
    """ValueError when ``b`` alone (zeros without bias) is within tolerance everywhere informative.

    Informative elements are those of slices whose normalized output has RMS
    ``√(σ²/(σ² + ε)) ≥ 0.1`` (constant or near-constant slices normalize to ~0,
    and ``b`` is right there), with batch statistics.
    """
    informative = ref.informative & valid
    if not bool(informative.any()):
        return
    zero_score = torch.where(informative, ref.normalized.abs() / bound, torch.zeros_like(bound))
    best, index = _common.worst(zero_score.nan_to_num(nan=math.inf))
    if best > 1.0:
        return
    raise ValueError(
        f"check_normalized cannot tell a normalized output from zeros for this "
        f"{str(x.dtype).replace('torch.', '')} input of shape {tuple(x.shape)}: even at "
        f"its best-resolved element {index} (κ = {float(ref.kappa[index]):.4g}, "
        f"ε = {layout.eps:g}) the tolerance {float(bound[index]):.4g} exceeds the "
        f"normalized output |ŷ·w| ≤ {float(ref.normalized.abs()[index]):.4g}. "
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
