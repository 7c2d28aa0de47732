"""Figures a person would rather look at than read: training curves, confusion matrix."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def training_curves(history: list[dict[str, float]], title: str) -> Figure:
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_score.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax_score.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="val accuracy")
    ax_score.plot(epochs, [h["val_macro_f1"] for h in history], "s--", label="val macro-F1")
    ax_score.set(xlabel="epoch", ylim=(0, 1.02), title="scores")
    for ax in (ax_loss, ax_score):
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
