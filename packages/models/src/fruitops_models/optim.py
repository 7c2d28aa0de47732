"""The optimisation recipe: AdamW with the head and the backbone at their own learning rates,
a warmup-cosine schedule, and class weights that let rare classes count.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fruitops_models.architectures import head_parameters
from fruitops_models.config import TrainConfig
from fruitops_models.hardware import unwrap


def class_weight_tensor(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1: rare classes count as much as common ones."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights / max(weights[counts > 0].mean(), 1e-12), dtype=torch.float32)


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warm = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW with the head at ``lr`` and the rest at ``lr × backbone_lr_ratio``."""
    head = {id(p) for p in head_parameters(unwrap(model), config.arch)}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trained if id(p) in head], "lr": config.lr},
        {
            "params": [p for p in trained if id(p) not in head],
            "lr": config.lr * config.backbone_lr_ratio,
        },
    ]
    # fused: one kernel for the whole update instead of a dozen passes per parameter list
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], weight_decay=config.weight_decay, fused=True
    )
