"""Assets of the ``serving/`` group: the incoming batch scored by the champion."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from fruitops_core.assets import AssetContext, asset, parquet
from fruitops_core.lake import lake_from_uri
from fruitops_core.tracking import configure_mlflow


class ScoringConfig(BaseModel):
    model_uri: str | None = Field(
        None, description="default: the champion version chosen by models/champion_model"
    )
    batch_size: int = Field(64, ge=1)


@asset(
    "serving/batch_predictions",
    deps=["data/incoming_batch", "models/champion_model"],
    io=parquet,
    config=ScoringConfig,
)
def batch_predictions(
    ctx: AssetContext[ScoringConfig],
    incoming_batch: dict[str, Any],
    champion_model: dict[str, Any],
) -> pd.DataFrame:
    """One row per scored image: label, confidence, top-5 and the model that said so."""
    from fruitops_serving.scoring import load_model, score  # torch: only when scoring

    configure_mlflow(ctx.settings)
    model = load_model(ctx.config.model_uri or champion_model["model_uri"])
    source = lake_from_uri(incoming_batch["uri"], endpoint_url=ctx.settings.s3_endpoint)
    predictions, quarantined = score(
        source, incoming_batch["keys"], model, batch_size=ctx.config.batch_size
    )
    quarantine_uri = ctx.lake.write_json(f"{ctx.asset_dir}/quarantine.json", quarantined)
    ctx.add_metadata(
        images=len(incoming_batch["keys"]),
        scored=len(predictions),
        quarantined=len(quarantined),
        quarantine_uri=quarantine_uri,
        model_uri=model.uri,
        model_version=model.version,
    )
    if quarantined:
        ctx.log.warning("%d files quarantined, see %s", len(quarantined), quarantine_uri)
    return predictions
