"""One architecture trained and tracked completely: an MLflow run with everything in it.

Params, per-epoch curves, final val/test metrics, plots, per-class table, sample grid, the
validation result, tags (data hash, validation, source, code version), and the model logged
and registered with what serving needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fruitops_core.lake import Lake
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import TrackedRun, Tracking
from fruitops_data.cache import CachedSplit, open_split
from fruitops_data.records import TrainingCache, ValidationResult
from fruitops_models import plots
from fruitops_models.augment import resize
from fruitops_models.card import CardFacts, SplitScores, per_class_rows, publish_card, render_card
from fruitops_models.checkpoints import LakeCheckpointer, checkpoint_prefix
from fruitops_models.config import TrainConfig
from fruitops_models.hardware import autocast_dtype, device_for
from fruitops_models.metrics import bootstrap_interval, per_class_table
from fruitops_models.records import Candidate
from fruitops_models.registry import log_and_register
from fruitops_models.train import EvalResult, TrainResult, evaluate, train

if TYPE_CHECKING:
    from mlflow.entities import Run


@dataclass
class TrainingInputs:
    cache: TrainingCache  # the data/training_cache value
    validation: ValidationResult  # the data/data_validation value
    lake: Lake
    settings: FruitOpsSettings
    run_id: str  # the asset run: checkpoints of a retry are found under it
    tracking: Tracking  # the MLflow resource (ctx.tracking)


def open_splits(
    lake: Lake, cache: TrainingCache, settings: FruitOpsSettings
) -> dict[str, CachedSplit]:
    """The cache's train, val and test splits, copied to this machine once."""
    return {s: open_split(lake, cache, s, settings.local_cache) for s in ("train", "val", "test")}


def _sample_grid(split: CachedSplit, result: EvalResult, classes: list[str], title: str):
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(split), size=min(18, len(split)), replace=False))
    predicted = result.probabilities[idx].argmax(1)
    return plots.sample_grid(
        split.take(idx),
        [classes[i] for i in split.labels[idx]],
        [classes[i] for i in predicted],
        title,
    )


CANDIDATE_ARTIFACT = "candidate.json"


def training_key(config: TrainConfig, inputs: TrainingInputs) -> str:
    """Same asset run, config and data → same key: the identity of one training."""
    payload = {
        "run": inputs.run_id,
        "config": config.model_dump(mode="json"),
        "data": inputs.cache.manifest_hash,
        "image_size": inputs.cache.image_size,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def previous_run(tracking: Tracking, key: str) -> Run | None:
    """The latest MLflow run of this training, if an earlier try started one."""
    runs = tracking.search_runs(f"tags.fruitops_training_key = '{key}'", max_results=1)
    return runs[0] if runs else None


def train_and_log(config: TrainConfig, inputs: TrainingInputs) -> Candidate:
    """Train ``config.arch`` on the cache inside an MLflow run; register the model with its
    card.

    Idempotent per asset run: a retry (or the collecting task after an Airflow mapped task)
    gets the finished run's candidate back instead of a second run and model version; an
    unfinished run is continued, from its last checkpoint.
    """
    config = config.sized(inputs.cache.image_size)
    tracking = inputs.tracking
    key = training_key(config, inputs)
    earlier = previous_run(tracking, key)
    if earlier is not None and earlier.info.status == "FINISHED":
        try:
            return Candidate.model_validate(
                tracking.load_dict(f"runs:/{earlier.info.run_id}/{CANDIDATE_ARTIFACT}")
            )
        except Exception:  # noqa: BLE001 - finished without its record: train it again
            earlier = None
    classes = list(inputs.cache.classes)
    splits = open_splits(inputs.lake, inputs.cache, inputs.settings)
    config = config.fitted(len(splits["train"]))  # logged as it trains
    checkpointer = LakeCheckpointer(
        inputs.lake,
        checkpoint_prefix(
            inputs.run_id, config, f"{inputs.cache.manifest_hash}-{inputs.cache.image_size}"
        ),
    )
    with tracking.start_run(
        kind="training",
        run_name=f"{config.arch}-{inputs.run_id}",
        tags=_run_tags(config, inputs, key),
        run_id=earlier.info.run_id if earlier is not None else None,
    ) as run:
        run.log_params(_params(config, inputs, splits))
        result = train(
            config,
            splits["train"],
            splits["val"],
            classes,
            checkpointer=checkpointer,
            on_epoch=lambda epoch, row: run.log_metrics(
                {f"epoch/{k}": v for k, v in row.items()}, step=epoch
            ),
        )
        run.log_params({**result.weights, **result.settings})
        evaluated = _evaluate_and_log(result, splits, config, run)
        # per-epoch curves live under epoch/…; the plain names hold the kept model's scores
        final: dict[str, float] = {
            "best_epoch": result.best_epoch,
            "train_seconds": result.seconds,
            "train_images_per_second": result.images_per_second,
            **{f"probe_{k}": v for k, v in result.probe.items()},
            **{f"{s}_{k}": v for s, e in evaluated.items() for k, v in e.metrics.items()},
        }
        run.log_metrics(final)
        run.log_figure(
            plots.training_curves(result.history, f"{config.arch} training"),
            "plots/training_curves.png",
        )
        run.log_dict({"classes": classes}, "classes.json")
        run.log_dict(inputs.validation, "validation/result.json")
        run.set_tags(
            {
                "precision": result.precision,
                "stopped_early": str(result.stopped_early),
                "resumed_from_epoch": str(result.resumed_from_epoch),
            }
        )
        registered = _register(result, splits, config, run)
        card = _card(config, inputs, splits, result, evaluated, registered, run.run_id)
        publish_card(card, registered["name"], registered["version"], run, inputs.lake)
        candidate = Candidate(
            arch=config.arch,
            run_id=run.run_id,
            metrics={k: float(v) for k, v in final.items()},  # as logged: shown alike
            history=result.history,
            seconds=round(result.seconds, 2),
            images_per_second=round(result.images_per_second, 1),
            precision=result.precision,
            **registered,
        )
        run.log_dict(candidate.model_dump(mode="json"), CANDIDATE_ARTIFACT)
    return candidate


def _run_tags(config: TrainConfig, inputs: TrainingInputs, key: str) -> dict[str, str]:
    return {
        "fruitops_asset_run_id": inputs.run_id,
        "manifest_hash": inputs.cache.manifest_hash,
        "validation_success": str(inputs.validation.success),
        "dataset_source": inputs.cache.source or "",
        "code_version": version("fruitops-models"),
        "arch": config.arch,
        "fruitops_training_key": key,
    }


def _params(
    config: TrainConfig, inputs: TrainingInputs, splits: dict[str, CachedSplit]
) -> dict[str, Any]:
    return {
        **{k: v for k, v in config.model_dump().items() if k != "architectures"},
        "image_size": config.serve_size,  # what the logged model takes
        "cache_image_size": inputs.cache.image_size,
        "classes": len(inputs.cache.classes),
        "train_images": len(splits["train"]),
        "data_source": inputs.cache.source or "",
    }


def _evaluate_and_log(
    result: TrainResult, splits: dict[str, CachedSplit], config: TrainConfig, run: TrackedRun
) -> dict[str, EvalResult]:
    """The kept model scored on val and test (those that have photos), with its per-class
    table, F1 chart, confusion matrix and sample grid logged for each."""
    classes = result.classes
    dtype = autocast_dtype(config, device_for())
    evaluated = {}
    for split in ("val", "test"):
        if len(splits[split]) == 0:
            continue
        evaluated[split] = e = evaluate(
            result.model,
            splits[split],
            len(classes),
            dtype=dtype,
            channels_last=config.channels_last,
            size=config.serve_size,
        )
        table = per_class_table(e.confusion, classes)
        run.log_table(table, f"per_class/{split}.json")
        run.log_figure(
            plots.per_class_f1(table, f"{config.arch}: {split} F1 per class"),
            f"plots/per_class_f1_{split}.png",
        )
        run.log_figure(
            plots.confusion_matrix(e.confusion, classes, f"{split} confusion"),
            f"plots/confusion_{split}.png",
        )
        run.log_figure(
            _sample_grid(splits[split], e, classes, f"{config.arch}: {split} samples"),
            f"plots/samples_{split}.png",
        )
    return evaluated


def _register(
    result: TrainResult, splits: dict[str, CachedSplit], config: TrainConfig, run: TrackedRun
) -> dict[str, Any]:
    """Log the kept model (fp32, contiguous: as any loader expects it) and register it."""
    example_split = "val" if len(splits["val"]) >= 2 else "train"
    example = torch.from_numpy(splits[example_split].take(np.arange(2))).float() / 255
    return log_and_register(
        result.model.float().cpu().to(memory_format=torch.contiguous_format),
        result.classes,
        int(config.serve_size or 0),
        resize(example, config.serve_size),
        run,
        config.arch,
    )


def _card(
    config: TrainConfig,
    inputs: TrainingInputs,
    splits: dict[str, CachedSplit],
    result: TrainResult,
    evaluated: dict[str, EvalResult],
    registered: dict[str, Any],
    run_id: str,
) -> str:
    scores = {}
    for split, e in evaluated.items():
        interval = bootstrap_interval(e.labels, e.probabilities.argmax(1), len(result.classes))
        scores[split] = SplitScores(
            photos=len(e.labels),
            accuracy=e.metrics["accuracy"],
            accuracy_interval=interval["accuracy"],
            macro_f1=e.metrics["macro_f1"],
            macro_f1_interval=interval["macro_f1"],
            top5=e.metrics["top5"],
            ece=e.metrics["ece"],
        )
    shown = evaluated.get("test") or evaluated.get("val")
    facts = CardFacts(
        name=registered["name"],
        version=registered["version"],
        arch=config.arch,
        run_id=run_id,
        source=inputs.cache.source or "",
        manifest_hash=inputs.cache.manifest_hash,
        classes=result.classes,
        photos={s: len(d) for s, d in splits.items()},
        validation_success=inputs.validation.success,
        validation_messages=list(inputs.validation.messages),
        recipe={k: v for k, v in config.model_dump().items() if k not in ("architectures",)},
        weights=result.weights,
        precision=result.precision,
        hardware=result.settings.get("hardware", ""),
        train_seconds=result.seconds,
        images_per_second=result.images_per_second,
        epochs_run=len(result.history),
        best_epoch=result.best_epoch,
        scores=scores,
        per_class=per_class_rows(per_class_table(shown.confusion, result.classes)) if shown else [],
    )
    return render_card(facts)
