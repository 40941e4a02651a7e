"""Figures for training: image grids, learning curves, confusion matrices, reliability.

Each function returns a matplotlib Figure so a notebook shows it and a script
saves it with ``files.save_figure``. Nothing here reads files or trains.
"""
from __future__ import annotations

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "widget", "ipympl")):
    matplotlib.use("Agg")  # scripts and tests have no screen; notebooks keep their inline backend
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def show_images(images, titles=None, ncols: int = 8, size: float = 1.6) -> Figure:
    """A grid of uint8 images, (3, H, W) tensors or (H, W, 3) arrays."""
    images = list(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
            arr = arr.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
        ax = axes.flat[i]
        ax.imshow(arr)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig


def plot_history(history) -> Figure:
    """Training losses and validation metrics per epoch (a DataFrame from history.csv)."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = history["epoch"]
    for key, label in (("train_loss", "total"), ("train_biome_loss", "biome"), ("train_month_loss", "month")):
        if key in history:
            ax_loss.plot(epochs, history[key], label=label)
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    ax_loss.legend()
    for key, label in (("val_biome_acc", "biome accuracy"), ("val_biome_f1", "biome macro-F1"),
                       ("val_month_acc", "month top-1"), ("val_month_within1", "month within ±1"),
                       ("val_season_acc", "season accuracy")):
        if key in history and history[key].notna().any():
            ax_metric.plot(epochs, history[key], label=label)
    ax_metric.set(title="validation", xlabel="epoch", ylim=(0, 1.02))
    if ax_metric.lines:
        ax_metric.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_confusion(cm: np.ndarray, names, title: str = "", normalise: bool = True) -> Figure:
    """Rows are the true class, columns the prediction; cells show row shares."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalise else cm
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(n), [str(x) for x in names], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(x) for x in names], fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def plot_reliability(curves: dict, title: str = "") -> Figure:
    """One panel per head: accuracy against confidence before and after temperature scaling.

    ``curves``: {head: {"before": reliability(...), "after": reliability(...),
    "temperature": T, "ece_before": x, "ece_after": y}}. Points below the
    diagonal are over-confident.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.0), squeeze=False)
    for ax, (head, c) in zip(axes.flat, curves.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
        for key, colour in (("before", "tab:red"), ("after", "tab:blue")):
            r = c[key]
            used = r["count"] > 0
            e = c.get(f"ece_{key}")
            label = f"{key} (ECE {e:.3f})" if e is not None else key
            if key == "after" and c.get("temperature") is not None:
                label += f", T={c['temperature']:.2f}" + (" (median)" if c.get("varies") else "")
            ax.plot(r["confidence"][used], r["accuracy"][used], "o-", color=colour, ms=4, label=label)
        ax.set(title=f"{head} {title}".strip(), xlabel="confidence", ylabel="accuracy",
               xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
