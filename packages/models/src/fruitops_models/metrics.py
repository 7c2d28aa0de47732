"""Classification metrics from predicted probabilities, with no dependency beyond numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return confusion


def per_class(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of every class."""
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(0), 1)
    recall = tp / np.maximum(confusion.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return precision, recall, f1, confusion.sum(1)


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes that occur (as true or predicted labels)."""
    *_, f1, _ = per_class(confusion)
    present = (confusion.sum(1) + confusion.sum(0)) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 15
) -> float:
    """How far confidence is from accuracy, averaged over confidence bins (weighted by size)."""
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, num_classes: int
) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy, macro-F1, weighted-F1, top-5 accuracy and ECE, plus the confusion matrix."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        empty = {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "top5": 0.0, "ece": 0.0}
        return empty, np.zeros((num_classes, num_classes), np.int64)
    predictions = probabilities.argmax(1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    *_, f1, support = per_class(confusion)
    k = min(5, num_classes)
    top_k = np.argsort(-probabilities, axis=1)[:, :k]
    return {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": macro_f1(confusion),
        "weighted_f1": float((f1 * support).sum() / max(support.sum(), 1)),
        "top5": float((top_k == labels[:, None]).any(1).mean()),
        "ece": expected_calibration_error(labels, probabilities),
    }, confusion


def per_class_table(confusion: np.ndarray, classes: list[str]) -> pd.DataFrame:
    precision, recall, f1, support = per_class(confusion)
    return (
        pd.DataFrame(
            {
                "class": classes,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
            }
        )
        .sort_values("f1")
        .reset_index(drop=True)
    )


def bootstrap_interval(
    labels: np.ndarray,
    predictions: np.ndarray,
    num_classes: int,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1 over the photos: how much the
    scores would move on another draw of as many photos (one photo of 288 is 0.35 points).

    ``predictions`` may be a matrix (one row per model, e.g. per seed): each resample then
    scores every row on the same photos and takes the mean, so the interval is that of the
    mean score.
    """
    labels = np.asarray(labels, np.int64)
    rows = np.atleast_2d(np.asarray(predictions, np.int64))
    if len(labels) == 0:
        return {"accuracy": (0.0, 0.0), "macro_f1": (0.0, 0.0)}
    rng = np.random.default_rng(seed)
    accuracy, f1 = np.empty(resamples), np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        truth = labels[pick]
        accuracy[i] = np.mean([(row[pick] == truth).mean() for row in rows])
        f1[i] = np.mean([macro_f1(confusion_matrix(truth, row[pick], num_classes)) for row in rows])
    tail = (1 - level) / 2 * 100
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        for name, values in (("accuracy", accuracy), ("macro_f1", f1))
    }
