"""The initialization study: variance profiles at init and training curves, Xavier/He vs N(0, 1)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from ...checks.variance import variance_profile
from ...init import init_network
from ...models import create
from ...scenarios import Scenario, get
from ...seeding import derive_seed, make_generator
from ..claims import combine, every_sample, mean, sd
from ..config import StudyConfig
from ..results import Claim, Section, Table
from ..runs import Context, Run
from .common import (
    comparison_claim,
    curves,
    describe_test_set,
    eval_every,
    fmt,
    geomean,
    metric,
    model_text,
    seeds_text,
)

__all__ = ["analyze", "plan"]

#: Initialization scenarios: (catalog name, label).
INIT_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("init-tanh-normal", "tanh, N(0,1)"),
    ("init-tanh-xavier", "tanh, Xavier"),
    ("init-relu-normal", "ReLU, N(0,1)"),
    ("init-relu-he", "ReLU, He"),
)
_PROFILE_BAND = (0.25, 4.0)  # "near 1": within a factor of 4
_EXPLODED = 100.0  # E[z²] beyond this has exploded
_SATURATED = 10.0  # E[z²] beyond this: typical |z| > 3, where tanh' < 0.01
_GRAD_SPREAD = 4.0  # "stable" gradients: max/min over hidden layers within this factor


def plan(config: StudyConfig) -> list[Scenario]:
    """The scenarios this study trains under ``config`` (each with every seed)."""
    steps = config.init_steps
    return [
        get(name).replace(
            steps=steps,
            eval_every=eval_every(steps, config.evals),
            test_subset=config.test_subset,
        )
        for name, _ in INIT_SCENARIOS
    ]


def _profiles(ctx: Context) -> dict[str, Any]:
    """Variance profiles at initialization, ``profile_networks`` networks per scheme."""
    config = ctx.config
    n = min(config.profile_batch, len(ctx.data.test))
    x = ctx.data.test.float()[:n]
    y = ctx.data.test.labels[:n]
    out: dict[str, Any] = {}
    for name, label in INIT_SCENARIOS:
        sc = get(name)
        per_net: dict[str, list[list[float]]] = {"pre": [], "act": [], "grad": []}
        layers: list[str] = []
        for k in range(config.profile_networks):
            model = create(sc.model, seed=derive_seed(k, sc.name, "model"), **sc.model_args)
            init_network(
                model,
                sc.init,
                generator=make_generator(derive_seed(k, sc.name, "init")),
                **sc.init_params,
            )
            model.to(ctx.device)
            profile = variance_profile(model, x, target=y, seed=k)
            layers = [f"{i + 1} (width {r.shape[-1]})" for i, r in enumerate(profile)]
            per_net["pre"].append([r.pre_second_moment for r in profile])
            per_net["act"].append([r.act_variance for r in profile])
            per_net["grad"].append([r.grad_second_moment for r in profile])
        out[name] = {
            "label": label,
            "model": model_text(sc),
            "layer_sizes": list(getattr(model, "layer_sizes", [])),
            "layers": layers,
            "networks": per_net,
            **{
                stat: [geomean([net[i] for net in nets]) for i in range(len(layers))]
                for stat, nets in per_net.items()
            },
        }
    return out


def analyze(ctx: Context, runs: Mapping[str, list[Run]]) -> Section:
    """The section: tables, claims with verdicts, and the data of the figures."""
    config = ctx.config
    profiles = _profiles(ctx)
    model_name = get(INIT_SCENARIOS[0][0]).model
    sizes = profiles[INIT_SCENARIOS[0][0]]["layer_sizes"]
    k = config.profile_networks
    lo, hi = _PROFILE_BAND
    rows = []
    for name, _ in INIT_SCENARIOS:
        p = profiles[name]
        for i, layer in enumerate(p["layers"]):
            rows.append((p["label"], layer, p["pre"][i], p["act"][i], p["grad"][i]))
    profile_table = Table(
        "init-profile",
        f"Second moments per layer at initialization ({model_name})",
        ("init", "layer", "E[z²] pre-activation", "Var[activation]", "E[g²] gradient"),
        ("s", "s", ".3g", ".3g", ".3g"),
        tuple(rows),
        note=(
            f"Geometric mean over {k} independently initialized networks, on {min(config.profile_batch, len(ctx.data.test))} "
            "test images; gradients of the cross-entropy (summed over the batch) with the true labels. "
            "The last layer is the output (logits)."
        ),
    )

    def hidden(name: str, stat: str) -> list[list[float]]:
        return [net[:-1] for net in profiles[name]["networks"][stat]]

    # Claim 1: He keeps E[z²] near 1; N(0,1) explodes it.
    he_ok = [all(lo <= v <= hi for v in net) for net in hidden("init-relu-he", "pre")]
    normal_boom = [net[-1] > _EXPLODED for net in hidden("init-relu-normal", "pre")]
    he_pre = profiles["init-relu-he"]["pre"][:-1]
    normal_pre = profiles["init-relu-normal"]["pre"][:-1]
    claims = [
        Claim(
            "init.he-forward",
            "He initialization keeps the pre-activation second moment E[z²] of the deep ReLU "
            "network near 1 in every layer, while plain N(0, 1) makes it explode.",
            f"per network ({k} per scheme): He holds when E[z²] of every hidden layer lies in "
            f"[{lo:g}, {hi:g}]; N(0,1) explodes when E[z²] of the last hidden layer exceeds "
            f"{_EXPLODED:g}; each part is supported when it holds in every network, not supported "
            "when in none, inconclusive otherwise; the claim needs both parts",
            combine([every_sample(he_ok), every_sample(normal_boom)]),
            f"hidden-layer E[z²] (geometric mean): He {fmt(he_pre)} (in band in "
            f"{sum(he_ok)}/{k} networks); N(0,1) {fmt(normal_pre)} (exploded in "
            f"{sum(normal_boom)}/{k})",
            {
                "he_pre": he_pre,
                "normal_pre": normal_pre,
                "he_ok": sum(he_ok),
                "normal_exploded": sum(normal_boom),
                "networks": k,
            },
        )
    ]
    # Claim 2: Xavier keeps tanh in its linear range; N(0,1) saturates it.
    xav_ok = [all(lo <= v <= hi for v in net) for net in hidden("init-tanh-xavier", "pre")]
    sat = [all(v > _SATURATED for v in net) for net in hidden("init-tanh-normal", "pre")]
    xav_pre = profiles["init-tanh-xavier"]["pre"][:-1]
    tn_pre = profiles["init-tanh-normal"]["pre"][:-1]
    claims.append(
        Claim(
            "init.xavier-forward",
            "Xavier initialization keeps the tanh network's pre-activations in tanh's "
            "near-linear range (E[z²] near 1 in every layer), while N(0, 1) drives them into "
            "saturation.",
            f"per network ({k} per scheme): Xavier holds when E[z²] of every hidden layer lies "
            f"in [{lo:g}, {hi:g}]; N(0,1) saturates when E[z²] of every hidden layer exceeds "
            f"{_SATURATED:g} (a typical |z| above 3, where tanh′ < 0.01); each part is supported "
            "when it holds in every network, not supported when in none; both parts needed",
            combine([every_sample(xav_ok), every_sample(sat)]),
            f"hidden-layer E[z²]: Xavier {fmt(xav_pre)} (in band in {sum(xav_ok)}/{k}); "
            f"N(0,1) {fmt(tn_pre)} (saturated in {sum(sat)}/{k})",
            {
                "xavier_pre": xav_pre,
                "normal_pre": tn_pre,
                "xavier_ok": sum(xav_ok),
                "normal_saturated": sum(sat),
                "networks": k,
            },
        )
    )
    # Claim 3: the coursework's "Xavier/He preserve the gradient variance across layers".
    spreads = {}
    for name in ("init-tanh-xavier", "init-relu-he"):
        spreads[name] = [max(net) / min(net) for net in hidden(name, "grad")]
    parts = [every_sample([s <= _GRAD_SPREAD for s in spreads[n]]) for n in spreads]
    claims.append(
        Claim(
            "init.backward",
            "Xavier (tanh) and He (ReLU) also keep the back-propagated gradient's second moment "
            "E[g²] stable across layers.",
            f"per network: stable when max/min of E[g²] over the hidden layers is at most "
            f"{_GRAD_SPREAD:g}; each scheme is supported when stable in every network, not "
            "supported when in none; both schemes needed",
            combine(parts),
            "max/min of hidden-layer E[g²]: Xavier/tanh "
            f"{fmt(spreads['init-tanh-xavier'], '.2f')}; He/ReLU {fmt(spreads['init-relu-he'], '.2f')} "
            f"(one value per network); geometric-mean E[g²] per hidden layer: Xavier "
            f"{fmt(profiles['init-tanh-xavier']['grad'][:-1])}, He {fmt(profiles['init-relu-he']['grad'][:-1])}",
            {"xavier_spread": spreads["init-tanh-xavier"], "he_spread": spreads["init-relu-he"]},
        )
    )

    # Training curves.
    label = dict(INIT_SCENARIOS)
    train_rows = []
    for name, lab in INIT_SCENARIOS:
        acc = metric(runs[name], "final_accuracy")
        train_rows.append(
            (
                lab,
                mean(acc),
                sd(acc),
                mean(metric(runs[name], "final_test_loss")),
                mean(metric(runs[name], "auc_log_loss")),
                mean(metric(runs[name], "train_time_s")),
            )
        )
    steps = config.init_steps
    train_table = Table(
        "init-training",
        f"Training from each initialization ({steps} steps, Adam 1e-3, batch 128)",
        (
            "init",
            "test accuracy",
            "sd over seeds",
            "test loss",
            "mean log train loss",
            "train time (s)",
        ),
        ("s", ".4f", ".4f", ".4f", ".3f", ".2f"),
        tuple(train_rows),
        note=f"Mean over {seeds_text(config)}; test set: {describe_test_set(runs)}.",
    )
    for key, a, b in (
        ("init.xavier-trains", "init-tanh-xavier", "init-tanh-normal"),
        ("init.he-trains", "init-relu-he", "init-relu-normal"),
    ):
        claims.append(
            comparison_claim(
                key,
                f"{label[a]} trains better than {label[b]}: higher test accuracy after the same "
                f"{steps} steps.",
                metric(runs[a], "final_accuracy"),
                metric(runs[b], "final_accuracy"),
                (label[a], label[b]),
                margin=config.accuracy_margin,
                what="test accuracy",
            )
        )
    return Section(
        "init",
        "Initialization: Xavier and He vs plain N(0, 1)",
        (
            f"The coursework's {model_name} network with tanh (N(0,1) vs Xavier) and ReLU "
            "(N(0,1) vs He), biases zero. First the second moments of pre-activations, "
            "activations and back-propagated gradients per layer at initialization "
            f"({k} networks per scheme), then {steps} training steps from each "
            f"({seeds_text(config)})."
        ),
        tables=[profile_table, train_table],
        claims=claims,
        data={
            "model": model_name,
            "profiles": profiles,
            "curves": {n: {"label": label[n], "runs": curves(runs[n])} for n, _ in INIT_SCENARIOS},
        },
        notes=[_fan_note(sizes)] if len(sizes) > 2 else [],
    )


def _fan_note(sizes: list[int]) -> str:
    ratios = ", ".join(f"{b / a:.2g}" for a, b in itertools.pairwise(sizes))
    return (
        "He's fan_in scaling (n_in·Var W = 2) is built to preserve the forward pass; the "
        "backward pass is preserved by n_out·Var W = 2 instead. The two differ, layer by layer, "
        f"by n_out/n_in, which on this network ({'→'.join(map(str, sizes))}) is {ratios}."
    )
