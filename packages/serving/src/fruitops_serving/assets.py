"""Assets of the ``serving/`` group: the incoming batch scored by the champion."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from fruitops_core.assets import AssetContext, asset
from fruitops_core.lake import lake_from_uri
from fruitops_core.tracking import configure_mlflow


class ScoringConfig(BaseModel):
    model_uri: str | None = Field(
        None, description="default: the champion version chosen by models/champion_model"
    )
    batch_size: int = Field(128, ge=1, description="images scored at once")
    precision: Literal["auto", "fp32"] = Field(
        "auto", description="auto: bf16 where it passed the gate against fp32, else fp32"
    )
    backend: Literal["openvino", "torch"] = Field(
        "openvino", description="inference engine (openvino: the faster, see benchmarks/)"
    )
    date: str | None = Field(
        None,
        description="the batch's day, YYYY-MM-DD (the scoring DAG gives its run's): its table "
        "is kept as predictions/<date>/predictions.parquet, one per day; default: in the "
        "asset's own folder",
    )

    @field_validator("date")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        # checked here, not as a schema pattern: the DAG's param holds "{ds}" until the run
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a day in the form YYYY-MM-DD") from None
        return value


#: Where `fruitops score` and each dated scoring note the table they wrote last
#: (`fruitops monitor drift` reads it).
LATEST_PREDICTIONS = "predictions/latest.json"


def dated_folder(date: str) -> str:
    """The lake folder of one day's scoring: its table and its quarantine list."""
    return f"predictions/{date}"


class OutputConfig(BaseModel):
    """Where `fruitops score` writes its table."""

    output: str | None = Field(
        None,
        description="path or s3:// URI of the table; default predictions/<input>.<format> "
        "in the lake",
    )
    format: Literal["parquet", "csv"] = Field("parquet", description="table format")


@asset(
    "serving/batch_predictions",
    deps=["data/incoming_batch", "models/champion_model"],
    config=ScoringConfig,
)
def batch_predictions(
    ctx: AssetContext[ScoringConfig], incoming_batch: dict[str, Any], champion_model: dict[str, Any]
) -> dict[str, Any]:
    """The incoming batch scored into predictions.parquet; undecodable files quarantined."""
    from fruitops_serving.gate import choose_predictor
    from fruitops_serving.inputs import ScoringInput
    from fruitops_serving.scoring import load_model, score

    configure_mlflow(ctx.settings)
    model = load_model(ctx.config.model_uri or champion_model["model_uri"])
    predictor, gate = choose_predictor(
        model, ctx.lake, ctx.settings, ctx.config.precision, ctx.config.backend
    )
    source = ScoringInput(
        lake_from_uri(incoming_batch["uri"], endpoint_url=ctx.settings.s3_endpoint),
        incoming_batch["keys"],
        incoming_batch["uri"],
        incoming_batch.get("ignored", []),
    )
    folder = dated_folder(ctx.config.date) if ctx.config.date else ctx.asset_dir
    summary = score(
        source,
        predictor,
        ctx.lake,
        f"{folder}/predictions.parquet",
        batch_size=ctx.config.batch_size,
    )
    quarantine_uri = ctx.lake.write_json(f"{folder}/quarantine.json", summary["quarantined"])
    if ctx.config.date:
        latest = {"predictions_uri": summary["predictions_uri"], "date": ctx.config.date}
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
        ctx.log.warning("%d files quarantined, see %s", len(summary["quarantined"]), quarantine_uri)
    return {**summary, "quarantine_uri": quarantine_uri, "gate": gate}
