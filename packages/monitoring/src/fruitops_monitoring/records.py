"""The typed records the ``monitoring/`` assets hand on: JSON in the lake, torch- and
MLflow-free (`fruitops_core.assets.record`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReferenceProfile(BaseModel):
    """``monitoring/reference_profile``: the held-out split's features as one model version
    sees them, which drift reports compare batches with. Kept in the lake per version
    (``by_model/``) with the manifest's hash, and reused while both hold."""

    table_uri: str = Field(description="the features, one row per photo (Parquet)")
    rows: int
    split: str
    max_images: int
    manifest_hash: str
    model_name: str
    model_version: int
    model_uri: str = Field(description="models:/NAME/VERSION: the version the features are of")
    image_size: int
    quarantined: list[dict[str, str]] = Field(description="photos that could not be used, why")
    projection: dict[str, Any] | None = Field(
        description="the embedding's projection fitted on these photos, which batches reuse"
    )
    reused: bool = Field(False, description="found in the lake rather than built now")


class DriftResult(BaseModel):
    """``monitoring/drift_report``: a scored batch against the reference, Evidently's report
    and the drift decision a DAG acts on (`drift.drift_decision`)."""

    dataset_drift: bool = Field(description="the decision: enough columns, or a critical one")
    drift_share: float = Field(description="the share of columns that drifted")
    drifted_columns: list[str]
    critical_drifted: list[str] = Field(description="drifted columns the policy calls critical")
    report_html_uri: str
    report_json_uri: str
    current_features_uri: str
    reference_uri: str
    reference_model_uri: str
    reference_rows: int
    current_rows: int
    quarantined: list[dict[str, Any]] = Field(description="batch photos that could not be used")
    mlflow_run_id: str | None = Field(None, description="the drift run, when logged to MLflow")
