"""Assets of the ``serving/`` group.

precision_gate (which precision serves the champion: int8 and bf16 of each back end against
fp32 on the training cache's held-out split, `fruitops_serving.gate`) → batch_predictions
(the incoming batch scored by the champion in the precision the gate chose,
`fruitops_serving.scoring`).
"""

from __future__ import annotations

from typing import Any

from fruitops_core.asset_keys import (
    BATCH_PREDICTIONS,
    CHAMPION_MODEL,
    INCOMING_BATCH,
    PRECISION_GATE,
    TRAINING_CACHE,
)
from fruitops_core.assets import AssetContext, asset, record
from fruitops_core.lake import lake_from_uri
from fruitops_data.records import IncomingBatch, TrainingCache
from fruitops_models.records import Champion
from fruitops_serving.config import (
    LATEST_PREDICTIONS,
    PrecisionGateConfig,
    ScoringConfig,
    dated_folder,
)
from fruitops_serving.records import PrecisionGate, ScoredBatch

# torch, OpenVINO and MLflow are imported inside the asset functions: the asset graph (and
# so every Airflow DAG file) must load in a moment, without them.


def _gate_inputs(ctx: AssetContext[PrecisionGateConfig], **upstream: Any) -> dict[str, Any]:
    """What a verdict is made of: kept while it is the same (`fruitops_serving.gate`)."""
    from fruitops_serving.gate import gate_inputs

    return gate_inputs(ctx, **upstream)


@asset(
    PRECISION_GATE,
    deps=[CHAMPION_MODEL, TRAINING_CACHE],
    config=PrecisionGateConfig,
    io=record(PrecisionGate),
    reuse_key=_gate_inputs,
)
def precision_gate(
    ctx: AssetContext[PrecisionGateConfig],
    champion_model: Champion,
    training_cache: TrainingCache,
) -> PrecisionGate:
    """Which precision serves the champion: int8 and bf16 against fp32 on held-out photos."""
    from fruitops_serving.gate import check_precision

    return check_precision(ctx, champion_model, training_cache)


@asset(
    BATCH_PREDICTIONS,
    deps=[INCOMING_BATCH, CHAMPION_MODEL, PRECISION_GATE],
    config=ScoringConfig,
    io=record(ScoredBatch),
)
def batch_predictions(
    ctx: AssetContext[ScoringConfig],
    incoming_batch: IncomingBatch,
    champion_model: Champion | None,
    precision_gate: PrecisionGate | None,
) -> ScoredBatch:
    """The incoming batch scored into a predictions table; undecodable files quarantined.

    `fruitops score` runs this function too (`run_asset`), on the folder it is given, the
    model named in the config (no champion record: None) and no stored gate (None: the gate
    is read, or made, for the model loaded).
    """
    from fruitops_core.lake import object_at
    from fruitops_models.registry import load_model
    from fruitops_serving.gate import choose_predictor
    from fruitops_serving.inputs import ScoringInput
    from fruitops_serving.scoring import score

    config = ctx.config
    model = load_model(ctx.tracking, config.model_uri or champion_model.model_uri)
    predictor, gate = choose_predictor(
        model,
        ctx.lake,
        ctx.settings,
        config.precision,
        config.backend,
        gate=precision_gate,
        tracking=ctx.tracking,
    )
    source = ScoringInput(
        lake_from_uri(incoming_batch.uri, endpoint_url=ctx.settings.s3_endpoint, strict=True),
        incoming_batch.keys,
        incoming_batch.description or incoming_batch.uri,
        incoming_batch.ignored,
    )
    folder = dated_folder(config.date) if config.date else ctx.asset_dir
    if config.output:  # a table where the caller chose: nothing else is written beside it
        target, key = object_at(config.output, ctx.settings.s3_endpoint)
    else:
        target, key = ctx.lake, f"{folder}/predictions.{config.format}"
    summary = score(source, predictor, target, key, fmt=config.format, batch_size=config.batch_size)
    quarantine_uri = None  # with an output, the list is in the value (and `score --json`)
    if not config.output:
        quarantine_uri = ctx.lake.write_json(f"{folder}/quarantine.json", summary["quarantined"])
    if config.date or config.output:  # `fruitops monitor drift` takes the last one by default
        latest = {"predictions_uri": summary["predictions_uri"], "date": config.date}
        ctx.lake.write_json(LATEST_PREDICTIONS, latest)
    ctx.add_metadata(
        images=summary["images"],
        scored=summary["scored"],
        quarantined=len(summary["quarantined"]),
        ignored=len(summary["ignored"]),
        quarantine_uri=quarantine_uri,
        predictions_uri=summary["predictions_uri"],
        model_uri=model.uri,
        model_version=model.version,
        precision=summary["precision"],
        backend=summary["backend"],
        images_per_second=summary["images_per_second"],
    )
    if summary["quarantined"]:
        ctx.log.warning(
            "%d files quarantined, see %s",
            len(summary["quarantined"]),
            quarantine_uri or "the result's `quarantined`",
        )
    return ScoredBatch(**summary, quarantine_uri=quarantine_uri, gate=gate.shown())
