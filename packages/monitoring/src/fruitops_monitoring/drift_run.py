"""One drift run: the scored batch's features against a reference, reported and logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from fruitops_core.lake import Lake, lake_from_uri, object_at
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tables import ParquetTable
from fruitops_core.tracking import Tracking
from fruitops_monitoring.config import DriftConfig
from fruitops_monitoring.records import ReferenceProfile
from fruitops_monitoring.reference import class_from_key
from fruitops_serving.predictions import read_predictions


def batch_features(
    predictions: pd.DataFrame,
    reference: ReferenceProfile,
    settings: FruitOpsSettings,
    tracking: Tracking,
    workdir: Path,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The scored batch's features with the reference's model and projection."""
    from fruitops_models.registry import load_model
    from fruitops_monitoring.features import Projection
    from fruitops_monitoring.profile import build_features

    model = load_model(tracking, reference.model_uri)
    projection = Projection.from_dict(reference.projection) if reference.projection else None
    frames, quarantined = [], []
    for i, (source_uri, rows) in enumerate(predictions.groupby("source_uri", sort=True)):
        source = lake_from_uri(str(source_uri), endpoint_url=settings.s3_endpoint, strict=True)
        built = build_features(
            rows["key"].tolist(),
            source.read_bytes,
            workdir / f"batch-{i}.parquet",
            model=model,
            projection=projection,
            label_of=class_from_key(model.classes),
            total=len(rows),
            desc="batch features",
        )
        frames.append(built.table.read())
        quarantined += built.quarantined
    current = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return current, quarantined


def run_drift(
    lake: Lake,
    settings: FruitOpsSettings,
    tracking: Tracking,
    predictions_uri: str,
    reference: ReferenceProfile,
    policy: DriftConfig,
    out_dir: str,
    workdir: Path,
    run_name: str,
) -> dict[str, Any]:
    """Features of the scored batch vs the reference → HTML + JSON report and a decision."""
    from fruitops_monitoring.drift import drift_decision, drift_report, report_html

    table_lake, name = object_at(predictions_uri, settings.s3_endpoint)
    predictions = read_predictions(table_lake, name)
    if predictions.empty:
        raise ValueError(
            f"{predictions_uri} holds no predictions: nothing to compare for drift "
            "(score a batch with images first)"
        )
    ref_lake, ref_name = object_at(reference.table_uri, settings.s3_endpoint)
    reference_frame = ParquetTable(ref_lake.get_file(ref_name, workdir / "reference.parquet"))
    reference_features = reference_frame.read()
    current, quarantined = batch_features(predictions, reference, settings, tracking, workdir)
    snapshot = drift_report(reference_features, current, policy)
    decision = drift_decision(snapshot.dict(), policy)
    html = workdir / "drift_report.html"
    html.write_text(report_html(snapshot), encoding="utf-8")
    html_uri = lake.put_file(html, f"{out_dir}/drift_report.html")
    json_uri = lake.write_bytes(f"{out_dir}/drift_report.json", snapshot.json().encode())
    current_uri = lake.write_parquet(f"{out_dir}/current_features.parquet", current)
    result = {
        **decision,
        "report_html_uri": html_uri,
        "report_json_uri": json_uri,
        "current_features_uri": current_uri,
        "reference_uri": reference.table_uri,
        "reference_model_uri": reference.model_uri,
        "reference_rows": len(reference_features),
        "current_rows": len(current),
        "quarantined": quarantined,
    }
    if policy.log_to_mlflow:
        with tracking.start_run(kind="drift", run_name=run_name) as run:
            run.log_metrics(
                {
                    "drift_share": decision["drift_share"],
                    "dataset_drift": float(decision["dataset_drift"]),
                    "drifted_columns": len(decision["drifted_columns"]),
                    "current_rows": len(current),
                }
            )
            run.log_params({"reference_model_uri": reference.model_uri})
            run.log_artifact(html, "drift")
            run.log_dict(decision, "drift/decision.json")
            result["mlflow_run_id"] = run.run_id
    return result
