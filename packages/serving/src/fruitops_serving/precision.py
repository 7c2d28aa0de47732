"""The precision comparison: a back end in bf16 against the plain fp32 module, on given images.

bf16 is faster on CPUs that have it, but its rounding can flip a model's top-1 answer; how
often depends on the model, so it is measured per model, never assumed. This module only
measures and applies the thresholds; which images it is given, and how its verdict is kept
and reused, is the precision gate asset's part (`fruitops_serving.gate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fruitops_models.registry import LoadedModel
from fruitops_serving.predictor import Predictor

#: bf16 must give the fp32 module's top-1 answer on at least this share of the images
GATE_AGREEMENT = 0.995
#: and, where the images are labelled, lose at most this much accuracy (0.002: 0.2 points)
GATE_ACCURACY_DROP = 0.002
#: fewer held-out images than this cannot show an agreement of GATE_AGREEMENT
GATE_MIN_IMAGES = 20


def fp32_top1(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """The plain fp32 torch module's top-1 class of each uint8 N×3×S×S image: the reference."""
    import torch

    return Predictor(model).probabilities(torch.from_numpy(images)).argmax(1).numpy()


def precision_gate(
    model: LoadedModel,
    images: np.ndarray,
    labels: np.ndarray | None,
    backend: str = "torch",
    cache_dir: Path | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare ``backend`` in bf16 with the plain fp32 module on held-out images (uint8
    N×3×S×S at the model's size): top-1 agreement and accuracy drop.

    ``reference`` is `fp32_top1` of the same images, when the caller compares several back
    ends and computes it once."""
    import torch

    fp32 = fp32_top1(model, images) if reference is None else reference
    bf16 = Predictor(model, bf16=True, backend=backend, cache_dir=cache_dir)
    bf16 = bf16.probabilities(torch.from_numpy(images)).argmax(1).numpy()
    agreement = float((fp32 == bf16).mean()) if len(images) else 0.0
    result: dict[str, Any] = {"backend": backend, "images": len(images), "agreement": agreement}
    refused = []
    if len(images) < GATE_MIN_IMAGES:
        refused.append(f"only {len(images)} held-out images (needs {GATE_MIN_IMAGES})")
    if agreement < GATE_AGREEMENT:
        refused.append(
            f"it agreed with fp32 on {agreement:.1%} of {len(images)} held-out images "
            f"(needs {GATE_AGREEMENT:.1%})"
        )
    if labels is not None and len(labels):
        result["fp32_accuracy"] = float((fp32 == labels).mean())
        result["bf16_accuracy"] = float((bf16 == labels).mean())
        drop = result["fp32_accuracy"] - result["bf16_accuracy"]
        if drop > GATE_ACCURACY_DROP:
            refused.append(f"accuracy fell by {drop:.1%} (at most {GATE_ACCURACY_DROP:.1%})")
    result["passed"] = not refused
    if refused:
        result["refused"] = "; ".join(refused)
    return result
