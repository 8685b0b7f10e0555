"""Structural properties: causality, equivariance and padding masks (docs/methods.md
§Training dynamics and structural properties).

These checks compare two forward passes of one module on inputs that differ in a
controlled way. They are deterministic: both passes run with the same seeded random
draws (module-held generators and torch's global RNG, restored afterwards), so a
stochastic layer in training mode repeats its draws, and buffers are restored.

* :func:`check_causal` — perturb the future, the past of the output must not move;
* :func:`check_equivariant` — ``f(T x) = T' f(x)`` for a transform ``T`` (built in:
  :class:`CyclicShift`, :class:`Permutation`; or a user's own pair);
* :func:`check_mask_respected` — change what a key padding mask hides, the outputs at
  the unmasked positions must not move.

A module's output may be a tensor or a tuple whose first element is the output
(``nn.RNN``/``nn.LSTM``/``nn.GRU``, ``nn.MultiheadAttention``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import check_int, check_type
from ..seeding import derive_seed, make_generator
from . import _common
from .registry import register_check
from .results import CheckResult, violation

__all__ = [
    "CyclicShift",
    "Permutation",
    "check_causal",
    "check_equivariant",
    "check_mask_respected",
]

#: Cut positions :func:`check_causal` tries at most (all of them for shorter sequences).
MAX_CUTS = 64


def _dim(name: str, dim: Any, t: torch.Tensor) -> int:
    dim = check_int(name, dim)
    if not -t.dim() <= dim < t.dim():
        raise ValueError(
            f"{name} must be a dimension of a {t.dim()}-D tensor of shape {tuple(t.shape)} "
            f"(in [{-t.dim()}, {t.dim() - 1}]), got {dim}"
        )
    return dim % t.dim()


def _run(module: nn.Module, x: torch.Tensor, seed: int, **kwargs: Any) -> torch.Tensor:
    with (
        _common.model_untouched(module),
        _common.seeded_module(module, seed, x.device),
        torch.no_grad(),
    ):
        return _common.first_tensor(module(x, **kwargs), "the module's output").detach()


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise bitwise equality, NaN equal to NaN."""
    return (a == b) | (torch.isnan(a) & torch.isnan(b))


def _perturbed(x: torch.Tensor, where: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` with the entries selected by ``where`` (broadcastable) replaced by fresh
    normal values of ``x``'s RMS."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float64)
    noise = (noise * _common.scale(x)).to(x.dtype)
    return torch.where(where, noise, x)


def _along(dim: int, ndim: int, mask: torch.Tensor) -> torch.Tensor:
    """A 1-D mask over dim ``dim`` shaped to broadcast against an ``ndim``-D tensor."""
    shape = [1] * ndim
    shape[dim] = mask.numel()
    return mask.reshape(shape)


def _default_cuts(length: int) -> list[int]:
    if length - 1 <= MAX_CUTS:
        return list(range(length - 1))
    step = (length - 2) / (MAX_CUTS - 1)
    return sorted({round(i * step) for i in range(MAX_CUTS)})


@register_check("causal")
def check_causal(
    module: nn.Module,
    x: torch.Tensor,
    *,
    dim: int = 1,
    cuts: int | list[int] | None = None,
    seed: int = 0,
) -> CheckResult:
    """Check that output position ``t`` depends on input positions ``<= t`` only.

    For each cut ``t``, every input entry at a position ``> t`` along ``dim`` (for every
    example of the batch at once) is replaced by a fresh random value, and the output at
    positions ``<= t`` along the same ``dim`` must be bitwise equal to the unperturbed
    one: a causal computation never reads the future, so nothing of it can reach the
    past, not even rounding. Works for attention with a causal mask, causal (left-padded)
    convolutions, RNNs. An off-by-one causal mask, a symmetric padding, a normalization
    over the whole sequence fail; the report gives the first cut and output position
    that moved.

    Parameters
    ----------
    module : maps ``x`` to an output whose size along ``dim`` equals ``x``'s.
    x : floating input, e.g. ``(N, L, E)`` with ``dim=1`` or ``(N, C, L)`` with ``dim=2``.
    dim : the sequence (time) dimension of input and output.
    cuts : positions ``t`` to try (ints in ``[0, L−2]``), or how many evenly spaced ones;
        default every position when ``L <= 65``, else 64 evenly spaced ones.
    seed : seed of the perturbations and of the module's random draws.

    Returns
    -------
    CheckResult with ``statistic`` = number of past output entries that moved (0), bound 0.

    Raises
    ------
    TypeError, ValueError
        bad arguments, or an output whose length along ``dim`` differs from the input's.
    PropertyViolation
        when some past output depends on the future.
    """
    __tracebackhide__ = True
    module = _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    dim = _dim("dim", dim, x)
    if dim == 0:
        raise ValueError("dim must not be 0, the batch dimension; give the sequence dimension")
    length = x.shape[dim]
    if length < 2:
        raise ValueError(
            f"x must have at least 2 positions along dim {dim}, got shape {tuple(x.shape)}"
        )
    if cuts is None:
        positions = _default_cuts(length)
    elif isinstance(cuts, int) and not isinstance(cuts, bool):
        count = check_int("cuts", cuts, min_value=1)
        positions = sorted({round(i * (length - 2) / max(count - 1, 1)) for i in range(count)})
    else:
        positions = [check_int(f"cuts[{i}]", c, min_value=0) for i, c in enumerate(cuts)]
        bad = [c for c in positions if c > length - 2]
        if bad or not positions:
            raise ValueError(
                f"cuts must be positions in [0, {length - 2}] (a future must exist), got {cuts!r}"
            )
    reference = _run(module, x, seed)
    if reference.dim() <= dim or reference.shape[dim] != length:
        raise ValueError(
            f"the output must have the input's length {length} along dim {dim}, got shape "
            f"{tuple(reference.shape)}"
        )
    generator = make_generator(derive_seed(seed, "causal"), x.device)
    index = torch.arange(length, device=x.device)
    out_index = torch.arange(reference.shape[dim], device=reference.device)
    reproduce = _common.reproduce("check_causal", dim=dim, cuts=cuts, seed=seed)
    for t in positions:
        future = _along(dim, x.dim(), index > t)
        moved_out = _run(module, _perturbed(x, future, generator), seed)
        past = _along(dim, reference.dim(), out_index <= t)
        changed = ~_same(moved_out, reference) & past
        if bool(changed.any()):
            first = int(changed.nonzero()[:, dim].min())
            diff = (moved_out.double() - reference.double()).abs()
            diff = torch.where(changed, diff.nan_to_num(nan=float("inf")), torch.zeros_like(diff))
            violation(
                "check_causal",
                f"output position {first} changed when only input positions > {t} along dim "
                f"{dim} were changed: the output reads the future",
                statistic=float(changed.sum()),
                bound=0.0,
                seed=seed,
                reproduce=reproduce,
                details={
                    "cut": t,
                    "largest change in the past": f"{float(diff.max()):.3g}",
                    "input": _common.describe(x),
                },
            )
    details = {"cuts tried": len(positions), "length": length, "input": _common.describe(x)}
    return CheckResult("check_causal", 0.0, 0.0, seed, 0.0, details, reproduce)


# --------------------------------------------------------------------------- transforms
@dataclass(frozen=True)
class CyclicShift:
    """Roll a tensor along ``dim`` (``torch.roll``) by a seeded non-zero amount or ``shifts``.

    ``margin``: positions within ``margin`` (cyclically) of the array's edge or of the
    seam where the rolled content wraps are left out of the comparison — the interior
    on which a zero-padded convolution of receptive radius ``margin`` is equivariant
    (a circular-padded one is equivariant everywhere: ``margin=0``).
    """

    dim: int
    shifts: int | None = None
    margin: int = 0

    def draw(self, size: int, generator: torch.Generator) -> int:
        """The shift to apply (in ``[1, size)`` when drawn)."""
        if self.shifts is not None:
            return check_int("shifts", self.shifts)
        if size < 2:
            raise ValueError(
                f"CyclicShift needs at least 2 positions along dim {self.dim}, got {size}"
            )
        return int(torch.randint(1, size, (1,), generator=generator))

    def apply(self, t: torch.Tensor, shift: int) -> torch.Tensor:
        """``t`` rolled by ``shift`` along ``dim``."""
        return torch.roll(t, shift, dims=self.dim)

    def region(self, t: torch.Tensor, shift: int) -> torch.Tensor | None:
        """Positions to compare (a mask broadcastable to ``t``), or None for all."""
        margin = check_int("margin", self.margin, min_value=0)
        if margin == 0:
            return None
        dim = _dim("dim", self.dim, t)
        size = t.shape[dim]
        pos = torch.arange(size, device=t.device)

        def near(anchor: int) -> torch.Tensor:
            d = (pos - anchor) % size
            return (d < margin) | (d >= size - margin)

        return _along(dim, t.dim(), ~(near(0) | near(shift % size)))


@dataclass(frozen=True)
class Permutation:
    """Reorder a tensor along ``dim`` by a seeded random permutation (never the identity)."""

    dim: int

    def draw(self, size: int, generator: torch.Generator) -> torch.Tensor:
        """The permutation to apply."""
        if size < 2:
            raise ValueError(
                f"Permutation needs at least 2 positions along dim {self.dim}, got {size}"
            )
        while True:
            perm = torch.randperm(size, generator=generator)
            if not bool((perm == torch.arange(size)).all()):
                return perm

    def apply(self, t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """``t`` with its entries along ``dim`` reordered: position i gets position perm[i]."""
        dim = _dim("dim", self.dim, t)
        if t.shape[dim] != perm.numel():
            raise ValueError(
                f"a permutation of {perm.numel()} positions cannot reorder dim {dim} of a tensor "
                f"of shape {tuple(t.shape)}"
            )
        return t.index_select(dim, perm.to(t.device))

    def region(self, t: torch.Tensor, perm: torch.Tensor) -> None:
        """Every position is compared."""
        return None


Transform = CyclicShift | Permutation


def _shown(transform: Any) -> str:
    """A built-in transform's repr; a user's callable by name."""
    if transform is None or _is_builtin(transform):
        return repr(transform)
    return getattr(transform, "__name__", "transform").replace("<lambda>", "transform")


def _is_builtin(t: Any) -> bool:
    return isinstance(t, (CyclicShift, Permutation))


@register_check("equivariant")
def check_equivariant(
    module: nn.Module,
    x: torch.Tensor,
    *,
    transform: Transform | Callable[[torch.Tensor], torch.Tensor],
    output_transform: Transform | Callable[[torch.Tensor], torch.Tensor] | None = None,
    trials: int = 3,
    seed: int = 0,
) -> CheckResult:
    """Check ``module(T(x)) == T'(module(x))``: the module commutes with a transform.

    ``transform`` is a built-in (:class:`CyclicShift`, :class:`Permutation`), drawn anew
    from the seed for each of ``trials`` trials, or a user's deterministic callable
    ``x -> x'`` (one trial). ``output_transform`` is what the transform does to the output:
    None applies the same one (equivariance; a built-in then uses the same draw), a
    built-in on another dim reuses the draw (e.g. ``Permutation(1)`` on the input and
    ``Permutation(2)`` on a transposed output), ``lambda y: y`` asks for invariance
    (a pooling head), any other callable is applied as given. The two sides are compared
    in float64 within the dtype's tolerance (:func:`netprops.tolerance`, ``atol`` scaled
    by the output's RMS), inside the transform's comparison region (a
    :class:`CyclicShift` ``margin``). Self-attention without positional encoding is
    permutation-equivariant along the sequence; a circular-padded convolution is
    shift-equivariant, a zero-padded one on the interior only.

    Parameters
    ----------
    module : the module under test (deterministic, or seeded: both passes share the draws).
    x : floating input, batch first.
    transform, output_transform : see above.
    trials : draws of a built-in transform (>= 1).
    seed : seed of the draws and of the module's random draws.

    Returns
    -------
    CheckResult with ``statistic`` = the largest normalized error (<= 1), bound 1.

    Raises
    ------
    TypeError, ValueError
        bad arguments, or outputs of different shapes.
    PropertyViolation
        with the trial, the position and the size of the largest deviation.
    """
    __tracebackhide__ = True
    module = _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    trials = check_int("trials", trials, min_value=1)
    if not (_is_builtin(transform) or callable(transform)):
        raise TypeError(
            "transform must be CyclicShift(dim), Permutation(dim) or a callable x -> x', "
            f"got {transform!r}"
        )
    if output_transform is not None and not (
        _is_builtin(output_transform) or callable(output_transform)
    ):
        raise TypeError(
            f"output_transform must be None, a built-in transform or a callable, got {output_transform!r}"
        )
    if _is_builtin(transform):
        _dim("transform.dim", transform.dim, x)
    elif _is_builtin(output_transform):
        raise ValueError(
            "a built-in output_transform reuses the draw of a built-in transform; with a "
            "callable transform pass a callable output_transform too"
        )
    generator = make_generator(derive_seed(seed, "equivariant"), x.device)
    y = _run(module, x, seed)
    tol = _common.looser(x.dtype, y.dtype)
    reproduce = (
        f"netprops.checks.check_equivariant(module, x, transform={_shown(transform)}, "
        f"output_transform={_shown(output_transform)}, trials={trials}, seed={seed})"
    )
    worst_seen = 0.0
    for trial in range(trials if _is_builtin(transform) else 1):
        region = None
        if _is_builtin(transform):
            drawn = transform.draw(x.shape[transform.dim], generator)
            x_t = transform.apply(x, drawn)
            out_t = transform if output_transform is None else output_transform
            if _is_builtin(out_t):
                _dim("output_transform.dim", out_t.dim, y)
                expected = out_t.apply(y, drawn)
                region = out_t.region(expected, drawn)
            else:
                expected = out_t(y)
        else:
            x_t = transform(x)
            expected = (transform if output_transform is None else output_transform)(y)
        check_type("the transformed input", x_t, torch.Tensor)
        check_type("the transformed output", expected, torch.Tensor)
        actual = _run(module, x_t, seed)
        if actual.shape != expected.shape:
            raise ValueError(
                f"module(T(x)) has shape {tuple(actual.shape)} but T'(module(x)) has "
                f"{tuple(expected.shape)}; give the output_transform that matches"
            )
        bound = tol.bound(expected.double(), _common.scale(expected))
        ratio = _common.normalized_error(actual, expected, bound)
        if region is not None:
            ratio = torch.where(region, ratio, torch.zeros_like(ratio))
        value, where = _common.worst(ratio)
        worst_seen = max(worst_seen, value)
        if value > 1:
            violation(
                "check_equivariant",
                f"module(T(x)) differs from T'(module(x)) at index {where} (trial {trial}): the "
                "module does not commute with the transform",
                statistic=value,
                bound=1.0,
                seed=seed,
                reproduce=reproduce,
                details={
                    "transform": repr(transform),
                    "actual": f"{float(actual[where]):.6g}",
                    "expected": f"{float(expected[where]):.6g}",
                    "tolerance": f"rtol {tol.rtol:g}, atol {tol.atol:g} × RMS",
                    "input": _common.describe(x),
                },
            )
    details = {"transform": repr(transform), "trials": trials, "input": _common.describe(x)}
    return CheckResult("check_equivariant", worst_seen, 1.0, seed, 0.0, details, reproduce)


# --------------------------------------------------------------------------- padding masks
def _default_padding_mask(x: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Padding of seeded length in [0, L − 1] per row, on the right or (coin flip) the left;
    row 0 is always padded on the left, so that a causal module sees its padding too."""
    n, length = x.shape[0], x.shape[dim]
    pads = torch.randint(0, length, (n,), generator=generator, device=x.device)
    left = torch.rand(n, generator=generator, device=x.device) < 0.5
    pads[0] = torch.randint(1, length, (1,), generator=generator, device=x.device)
    left[0] = True
    pos = torch.arange(length, device=x.device).unsqueeze(0)
    right_mask = pos >= (length - pads).unsqueeze(1)
    left_mask = pos < pads.unsqueeze(1)
    return torch.where(left.unsqueeze(1), left_mask, right_mask)


@register_check("mask_respected")
def check_mask_respected(
    module: nn.Module,
    x: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | Callable[..., torch.Tensor] | None = None,
    dim: int = 1,
    trials: int = 2,
    seed: int = 0,
) -> CheckResult:
    """Check that positions hidden by a key padding mask do not affect the other positions.

    The module is called as ``module(x, key_padding_mask=mask)`` with a bool mask of shape
    ``(N, L)`` (``True`` = padding, torch's convention), ``L = x.shape[dim]``. For each of
    ``trials`` trials the input entries at masked positions are replaced by fresh random
    values; the output at every unmasked position (along the same ``dim``) must be
    bitwise equal to the unperturbed one. An attention that ignores the mask, inverts it
    or applies it only to the queries fails.

    Parameters
    ----------
    module : accepts ``key_padding_mask=`` (e.g. :class:`netprops.layers.MultiHeadSelfAttention`;
        wrap ``nn.MultiheadAttention`` in a module ``forward(x, key_padding_mask=None)``).
    x : floating input ``(N, L, ...)`` with positions along ``dim``.
    key_padding_mask : bool ``(N, L)``, or ``(x, generator) -> mask``; default a padding
        of seeded length (0 to L − 1) on the right or the left of each row, row 0 padded
        on the left (so a causal module, which never sees right padding, is tested too).
    dim : the position dimension of input and output (not 0).
    trials : perturbations of the masked positions (>= 1).
    seed : seed of the mask, the perturbations and the module's random draws.

    Returns
    -------
    CheckResult with ``statistic`` = number of unmasked output entries that moved (0), bound 0.

    Raises
    ------
    TypeError, ValueError
        bad arguments, a mask of the wrong shape or dtype, or one that masks nothing.
    PropertyViolation
        naming the example and position that moved.
    """
    __tracebackhide__ = True
    module = _common.check_module(module)
    _common.check_batch_input(x)
    seed = check_int("seed", seed, min_value=0)
    trials = check_int("trials", trials, min_value=1)
    dim = _dim("dim", dim, x)
    if dim == 0:
        raise ValueError("dim must not be 0, the batch dimension; give the position dimension")
    generator = make_generator(derive_seed(seed, "mask"), x.device)
    n, length = x.shape[0], x.shape[dim]
    if key_padding_mask is None:
        mask = _default_padding_mask(x, dim, generator)
    elif callable(key_padding_mask) and not isinstance(key_padding_mask, torch.Tensor):
        mask = key_padding_mask(x, generator)
    else:
        mask = key_padding_mask
    check_type("key_padding_mask", mask, torch.Tensor)
    if mask.dtype != torch.bool or tuple(mask.shape) != (n, length):
        raise ValueError(
            f"key_padding_mask must be a bool tensor of shape ({n}, {length}) (True = padding), "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    mask = mask.to(x.device)
    if not bool(mask.any()):
        raise ValueError("key_padding_mask masks no position: there is nothing to perturb")
    reference = _run(module, x, seed, key_padding_mask=mask)
    if (
        reference.dim() <= dim
        or reference.shape[:1] != x.shape[:1]
        or reference.shape[dim] != length
    ):
        raise ValueError(
            f"the output must keep the batch size {n} and the length {length} along dim {dim}, "
            f"got shape {tuple(reference.shape)}"
        )

    def spread(m: torch.Tensor, ndim: int) -> torch.Tensor:
        """(N, L) mask -> broadcastable over a tensor with positions along ``dim``."""
        shape = [1] * ndim
        shape[0], shape[dim] = n, length
        return m.reshape(shape)

    reproduce = (
        "netprops.checks.check_mask_respected(module, x, key_padding_mask="
        f"{'None' if key_padding_mask is None else 'key_padding_mask'}, dim={dim}, "
        f"trials={trials}, seed={seed})"
    )
    kept = spread(~mask, reference.dim())
    for trial in range(trials):
        perturbed = _perturbed(x, spread(mask, x.dim()), generator)
        out = _run(module, perturbed, seed, key_padding_mask=mask)
        changed = ~_same(out, reference) & kept
        if bool(changed.any()):
            first = changed.nonzero()[0].tolist()
            violation(
                "check_mask_respected",
                f"output at unmasked position {first[dim]} of example {first[0]} changed when "
                f"only masked positions changed (trial {trial}): the padding mask leaks",
                statistic=float(changed.sum()),
                bound=0.0,
                seed=seed,
                reproduce=reproduce,
                details={
                    "masked positions": f"{int(mask.sum())} of {mask.numel()}",
                    "input": _common.describe(x),
                },
            )
    details = {
        "masked positions": f"{int(mask.sum())} of {mask.numel()}",
        "trials": trials,
        "input": _common.describe(x),
    }
    return CheckResult("check_mask_respected", 0.0, 0.0, seed, 0.0, details, reproduce)
