"""Assets of the ``data/`` group.

raw_images → image_manifest (+ quarantine) → data_validation (GX, gates training)
→ class_mapping → training_cache; and the incoming batch that serving scores.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field
from tqdm import tqdm

from fruitops_core.assets import AssetContext, CheckResult, asset, asset_check, parquet
from fruitops_core.lake import lake_from_uri
from fruitops_data.layout import FoundFile, is_junk, walk
from fruitops_data.manifest import build_manifest, manifest_hash
from fruitops_data.sources import resolve
from fruitops_data.validation import ValidationConfig


class RawImagesConfig(BaseModel):
    source: str | None = Field(None, description="SOURCE string; default FRUITOPS_SOURCE")
    workers: int = Field(8, ge=1, le=64)


@asset("data/raw_images", config=RawImagesConfig)
def raw_images(ctx: AssetContext[RawImagesConfig]) -> dict[str, Any]:
    """The source's files copied into the lake under raw/<dataset>/, skipping unchanged ones."""
    resolved = resolve(
        ctx.config.source or ctx.settings.source,
        ctx.settings.home,
        endpoint_url=ctx.settings.s3_endpoint,
    )
    files, ignored = walk(resolved.root)
    prefix = f"raw/{resolved.dataset_id}"
    index_path = f"{prefix}/_index.json"
    previous: dict[str, str] = ctx.lake.read_json(index_path) if ctx.lake.exists(index_path) else {}

    def copy(found: FoundFile) -> tuple[str, bool]:
        data = found.path.read_bytes()  # one read serves the hash and the upload
        sha = hashlib.sha256(data).hexdigest()
        key = f"{prefix}/{found.relpath}"
        if previous.get(key) == sha and ctx.lake.exists(key):
            return sha, False
        ctx.lake.write_bytes(key, data)
        return sha, True

    with ThreadPoolExecutor(ctx.config.workers) as pool:
        results = list(
            tqdm(pool.map(copy, files), total=len(files), desc="upload", unit="file", leave=False)
        )
    entries = [
        {"key": f"{prefix}/{f.relpath}", "split": f.split, "label": f.label, "sha256": sha}
        for f, (sha, _) in zip(files, results, strict=True)
    ]
    ctx.lake.write_json(index_path, {e["key"]: e["sha256"] for e in entries})
    uploaded = sum(1 for _, up in results if up)
    ctx.add_metadata(
        files=len(entries),
        uploaded=uploaded,
        unchanged=len(entries) - uploaded,
        ignored=len(ignored),
        source=resolved.source,
    )
    ctx.log.info(
        "%d files from %s: %d uploaded, %d unchanged, %d ignored",
        len(entries),
        resolved.source,
        uploaded,
        len(entries) - uploaded,
        len(ignored),
    )
    return {
        "source": resolved.source,
        "dataset_id": resolved.dataset_id,
        "prefix": prefix,
        "uri": ctx.lake.uri(prefix),
        "files": entries,
        "ignored": ignored,
    }


class ManifestConfig(BaseModel):
    max_unusable_share: float = Field(
        0.05, ge=0, le=1, description="the run fails when more files than this are unusable"
    )
    workers: int = Field(8, ge=1, le=64)


def quarantine(ctx: AssetContext, manifest: pd.DataFrame, dataset_id: str) -> list[dict]:
    """Copy each unusable file to quarantine/<dataset>/ and write the reasons beside them."""
    bad = manifest[~manifest["readable"]]
    entries = []
    for key, reason in zip(bad["key"], bad["error"], strict=True):
        target = f"quarantine/{dataset_id}/{key.split('/', 2)[-1]}"
        ctx.lake.write_bytes(target, ctx.lake.read_bytes(key))
        entries.append({"key": key, "reason": reason, "quarantine_key": target})
    if entries:
        ctx.lake.write_json(f"quarantine/{dataset_id}/reasons.json", entries)
    return entries


@asset("data/image_manifest", deps=["data/raw_images"], io=parquet, config=ManifestConfig)
def image_manifest(ctx: AssetContext[ManifestConfig], raw_images: dict[str, Any]) -> pd.DataFrame:
    """One row per file found, readable or not; unusable files are quarantined with a reason."""
    entries = [(f["key"], f["split"], f["label"], f["sha256"]) for f in raw_images["files"]]
    frame = build_manifest(
        entries, ctx.lake.read_bytes, total=len(entries), workers=ctx.config.workers
    )
    quarantined = quarantine(ctx, frame, raw_images["dataset_id"])
    if quarantined:
        ctx.log.warning(
            "%d of %d files quarantined under quarantine/%s/",
            len(quarantined),
            len(frame),
            raw_images["dataset_id"],
        )
    ctx.add_metadata(
        files=len(frame),
        readable=int(frame["readable"].sum()),
        quarantined=len(quarantined),
        ignored=len(raw_images.get("ignored", [])),
        classes=int(frame.loc[frame["split"] == "train", "label"].nunique()),
        splits={k: int(v) for k, v in frame["split"].value_counts().items()},
        manifest_hash=manifest_hash(frame),
        dataset_id=raw_images["dataset_id"],
    )
    return frame


@asset_check("data/image_manifest", blocking=True)
def unusable_share_within_threshold(
    ctx: AssetContext[ManifestConfig], manifest: pd.DataFrame
) -> CheckResult:
    """The run goes on only while the share of unusable files stays under the threshold."""
    share = float((~manifest["readable"]).mean()) if len(manifest) else 1.0
    limit = ctx.config.max_unusable_share
    return CheckResult(
        share <= limit,
        f"{share:.1%} of {len(manifest)} files unusable (limit {limit:.0%}); "
        "see quarantine/ in the lake",
        {"unusable_share": share},
    )


@asset_check("data/image_manifest", blocking=True)
def manifest_has_trainable_images(ctx: AssetContext, manifest: pd.DataFrame) -> CheckResult:
    """Training needs readable, labelled images of at least two classes in train and val."""
    usable = manifest[manifest["readable"] & manifest["label"].notna()]
    per_split = {
        s: int(usable.loc[usable["split"] == s, "label"].nunique()) for s in ("train", "val")
    }
    passed = all(n >= 2 for n in per_split.values())
    return CheckResult(
        passed,
        f"labelled classes per split: {per_split} (need ≥ 2 in each)",
        {"classes_per_split": per_split},
    )


@asset("data/data_validation", deps=["data/image_manifest"], config=ValidationConfig)
def data_validation(
    ctx: AssetContext[ValidationConfig], image_manifest: pd.DataFrame
) -> dict[str, Any]:
    """Great Expectations results for the manifest: JSON, Data Docs HTML, logged to MLflow."""
    import shutil

    import mlflow

    from fruitops_core.tracking import configure_mlflow
    from fruitops_data.validation import validate

    outcome = validate(image_manifest, ctx.config)
    summary = outcome.summary
    digest = manifest_hash(image_manifest)
    report_uri = ctx.lake.write_json(f"{ctx.asset_dir}/result.json", summary)
    docs_prefix = f"{ctx.asset_dir}/data_docs"
    ctx.lake.delete_prefix(docs_prefix)
    for path in sorted(outcome.docs_dir.rglob("*")):
        if path.is_file():
            ctx.lake.put_file(
                path, f"{docs_prefix}/{path.relative_to(outcome.docs_dir).as_posix()}"
            )
    docs_uri = ctx.lake.uri(f"{docs_prefix}/index.html")
    configure_mlflow(ctx.settings)
    with mlflow.start_run(
        run_name=f"validation-{ctx.run_id}",
        tags={
            "fruitops_kind": "validation",
            "fruitops_asset_run_id": ctx.run_id,
            "manifest_hash": digest,
            "validation_success": str(summary["success"]),
        },
    ):
        mlflow.log_metrics(
            {
                "validation_success": float(summary["success"]),
                "failed_expectations": len(summary["failed_expectations"]),
                "warnings": len(summary["warnings"]),
            }
        )
        mlflow.log_dict(summary, "validation/result.json")
        mlflow.log_artifacts(str(outcome.docs_dir), "validation/data_docs")
    shutil.rmtree(outcome.docs_dir.parents[2], ignore_errors=True)
    ctx.add_metadata(
        success=summary["success"],
        report_uri=report_uri,
        docs_uri=docs_uri,
        failed=len(summary["failed_expectations"]),
        warnings=len(summary["warnings"]),
    )
    return {
        "success": summary["success"],
        "failed_expectations": summary["failed_expectations"],
        "warnings": summary["warnings"],
        "report_uri": report_uri,
        "docs_uri": docs_uri,
        "manifest_hash": digest,
    }


@asset_check("data/data_validation", blocking=True)
def critical_expectations_pass(ctx: AssetContext, result: dict[str, Any]) -> CheckResult:
    """Every critical expectation holds; warnings are reported but do not block."""
    failed = result["failed_expectations"]
    return CheckResult(
        not failed,
        f"critical expectations failed: {failed}"
        if failed
        else f"all critical expectations hold ({len(result['warnings'])} warnings)",
        {"failed": failed, "warnings": result["warnings"]},
    )


@asset("data/class_mapping", deps=["data/image_manifest", "data/data_validation"])
def class_mapping(
    ctx: AssetContext, image_manifest: pd.DataFrame, data_validation: dict[str, Any]
) -> dict[str, Any]:
    """Sorted train class names → index, as torchvision's ImageFolder numbers them."""
    usable = image_manifest[image_manifest["readable"] & image_manifest["label"].notna()]
    classes = sorted(usable.loc[usable["split"] == "train", "label"].unique())
    ctx.add_metadata(classes=len(classes))
    return {"classes": classes, "index": {name: i for i, name in enumerate(classes)}}


class TrainingCacheConfig(BaseModel):
    image_size: int = Field(64, ge=16, le=1024, description="side of the square training images")
    shard_size: int = Field(2048, ge=1, description="images per shard file")


@asset(
    "data/training_cache",
    deps=["data/image_manifest", "data/class_mapping", "data/data_validation"],
    config=TrainingCacheConfig,
)
def training_cache(
    ctx: AssetContext[TrainingCacheConfig],
    image_manifest: pd.DataFrame,
    class_mapping: dict[str, Any],
    data_validation: dict[str, Any],
) -> dict[str, Any]:
    """Every usable image decoded once and resized, as uint8 shards keyed by data and size."""
    from fruitops_data.cache import build_cache, cache_prefix

    digest = manifest_hash(image_manifest)
    size = ctx.config.image_size
    prefix = cache_prefix(digest, size)
    index_path = f"{prefix}/index.json"
    if ctx.lake.exists(index_path):
        cache = ctx.lake.read_json(index_path)
        ctx.log.info("training cache %s is up to date", prefix)
        reused = True
    else:
        cache = build_cache(
            image_manifest,
            class_mapping["classes"],
            size,
            ctx.lake.read_bytes,
            ctx.lake,
            prefix,
            shard_size=ctx.config.shard_size,
        )
        ctx.lake.write_json(index_path, cache)
        reused = False
    counts = {split: info["count"] for split, info in cache["splits"].items()}
    ctx.add_metadata(prefix=prefix, reused=reused, image_size=size, **counts)
    return {
        **cache,
        "manifest_hash": digest,
        "validation_success": data_validation["success"],
        "source": ctx.settings.source,
    }


class IncomingBatchConfig(BaseModel):
    source: str | None = Field(
        None, description="folder or lake URI of images to score; default: the test split"
    )


@asset("data/incoming_batch", deps=["data/raw_images"], config=IncomingBatchConfig)
def incoming_batch(
    ctx: AssetContext[IncomingBatchConfig], raw_images: dict[str, Any]
) -> dict[str, Any]:
    """The batch of new images to score: a folder or lake prefix and the image keys in it."""
    if ctx.config.source:
        uri = ctx.config.source
        source_lake = lake_from_uri(uri, endpoint_url=ctx.settings.s3_endpoint)
        # every file but OS junk: what cannot be decoded is quarantined by scoring, not dropped
        keys = [k for k in source_lake.list() if not any(map(is_junk, k.split("/")))]
    else:
        uri = ctx.lake.uri(f"{raw_images['prefix']}/test")
        start = len(raw_images["prefix"]) + 1
        keys = [
            f["key"][start:].removeprefix("test/")
            for f in raw_images["files"]
            if f["split"] == "test"
        ]
    if not keys:
        raise ValueError(
            f"incoming batch {uri} holds no files: put images there or set "
            "data/incoming_batch.source"
        )
    ctx.add_metadata(images=len(keys), uri=uri)
    return {"uri": uri, "keys": keys}
