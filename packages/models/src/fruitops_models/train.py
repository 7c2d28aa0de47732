"""Training and evaluation of one architecture on the training cache.

The cache holds every image decoded and resized once as memory-mapped uint8 shards; the
loop gathers batches, augments them as tensors (random resized crop, flip, colour jitter)
and runs them in bf16 + channels_last where the CPU has bf16 (AMP on CUDA). A checkpoint
after every epoch lets a retried task resume where the last one stopped, bit for bit.
Started by ``torchrun`` with several processes, the same code trains with
DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fruitops_core.progress import progress_bar
from fruitops_data.cache import CachedSplit
from fruitops_models.architectures import (
    FruitClassifier,
    build_model,
    head_parameters,
    keep_frozen_in_eval,
)
from fruitops_models.config import SCRATCH, TrainConfig
from fruitops_models.hardware import cpu_has_bf16
from fruitops_models.metrics import classification_metrics

log = logging.getLogger("fruitops.train")


class Checkpointer(Protocol):
    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


@dataclass
class EvalResult:
    metrics: dict[str, float]
    confusion: np.ndarray
    probabilities: np.ndarray  # N×C
    labels: np.ndarray  # N


@dataclass
class TrainResult:
    model: FruitClassifier
    classes: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0
    precision: str = "fp32"
    weights: dict[str, str] = field(default_factory=dict)  # pretrained weights' provenance


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dist_info() -> tuple[int, int]:
    """(rank, world size) when started by torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def device_for() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it, fp16 AMP on older GPUs, else None (fp32)."""
    if config.precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if config.precision == "bf16" or cpu_has_bf16():
        return torch.bfloat16
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights; they sum to 1


def _resampling(start: torch.Tensor, length: torch.Tensor, size: int, out: int) -> torch.Tensor:
    """B×out×size bilinear weights that stretch ``[start, start + length)`` over ``out`` pixels.

    Row ``i`` of image ``b`` holds the two weights of output pixel ``i`` (align_corners=False,
    edges clamped), so ``matrix @ axis`` crops and resizes that axis in one matmul.
    """
    centres = (torch.arange(out, dtype=torch.float32) + 0.5) / out
    source = (start[:, None] + centres[None] * length[:, None] - 0.5).clamp(0, size - 1)
    low = source.floor().long().clamp(max=max(size - 2, 0))
    frac = source - low
    weights = torch.zeros(len(start), out, size)
    weights.scatter_add_(2, low[..., None], (1 - frac)[..., None])
    weights.scatter_add_(2, (low + 1).clamp(max=size - 1)[..., None], frac[..., None])
    return weights


def augment(
    images: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    size: int | None = None,
    min_area: float = SCRATCH.min_crop_area,
) -> torch.Tensor:
    """Random resized crop, horizontal flip and colour jitter: uint8 B×3×H×W → float [0, 1].

    The crops are resized to ``size`` × ``size`` (default: the input's side).

    The output is channels_last, as the model wants it. Crop, resize and flip are one bilinear
    resampling per axis, i.e. two batched matmuls with per-image interpolation matrices;
    brightness, contrast and saturation together are one 3×3 colour matrix per image. On CPU
    this is ~3× faster than ``grid_sample`` followed by elementwise jitter, which counts when a
    small model's step takes a few hundred ms. ``dtype`` is the matmuls' precision (bf16 where
    the model trains in bf16: its first layer rounds the pixels to bf16 anyway).
    """
    b, channels, h, w = images.shape
    oh = ow = size or h
    area = torch.empty(b).uniform_(min_area, 1.0)
    ratio = torch.exp(torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3)))
    crop_w = torch.sqrt(area * ratio).clamp(max=1.0)
    crop_h = torch.sqrt(area / ratio).clamp(max=1.0)
    left = torch.rand(b) * (1 - crop_w)
    top = torch.rand(b) * (1 - crop_h)
    flip = torch.rand(b) < 0.5
    brightness, contrast, saturation = torch.empty(3, b).uniform_(0.75, 1.25)

    columns = _resampling(left * w, crop_w * w, w, ow)
    columns[flip] = columns[flip].flip(1)  # output column j reads what column ow-1-j would
    rows = _resampling(top * h, crop_h * h, h, oh)
    pixels = images.to(dtype).view(b, channels * h, w)
    pixels = torch.bmm(pixels, columns.transpose(1, 2).to(images.device, dtype))
    pixels = torch.matmul(rows.to(images.device, dtype)[:, None], pixels.view(b, channels, h, ow))
    h, w = oh, ow
    pixels = pixels.float()

    # brightness β, then contrast κ around the image mean m, then saturation σ around the
    # pixel's grey level: all linear, so together x ↦ κβ·M·x + (1-κ)β·m, where
    # M = σI + (1-σ)·1·greyᵀ (and M·1 = 1 because the grey weights sum to 1)
    mean = pixels.mean(dim=(1, 2, 3)) / 255.0
    grey = torch.tensor(GREY).expand(3, 3)
    mix = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * grey
    colour = (contrast * brightness / 255.0)[:, None, None] * mix  # B×3×3, row = out channel
    offset = ((1 - contrast) * brightness).to(images.device) * mean
    out = torch.empty(b, h * w, channels, device=images.device)  # NHWC memory: channels_last
    torch.baddbmm(
        offset[:, None, None].expand(b, 1, channels),
        pixels.view(b, channels, h * w).transpose(1, 2),
        colour.transpose(1, 2).to(images.device),
        out=out,
    )
    return out.view(b, h, w, channels).permute(0, 3, 1, 2).clamp_(0.0, 1.0)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Float images to ``size`` × ``size`` (antialiased when shrinking), as serving resizes."""
    if size is None or x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _batch(
    split: CachedSplit,
    idx: np.ndarray,
    device: torch.device,
    channels_last: bool,
    augment_dtype: torch.dtype | None = None,
    size: int | None = None,
    min_area: float = SCRATCH.min_crop_area,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images at ``idx`` as float [0, 1] on ``device`` at ``size`` (default: the cache's),
    augmented when ``augment_dtype`` is set."""
    pixels = torch.from_numpy(split.take(idx)).to(device)
    if augment_dtype is not None:
        x = augment(pixels, augment_dtype, size, min_area)
        if not channels_last:
            x = x.contiguous()
    else:
        x = resize(pixels.float().div_(255.0), size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(split.labels[idx]).to(device)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: CachedSplit,
    num_classes: int,
    batch_size: int = 128,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    size: int | None = None,
) -> EvalResult:
    """Loss, accuracy, macro- and weighted-F1, top-5 and calibration error on a split, its
    images resized to ``size`` (default: the cache's)."""
    model.eval()
    device = next(model.parameters()).device
    probs, loss_sum = [], 0.0
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x, y = _batch(data, idx, device, channels_last, size=size)
        with _autocast(device, dtype):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        probs.append(torch.softmax(logits, 1).cpu().numpy())
    probabilities = np.concatenate(probs) if probs else np.zeros((0, num_classes), np.float32)
    metrics, confusion = classification_metrics(data.labels, probabilities, num_classes)
    metrics["loss"] = loss_sum / max(len(data), 1)
    return EvalResult(metrics, confusion, probabilities, np.asarray(data.labels))


@dataclass
class Mixed:
    """A batch after mixup: each image blended with another of the batch by ``share``."""

    images: torch.Tensor
    share: float = 1.0
    partner: torch.Tensor | None = None  # the other image's index, None when not mixed

    def loss(self, loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.partner is None:
            return loss_fn(logits, y)
        return self.share * loss_fn(logits, y) + (1 - self.share) * loss_fn(logits, y[self.partner])


def mix(images: torch.Tensor, alpha: float) -> Mixed:
    """Mixup (Zhang et al. 2018) with a Beta(alpha, alpha) share; alpha 0 leaves the batch."""
    if alpha <= 0:
        return Mixed(images)
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(len(images), device=images.device)
    return Mixed(share * images + (1 - share) * images[partner], share, partner)


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


def _unwrap(model: nn.Module) -> FruitClassifier:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def train(
    config: TrainConfig,
    train_data: CachedSplit,
    val_data: CachedSplit,
    classes: list[str],
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    checkpointer: Checkpointer | None = None,
    model: FruitClassifier | None = None,
) -> TrainResult:
    """Train with AdamW, warm-up + cosine, label smoothing, class weights, early stopping.

    The head learns at ``lr``, the rest at ``lr × backbone_lr_ratio`` (fine-tuning moves
    ImageNet weights less than a fresh head); frozen layers keep their BatchNorm statistics.
    The kept model is the epoch with the best val macro-F1.
    """
    if len(classes) < 2:
        raise ValueError(
            f"training needs at least 2 classes, got {len(classes)}: check the "
            "class mapping and the manifest's train split"
        )
    if len(train_data) == 0:
        raise ValueError("the training split is empty: nothing to train on")
    config = config.sized(train_data.shards[0].shape[-1])
    rank, world = dist_info()
    device = device_for()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    seed_everything(config.seed)
    model = (
        model
        or build_model(
            config.arch, len(classes), config.pretrained, config.weights, config.finetune
        )
    ).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(config, device)
    augment_dtype = None
    if config.augment:
        augment_dtype = torch.bfloat16 if dtype is torch.bfloat16 else torch.float32
    head = {id(p) for p in head_parameters(_unwrap(model), config.arch)}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trained if id(p) in head], "lr": config.lr},
        {
            "params": [p for p in trained if id(p) not in head],
            "lr": config.lr * config.backbone_lr_ratio,
        },
    ]
    # fused: one kernel for the whole update instead of a dozen passes per parameter list
    optimizer = torch.optim.AdamW(
        [g for g in groups if g["params"]], weight_decay=config.weight_decay, fused=True
    )
    per_rank = math.ceil(len(train_data) / world)
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.epochs * steps_per_epoch, config.warmup_fraction)
    )
    weight = (
        class_weight_tensor(train_data.labels, len(classes)).to(device)
        if config.class_weights
        else None
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(
        model=_unwrap(model),
        classes=classes,
        precision=str(dtype).removeprefix("torch.") if dtype else "fp32",
        weights=_unwrap(model).weights,
    )
    best_state, best_f1, stale, start_epoch = None, -1.0, 0, 1

    saved = checkpointer.load() if checkpointer else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        best_state, best_f1, stale = saved["best_state"], saved["best_f1"], saved["stale"]
        result.history = list(saved["history"])
        result.best_epoch = saved["best_epoch"]
        start_epoch = result.resumed_from_epoch = saved["epoch"] + 1

    wrapped: nn.Module = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        wrapped = torch.compile(wrapped)
    seen, t0 = 0, time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        wrapped.train()
        keep_frozen_in_eval(model)
        order = torch.randperm(len(train_data), generator=generator).numpy()[rank::world]
        loss_sum, correct = 0.0, 0
        with progress_bar(
            math.ceil(len(order) / config.batch_size),
            f"{config.arch} epoch {epoch}/{config.epochs}",
            "batches",
            disable=rank != 0,
        ) as bar:
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                x, y = _batch(
                    train_data,
                    idx,
                    device,
                    config.channels_last,
                    augment_dtype,
                    config.input_size,
                    config.min_crop_area or SCRATCH.min_crop_area,
                )
                mixed = mix(x, config.mixup)
                with _autocast(device, dtype):
                    logits = wrapped(mixed.images)
                    loss = mixed.loss(loss_fn, logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                bar.update()
                bar.note(f"loss {loss.item():.3f}")
        if world > 1:  # BatchNorm statistics are per process: take rank 0's everywhere, so
            # every replica scores the same model and makes the same early-stopping call
            for buffer in _unwrap(model).buffers():
                torch.distributed.broadcast(buffer, src=0)
        val = evaluate(
            _unwrap(model),
            val_data,
            len(classes),
            dtype=dtype,
            channels_last=config.channels_last,
            size=config.serve_size,
        ).metrics
        rates = scheduler.get_last_lr()
        row = {
            "train_loss": loss_sum / max(len(order), 1),
            "train_accuracy": correct / max(len(order), 1),
            "lr": rates[0],  # the head's
            **({"backbone_lr": rates[1]} if len(rates) > 1 else {}),
            **{f"val_{k}": v for k, v in val.items() if k != "ece"},
        }
        result.history.append(row)
        if val["macro_f1"] > best_f1:
            best_f1, stale, result.best_epoch = val["macro_f1"], 0, epoch
            best_state = {
                k: v.detach().clone().cpu() for k, v in _unwrap(model).state_dict().items()
            }
        else:
            stale += 1
        if rank == 0:  # one line an epoch: the progress of a run without a terminal
            log.info(
                "%s epoch %d/%d: train loss %.3f, val macro-F1 %.3f (best %.3f, epoch %d)",
                config.arch,
                epoch,
                config.epochs,
                row["train_loss"],
                val["macro_f1"],
                best_f1,
                result.best_epoch,
            )
        if on_epoch and rank == 0:
            on_epoch(epoch, row)
        if checkpointer and rank == 0:
            checkpointer.save(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best_state": best_state,
                    "best_f1": best_f1,
                    "stale": stale,
                    "best_epoch": result.best_epoch,
                    "history": result.history,
                }
            )
        if stale >= config.patience:
            result.stopped_early = True
            break
    result.seconds = time.perf_counter() - t0
    result.images_per_second = seen * world / result.seconds if result.seconds > 0 else 0.0
    if best_state is not None:
        result.model.load_state_dict(best_state)
    result.model.eval()
    return result


def torch_state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def torch_state_load(data: bytes) -> dict[str, Any]:
    """Load a checkpoint safely: tensors and plain containers only (weights_only=True)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
