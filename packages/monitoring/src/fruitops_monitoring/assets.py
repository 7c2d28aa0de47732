"""Assets of the ``monitoring/`` group.

reference_profile: the features of the held-out split as the champion sees them (image
features, predictions, embedding components with the projection fitted here), stored with
the champion's version and rebuilt when the champion changes. drift_report: the scored
batch against that profile in an Evidently report, and the drift decision a DAG acts on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from fruitops_core.assets import AssetContext, asset
from fruitops_core.lake import Lake, lake_from_uri, object_at
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tables import ParquetTable
from fruitops_core.tracking import configure_mlflow
from fruitops_monitoring.config import DriftPolicy

REFERENCES = "assets/monitoring/reference_profile/by_model"


def versioned_uri(model_uri: str, version: int) -> str:
    """``models:/NAME/VERSION`` for any ``models:/NAME…`` URI and a version number."""
    match = re.match(r"models:/([^/@]+)", model_uri)
    if not match:
        raise ValueError(f"model URI {model_uri!r}: expected models:/NAME@ALIAS or /VERSION")
    return f"models:/{match.group(1)}/{version}"


class ReferenceConfig(BaseModel):
    split: str = Field("val", description="the held-out split the reference is made of")
    max_images: int = Field(5000, ge=2, description="at most this many images (key order)")
    components: int = Field(4, ge=1, le=32, description="embedding principal components")


def class_from_key(classes: list[str]) -> Any:
    """The true label of a key laid out as ``…/<class>/<file>``, when that folder is a class."""
    known = set(classes)

    def label(key: str) -> str | None:
        parts = key.split("/")
        return parts[-2] if len(parts) > 1 and parts[-2] in known else None

    return label


def build_reference(
    lake: Lake,
    settings: FruitOpsSettings,
    manifest: ParquetTable,
    model_uri: str,
    config: ReferenceConfig,
    workdir: Path,
) -> dict[str, Any]:
    """The reference of the manifest's held-out split under ``model_uri`` (a pinned version).

    Kept in the lake per model version with its manifest hash: built once, reused after.
    """
    from fruitops_data.manifest import table_manifest_hash
    from fruitops_models.registry import load_model
    from fruitops_monitoring.profile import build_features

    digest = table_manifest_hash(manifest)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_uri.removeprefix("models:/"))
    record_path = f"{REFERENCES}/{slug}-{config.split}.json"
    if lake.exists(record_path):
        stored = lake.read_json(record_path)
        if stored.get("manifest_hash") == digest and stored.get("max_images") == config.max_images:
            return {**stored, "reused": True}
    configure_mlflow(settings)
    model = load_model(model_uri)
    rows = manifest.read(
        columns=["key", "label", "readable"], filters=[("split", "==", config.split)]
    )
    rows = rows[rows["readable"]].sort_values("key").head(config.max_images)
    if len(rows) < 2:
        raise ValueError(
            f"the {config.split} split has {len(rows)} readable images: a reference needs at "
            "least 2 (ingest a data set with a held-out split)"
        )
    labels = dict(zip(rows["key"], rows["label"], strict=True))
    built = build_features(
        rows["key"].tolist(),
        lake.read_bytes,
        workdir / "reference.parquet",
        model=model,
        fit_components=config.components,
        label_of=labels.get,
        total=len(rows),
        desc="reference features",
    )
    record = {
        "table_uri": lake.put_file(built.table.path, f"{REFERENCES}/{slug}-{config.split}.parquet"),
        "rows": built.rows,
        "split": config.split,
        "max_images": config.max_images,
        "manifest_hash": digest,
        "model_name": model.name,
        "model_version": model.version,
        "model_uri": versioned_uri(model_uri, model.version),
        "image_size": model.image_size,
        "quarantined": built.quarantined,
        "projection": built.projection.to_dict() if built.projection else None,
    }
    lake.write_json(record_path, record)
    return {**record, "reused": False}


@asset(
    "monitoring/reference_profile",
    deps=["data/image_manifest", "models/champion_model"],
    config=ReferenceConfig,
)
def reference_profile(
    ctx: AssetContext[ReferenceConfig],
    image_manifest: ParquetTable,
    champion_model: dict[str, Any],
) -> dict[str, Any]:
    """Features of the held-out split scored by the champion; reused while neither changes."""
    result = build_reference(
        ctx.lake,
        ctx.settings,
        image_manifest,
        champion_model["model_uri"],
        ctx.config,
        ctx.workdir,
    )
    ctx.add_metadata(
        reused=result["reused"],
        rows=result["rows"],
        model_uri=result["model_uri"],
        source=image_manifest.meta.get("source"),  # the data set the champion is watched on
    )
    return result


class DriftConfig(DriftPolicy):
    log_to_mlflow: bool = True


def batch_features(
    predictions: pd.DataFrame,
    reference: dict[str, Any],
    settings: FruitOpsSettings,
    workdir: Path,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The scored batch's features with the reference's model and projection."""
    from fruitops_models.registry import load_model
    from fruitops_monitoring.features import Projection
    from fruitops_monitoring.profile import build_features

    model = load_model(reference["model_uri"])
    projection = Projection.from_dict(reference["projection"]) if reference["projection"] else None
    frames, quarantined = [], []
    for i, (source_uri, rows) in enumerate(predictions.groupby("source_uri", sort=True)):
        source = lake_from_uri(str(source_uri), endpoint_url=settings.s3_endpoint)
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
    predictions_uri: str,
    reference: dict[str, Any],
    policy: DriftConfig,
    out_dir: str,
    workdir: Path,
    run_name: str,
) -> dict[str, Any]:
    """Features of the scored batch vs the reference → HTML + JSON report and a decision."""
    from fruitops_monitoring.drift import drift_decision, drift_report

    configure_mlflow(settings)  # the reference's model is loaded from this store
    table_lake, name = object_at(predictions_uri, settings.s3_endpoint)
    predictions = table_lake.read_parquet(name)
    if predictions.empty:
        raise ValueError(
            f"{predictions_uri} holds no predictions: nothing to compare for drift "
            "(score a batch with images first)"
        )
    ref_lake, ref_name = object_at(reference["table_uri"], settings.s3_endpoint)
    reference_frame = ParquetTable(ref_lake.get_file(ref_name, workdir / "reference.parquet"))
    reference_features = reference_frame.read()
    current, quarantined = batch_features(predictions, reference, settings, workdir)
    snapshot = drift_report(reference_features, current, policy)
    decision = drift_decision(snapshot.dict(), policy)
    html = workdir / "drift_report.html"
    snapshot.save_html(str(html))
    html_uri = lake.put_file(html, f"{out_dir}/drift_report.html")
    json_uri = lake.write_bytes(f"{out_dir}/drift_report.json", snapshot.json().encode())
    current_uri = lake.write_parquet(f"{out_dir}/current_features.parquet", current)
    result = {
        **decision,
        "report_html_uri": html_uri,
        "report_json_uri": json_uri,
        "current_features_uri": current_uri,
        "reference_uri": reference["table_uri"],
        "reference_model_uri": reference["model_uri"],
        "reference_rows": len(reference_features),
        "current_rows": len(current),
        "quarantined": quarantined,
    }
    if policy.log_to_mlflow:
        import mlflow

        with mlflow.start_run(run_name=run_name, tags={"fruitops_kind": "drift"}) as run:
            mlflow.log_metrics(
                {
                    "drift_share": decision["drift_share"],
                    "dataset_drift": float(decision["dataset_drift"]),
                    "drifted_columns": len(decision["drifted_columns"]),
                    "current_rows": len(current),
                }
            )
            mlflow.log_params({"reference_model_uri": reference["model_uri"]})
            mlflow.log_artifact(str(html), "drift")
            mlflow.log_dict(decision, "drift/decision.json")
            result["mlflow_run_id"] = run.info.run_id
    return result


@asset(
    "monitoring/drift_report",
    deps=["serving/batch_predictions", "monitoring/reference_profile", "data/image_manifest"],
    config=DriftConfig,
)
def drift_report_asset(
    ctx: AssetContext[DriftConfig],
    batch_predictions: dict[str, Any],
    reference_profile: dict[str, Any],
    image_manifest: ParquetTable,
) -> dict[str, Any]:
    """Evidently drift of the scored batch against the reference, and the drift decision.

    A batch scored by another model version than the reference's gets a reference rebuilt
    for that version first: features are only comparable under the same model.
    """
    reference = reference_profile
    batch_model = versioned_uri(batch_predictions["model_uri"], batch_predictions["model_version"])
    if reference["model_uri"] != batch_model:
        ctx.log.warning(
            "reference was built with %s, the batch was scored by %s: rebuilding the reference",
            reference["model_uri"],
            batch_model,
        )
        reference = build_reference(
            ctx.lake,
            ctx.settings,
            image_manifest,
            batch_model,
            ReferenceConfig(split=reference.get("split", "val")),
            ctx.workdir,
        )
    result = run_drift(
        ctx.lake,
        ctx.settings,
        batch_predictions["predictions_uri"],
        reference,
        ctx.config,
        ctx.asset_dir,
        ctx.workdir,
        f"drift-{ctx.run_id}",
    )
    ctx.add_metadata(
        **{k: result[k] for k in ("dataset_drift", "drift_share", "drifted_columns")},
        report_html_uri=result["report_html_uri"],
        reference_rebuilt=reference is not reference_profile,
    )
    return result
