"""Device (and dtype) parity of a module's forward and backward passes.

PyTorch promises no bitwise agreement between CPU and CUDA (nor between
dtypes), so parity is checked within tolerance: each compared tensor ``t``
against its reference ``r`` must satisfy ``|t − r| ≤ atol·rms(r) + rtol·|r|``
elementwise, with the loosest ``(rtol, atol)`` of the two dtypes
(:func:`netprops.tolerance`). ``atol`` is thus relative to the tensor's RMS, so
the check is unit-free for outputs and gradients of any magnitude.

The same comparison runs on a CPU-only machine with two dtypes
(``devices=("cpu", "cpu"), dtypes=(torch.float64, torch.float32)``): float32
against a float64 oracle exercises everything but the CUDA kernels.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..devices import cuda_available, tf32_disabled
from ..errors import check_choice, check_finite_float, check_float_tensor, check_int, check_type
from ..seeding import derive_seed, make_generator
from ..tolerances import Tolerance, tolerance
from . import _common
from .registry import CheckCall, register_check
from .results import CheckResult, violation

__all__ = ["CheckSkipped", "check_device_parity"]


class CheckSkipped(Exception):
    """A check cannot run on this machine (e.g. CUDA is not available).

    Not a failure: the netprops pytest plugin reports it as a skipped test.
    ``reason`` says why.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _resolve(devices: Any) -> tuple[torch.device, torch.device]:
    if isinstance(devices, (str, bytes, torch.device)) or not isinstance(devices, Sequence):
        raise TypeError(f"devices must be a pair of devices like ('cpu', 'cuda'), got {devices!r}")
    if len(devices) != 2:
        raise ValueError(f"devices must name exactly 2 devices, got {len(devices)}: {devices!r}")
    resolved = []
    for i, dev in enumerate(devices):
        check_type(f"devices[{i}]", dev, (str, torch.device))
        try:
            device = torch.device(dev)
        except RuntimeError as exc:
            raise ValueError(
                f"devices[{i}] must be 'cpu', 'cuda' or 'cuda:N', got {dev!r}"
            ) from exc
        check_choice(f"devices[{i}] kind", device.type, ("cpu", "cuda"))
        if device.type == "cuda":
            if not cuda_available():
                raise CheckSkipped(
                    f"device parity {devices[0]!s} vs {devices[1]!s} needs CUDA, which is not "
                    f"available (torch {torch.__version__}, torch.version.cuda={torch.version.cuda})"
                )
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise CheckSkipped(
                    f"{device} is not present: this machine has {torch.cuda.device_count()} CUDA device(s)"
                )
        resolved.append(device)
    return resolved[0], resolved[1]


def _resolve_dtypes(dtypes: Any, x: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    if dtypes is None:
        return x.dtype, x.dtype
    if not isinstance(dtypes, Sequence) or isinstance(dtypes, (str, bytes)) or len(dtypes) != 2:
        raise TypeError(
            f"dtypes must be None or a pair of floating dtypes like "
            f"(torch.float64, torch.float32), got {dtypes!r}"
        )
    for i, dtype in enumerate(dtypes):
        check_type(f"dtypes[{i}]", dtype, torch.dtype)
        tolerance(dtype)  # ValueError listing the supported dtypes
    return dtypes[0], dtypes[1]


def _run(
    module: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
) -> dict[str, torch.Tensor | None]:
    """Forward and backward of a copy of ``module`` on ``device`` in ``dtype``."""
    copied = copy.deepcopy(module).to(device=device, dtype=dtype)
    for sub in copied.modules():
        if _common.is_dropout_like(sub):
            sub.eval()
    xi = x.detach().to(device=device, dtype=dtype).requires_grad_(True)
    with tf32_disabled(), _common.isolated_rng(seed, device):
        y = _common.output(copied(xi), f"forward on {device} in {dtype}")
        results: dict[str, torch.Tensor | None] = {"output": y.detach()}
        params = [(n, p) for n, p in copied.named_parameters() if p.requires_grad]
        if y.requires_grad:
            gen = make_generator(derive_seed(seed, "check_device_parity", "cotangent"))
            cotangent = torch.randn(y.shape, generator=gen, dtype=torch.float64)
            grads = torch.autograd.grad(
                y,
                [xi, *(p for _, p in params)],
                cotangent.to(device=device, dtype=y.dtype),
                allow_unused=True,
            )
            results["grad of x"] = grads[0]
            for (n, _), g in zip(params, grads[1:], strict=True):
                results[f"grad of {n}"] = g
    for n, b in copied.named_buffers():
        if b is not None and b.is_floating_point():
            results[f"buffer {n}"] = b.detach()
    return results


def _spec_devices(call: CheckCall) -> dict[str, Any]:
    """A spec case on ``cuda`` compares the CPU with that device."""
    other = call.device if call.device.type != "cpu" else torch.device("cuda")
    return {"devices": ("cpu", str(other))}


@register_check("device_parity", devices=("cuda",), build_on_cpu=True, arguments=_spec_devices)
def check_device_parity(
    module: nn.Module,
    x: torch.Tensor,
    *,
    devices: Sequence[str | torch.device] = ("cpu", "cuda"),
    seed: int = 0,
    dtypes: Sequence[torch.dtype] | None = None,
    kappa: float = 1.0,
) -> CheckResult:
    """Check that ``module`` computes the same on two devices (or in two dtypes).

    A deep copy of ``module`` is moved to each device (and dtype), so both start
    from the same parameters and buffers. Both run ``x`` forward with TF32 off
    (:func:`netprops.tf32_disabled`) and torch's global RNG seeded from ``seed``,
    then backward with the same seeded random cotangent (float64 ``N(0, 1)``
    drawn on the CPU). Compared: the output, the gradient of ``x`` and of every
    parameter that requires grad, and every floating buffer after the forward
    (running statistics of BatchNorm in train mode).

    The module runs in its current mode, except that dropout-like leaves (see
    :func:`~netprops.checks.check_train_eval_contract`) are switched to eval:
    CPU and CUDA generators draw different streams, so stochastic layers are
    compared in eval mode. ``module`` itself is not touched.

    Parameters
    ----------
    module : any ``nn.Module`` returning a tensor.
    x : floating-point input (any shape), on any device.
    devices : two devices, e.g. ``("cpu", "cuda")`` or ``("cpu", "cpu")`` with ``dtypes``.
    seed : seed of the cotangent and of the forwards' global RNG.
    dtypes : ``None`` (both in ``x.dtype``) or two floating dtypes; the
        more precise side is the reference, the looser tolerance applies.
    kappa : conditioning of the computation (>= 1), multiplies ``atol``. Rounding
        errors of an ill-conditioned module grow with it, e.g. a normalization of
        inputs with a large offset: pass ``float(conditioning(x).max())``
        (:func:`netprops.checks.normalization.conditioning`).

    Returns
    -------
    CheckResult with ``statistic`` the largest normalized error over all
    compared tensors (``details["errors"]`` per tensor), ``bound`` 1.0.

    Raises
    ------
    CheckSkipped
        a requested CUDA device is not available here.
    TypeError / ValueError
        bad arguments; the same device and dtype on both sides.
    PropertyViolation
        when an output, gradient or buffer differs beyond the tolerance.
    """
    __tracebackhide__ = True
    _common.check_module(module)
    check_float_tensor("x", x)
    seed = check_int("seed", seed, min_value=0)
    kappa = check_finite_float("kappa", kappa)
    if kappa < 1:
        raise ValueError(
            f"kappa must be a finite number >= 1 (a conditioning factor), got {kappa!r}"
        )
    dev_a, dev_b = _resolve(devices)
    dtype_a, dtype_b = _resolve_dtypes(dtypes, x)
    if dev_a == dev_b and dtype_a == dtype_b:
        raise ValueError(
            f"devices {devices!r} and dtypes ({dtype_a}, {dtype_b}) compare a setup with "
            "itself: name two different devices, or two dtypes, e.g. "
            "devices=('cpu', 'cpu'), dtypes=(torch.float64, torch.float32)"
        )
    name = "check_device_parity"
    reproduce = (
        f"netprops.checks.{name}(module, x, devices=({str(dev_a)!r}, {str(dev_b)!r}), "
        f"seed={seed}, dtypes={None if dtypes is None else (dtype_a, dtype_b)}, kappa={kappa!r})"
    )
    # the more precise side is the reference
    swap = tolerance(dtype_b).rtol < tolerance(dtype_a).rtol
    (ref_dev, ref_dtype), (other_dev, other_dtype) = (
        ((dev_b, dtype_b), (dev_a, dtype_a)) if swap else ((dev_a, dtype_a), (dev_b, dtype_b))
    )
    tol = _common.looser(dtype_a, dtype_b)
    tol = Tolerance(rtol=tol.rtol, atol=tol.atol * kappa)
    ref = _run(module, x, ref_dev, ref_dtype, seed)
    other = _run(module, x, other_dev, other_dtype, seed)

    # Gradients are sums that may cancel (the bias before a BatchNorm has gradient 0 in
    # exact arithmetic, rounding noise in float32): measure each parameter's gradient on
    # the largest gradient scale of its own module (not of the whole model, which would
    # hide a gradient lost in a layer whose gradients are small, e.g. deep in a tanh net).
    module_scale: dict[str, float] = {}
    for k, v in ref.items():
        if k.startswith("grad of ") and k != "grad of x" and v is not None:
            owner = k.removeprefix("grad of ").rpartition(".")[0]
            module_scale[owner] = max(module_scale.get(owner, 0.0), _common.scale(v.double().cpu()))

    def grad_floor(key: str) -> float:
        if key == "grad of x":  # may cancel too (LayerNorm's sums to 0 per row): whole model
            return max(module_scale.values(), default=0.0)
        return module_scale.get(key.removeprefix("grad of ").rpartition(".")[0], 0.0)

    sides = f"{other_dev}/{other_dtype} vs reference {ref_dev}/{ref_dtype}"
    details: dict[str, Any] = {
        "x": _common.describe(x),
        "compared": sides,
        "tolerance": f"atol·s + rtol·|ref| with {tol}, s = rms(ref) (a parameter's "
        "gradient: >= the largest rms among its module's gradients; x's: among all)",
        "mode": "train" if module.training else "eval",
    }
    errors: dict[str, float] = {}
    order = {"output": 0, "buffer": 1, "grad of x": 2}
    keys = sorted(ref.keys() | other.keys(), key=lambda k: (order.get(k, order.get(k[:6], 3)), k))
    for key in keys:
        r, t = ref.get(key), other.get(key)
        if r is None and t is None:
            continue
        if r is None or t is None or r.shape != t.shape:
            describe = lambda v: "missing" if v is None else f"shape {tuple(v.shape)}"  # noqa: E731
            violation(
                name,
                f"{key} differs in kind: {describe(t)} on {other_dev} vs {describe(r)} on {ref_dev}",
                statistic=math.inf,
                bound=1.0,
                seed=seed,
                reproduce=reproduce,
                details=details,
            )
        r64 = r.double().cpu()
        scale = (
            max(_common.scale(r64), grad_floor(key))
            if key.startswith("grad")
            else _common.scale(r64)
        )
        bound = tol.atol * scale + tol.rtol * r64.abs()
        score, index = _common.worst(_common.normalized_error(t.cpu(), r64, bound))
        errors[key] = score
        if score > 1.0:
            violation(
                name,
                f"{key} differs: {sides}",
                statistic=score,
                bound=1.0,
                seed=seed,
                reproduce=reproduce,
                details={
                    **details,
                    "index": index,
                    "actual": float(t[index]),
                    "expected": float(r64[index]),
                    "abs_error": abs(float(t[index]) - float(r64[index])),
                },
            )
    details["errors"] = errors
    return CheckResult(
        check=name,
        statistic=max(errors.values(), default=0.0),
        bound=1.0,
        seed=seed,
        details=details,
        reproduce=reproduce,
    )
