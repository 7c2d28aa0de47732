"""The reference profile: the held-out split's features as one model version sees them.

Kept in the lake per model version, with the manifest hash it was built from, so it is built
once and reused until the champion or the data changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fruitops_core.lake import Lake
from fruitops_core.model_ref import ModelRef
from fruitops_core.names import slug
from fruitops_core.tables import ParquetTable
from fruitops_core.tracking import Tracking
from fruitops_monitoring.config import ReferenceConfig
from fruitops_monitoring.records import ReferenceProfile

REFERENCES = "assets/monitoring/reference_profile/by_model"


def class_from_key(classes: list[str]) -> Any:
    """The true label of a key laid out as ``…/<class>/<file>``, when that folder is a class."""
    known = set(classes)

    def label(key: str) -> str | None:
        parts = key.split("/")
        return parts[-2] if len(parts) > 1 and parts[-2] in known else None

    return label


def build_reference(
    lake: Lake,
    tracking: Tracking,
    manifest: ParquetTable,
    model_uri: str,
    config: ReferenceConfig,
    workdir: Path,
) -> ReferenceProfile:
    """The reference of the manifest's held-out split under ``model_uri`` (a pinned version).

    Kept in the lake per model version with its manifest hash: built once, reused after.
    """
    from fruitops_data.manifest import stored_manifest_hash
    from fruitops_models.registry import load_model
    from fruitops_monitoring.profile import build_features

    digest = stored_manifest_hash(manifest)
    name = slug(model_uri.removeprefix("models:/"))
    record_path = f"{REFERENCES}/{name}-{config.split}.json"
    if lake.exists(record_path):
        try:
            stored = ReferenceProfile.model_validate(lake.read_json(record_path))
        except ValidationError:  # written by an older FruitOps: built again
            stored = None
        if stored and stored.manifest_hash == digest and stored.max_images == config.max_images:
            return stored.model_copy(update={"reused": True})
    model = load_model(tracking, model_uri)
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
    profile = ReferenceProfile(
        table_uri=lake.put_file(built.table.path, f"{REFERENCES}/{name}-{config.split}.parquet"),
        rows=built.rows,
        split=config.split,
        max_images=config.max_images,
        manifest_hash=digest,
        model_name=model.name,
        model_version=model.version,
        model_uri=ModelRef.parse(model_uri).at(model.version).uri,
        image_size=model.image_size,
        quarantined=built.quarantined,
        projection=built.projection.to_dict() if built.projection else None,
    )
    lake.write_json(record_path, profile.model_dump(mode="json", exclude={"reused"}))
    return profile
