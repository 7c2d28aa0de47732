"""Training and evaluation of one architecture on the training cache.

The cache holds every image decoded and resized once as memory-mapped uint8 shards; the
loop gathers batches, augments them as tensors (`fruitops_models.augment`) and runs them in
bf16 + channels_last where the CPU has bf16, AMP on CUDA (`fruitops_models.hardware`). A
checkpoint after every epoch (`fruitops_models.checkpoints`) lets a retried task resume
where the last one stopped, bit for bit. Started by ``torchrun`` with several processes,
the same code trains with DistributedDataParallel.

The loop and its per-run state (`_Run`: optimiser, schedule, best epoch, history) stay in
one module, over 300 lines: every step reads and updates that state, and split apart it
would be read in two places. The recipe is `fruitops_models.optim`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fruitops_core.progress import progress_bar
from fruitops_data.cache import CachedSplit
from fruitops_models.architectures import (
    FruitClassifier,
    build_model,
    for_inference,
    keep_frozen_in_eval,
)
from fruitops_models.augment import load_batch, mix
from fruitops_models.checkpoints import Checkpointer, TrainState
from fruitops_models.config import LITE, SCRATCH, TrainConfig
from fruitops_models.efficientnet_lite import drop_frozen_prefix, fold_frozen_prefix
from fruitops_models.hardware import (
    augment_precision,
    autocast,
    autocast_dtype,
    device_for,
    dist_info,
    hardware_settings,
    init_distributed,
    share_buffers,
    unwrap,
    wrap_for_training,
)
from fruitops_models.metrics import classification_metrics
from fruitops_models.optim import class_weight_tensor, optimizer, warmup_cosine

log = logging.getLogger("fruitops.train")


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
    settings: dict[str, str] = field(default_factory=dict)  # what the hardware decided
    probe: dict[str, float] = field(default_factory=dict)  # the linear probe, if one ran


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: CachedSplit,
    num_classes: int,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    size: int | None = None,
) -> EvalResult:
    """Loss, accuracy, macro- and weighted-F1, top-5 and calibration error on a split, its
    images resized to ``size`` (default: the cache's).

    Batches of 32: on a CPU, 224 px batches of 128 overflow the caches and ran at 40 % of
    the speed. The model is evaluated through `for_inference` (BatchNorm folded)."""
    model = for_inference(model)
    device = next(model.parameters()).device
    probs, loss_sum = [], 0.0
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x, y = load_batch(data, idx, device, channels_last, size=size)
        with autocast(device, dtype):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        probs.append(torch.softmax(logits, 1).cpu().numpy())
    probabilities = np.concatenate(probs) if probs else np.zeros((0, num_classes), np.float32)
    metrics, confusion = classification_metrics(data.labels, probabilities, num_classes)
    metrics["loss"] = loss_sum / max(len(data), 1)
    return EvalResult(metrics, confusion, probabilities, np.asarray(data.labels))


def _check_inputs(train_data: CachedSplit, classes: list[str]) -> None:
    if len(classes) < 2:
        raise ValueError(
            f"training needs at least 2 classes, got {len(classes)}: check the "
            "class mapping and the manifest's train split"
        )
    if len(train_data) == 0:
        raise ValueError("the training split is empty: nothing to train on")


def moving_average(model: nn.Module, horizon_steps: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics over
    about ``horizon_steps`` steps (decay 1 − 1/horizon), or None for a horizon of 0."""
    if horizon_steps <= 0:
        return None
    decay = 1.0 - 1.0 / max(horizon_steps, 1.0)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class _Run:
    """One run's moving parts: what a step updates, the best epoch so far and the result.

    Built after seeding: a model it builds takes its initial weights from the global seed.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: FruitClassifier | None,
        train_data: CachedSplit,
        classes: list[str],
        device: torch.device,
        world: int,
    ):
        self.config, self.device, self.world = config, device, world
        model = (
            model
            or build_model(
                config.arch, len(classes), config.pretrained, config.weights, config.finetune
            )
        ).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # unwrapped: its state_dict is the checkpoint's
        self.wrapped = model  # what the steps call: DDP and compiled once resumed
        self.dtype = autocast_dtype(config, device)  # None: fp32
        self.augment_dtype = augment_precision(config, self.dtype)  # None: no augmentation
        self.optimizer = optimizer(config, model)
        steps_per_epoch = math.ceil(math.ceil(len(train_data) / world) / config.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.epochs * steps_per_epoch, config.warmup_fraction)
        )
        weight = (
            class_weight_tensor(train_data.labels, len(classes)).to(device)
            if config.class_weights
            else None
        )
        self.class_weight = weight
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
        self.ema_horizon = config.ema_epochs * steps_per_epoch
        self.ema = moving_average(model, self.ema_horizon)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype is torch.float16)
        self.generator = torch.Generator().manual_seed(config.seed)  # the epochs' orders
        self.result = TrainResult(
            model=unwrap(model),
            classes=classes,
            precision=str(self.dtype).removeprefix("torch.") if self.dtype else "fp32",
            weights=unwrap(model).weights,
            settings=hardware_settings(device, self.dtype, config),
        )
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_f1, self.stale = -1.0, 0  # stale: epochs since the best one
        self.seen = 0  # images this process trained on

    def resume(self, checkpointer: Checkpointer | None) -> int:
        """Restore what a killed try saved, if anything; the first epoch still to run."""
        saved = TrainState.load(checkpointer) if checkpointer else None
        if saved is None:
            return 1
        self.model.load_state_dict(saved.model)
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(saved.scheduler)
        self.generator.set_state(saved.generator)
        torch.set_rng_state(saved.torch_rng)
        self.best_state, self.best_f1, self.stale = saved.best_state, saved.best_f1, saved.stale
        if self.ema is not None and saved.ema is not None:
            self.ema.load_state_dict(saved.ema)
        self.result.history = list(saved.history)
        self.result.best_epoch = saved.best_epoch
        self.result.resumed_from_epoch = saved.epoch + 1
        return self.result.resumed_from_epoch

    def probe(self, data: CachedSplit, val: CachedSplit) -> None:
        """Fit the new head on the frozen network's features first (`fruitops_models.probe`)
        and validate it as epoch 0: fine-tuning is kept only where it beats the probe on
        val. The moving average starts from the probed model."""
        from fruitops_models.probe import probe_head

        config = self.config
        t0 = time.perf_counter()
        accuracy = probe_head(
            self.model,
            config.arch,
            data,
            len(self.result.classes),
            int(config.input_size or 0),
            config.min_crop_area or SCRATCH.min_crop_area,
            config.probe_views,
            self.class_weight,
        )
        if self.ema is not None:
            self.ema = moving_average(self.model, self.ema_horizon)
        f1 = self.validate(val)["macro_f1"]
        self.best_f1, self.result.best_epoch = f1, 0
        self.best_state = {k: v.detach().clone().cpu() for k, v in self.kept.state_dict().items()}
        self.result.probe = {"seconds": round(time.perf_counter() - t0, 1),
                             "train_accuracy": accuracy, "val_macro_f1": f1}  # fmt: skip
        log.info(
            "%s: head probed on %d views in %.1f s (train accuracy %.3f, val macro-F1 %.3f)",
            config.arch,
            config.probe_views,
            time.perf_counter() - t0,
            accuracy,
            f1,
        )

    def state(self, epoch: int) -> TrainState:
        return TrainState(
            epoch=epoch,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            generator=self.generator.get_state(),
            torch_rng=torch.get_rng_state(),
            best_state=self.best_state,
            best_f1=self.best_f1,
            stale=self.stale,
            best_epoch=self.result.best_epoch,
            history=self.result.history,
            ema=self.ema.state_dict() if self.ema is not None else None,
        )

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch (mixed up if configured): its loss and logits."""
        mixed = mix(x, self.config.mixup)
        with autocast(self.device, self.dtype):
            logits = self.wrapped(mixed.images)
            loss = mixed.loss(self.loss_fn, logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss, logits

    def train_epoch(self, data: CachedSplit, epoch: int, rank: int) -> dict[str, float]:
        """One pass over this rank's share of ``data``: its mean loss and accuracy."""
        config = self.config
        self.wrapped.train()
        keep_frozen_in_eval(self.model)
        order = torch.randperm(len(data), generator=self.generator).numpy()[rank :: self.world]
        min_area = config.min_crop_area or SCRATCH.min_crop_area
        loss_sum, correct = 0.0, 0
        with progress_bar(
            math.ceil(len(order) / config.batch_size),
            f"{config.arch} epoch {epoch}/{config.epochs}",
            "batches",
            disable=rank != 0,
        ) as bar:
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                x, y = load_batch(
                    data,
                    idx,
                    self.device,
                    config.channels_last,
                    self.augment_dtype,
                    config.input_size,
                    min_area,
                )
                loss, logits = self.step(x, y)
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                self.seen += len(y)
                bar.update()
                bar.note(f"loss {loss.item():.3f}")
        n = max(len(order), 1)
        return {"train_loss": loss_sum / n, "train_accuracy": correct / n}

    @property
    def kept(self) -> nn.Module:
        """The model validated and kept: the moving average of the weights, if there is one."""
        return self.ema.module if self.ema is not None else unwrap(self.model)

    def validate(self, data: CachedSplit) -> dict[str, float]:
        """Metrics of the model as it is now, the same on every rank."""
        model = self.kept
        if self.world > 1:
            share_buffers(model)
        return evaluate(
            model,
            data,
            len(self.result.classes),
            dtype=self.dtype,
            channels_last=self.config.channels_last,
            size=self.config.serve_size,
        ).metrics

    def record(
        self, epoch: int, trained: dict[str, float], val: dict[str, float]
    ) -> dict[str, float]:
        """The epoch's history row; keeps a copy of the weights if it is the best so far."""
        rates = self.scheduler.get_last_lr()
        row = {
            **trained,
            "lr": rates[0],  # the head's
            **({"backbone_lr": rates[1]} if len(rates) > 1 else {}),
            **{f"val_{k}": v for k, v in val.items() if k != "ece"},
        }
        self.result.history.append(row)
        if val["macro_f1"] > self.best_f1:
            self.best_f1, self.stale, self.result.best_epoch = val["macro_f1"], 0, epoch
            self.best_state = {
                k: v.detach().clone().cpu() for k, v in self.kept.state_dict().items()
            }
        else:
            self.stale += 1
        return row

    def log_epoch(self, epoch: int, row: dict[str, float]) -> None:
        """One line an epoch: the progress of a run without a terminal."""
        log.info(
            "%s epoch %d/%d: train loss %.3f, val macro-F1 %.3f (best %.3f, epoch %d)",
            self.config.arch,
            epoch,
            self.config.epochs,
            row["train_loss"],
            row["val_macro_f1"],
            self.best_f1,
            self.result.best_epoch,
        )

    def finish(self, seconds: float) -> TrainResult:
        """The result, holding the best epoch's weights in eval mode."""
        result = self.result
        result.seconds = seconds
        result.images_per_second = self.seen * self.world / seconds if seconds > 0 else 0.0
        drop_frozen_prefix(result.model.backbone)
        if self.best_state is not None:
            result.model.load_state_dict(self.best_state)
        result.model.eval()
        return result


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
    _check_inputs(train_data, classes)
    config = config.sized(train_data.shards[0].shape[-1]).fitted(len(train_data))
    rank, world = dist_info()
    device = device_for()
    init_distributed(world, device)
    seed_everything(config.seed)
    run = _Run(config, model, train_data, classes, device, world)
    start_epoch = run.resume(checkpointer)
    if start_epoch == 1 and config.probe_views:
        run.probe(train_data, val_data)
    if config.arch in LITE and config.finetune == "top":
        fold_frozen_prefix(run.model.backbone)  # the frozen part, folded: same numbers, faster
    run.wrapped = wrap_for_training(run.model, world, config.compile)

    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        trained = run.train_epoch(train_data, epoch, rank)
        row = run.record(epoch, trained, run.validate(val_data))
        if rank == 0:
            run.log_epoch(epoch, row)
            if on_epoch:
                on_epoch(epoch, row)
            if checkpointer:
                run.state(epoch).save(checkpointer)
        if run.stale >= config.patience:
            run.result.stopped_early = True
            if rank == 0:
                log.info(
                    "stopped early after epoch %d of %d: no val macro-F1 gain for %d epochs; "
                    "keeping epoch %d",
                    epoch,
                    config.epochs,
                    config.patience,
                    run.result.best_epoch,
                )
            break
    return run.finish(time.perf_counter() - t0)
