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
    binom_interval,
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
    "DEFAULT_ALPHA",
    "DISTRIBUTIONS",
    "VARIANCE_NONLINEARITIES",
    "Calibration",
    "CheckCall",
    "CheckResult",
    "CheckSkipped",
    "LayerVariance",
    "ModuleSnapshot",
    "PropertyViolation",
    "RegisteredCheck",
    "VarianceProfile",
    "binom_interval",
    "calibrate",
    "check_batch_independent",
    "check_device_parity",
    "check_drop_rate",
    "check_expectation_equal",
    "check_grad_clipping",
    "check_gradcheck",
    "check_init_distribution",
    "check_masks_independent",
    "check_model_variance",
    "check_normalized",
    "check_shift_invariant",
    "check_symmetry_broken",
    "check_train_eval_contract",
    "check_variance_preserved",
    "chi2_interval",
    "chi2_upper",
    "conditioning",
    "default_reference",
    "format_bound",
    "get_check",
    "mc_sample_size",
    "register_check",
    "registered_checks",
    "variance_profile",
    "violation",
    "z_two_sided",
]
