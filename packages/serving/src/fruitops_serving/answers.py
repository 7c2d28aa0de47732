"""What a model answers for each photo: its label, confidence and top-5, from probabilities.

Batch scoring (`fruitops_serving.scoring`) and the online model
(`fruitops_serving.online_model`) both build their answers here, so a photo gets the same
answer whichever way it was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_K = 5


@dataclass(frozen=True)
class Answers:
    """One answer per row of a probability matrix."""

    labels: list[str]
    confidences: np.ndarray  # float64, the top-1 probability
    top5: list[list[dict[str, float | str]]]  # [{"label", "probability"}], best first


def answers(classes: list[str], probabilities: np.ndarray, k: int = TOP_K) -> Answers:
    """The top-``k`` classes of each row, ties broken by class order (a stable sort)."""
    k = min(k, len(classes))
    top_i = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probabilities, top_i, axis=1)
    return Answers(
        labels=[classes[i] for i in top_i[:, 0].tolist()],
        confidences=top_p[:, 0].astype(np.float64),
        top5=[
            [
                {"label": classes[i], "probability": float(p)}
                for i, p in zip(row_i, row_p, strict=True)
            ]
            for row_i, row_p in zip(top_i.tolist(), top_p.tolist(), strict=True)
        ],
    )
