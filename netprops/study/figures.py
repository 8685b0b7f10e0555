"""The study's figures, drawn from each :class:`Section`'s data with matplotlib.

matplotlib's object API (``Figure`` + the Agg canvas) is used, never
``pyplot``: no global state, no display needed. Titles describe what is
plotted, never what it shows: the verdicts live in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .results import FigureRef, Section

__all__ = ["FIGURES", "MissingReportDependency", "check_report_dependencies", "render_figures"]

_DPI = 110
_INIT_STYLE = {
    "init-tanh-normal": ("tab:blue", "--", "x"),
    "init-tanh-xavier": ("tab:blue", "-", "o"),
    "init-relu-normal": ("tab:red", "--", "x"),
    "init-relu-he": ("tab:red", "-", "o"),
}
_REG_COLORS = {"reg-none": "tab:gray", "reg-dropout": "tab:blue", "reg-dropconnect": "tab:green"}
_NORM_STYLE = {"none": ("tab:gray", "s"), "layer": ("tab:blue", "o"), "batch": ("tab:orange", "^")}


class MissingReportDependency(ImportError):
    """matplotlib (the ``report`` extra) is not installed."""


def check_report_dependencies() -> None:
    """Raise :class:`MissingReportDependency` (with the install command) without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingReportDependency(
            "the study report needs matplotlib: pip install 'netprops[report]'"
        ) from exc


def _figure(width: float, height: float) -> Any:
    check_report_dependencies()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_dir: Path, filename: str, caption: str) -> FigureRef:
    fig.savefig(out_dir / filename, dpi=_DPI, facecolor="white")
    return FigureRef(filename, caption)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (shorter at the start), robust to a window of 1."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _mean_curves(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    series = [r[key] for r in runs if r.get(key)]
    if not series:
        return []
    n = min(len(s) for s in series)
    return [math.fsum(s[i] for s in series) / len(series) for i in range(n)]


def _positive(values: Sequence[float | None]) -> list[float]:
    return [v if v is not None and v > 0 and math.isfinite(v) else math.nan for v in values]


# --------------------------------------------------------------------------- init
def init_variance(section: Section, out_dir: Path) -> FigureRef:
    profiles = section.data["profiles"]
    fig = _figure(12.5, 4.2)
    axes = fig.subplots(1, 3)
    panels = (
        ("pre", "E[z²] of pre-activations", "pre-activation second moment"),
        ("act", "Var of activations", "activation variance"),
        ("grad", "E[g²] of back-propagated gradients", "gradient second moment (∂L/∂z)"),
    )
    for ax, (stat, title, ylabel) in zip(axes, panels, strict=True):
        for name, p in profiles.items():
            color, style, marker = _INIT_STYLE.get(name, ("black", "-", "o"))
            xs = list(range(1, len(p["layers"]) + 1))
            for net in p["networks"][stat]:
                ax.plot(xs, _positive(net), color=color, linestyle=style, alpha=0.15, linewidth=0.8)
            ax.plot(
                xs,
                _positive(p[stat]),
                color=color,
                linestyle=style,
                marker=marker,
                linewidth=2,
                label=p["label"],
            )
        if stat == "pre":
            ax.axhspan(0.25, 4, color="tab:green", alpha=0.08, label="[1/4, 4]")
        ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        ax.set_yscale("log")
        ax.set_xticks(xs, _layer_ticks(next(iter(profiles.values()))["layers"]))
        ax.set_xlabel("layer (output width)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    k = len(next(iter(profiles.values()))["networks"]["pre"])
    fig.suptitle(
        f"{section.data.get('model', 'networks')} at initialization "
        f"(thick: geometric mean of {k} networks; thin: each network)"
    )
    return _save(
        fig,
        out_dir,
        "init-variance.png",
        "Per-layer second moments at initialization, for each initialization scheme (log scale).",
    )


def _layer_ticks(layers: Sequence[str]) -> list[str]:
    """``"2 (width 100)"`` -> ``"2\nwidth 100"``; the last layer is the output."""
    ticks = [f"{name.split(' ')[0]}\n{name.split('(')[-1].rstrip(')')}" for name in layers]
    if ticks:
        ticks[-1] = ticks[-1].split("\n")[0] + "\noutput"
    return ticks


def _seeds_label(n: int) -> str:
    return "1 seed" if n == 1 else f"mean over {n} seeds"


def init_training(section: Section, out_dir: Path) -> FigureRef:
    curves = section.data["curves"]
    fig = _figure(11, 7.5)
    axes = fig.subplots(2, 2)
    groups = (
        ("tanh", ("init-tanh-normal", "init-tanh-xavier")),
        ("ReLU", ("init-relu-normal", "init-relu-he")),
    )
    for row, (act, names) in enumerate(groups):
        ax_loss, ax_acc = axes[row]
        for name in names:
            if name not in curves:
                continue
            color = "tab:orange" if "normal" in name else "tab:green"
            runs = curves[name]["runs"]
            label = curves[name]["label"]
            loss = _mean_curves(runs, "train_loss")
            if loss:
                window = max(1, len(loss) // 20)
                ax_loss.plot(
                    range(1, len(loss) + 1),
                    _positive(_smooth(loss, window)),
                    color=color,
                    label=f"{label}: train (smoothed)",
                )
            steps = runs[0]["eval_steps"] if runs else []
            ax_loss.plot(
                steps,
                _positive(_mean_curves(runs, "test_loss")),
                color=color,
                linestyle="--",
                marker="o",
                markersize=4,
                label=f"{label}: test",
            )
            ax_acc.plot(
                steps,
                _mean_curves(runs, "test_accuracy"),
                color=color,
                marker="o",
                markersize=4,
                label=f"{label}: test",
            )
            ax_acc.plot(
                steps,
                _mean_curves(runs, "train_accuracy"),
                color=color,
                linestyle=":",
                label=f"{label}: train (running)",
            )
        ax_loss.set_yscale("log")
        for ax in (ax_loss, ax_acc):
            ax.set_xlim(left=0)
        ax_loss.set_xlabel("training step")
        ax_loss.set_ylabel("cross-entropy loss")
        ax_loss.set_title(f"{act}: loss")
        ax_acc.set_xlabel("training step")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(0, 1)
        ax_acc.set_title(f"{act}: accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    n = len(next(iter(curves.values()))["runs"])
    fig.suptitle(f"Training from each initialization ({_seeds_label(n)})")
    return _save(
        fig,
        out_dir,
        "init-training.png",
        "Training and test loss (log scale) and accuracy through training, per initialization.",
    )


# --------------------------------------------------------------------------- regularization
def regularization(section: Section, out_dir: Path) -> FigureRef:
    methods = section.data["methods"]
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    width = 0.38
    tops = []
    for i, (name, m) in enumerate(methods.items()):
        train = _mean(m["train_accuracy"])
        test = _mean(m["test_accuracy"])
        color = _REG_COLORS.get(name, "tab:purple")
        ax.bar(
            i - width / 2,
            train,
            width,
            color=color,
            alpha=0.45,
            edgecolor=color,
            label="train" if i == 0 else None,
        )
        ax.bar(
            i + width / 2,
            test,
            width,
            color=color,
            edgecolor="black",
            label="test" if i == 0 else None,
        )
        ax.annotate(
            f"gap {train - test:.3f}",
            (i, max(train, test)),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=9,
        )
        tops.append(max(train, test))
    ax.set_xticks(range(len(methods)), [m["label"] for m in methods.values()])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, max(1.0, max(tops)) + 0.15)
    ax.set_title("Train vs test accuracy on a small training set (light: train, dark: test)")
    legend = ax.legend(loc="upper right", ncols=2, fontsize=9)
    for handle in legend.legend_handles:
        handle.set_facecolor("lightgray")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(
        fig,
        out_dir,
        "regularization.png",
        "Train and test accuracy and their gap with no regularization, Dropout and DropConnect.",
    )


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


# --------------------------------------------------------------------------- normalization
def normalization(section: Section, out_dir: Path) -> FigureRef:
    grid = section.data["grid"]
    batches = section.data["batch_sizes"]
    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    xs = list(range(len(batches)))
    failed_any = False
    for norm, g in grid.items():
        color, marker = _NORM_STYLE.get(norm, ("black", "o"))
        ys = [_mean(g["accuracy"][str(b)]) if g["accuracy"][str(b)] else math.nan for b in batches]
        ax.plot(xs, ys, color=color, marker=marker, linewidth=2, label=g["label"])
        for x, b in zip(xs, batches, strict=True):
            if g["errors"][str(b)]:
                failed_any = True
                ax.plot([x], [0.05], color=color, marker="X", markersize=12, linestyle="none")
                ax.annotate(
                    f"{g['label']}:\ncannot train",
                    (x, 0.05),
                    xytext=(10, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=9,
                    color=color,
                )
    steps = section.data["steps"]
    ax.set_xticks(xs, [f"{b}\n({steps[str(b)]} steps)" for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(
        "Test accuracy by batch size and normalization"
        + (" (X: training failed)" if failed_any else "")
    )
    return _save(
        fig,
        out_dir,
        "normalization.png",
        "Test accuracy of the MLP with no normalization, LayerNorm and BatchNorm at batch sizes 1, 4, 32 and 128.",
    )


# --------------------------------------------------------------------------- depth
def depth_gradients(section: Section, out_dir: Path) -> FigureRef:
    from matplotlib import colormaps

    series = section.data["series"]
    window_steps = section.data["window"]
    fig = _figure(12, 4.8)
    axes = fig.subplots(1, len(series), sharey=True, squeeze=False)[0]
    cmap = colormaps["viridis"]
    smoothed = 1
    for ax, (_, s) in zip(axes, series.items(), strict=True):
        seed, norms = next(iter(s["grad_norms"].items()))
        convs = s["conv_layers"]
        for i, layer in enumerate(s["layers"]):
            values = norms[layer]
            steps = range(1, len(values) + 1)
            window = max(1, len(values) // 25)
            smoothed = max(smoothed, window)
            if layer in convs:
                color = cmap(i / max(1, len(convs) - 1) * 0.9)
                label = f"conv {convs.index(layer) + 1}"
                style = "-"
            else:
                color, label, style = "tab:gray", layer, "--"
            ax.plot(
                steps,
                _positive(_smooth(values, window)),
                color=color,
                linestyle=style,
                linewidth=1.6,
                label=label,
            )
        ax.axvspan(0.5, window_steps + 0.5, color="tab:orange", alpha=0.12, label="early window")
        ax.set_yscale("log")
        ax.set_xlim(left=0)
        ax.set_xlabel("training step")
        ax.set_title(f"{s['label']} (seed {seed})")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("parameter-gradient L2 norm per layer")
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="layer")
    fig.suptitle(
        "Per-layer gradient norms through training"
        + (f" (moving average over {smoothed} steps)" if smoothed > 1 else "")
        + "; shaded: the early steps the gradient-flow claim reads"
    )
    return _save(
        fig,
        out_dir,
        "depth-gradients.png",
        "Gradient norm of each layer's parameters at every training step, plain vs residual CNN (log scale; dark = near the input).",
    )


# --------------------------------------------------------------------------- architecture
def architecture(section: Section, out_dir: Path) -> FigureRef:
    models = section.data["models"]
    labels = [m["label"].replace(" (", "\n(") for m in models.values()]
    colors = ["tab:gray", "tab:blue", "tab:green", "tab:purple", "tab:orange"][: len(models)]
    panels = (
        ("test_accuracy", "test accuracy", ".3f", False),
        ("parameters", "trainable parameters", ",d", False),
        ("train_time_s", "training time (s)", ".1f", False),
        ("inference_ms_per_1000", "inference (ms / 1000 images)", ".1f", False),
    )
    fig = _figure(13, 4.2)
    axes = fig.subplots(1, len(panels))
    for ax, (key, ylabel, spec, log) in zip(axes, panels, strict=True):
        values = [
            m[key] if isinstance(m[key], (int, float)) else _mean(m[key]) for m in models.values()
        ]
        bars = ax.bar(range(len(values)), values, color=colors)
        for bar, v in zip(bars, values, strict=True):
            text = format(int(v), spec) if spec == ",d" else format(v, spec)
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, v),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, max(values) * 1.18 if max(values) > 0 else 1)
        ax.set_xticks(range(len(values)), labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Architectures at the same training budget")
    return _save(
        fig,
        out_dir,
        "architecture.png",
        "Test accuracy, parameters, training time and inference time per architecture.",
    )


# --------------------------------------------------------------------------- confusion
def confusion(section: Section, out_dir: Path) -> FigureRef:
    data = section.data
    matrix = data["matrix"]
    classes = data["classes"]
    k = len(classes)
    rates = [[c / max(1, sum(row)) for c in row] for row in matrix]
    fig = _figure(8.5, 7.5)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if matrix[i][j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i][j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i][j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{data['scenario']} (seed {data['seed']}): test accuracy {data['accuracy']:.4f}")
    fig.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    return _save(
        fig,
        out_dir,
        "confusion.png",
        "Confusion matrix of the best model of the run (counts; colour: fraction of the true class).",
    )


FIGURES: dict[str, tuple[Callable[[Section, Path], FigureRef], ...]] = {
    "init": (init_variance, init_training),
    "regularization": (regularization,),
    "normalization": (normalization,),
    "depth": (depth_gradients,),
    "architecture": (architecture,),
    "confusion": (confusion,),
}
"""Figure makers per section name."""


def render_figures(section: Section, out_dir: str | Path) -> list[FigureRef]:
    """Draw ``section``'s figures into ``out_dir`` (PNG) and record them on the section."""
    out = Path(out_dir)
    refs = [make(section, out) for make in FIGURES.get(section.name, ())]
    section.figures = refs
    return refs
