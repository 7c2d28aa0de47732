"""Training and evaluation of one architecture on the training cache.

The cache holds every image decoded and resized once as memory-mapped uint8 shards; the
loop only gathers, flips and scales batches, so no JPEG is decoded while training.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fruitops_data.cache import CachedSplit
from fruitops_models.architectures import FruitClassifier, build_model
from fruitops_models.config import TrainConfig


@dataclass
class TrainResult:
    model: FruitClassifier
    classes: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def macro_f1(confusion: np.ndarray) -> float:
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(0), 1)
    recall = tp / np.maximum(confusion.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    present = (confusion.sum(1) + confusion.sum(0)) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def _augment(batch: torch.Tensor) -> torch.Tensor:
    """Random horizontal and vertical flips on a uint8 batch (fruit has no up or down)."""
    flip_h = torch.rand(batch.shape[0]) < 0.5
    flip_v = torch.rand(batch.shape[0]) < 0.5
    batch = batch.clone()
    batch[flip_h] = batch[flip_h].flip(-1)
    batch[flip_v] = batch[flip_v].flip(-2)
    return batch


def _to_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float().div_(255.0)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: CachedSplit, num_classes: int, batch_size: int = 128
) -> tuple[dict[str, float], np.ndarray]:
    """Loss, accuracy, macro-F1 and top-5 accuracy, and the confusion matrix."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    loss_sum, top5 = 0.0, 0
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x = _to_float(torch.from_numpy(data.take(idx)))
        y = torch.from_numpy(data.labels[idx])
        logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        pred = logits.argmax(1)
        np.add.at(confusion, (y.numpy(), pred.numpy()), 1)
        k = min(5, num_classes)
        top5 += (logits.topk(k, 1).indices == y[:, None]).any(1).sum().item()
    n = max(len(data), 1)
    metrics = {
        "loss": loss_sum / n,
        "accuracy": float(np.trace(confusion) / n),
        "macro_f1": macro_f1(confusion),
        "top5": top5 / n,
    }
    return metrics, confusion


def train(
    config: TrainConfig,
    train_data: CachedSplit,
    val_data: CachedSplit,
    classes: list[str],
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``config.arch`` with AdamW and a cosine schedule; keep the best val macro-F1."""
    seed_everything(config.seed)
    model = build_model(config.arch, len(classes))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps = config.epochs * math.ceil(len(train_data) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(steps, 1)
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    result = TrainResult(model=model, classes=classes)
    best_state, best_f1 = None, -1.0
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_data), generator=generator).numpy()
        loss_sum, correct = 0.0, 0
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f"{config.arch} epoch {epoch}",
            unit="batch",
            leave=False,
        )
        for start in bar:
            idx = order[start : start + config.batch_size]
            x = _to_float(_augment(torch.from_numpy(train_data.take(idx))))
            y = torch.from_numpy(train_data.labels[idx])
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val_metrics, _ = evaluate(model, val_data, len(classes))
        row = {
            "train_loss": loss_sum / len(order),
            "train_accuracy": correct / len(order),
            **{f"val_{k}": v for k, v in val_metrics.items()},
        }
        result.history.append(row)
        if on_epoch:
            on_epoch(epoch, row)
        if val_metrics["macro_f1"] > best_f1:
            best_f1 = val_metrics["macro_f1"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
