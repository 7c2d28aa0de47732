"""Linear probing: the new head fitted on the pretrained network's features before fine-tuning.

A fresh head is random, and its first gradients push the pretrained layers hardest exactly
when they tell the pretrained layers least. Fitting the head first on the frozen network's
features (a logistic regression, seconds on cached features) and fine-tuning from there
(LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution", ICLR 2022) moves the pretrained features less: better on photos
from other sessions than the training ones, and a good model in fewer epochs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fruitops_data.cache import CachedSplit
from fruitops_models.architectures import FruitClassifier, for_inference, head_layer
from fruitops_models.augment import load_batch

#: L2 penalty of the probe, on the mean loss: weak, the fine-tuning goes on from it
PROBE_L2 = 1e-4


@torch.no_grad()
def head_inputs(
    model: FruitClassifier,
    arch: str,
    data: CachedSplit,
    views: int,
    size: int,
    min_area: float,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the head sees of ``views`` augmented crops of every image (the training
    augmentation, at the training size): features N·views × D and their labels."""
    frozen = for_inference(model)
    device = next(frozen.parameters()).device
    seen: list[torch.Tensor] = []
    hook = head_layer(frozen, arch).register_forward_hook(
        lambda _module, args, _out: seen.append(args[0].float().cpu())
    )
    labels = []
    try:
        for _ in range(views):
            for start in range(0, len(data), batch_size):
                idx = np.arange(start, min(start + batch_size, len(data)))
                x, y = load_batch(data, idx, device, True, torch.float32, size, min_area)
                frozen(x)
                labels.append(y.cpu())
    finally:
        hook.remove()
    return torch.cat(seen), torch.cat(labels)


def fit_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    class_weight: torch.Tensor | None = None,
    steps: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS: the weight (C × D) and bias (C)."""
    weight = torch.zeros(num_classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    solver = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        solver.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels, weight=class_weight)
        loss = loss + PROBE_L2 / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    solver.step(closure)
    return weight.detach(), bias.detach()


def probe_head(
    model: FruitClassifier,
    arch: str,
    data: CachedSplit,
    num_classes: int,
    size: int,
    min_area: float,
    views: int,
    class_weight: torch.Tensor | None = None,
) -> float:
    """Fit ``model``'s head on its frozen features of ``data``; the probe's train accuracy."""
    features, labels = head_inputs(model, arch, data, views, size, min_area)
    cw = class_weight.cpu() if class_weight is not None else None
    weight, bias = fit_probe(features, labels, num_classes, cw)
    head: nn.Linear = head_layer(model, arch)
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight.device))
        head.bias.copy_(bias.to(head.bias.device))
    return float(((features @ weight.T + bias).argmax(1) == labels).float().mean())
