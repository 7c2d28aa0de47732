"""Assets of the ``monitoring/`` group: a drift report of the scored batch vs the reference."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from fruitops_core.assets import AssetContext, asset
from fruitops_core.lake import lake_from_uri, object_at
from fruitops_core.tables import ParquetTable
from fruitops_monitoring.features import FEATURE_COLUMNS, features_for


class DriftConfig(BaseModel):
    drift_share: float = Field(
        0.5, gt=0, le=1, description="share of drifted columns that counts as dataset drift"
    )
    reference_split: str = "val"


@asset(
    "monitoring/drift_report",
    deps=["serving/batch_predictions", "data/image_manifest"],
    config=DriftConfig,
)
def drift_report_asset(
    ctx: AssetContext[DriftConfig],
    batch_predictions: dict[str, Any],
    image_manifest: ParquetTable,
) -> dict[str, Any]:
    """Evidently data drift of image features: the scored batch against the reference split."""
    from fruitops_monitoring.drift import drift_decision, drift_report  # Evidently loads slowly

    table_lake, name = object_at(batch_predictions["predictions_uri"], ctx.settings.s3_endpoint)
    predictions = table_lake.read_parquet(name)
    if predictions.empty:
        raise ValueError("the scored batch has no predictions: nothing to compare for drift")
    reference_rows = image_manifest.read(
        columns=["key", "readable"], filters=[("split", "==", ctx.config.reference_split)]
    )
    ref_keys = reference_rows.loc[reference_rows["readable"], "key"].tolist()
    reference = features_for(ref_keys, ctx.lake.read_bytes, desc="reference features")
    current_parts = []
    for source_uri, rows in predictions.groupby("source_uri"):
        source = lake_from_uri(str(source_uri), endpoint_url=ctx.settings.s3_endpoint)
        current_parts.append(
            features_for(rows["key"].tolist(), source.read_bytes, desc="batch features")
        )
    current = pd.concat(current_parts, ignore_index=True)
    snapshot = drift_report(reference, current, FEATURE_COLUMNS, ctx.config.drift_share)
    decision = drift_decision(snapshot.dict(), ctx.config.drift_share)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp, "drift_report.html")
        snapshot.save_html(str(html))
        html_uri = ctx.lake.put_file(html, f"{ctx.asset_dir}/drift_report.html")
    json_uri = ctx.lake.write_bytes(f"{ctx.asset_dir}/drift_report.json", snapshot.json().encode())
    ctx.lake.write_parquet(f"{ctx.asset_dir}/reference_features.parquet", reference)
    ctx.lake.write_parquet(f"{ctx.asset_dir}/current_features.parquet", current)
    ctx.add_metadata(
        report_html_uri=html_uri,
        report_json_uri=json_uri,
        reference_rows=len(reference),
        current_rows=len(current),
        **decision,
    )
    return {
        **decision,
        "report_html_uri": html_uri,
        "report_json_uri": json_uri,
        "reference_rows": len(reference),
        "current_rows": len(current),
    }
