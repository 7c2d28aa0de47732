"""Figures a person would rather look at than read: training curves, confusion matrix."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
# class names come from data: "$x^$" must print as written, not be parsed as math text
matplotlib.rcParams["text.parse_math"] = False

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def training_curves(history: list[dict[str, float]], title: str) -> Figure:
    """Loss, scores and the learning rates per epoch (the head's and, fine-tuning, the rest's:
    the warm-up and decay of each stage are visible)."""
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_score, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_score.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax_score.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="val accuracy")
    ax_score.plot(epochs, [h["val_macro_f1"] for h in history], "s--", label="val macro-F1")
    ax_score.set(xlabel="epoch", ylim=(0, 1.02), title="scores")
    ax_lr.plot(epochs, [h.get("lr", np.nan) for h in history], "o-", label="head")
    if any("backbone_lr" in h for h in history):
        ax_lr.plot(epochs, [h.get("backbone_lr", np.nan) for h in history], "o-", label="backbone")
    ax_lr.set(xlabel="epoch", ylabel="learning rate at epoch end", title="learning rates")
    for ax in (ax_loss, ax_score, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(confusion: np.ndarray, classes: list[str], title: str) -> Figure:
    size = max(5.0, 0.35 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    row_sums = np.maximum(confusion.sum(1, keepdims=True), 1)
    ax.imshow(confusion / row_sums, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if len(classes) <= 30:
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    return fig


def per_class_f1(table, title: str) -> Figure:
    """Horizontal bars of each class's F1, worst first."""
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(table) + 1)))
    ax.barh(table["class"], table["f1"], color="tab:blue")
    ax.set(xlim=(0, 1), xlabel="F1", title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def sample_grid(
    images: np.ndarray, true: list[str], predicted: list[str], title: str, columns: int = 6
) -> Figure:
    """Images (N×3×S×S uint8) with true and predicted labels; wrong ones in red."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.4 * rows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, image, t, p in zip(np.atleast_1d(axes).ravel(), images, true, predicted, strict=False):
        ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(f"true {t}\npred {p}", fontsize=8, color="black" if t == p else "red")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def candidates_curves(histories: dict[str, list[dict[str, float]]]) -> Figure:
    """Val macro-F1 and val loss per epoch of every candidate of a run."""
    fig, (ax_f1, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in histories.items():
        epochs = np.arange(1, len(history) + 1)
        ax_f1.plot(epochs, [h["val_macro_f1"] for h in history], "o-", label=name)
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label=name)
    ax_f1.set(xlabel="epoch", ylabel="val macro-F1", ylim=(0, 1.02), title="val macro-F1")
    ax_loss.set(xlabel="epoch", ylabel="val loss", title="val loss")
    for ax in (ax_f1, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
