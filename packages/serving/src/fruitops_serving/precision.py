"""The precision comparison: a faster precision's answers against the plain fp32 module's.

bf16 and int8 score faster, but their rounding can flip a model's top-1 answer; how often,
and whether that costs accuracy, depends on the model, so it is measured per model, never
assumed. The rule (`PrecisionGateConfig`, whose fields hold the defaults):
- at least `GATE_MIN_IMAGES` held-out photos, and at least ``min_agreement`` of them keep
  fp32's answer;
- where they are labelled, accuracy lower by at most ``max_accuracy_drop``, and not
  significantly lower by McNemar's exact test at ``significance``: on 288 photos one photo
  is 0.35 points, so a fixed bar alone would refuse what is noise or pass what is not.

This module only compares answers; which images, which precisions and how the verdict is kept
is the precision gate asset's part (`fruitops_serving.gate`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.records import PrecisionCheck

#: fewer held-out images than this say nothing about an agreement of 98 % or more
GATE_MIN_IMAGES = 20


def mcnemar_p(worse: int, better: int) -> float:
    """McNemar's exact two-sided p-value: how likely, were both precisions equally accurate,
    discordant photos split at least this unevenly (``worse``: only fp32 right; ``better``:
    only the faster precision right)."""
    n = worse + better
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(worse, better) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(
    fp32: np.ndarray,
    faster: np.ndarray,
    labels: np.ndarray | None,
    rule: PrecisionGateConfig,
) -> dict[str, Any]:
    """Whether top-1 answers ``faster`` may replace ``fp32``'s (same photos, same order):
    agreement, and with ``labels`` the accuracy drop and McNemar's test; ``passed``, or
    ``refused`` with every reason."""
    images = len(fp32)
    agreement = float((fp32 == faster).mean()) if images else 0.0
    result: dict[str, Any] = {"images": images, "agreement": agreement}
    refused = []
    if images < GATE_MIN_IMAGES:
        refused.append(f"only {images} held-out images (needs {GATE_MIN_IMAGES})")
    if agreement < rule.min_agreement:
        refused.append(
            f"it agreed with fp32 on {agreement:.1%} of {images} held-out images "
            f"(needs {rule.min_agreement:.1%}, setting min_agreement)"
        )
    if labels is not None and images:
        fp32_right, faster_right = fp32 == labels, faster == labels
        worse = int((fp32_right & ~faster_right).sum())
        better = int((faster_right & ~fp32_right).sum())
        drop = (worse - better) / images
        p_value = mcnemar_p(worse, better)
        result |= {
            "fp32_accuracy": float(fp32_right.mean()),
            "accuracy": float(faster_right.mean()),
            "accuracy_drop": drop,
            "only_fp32_right": worse,
            "only_faster_right": better,
            "mcnemar_p": p_value,
        }
        if drop > rule.max_accuracy_drop:
            refused.append(
                f"accuracy fell by {drop:.1%} (at most {rule.max_accuracy_drop:.1%}, "
                "setting max_accuracy_drop)"
            )
        if worse > better and p_value < rule.significance:
            refused.append(
                f"McNemar's test finds it less accurate (p = {p_value:.3f} < "
                f"{rule.significance}, setting significance)"
            )
    result["passed"] = not refused
    if refused:
        result["refused"] = "; ".join(refused)
    return result


def describe(check: PrecisionCheck) -> str:
    """One line of a precision's comparison, with the test's numbers, for people."""
    text = f"{check.agreement:.1%} of {check.images} held-out photos kept fp32's answer"
    if check.accuracy is not None:
        text += (
            f", accuracy {check.fp32_accuracy:.1%} → {check.accuracy:.1%} "
            f"(McNemar p = {check.mcnemar_p:.2f})"
        )
    return text
