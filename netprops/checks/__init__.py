"""Public property checks.

Module checks follow one protocol, ``check_x(module, x, *, seed=0, alpha=..., **options)
-> CheckResult``, and register themselves as properties (:func:`register_check`), which is
how :func:`netprops.spec` knows them. Each ``check_*`` returns a :class:`CheckResult` when the property holds and raises
:class:`~netprops.errors.PropertyViolation` (an AssertionError) with the statistic, the bound,
the seed and a one-line reproduction when it does not."""

from __future__ import annotations

from ..errors import PropertyViolation
from .calibration import (
    Calibration,
    calibrate,
)
from .contract import (
    ModuleSnapshot,
    check_train_eval_contract,
)
from .dynamics import (
    ACTIVATION_KINDS,
    ActivationRecorder,
    LayerActivity,
    NonFiniteTracer,
    ParameterSnapshot,
    buffers_may_move,
    check_can_overfit,
    check_dead_units,
    check_finite,
    check_gradients_flow,
    check_initial_loss,
    check_params_update,
    check_saturation,
    check_update_ratio,
    expected_uniform_loss,
    gradient_problems,
    logit_variance_limit,
    max_init_scale,
    overfit_optimizer,
    saturation_limit,
)
from .gradients import (
    check_grad_clipping,
    check_gradcheck,
)
from .normalization import (
    check_batch_independent,
    check_normalized,
    check_shift_invariant,
    conditioning,
)
from .parity import (
    CheckSkipped,
    check_device_parity,
)
from .registry import (
    CheckCall,
    RegisteredCheck,
    get_check,
    register_check,
    registered_checks,
)
from .results import (
    CheckResult,
    format_bound,
    violation,
)
from .stats import (
    DEFAULT_ALPHA,
    bernstein_upper,
    binom_interval,
    binom_upper,
    chi2_interval,
    chi2_upper,
    mc_sample_size,
    z_two_sided,
)
from .stochastic import (
    check_drop_rate,
    check_expectation_equal,
    check_masks_independent,
    default_reference,
)
from .structure import (
    CyclicShift,
    Permutation,
    check_causal,
    check_equivariant,
    check_mask_respected,
)
from .symmetry import (
    check_symmetry_broken,
)
from .variance import (
    DISTRIBUTIONS,
    VARIANCE_NONLINEARITIES,
    LayerVariance,
    VarianceProfile,
    check_init_distribution,
    check_model_variance,
    check_variance_preserved,
    variance_profile,
)

__all__ = [
    "ACTIVATION_KINDS",
    "DEFAULT_ALPHA",
    "DISTRIBUTIONS",
    "VARIANCE_NONLINEARITIES",
    "ActivationRecorder",
    "Calibration",
    "CheckCall",
    "CheckResult",
    "CheckSkipped",
    "CyclicShift",
    "LayerActivity",
    "LayerVariance",
    "ModuleSnapshot",
    "NonFiniteTracer",
    "ParameterSnapshot",
    "Permutation",
    "PropertyViolation",
    "RegisteredCheck",
    "VarianceProfile",
    "bernstein_upper",
    "binom_interval",
    "binom_upper",
    "buffers_may_move",
    "calibrate",
    "check_batch_independent",
    "check_can_overfit",
    "check_causal",
    "check_dead_units",
    "check_device_parity",
    "check_drop_rate",
    "check_equivariant",
    "check_expectation_equal",
    "check_finite",
    "check_grad_clipping",
    "check_gradcheck",
    "check_gradients_flow",
    "check_init_distribution",
    "check_initial_loss",
    "check_mask_respected",
    "check_masks_independent",
    "check_model_variance",
    "check_normalized",
    "check_params_update",
    "check_saturation",
    "check_shift_invariant",
    "check_symmetry_broken",
    "check_train_eval_contract",
    "check_update_ratio",
    "check_variance_preserved",
    "chi2_interval",
    "chi2_upper",
    "conditioning",
    "default_reference",
    "expected_uniform_loss",
    "format_bound",
    "get_check",
    "gradient_problems",
    "logit_variance_limit",
    "max_init_scale",
    "mc_sample_size",
    "overfit_optimizer",
    "register_check",
    "registered_checks",
    "saturation_limit",
    "variance_profile",
    "violation",
    "z_two_sided",
]
