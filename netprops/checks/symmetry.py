"""Symmetry breaking at initialization: no two units may stay interchangeable.

Two hidden units with identical incoming weights (and bias) receive identical
gradients whenever their outgoing weights are identical too, so gradient
descent can never separate them: the layer behaves like one unit. The
coursework's "initializing with zeros is a catastrophe" is this failure for
every layer at once. :func:`check_symmetry_broken` finds such pairs after one
backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import check_int
from ..seeding import derive_seed, make_generator
from ..tolerances import tolerance
from . import _common
from .registry import register_check
from .results import CheckResult, violation

__all__ = ["check_symmetry_broken"]


class _CalledLayers:
    """Forward hooks recording the weight layers a forward pass calls, in call order."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: dict[str, nn.Module] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if hasattr(module, "weight")
        ]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if _common.is_weight_layer(module):
                self.layers.setdefault(name, module)

        return hook

    def finish(self, output: Any) -> None:
        """Called by the probe after the forward pass (nothing to do here)."""

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _unit_rows(module: nn.Module, grads: dict[int, torch.Tensor | None]) -> torch.Tensor:
    """One row per output unit: [weights, bias, weight gradients, bias gradient], float64.

    The weight part and the gradient part are each scaled by their largest
    magnitude, so the duplicate tolerance is relative to the layer's scale.
    """
    # ConvTranspose weights are (in, out/groups, ...): output units run along dim 1
    unit_dim = 1 if getattr(module, "transposed", False) else 0
    weight = module.weight.detach()
    units = weight.shape[unit_dim]
    parts = []
    for tensors in (
        [weight, getattr(module, "bias", None)],
        [grads.get(id(module.weight)), grads.get(id(getattr(module, "bias", None)))],
    ):
        cols = []
        for t, like in zip(tensors, [weight, getattr(module, "bias", None)], strict=True):
            if not isinstance(like, torch.Tensor):
                continue
            if t is None:  # frozen or unused: no gradient, so nothing separates the units
                t = torch.zeros_like(like)
            t = t.detach().to(torch.float64)
            if t.dim() > 1 and unit_dim:
                t = t.movedim(unit_dim, 0)
            cols.append(t.reshape(units, -1))
        block = torch.cat(cols, dim=1)
        scale = block.abs().max()
        parts.append(block / scale if scale > 0 else block)
    return torch.cat(parts, dim=1)


def _duplicate_groups(rows: torch.Tensor, tol: float, seed: int) -> list[list[int]]:
    """Groups of row indices whose rows agree within ``tol`` in every entry.

    Rows are projected on a seeded random direction and sorted; two rows within
    ``tol`` of each other have projections within ``tol·‖r‖₁``, so each row is
    compared only with the rows inside that window (a handful for random rows,
    all of them at once for a constant layer).
    """
    m = rows.shape[0]
    if m < 2:
        return []
    generator = make_generator(derive_seed(seed, "symmetry-projection"), rows.device)
    direction = torch.randn(
        rows.shape[1], generator=generator, device=rows.device, dtype=rows.dtype
    )
    projection = rows @ direction
    order = torch.argsort(projection)
    sorted_proj = projection[order]
    window = tol * float(direction.abs().sum())
    ends = torch.searchsorted(sorted_proj, sorted_proj + window, right=True).tolist()
    assigned = [False] * m
    groups = []
    for i in range(m - 1):
        if assigned[i] or ends[i] <= i + 1:
            continue
        candidates = [j for j in range(i + 1, ends[i]) if not assigned[j]]
        if not candidates:
            continue
        index = torch.tensor(candidates, device=rows.device)
        diff = (rows[order[index]] - rows[order[i]]).abs().amax(dim=1)
        members = [j for j, close in zip(candidates, (diff <= tol).tolist(), strict=True) if close]
        if members:
            for j in [i, *members]:
                assigned[j] = True
            groups.append(sorted(int(order[j]) for j in [i, *members]))
    return groups


@register_check("symmetry_broken", perturb_parameters=False)
def check_symmetry_broken(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckResult:
    """Check that no two units of any layer have identical incoming weights AND gradients.

    One forward pass on ``x`` and one backward pass of the probe loss of
    :func:`netprops.checks.variance_profile` (cross-entropy, summed over the
    batch, on seeded random targets for 2-D logits, unless ``target`` is given).
    For every weight layer the forward pass calls (``nn.Linear``, ``nn.ConvNd``,
    any module whose ``weight`` has >= 2 dims), each output unit (row of a
    Linear weight, output channel of a convolution) is described by its
    incoming weights and bias and their gradients. Units whose descriptions
    agree within the parameter dtype's ``tolerance(dtype).rtol`` (relative to
    the layer's largest weight and largest gradient; different summation orders
    must not hide a tie) are interchangeable: gradient descent moves them
    identically. All layers are checked, the output layer included (with zero
    weights, output units whose random targets have equal counts are tied too);
    the report names each layer with ties. Units with equal weights but
    different gradients pass: one step separates them.

    Parameters, ``.grad`` and buffers are left as they were (gradients come from
    ``torch.autograd.grad``); the forward pass runs in the model's current
    mode with torch's global RNG seeded by ``seed`` inside a fork.

    Parameters
    ----------
    model : nn.Module
        Any module returning one floating tensor.
    x : torch.Tensor
        Input batch.
    target : torch.Tensor, optional
        Class indices or a floating target (see :func:`variance_profile`).
    seed : int
        Seed of the random targets (and of dropout in the forward pass).
    device : str or torch.device, optional
        If given, ``x`` is moved there and the model must already be there.

    Returns
    -------
    CheckResult
        ``statistic`` = number of units in tied groups (0), ``bound`` 0.

    Raises
    ------
    TypeError, ValueError
        bad arguments, as :func:`variance_profile`, or a model on another device.
    PropertyViolation
        when some layer has tied units.

    Examples
    --------
    >>> from netprops import make_generator
    >>> from netprops.init import NetworkInitializer
    >>> model = NetworkInitializer("relu", "he", (8, 4, 3)).build(make_generator(0))
    >>> x = torch.randn(5, 8, generator=make_generator(1))
    >>> check_symmetry_broken(model, x).statistic
    0.0
    """
    __tracebackhide__ = True
    _common.check_model_and_input(model, x)
    seed = check_int("seed", seed, min_value=0)
    x = _common.on_device(model, x, device)
    params = list(model.parameters())
    called, description, grads = _common.run_probe(
        model, x, target, seed, recorder=_CalledLayers, grad_params=params
    )
    if not called.layers:
        raise ValueError(
            f"model {type(model).__name__} called no weight layer (a module whose weight has "
            ">= 2 dimensions, e.g. nn.Linear or nn.Conv2d) on this input"
        )
    grad_by_id = {id(p): g for p, g in zip(params, grads, strict=True)}
    names = list(called.layers)
    ties: dict[str, str] = {}
    n_tied = 0
    for position, name in enumerate(names):
        module = called.layers[name]
        rows = _unit_rows(module, grad_by_id)
        tol = tolerance(module.weight.dtype).rtol
        groups = _duplicate_groups(rows, tol, seed)
        if groups:
            tied = sum(len(g) for g in groups)
            n_tied += tied
            label = f"{name or '<root>'} ({type(module).__name__}"
            label += ", output layer)" if position == len(names) - 1 else ")"
            example = groups[0][:8]
            ties[label] = (
                f"{tied} of {rows.shape[0]} units in {len(groups)} tied group(s), e.g. units "
                f"{example}{' ...' if len(groups[0]) > 8 else ''}"
            )
    reproduce = (
        "netprops.checks.check_symmetry_broken(model, x"
        + (", target=target" if target is not None else "")
        + f", seed={seed})"
    )
    details: dict[str, Any] = {"layers_checked": len(names), "loss": description}
    if ties:
        violation(
            "check_symmetry_broken",
            f"{len(ties)} layer(s) have interchangeable units (identical incoming weights and "
            f"identical gradients): gradient descent cannot separate them",
            statistic=float(n_tied),
            bound=0.0,
            seed=seed,
            reproduce=reproduce,
            details={**details, **ties},
        )
    return CheckResult(
        check="check_symmetry_broken",
        statistic=float(n_tied),
        bound=0.0,
        seed=seed,
        alpha=0.0,
        details=details,
        reproduce=reproduce,
    )
