"""The coursework's qualitative claims, as statistical assertions on the recorded runs.

Each claim compares two scenarios' K stored seeds with a one-sided exact
Mann-Whitney U test at ALPHA. Only claims that the recorded runs support are
asserted; "CNN beats MLP" is not (at 60 steps the 2-conv CNN is not better than
the MLP: 0.742 ± 0.020 vs 0.753 ± 0.011 over 10 seeds), and is tested as such so a
change that makes it true is noticed and the claim can be promoted.
"""

from __future__ import annotations

import pytest
from scipy import stats

from netprops import baselines

pytestmark = pytest.mark.convergence

#: Per-claim probability of asserting a claim the runs do not support.
ALPHA = 1e-3

# (better scenario, worse scenario, metric, alternative for better vs worse, statement)
CLAIMS = [
    (
        "init-relu-he",
        "init-relu-normal",
        "final_accuracy",
        "greater",
        "He beats N(0,1) for deep ReLU nets",
    ),
    (
        "init-tanh-xavier",
        "init-tanh-normal",
        "final_accuracy",
        "greater",
        "Xavier beats N(0,1) for tanh nets",
    ),
    (
        "depth-depth8-residual",
        "depth-depth8",
        "first_layer_grad_norm",
        "greater",
        "a residual deep CNN keeps a larger first-layer gradient than the plain one",
    ),
    ("reg-dropout", "reg-none", "train_test_gap", "less", "dropout shrinks the train-test gap"),
    (
        "reg-dropconnect",
        "reg-none",
        "train_test_gap",
        "less",
        "DropConnect shrinks the train-test gap",
    ),
]


def _values(root, scenario, metric):
    stored = baselines.read_baseline(baselines.baseline_path(scenario, "cpu", root))
    return [v for v in stored.metrics[metric] if v is not None]


@pytest.mark.parametrize(
    ("better", "worse", "metric", "alternative", "statement"), CLAIMS, ids=[c[4] for c in CLAIMS]
)
def test_claim_supported_by_recorded_runs(
    baselines_root, better, worse, metric, alternative, statement
):
    a, b = _values(baselines_root, better, metric), _values(baselines_root, worse, metric)
    p = stats.mannwhitneyu(a, b, alternative=alternative, method="exact").pvalue
    assert p < ALPHA, (
        f"{statement}: not supported (one-sided Mann-Whitney p = {p:.3g} >= {ALPHA}; {a} vs {b})"
    )


def test_layernorm_is_not_worse_than_batchnorm_at_batch_size_4(baselines_root):
    ln = _values(baselines_root, "norm-layer-b4", "final_accuracy")
    bn = _values(baselines_root, "norm-batch-b4", "final_accuracy")
    p = stats.mannwhitneyu(bn, ln, alternative="greater", method="exact").pvalue
    assert p >= ALPHA, f"BatchNorm beat LayerNorm at batch size 4 (p = {p:.3g}): {bn} vs {ln}"


def test_cnn_over_mlp_is_not_shown_at_this_budget(baselines_root):
    cnn = _values(baselines_root, "arch-cnn", "final_accuracy")
    mlp = _values(baselines_root, "arch-mlp", "final_accuracy")
    p = stats.mannwhitneyu(cnn, mlp, alternative="greater", method="exact").pvalue
    assert p >= ALPHA, "the CNN now beats the MLP at 60 steps: promote this to a claim in CLAIMS"
