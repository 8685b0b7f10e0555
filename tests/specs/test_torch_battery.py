"""The false-alarm battery (issue #12): torch's own modules through ``netprops.spec``.

torch's modules are correct code, so every failure here is a false alarm of a netprops
check (or a wrong declaration). Each module below is declared with *every* registered
property: the ones that must hold in ``properties`` and the others in
``not_applicable`` with the reason they do not apply to that module. A module-level
assertion keeps the declarations complete: a property registered later without a
decision for every module breaks the import of this file.

``tox -e battery`` / ``bash .ci/battery`` run the file at ``--netprops-seed`` 0..19
(docs/methods.md §6); the default test run runs it once, at seed 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import netprops
from netprops.checks import CyclicShift, Permutation
from netprops.spec import PROPERTIES, ModuleSpec

E, H, L = 16, 4, 10
#: Attention is checked smaller: gradcheck's cost grows as (inputs + parameters) × outputs.
E_ATTN, H_ATTN, L_ATTN = 8, 2, 6
FULL = (torch.float32, torch.float64)
HALF = (torch.float16, torch.bfloat16)

# --------------------------------------------------------------------------- reasons
NO_PARAMS = "no parameters: nothing to train"
NOT_A_CLASSIFIER = "not a classifier head: its output is not (N, C) logits"
NO_CAPACITY = (
    "per-feature affine parameters only: cannot interpolate random targets of the whole batch"
)
NO_RELU = "no ReLU-family module"
NO_SQUASH = "no tanh or sigmoid module"
NO_WEIGHT_MATRIX = "no weight with >= 2 dims (no Linear, conv or attention projection)"
NOT_A_NORM = "not a normalization layer"
DETERMINISTIC = "deterministic in train mode: nothing random to average, count or compare"
NOT_DROPPING = "does not drop entries to zero"
NO_MASK_ARGUMENT = "takes no key padding mask"
ACROSS_POSITIONS = "statistics over all positions read the future"
NO_SEQUENCE = "no sequence dimension (an image-shaped input)"
MIXES_FEATURES = "mixes every feature of the (N, features) input"
BATCH_STATS = "train-mode BatchNorm normalizes with batch statistics: rows depend on each other"
RANDOM_IN_TRAIN = "train-mode draws differ between forwards (the _eval spec checks it)"
MASK_STAYS = "the random mask stays in place while the input moves"
NOT_CENTRING = "RMSNorm does not subtract the mean: f(x + c) != f(x) by definition"
NOT_SHIFT_INVARIANT = "normalizes with fixed or batch statistics, not per-row ones"
LINEAR_CONV = "a single linear conv cannot fit random target maps"

#: Shared n/a reasons of the weightless elementwise modules (activations, dropouts).
ELEMENTWISE_NA = {
    "params_update": NO_PARAMS,
    "gradients_flow": NO_PARAMS,
    "update_ratio": NO_PARAMS,
    "can_overfit": NO_PARAMS,
    "initial_loss": NOT_A_CLASSIFIER,
    "symmetry_broken": NO_WEIGHT_MATRIX,
    "model_variance": NO_WEIGHT_MATRIX,
    "normalized": NOT_A_NORM,
    "shift_invariant": "an elementwise map is not invariant to adding a constant",
    "mask_respected": NO_MASK_ARGUMENT,
}
DETERMINISTIC_NA = {
    "expectation_equal": DETERMINISTIC,
    "masks_independent": DETERMINISTIC,
    "drop_rate": DETERMINISTIC,
}
NORM_NA = {
    "initial_loss": NOT_A_CLASSIFIER,
    "can_overfit": NO_CAPACITY,
    "dead_units": NO_RELU,
    "saturation": NO_SQUASH,
    "update_ratio": NO_WEIGHT_MATRIX,
    "symmetry_broken": NO_WEIGHT_MATRIX,
    "model_variance": NO_WEIGHT_MATRIX,
    "mask_respected": NO_MASK_ARGUMENT,
    **DETERMINISTIC_NA,
}

#: Every spec of the battery (the count test and the docs read it).
BATTERY: list[ModuleSpec] = []


def declare(
    factory: Callable[[], nn.Module],
    name: str,
    inputs: tuple[int, ...],
    holds: Mapping[str, Mapping[str, Any] | None],
    not_applicable: Mapping[str, str],
    *,
    dtypes: tuple[torch.dtype, ...] = FULL,
    reference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> ModuleSpec:
    """Declare ``factory`` with the properties in ``holds`` (name → check options or None).

    Every registered property must be either in ``holds`` or in ``not_applicable``
    (AssertionError at import otherwise), so no property is left out silently.
    """
    decided = set(holds) | set(not_applicable)
    missing = sorted(set(PROPERTIES) - decided)
    assert not missing, f"{name}: no decision for {missing}"
    both = sorted(set(holds) & set(not_applicable))
    assert not both, f"{name}: {both} both hold and do not apply"
    declared = netprops.spec(
        factory,
        name=name,
        inputs=inputs,
        properties=tuple(holds),
        dtypes=dtypes,
        reference=reference,
        not_applicable=not_applicable,
        options={k: v for k, v in holds.items() if v},
    )
    BATTERY.append(declared)
    return declared


# --------------------------------------------------------------------------- normalization
#: What every normalization layer must do in train mode.
NORM = {
    "normalized": None,
    "train_eval_contract": None,
    "gradcheck": None,
    "device_parity": None,
    "finite": None,
}
AFFINE_STEP = {"params_update": None, "gradients_flow": None}
NORM_DTYPES = (*FULL, *HALF)

for norm, norm_name, shape in (
    (lambda: nn.LayerNorm(E), "LayerNorm", (4, L, E)),
    (lambda: nn.LayerNorm(E, bias=False), "LayerNorm_nobias", (4, L, E)),
    (lambda: nn.LayerNorm((L, E)), "LayerNorm_2d", (4, L, E)),
):
    declare(
        norm,
        norm_name,
        shape,
        {
            **NORM,
            **AFFINE_STEP,
            "batch_independent": None,
            "shift_invariant": None,  # bias=False: also f(-x) = -f(x)
            "equivariant": {"transform": Permutation(0 if norm_name == "LayerNorm_2d" else 1)},
            **({} if norm_name == "LayerNorm_2d" else {"causal": None}),
        },
        {
            **NORM_NA,
            **(
                {"causal": "normalizes over the whole (L, E) slice"}
                if norm_name == "LayerNorm_2d"
                else {}
            ),
        },
        dtypes=NORM_DTYPES,
    )
declare(
    lambda: nn.LayerNorm(E, elementwise_affine=False),
    "LayerNorm_noaffine",
    (4, L, E),
    {
        **NORM,
        "batch_independent": None,
        "shift_invariant": None,
        "causal": None,
        "equivariant": {"transform": Permutation(2)},  # no per-feature affine left
    },
    {**NORM_NA, "params_update": NO_PARAMS, "gradients_flow": NO_PARAMS, "can_overfit": NO_PARAMS},
    dtypes=NORM_DTYPES,
)
declare(
    lambda: nn.RMSNorm(E),
    "RMSNorm",
    (4, L, E),
    {
        **NORM,
        **AFFINE_STEP,
        "batch_independent": None,
        "causal": None,
        "equivariant": {"transform": Permutation(1)},
    },
    {**NORM_NA, "shift_invariant": NOT_CENTRING},
    dtypes=NORM_DTYPES,
)
declare(
    lambda: nn.GroupNorm(4, 8),
    "GroupNorm",
    (4, 8, L),
    {
        **NORM,
        **AFFINE_STEP,
        "batch_independent": None,
        "shift_invariant": None,
        "equivariant": {"transform": Permutation(2)},
    },
    {**NORM_NA, "causal": ACROSS_POSITIONS},
    dtypes=NORM_DTYPES,
)
declare(
    lambda: nn.InstanceNorm1d(8),
    "InstanceNorm1d",
    (4, 8, L),
    {
        **NORM,
        "batch_independent": None,
        "shift_invariant": None,
        "equivariant": {"transform": Permutation(2)},
    },
    {
        **NORM_NA,
        "params_update": NO_PARAMS,
        "gradients_flow": NO_PARAMS,
        "can_overfit": NO_PARAMS,
        "causal": ACROSS_POSITIONS,
    },
    dtypes=NORM_DTYPES,
)
declare(
    lambda: nn.InstanceNorm2d(8, affine=True, track_running_stats=True),
    "InstanceNorm2d_tracked",
    (4, 8, 5, 5),
    {
        **NORM,
        **AFFINE_STEP,
        "batch_independent": None,
        "shift_invariant": None,
        "equivariant": {"transform": Permutation(2)},
    },
    {**NORM_NA, "causal": NO_SEQUENCE},
    dtypes=NORM_DTYPES,
)
for bn, bn_name, shape in (
    (lambda: nn.BatchNorm1d(8), "BatchNorm1d", (16, 8)),
    (lambda: nn.BatchNorm1d(8), "BatchNorm1d_seq", (4, 8, 6)),
    (lambda: nn.BatchNorm2d(8), "BatchNorm2d", (4, 8, 3, 3)),
    (lambda: nn.BatchNorm3d(4), "BatchNorm3d", (2, 4, 2, 3, 3)),
):
    causal_na = {"causal": ACROSS_POSITIONS if bn_name == "BatchNorm1d_seq" else NO_SEQUENCE}
    if bn_name == "BatchNorm1d":
        causal_na = {"causal": "normalizes (N, features): no sequence dimension"}
    declare(
        bn,
        bn_name,
        shape,
        {**NORM, **AFFINE_STEP, "equivariant": {"transform": Permutation(0)}},
        {
            **NORM_NA,
            **causal_na,
            "batch_independent": BATCH_STATS,
            "shift_invariant": NOT_SHIFT_INVARIANT,
        },
        dtypes=NORM_DTYPES,
    )
    # eval mode: the running statistics (trained-looking values) normalize every row alike
    declare(
        lambda bn=bn: bn().eval(),
        f"{bn_name}_eval",
        shape,
        {
            **NORM,
            **AFFINE_STEP,
            "batch_independent": None,
            "equivariant": {"transform": Permutation(0)},
        },
        {**NORM_NA, **causal_na, "shift_invariant": NOT_SHIFT_INVARIANT},
        dtypes=NORM_DTYPES,
    )

# --------------------------------------------------------------------------- dropout
STOCHASTIC = {
    "train_eval_contract": None,
    "finite": None,
    "gradcheck": None,
    "device_parity": None,
    "expectation_equal": None,
    "masks_independent": None,
}
DROPOUT_NA = {
    **ELEMENTWISE_NA,
    "dead_units": NO_RELU,
    "saturation": NO_SQUASH,
    "batch_independent": RANDOM_IN_TRAIN,
    "equivariant": MASK_STAYS,
}
for drop, drop_name, shape, causal in (
    (lambda: nn.Dropout(0.5), "Dropout", (8, E), None),
    (lambda: nn.Dropout(0.1), "Dropout_p01", (8, E), None),
    (lambda: nn.Dropout1d(0.3), "Dropout1d", (4, 8, L), {"dim": 2}),
    (lambda: nn.Dropout2d(0.3), "Dropout2d", (4, 8, 5, 5), NO_SEQUENCE),
    (lambda: nn.Dropout3d(0.3), "Dropout3d", (2, 4, 2, 3, 3), NO_SEQUENCE),
):
    declare(
        drop,
        drop_name,
        shape,
        {
            **STOCHASTIC,
            "drop_rate": None,
            **({"causal": causal} if not isinstance(causal, str) else {}),
        },
        {**DROPOUT_NA, **({"causal": causal} if isinstance(causal, str) else {})},
        dtypes=(*FULL, *HALF),
    )
    declare(
        lambda drop=drop: drop().eval(),
        f"{drop_name}_eval",
        shape,
        {
            "train_eval_contract": None,
            "batch_independent": None,
            "finite": None,
            "gradcheck": None,
            "device_parity": None,
            "equivariant": {"transform": Permutation(0)},
        },
        {
            **ELEMENTWISE_NA,
            **DETERMINISTIC_NA,
            "dead_units": NO_RELU,
            "saturation": NO_SQUASH,
            "causal": "the identity in eval mode (the train-mode spec checks causality)"
            if not isinstance(causal, str)
            else causal,
        },
        dtypes=(*FULL, *HALF),
    )
for alpha_drop, alpha_name, shape in (
    (lambda: nn.AlphaDropout(0.2), "AlphaDropout", (8, E)),
    (lambda: nn.FeatureAlphaDropout(0.2), "FeatureAlphaDropout", (4, 8, L)),
):
    declare(
        alpha_drop,
        alpha_name,
        shape,
        {**STOCHASTIC, "causal": {"dim": 1 if alpha_name == "AlphaDropout" else 2}},
        {
            **DROPOUT_NA,
            "drop_rate": "sets dropped entries to the SELU saturation value -α', not to 0",
        },
        dtypes=(*FULL, *HALF),
    )


# --------------------------------------------------------------------------- weight layers
class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` as self-attention on ``(N, L, E)``, optionally causal."""

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E_ATTN, H_ATTN, batch_first=True)
        self.causal = causal

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        mask = None
        if self.causal:
            n = x.shape[1]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), 1)
        out, _ = self.attn(
            x, x, x, key_padding_mask=key_padding_mask, attn_mask=mask, need_weights=False
        )
        return out


#: What one training step of any layer with weight matrices must do.
WEIGHT_STEP = {
    "params_update": None,
    "gradients_flow": None,
    "finite": None,
    "update_ratio": None,
    "symmetry_broken": None,
    "model_variance": None,
    "gradcheck": None,
    "device_parity": None,
    "train_eval_contract": None,
    "batch_independent": None,
}
WEIGHT_NA = {
    "dead_units": NO_RELU,
    "saturation": NO_SQUASH,
    "normalized": NOT_A_NORM,
    "shift_invariant": "a weight layer is not invariant to adding a constant",
    **DETERMINISTIC_NA,
}

declare(
    lambda: nn.Linear(E, 10),
    "Linear",
    (8, E),
    {
        **WEIGHT_STEP,
        "initial_loss": None,
        "can_overfit": None,  # 8 examples, 16 features: random labels are separable
        "equivariant": {"transform": Permutation(0)},
    },
    {**WEIGHT_NA, "causal": MIXES_FEATURES, "mask_respected": NO_MASK_ARGUMENT},
)
declare(
    lambda: nn.Linear(E, E),
    "Linear_tokens",
    (4, L, E),
    {**WEIGHT_STEP, "causal": None, "equivariant": {"transform": Permutation(1)}},
    {
        **WEIGHT_NA,
        "initial_loss": NOT_A_CLASSIFIER,
        "can_overfit": "40 tokens of width 16: more random targets than a 16×16 map can fit",
        "mask_respected": NO_MASK_ARGUMENT,
    },
)
declare(
    lambda: nn.Conv1d(4, 8, 3, padding=1),
    "Conv1d",
    (4, 4, 12),
    {**WEIGHT_STEP, "equivariant": {"transform": CyclicShift(2, margin=1)}},
    {
        **WEIGHT_NA,
        "initial_loss": NOT_A_CLASSIFIER,
        "can_overfit": LINEAR_CONV,
        "causal": "symmetric zero padding reads one position ahead (Conv1d_causal is causal)",
        "mask_respected": NO_MASK_ARGUMENT,
    },
)
declare(
    lambda: nn.Sequential(nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(4, 8, 3)),
    "Conv1d_causal",
    (4, 4, 12),
    {
        **WEIGHT_STEP,
        "causal": {"dim": 2},
        "equivariant": {"transform": CyclicShift(2, margin=2)},
    },
    {
        **WEIGHT_NA,
        "initial_loss": NOT_A_CLASSIFIER,
        "can_overfit": LINEAR_CONV,
        "mask_respected": NO_MASK_ARGUMENT,
    },
)
declare(
    lambda: nn.Conv2d(4, 8, 3, padding=1),
    "Conv2d",
    (2, 4, 6, 6),
    {**WEIGHT_STEP, "equivariant": {"transform": CyclicShift(3, margin=1)}},
    {
        **WEIGHT_NA,
        "initial_loss": NOT_A_CLASSIFIER,
        "can_overfit": LINEAR_CONV,
        "causal": NO_SEQUENCE,
        "mask_respected": NO_MASK_ARGUMENT,
    },
)
declare(
    lambda: nn.Conv2d(4, 8, 3, padding=1, padding_mode="circular"),
    "Conv2d_circular",
    (2, 4, 6, 6),
    {**WEIGHT_STEP, "equivariant": {"transform": CyclicShift(2)}},
    {
        **WEIGHT_NA,
        "initial_loss": NOT_A_CLASSIFIER,
        "can_overfit": LINEAR_CONV,
        "causal": NO_SEQUENCE,
        "mask_respected": NO_MASK_ARGUMENT,
    },
)
#: nn.MultiheadAttention computes its projections inside F.multi_head_attention_forward
#: (out_proj's forward is never called): the hooks of these checks find no weight layer.
FUNCTIONAL_PROJECTIONS = (
    "nn.MultiheadAttention calls no weight layer (its projections run inside "
    "F.multi_head_attention_forward), so the check has no layer to inspect"
)
ATTENTION_NA = {
    **WEIGHT_NA,
    "initial_loss": NOT_A_CLASSIFIER,
    "can_overfit": "18 tokens of width 8 through a per-token linear value path: "
    "more random targets than it can fit",
    "symmetry_broken": FUNCTIONAL_PROJECTIONS,
    "model_variance": FUNCTIONAL_PROJECTIONS,
}
ATTENTION_STEP = {
    k: v for k, v in WEIGHT_STEP.items() if k not in ("symmetry_broken", "model_variance")
}
declare(
    SelfAttention,
    "MultiheadAttention",
    (3, L_ATTN, E_ATTN),
    {**ATTENTION_STEP, "mask_respected": None, "equivariant": {"transform": Permutation(1)}},
    {**ATTENTION_NA, "causal": "an encoder attention sees every position"},
)
declare(
    lambda: SelfAttention(causal=True),
    "MultiheadAttention_causal",
    (3, L_ATTN, E_ATTN),
    {**ATTENTION_STEP, "mask_respected": None, "causal": None},
    {**ATTENTION_NA, "equivariant": "a causal mask ties outputs to positions"},
)

# --------------------------------------------------------------------------- activations
#: What every elementwise activation must do on (N, features).
ELEMENTWISE = {
    "train_eval_contract": None,
    "batch_independent": None,
    "finite": None,
    "gradcheck": None,
    "device_parity": None,
    "causal": None,  # output entry t reads input entry t only
    "equivariant": {"transform": Permutation(1)},
}
ACTIVATIONS: list[tuple[Callable[[], nn.Module], str]] = [
    (nn.ReLU, "ReLU"),
    (nn.ReLU6, "ReLU6"),
    (lambda: nn.LeakyReLU(0.1), "LeakyReLU"),
    (nn.ELU, "ELU"),
    (nn.SELU, "SELU"),
    (nn.CELU, "CELU"),
    (nn.GELU, "GELU"),
    (lambda: nn.GELU(approximate="tanh"), "GELU_tanh"),
    (nn.SiLU, "SiLU"),
    (nn.Mish, "Mish"),
    (nn.Softplus, "Softplus"),
    (nn.Softsign, "Softsign"),
    (nn.Tanh, "Tanh"),
    (nn.Sigmoid, "Sigmoid"),
    (nn.Hardtanh, "Hardtanh"),
    (nn.Hardswish, "Hardswish"),
    (nn.Hardsigmoid, "Hardsigmoid"),
    (nn.Hardshrink, "Hardshrink"),
    (nn.Softshrink, "Softshrink"),
    (nn.Tanhshrink, "Tanhshrink"),
    (nn.LogSigmoid, "LogSigmoid"),
    (lambda: nn.Threshold(0.1, -1.0), "Threshold"),
]
for activation, act_name in ACTIVATIONS:
    squash = act_name in ("Tanh", "Sigmoid")
    relu = act_name in ("ReLU", "ReLU6")
    declare(
        activation,
        act_name,
        (8, E),
        {
            **ELEMENTWISE,
            **({"saturation": None} if squash else {}),
            **({"dead_units": None} if relu else {}),
        },
        {
            **ELEMENTWISE_NA,
            **DETERMINISTIC_NA,
            **({} if relu else {"dead_units": NO_RELU}),
            **({} if squash else {"saturation": NO_SQUASH}),
        },
        dtypes=(*FULL, *HALF),
    )
declare(
    lambda: nn.PReLU(E),
    "PReLU",
    (8, E),
    {
        **ELEMENTWISE,
        "params_update": None,
        "gradients_flow": None,
        "equivariant": {"transform": Permutation(0)},  # one slope per feature
    },
    {
        **{k: v for k, v in ELEMENTWISE_NA.items() if k not in AFFINE_STEP},
        **DETERMINISTIC_NA,
        "dead_units": "a PReLU unit passes its slope's gradient on negative inputs",
        "saturation": NO_SQUASH,
        "update_ratio": "its weight (one slope per feature) has 1 dim",
        "can_overfit": NO_CAPACITY,
    },
    dtypes=(*FULL, *HALF),
)
#: torch has no float16 RReLU kernel on the CPU ("rrelu_with_noise_out_cpu" not implemented).
RRELU_DTYPES = (*FULL, torch.bfloat16)
declare(
    lambda: nn.RReLU(0.1, 0.3),
    "RReLU",
    (8, E),
    {
        "train_eval_contract": None,
        "finite": None,
        "gradcheck": None,
        "device_parity": None,
        "expectation_equal": None,  # the mean slope (l + u)/2 is its eval-mode slope
        "masks_independent": None,
    },
    {
        **ELEMENTWISE_NA,
        "dead_units": "a random leaky slope: not ReLU-family",
        "saturation": NO_SQUASH,
        "batch_independent": RANDOM_IN_TRAIN,
        "equivariant": MASK_STAYS,
        "drop_rate": NOT_DROPPING,
        # torch's CPU kernel draws a slope only for negative entries, in memory order: the
        # signs of a later row's "future" shift which draw an earlier position gets, so the
        # train-mode output is causal in distribution but not draw by draw (RReLU_eval is)
        "causal": "train-mode slopes are drawn only for negative entries: the future's "
        "signs shift which draw a past position gets",
    },
    dtypes=RRELU_DTYPES,
    reference=lambda m, x: F.rrelu(x, m.lower, m.upper, training=False),
)
declare(
    lambda: nn.RReLU(0.1, 0.3).eval(),
    "RReLU_eval",
    (8, E),
    ELEMENTWISE,
    {
        **ELEMENTWISE_NA,
        **DETERMINISTIC_NA,
        "dead_units": "a leaky slope: not ReLU-family",
        "saturation": NO_SQUASH,
    },
    dtypes=RRELU_DTYPES,
)
for softmax, soft_name in (
    (lambda: nn.Softmax(dim=-1), "Softmax"),
    (lambda: nn.LogSoftmax(dim=-1), "LogSoftmax"),
    (lambda: nn.Softmin(dim=-1), "Softmin"),
):
    declare(
        softmax,
        soft_name,
        (8, E),
        {
            "train_eval_contract": None,
            "batch_independent": None,
            "finite": None,
            "gradcheck": None,
            "device_parity": None,
            "equivariant": {"transform": Permutation(1)},  # permuting the classes
            "shift_invariant": None,  # softmax(x + c) = softmax(x)
        },
        {
            **{k: v for k, v in ELEMENTWISE_NA.items() if k != "shift_invariant"},
            **DETERMINISTIC_NA,
            "dead_units": NO_RELU,
            "saturation": NO_SQUASH,
            "causal": "normalizes over the whole feature dimension",
        },
        dtypes=(*FULL, *HALF),
    )


def test_battery_covers_every_property_of_every_module() -> None:
    """Each spec decides every registered property; the battery covers the issue's list."""
    names = {s.name for s in BATTERY}
    for required in [
        "LayerNorm",
        "RMSNorm",
        "GroupNorm",
        "InstanceNorm1d",
        "InstanceNorm2d_tracked",
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Linear",
        "Conv1d",
        "Conv2d",
        "MultiheadAttention",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "GELU",
        "SiLU",
        "Tanh",
        "Sigmoid",
        "Softplus",
        "Mish",
        "Hardswish",
        "PReLU",
    ]:
        assert required in names
    for s in BATTERY:
        assert set(s.properties) | set(s.not_applicable) == set(PROPERTIES), s.name
