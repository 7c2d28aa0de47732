"""Assets of the ``models/`` group.

training_cache → trained_model (one MLflow run per architecture) → model_evaluation
(candidates and champion scored on the same split) → champion_model (alias, by margin)
→ training_report.
"""

from __future__ import annotations

from typing import Any

from fruitops_core.asset_keys import (
    CHAMPION_MODEL,
    DATA_VALIDATION,
    MODEL_EVALUATION,
    TRAINED_MODEL,
    TRAINING_CACHE,
    TRAINING_REPORT,
)
from fruitops_core.assets import AssetContext, asset, record
from fruitops_core.model_ref import ModelRef
from fruitops_data.records import TrainingCache, ValidationResult
from fruitops_models.config import CandidatesConfig, EvaluationConfig, PromotionConfig
from fruitops_models.records import Champion, Evaluation, TrainedModels

# torch, MLflow and the training code are imported inside the asset functions: the asset
# graph (and so every Airflow DAG file) must load in a moment, without them.


@asset(
    TRAINED_MODEL,
    deps=[TRAINING_CACHE, DATA_VALIDATION],
    config=CandidatesConfig,
    io=record(TrainedModels),
)
def trained_model(
    ctx: AssetContext[CandidatesConfig],
    training_cache: TrainingCache,
    data_validation: ValidationResult,
) -> TrainedModels:
    """One model per architecture, trained on the cache, tracked and registered in MLflow."""
    from fruitops_models.training_run import TrainingInputs, train_and_log

    inputs = TrainingInputs(
        training_cache, data_validation, ctx.lake, ctx.settings, ctx.run_id, ctx.tracking
    )
    candidates = []
    for arch in ctx.config.architectures:
        candidate = train_and_log(ctx.config.for_arch(arch), inputs)
        ctx.log.info(
            "%s: val macro-F1 %.3f, %s img/s",
            arch,
            candidate.metrics.get("val_macro_f1", 0.0),
            candidate.images_per_second,
        )
        candidates.append(candidate)
    ctx.add_metadata(
        **{f"{c.arch}_val_macro_f1": c.metrics.get("val_macro_f1") for c in candidates},
        versions=[c.version for c in candidates],
    )
    return TrainedModels(candidates=candidates, classes=training_cache.classes)


@asset(
    MODEL_EVALUATION,
    deps=[TRAINED_MODEL, TRAINING_CACHE],
    config=EvaluationConfig,
    io=record(Evaluation),
)
def model_evaluation(
    ctx: AssetContext[EvaluationConfig],
    trained_model: TrainedModels,
    training_cache: TrainingCache,
) -> Evaluation:
    """Every candidate and the current champion scored on the same split of the same data."""
    from fruitops_models.evaluation import score_versions

    result = score_versions(
        ctx.settings,
        ctx.tracking,
        ctx.lake,
        training_cache,
        trained_model.candidates,
        ctx.config.split,
    )
    ctx.add_metadata(
        split=ctx.config.split,
        best_candidate=result.best_candidate.version,
        champion_version=result.champion.version if result.champion else None,
    )
    return result


@asset(CHAMPION_MODEL, deps=[MODEL_EVALUATION], config=PromotionConfig, io=record(Champion))
def champion_model(ctx: AssetContext[PromotionConfig], model_evaluation: Evaluation) -> Champion:
    """The registry's champion after weighing the best candidate against it."""
    from fruitops_models.registry import promote_if_better

    decision = promote_if_better(ctx.tracking, model_evaluation, ctx.config.margin)
    current = ctx.tracking.champion()
    ctx.add_metadata(promoted=decision["promoted"], champion_version=int(current.version))
    ctx.log.info("promotion: %s", decision["reason"])
    return Champion(
        name=current.name,
        version=int(current.version),
        run_id=current.run_id,
        model_uri=ModelRef.pinned(current.name, current.version).uri,
        alias_uri=ctx.tracking.champion_uri,
        decision=decision,
    )


@asset(
    TRAINING_REPORT,
    deps=[TRAINED_MODEL, MODEL_EVALUATION, CHAMPION_MODEL],
)
def training_report(
    ctx: AssetContext,
    trained_model: TrainedModels,
    model_evaluation: Evaluation,
    champion_model: Champion,
) -> dict[str, Any]:
    """All candidates of the run in one table with their curves, the winner and why."""
    from fruitops_models.report import write_report

    uris = write_report(ctx, trained_model, model_evaluation, champion_model)
    ctx.add_metadata(**uris)
    return uris
