"""Assets of the ``data/`` group: declarations and checks; the work is in the modules named.

raw_images (`ingest`) → image_manifest (`manifest`, `quarantine`) → data_validation
(`validation`, `validation_report`; gates training) → class_mapping → training_cache
(`cache`); and the incoming batch that serving scores (`incoming`). Options: `config`.
"""

from __future__ import annotations

from fruitops_core.asset_keys import (
    CLASS_MAPPING,
    DATA_VALIDATION,
    IMAGE_MANIFEST,
    INCOMING_BATCH,
    RAW_IMAGES,
    TRAINING_CACHE,
)
from fruitops_core.assets import (
    AssetContext,
    CheckResult,
    asset,
    asset_check,
    parquet_file,
    record,
)
from fruitops_core.tables import ParquetTable
from fruitops_data import class_names
from fruitops_data.config import (
    IncomingBatchConfig,
    ManifestConfig,
    RawImagesConfig,
    TrainingCacheConfig,
    ValidationConfig,
)
from fruitops_data.incoming import list_batch
from fruitops_data.ingest import chosen_source, copy_into_lake
from fruitops_data.manifest import stored_manifest_hash, write_manifest
from fruitops_data.quarantine import reasons_key
from fruitops_data.records import ClassMapping, IncomingBatch, TrainingCache, ValidationResult
from fruitops_data.sources import resolve
from fruitops_data.summary import ManifestSummary


@asset(
    RAW_IMAGES,
    io=parquet_file,
    config=RawImagesConfig,
    config_from_settings={"source": "source"},
)
def raw_images(ctx: AssetContext[RawImagesConfig]) -> ParquetTable:
    """The source's files copied into the lake under raw/<dataset>/, skipping unchanged ones.

    The value is the listing (key, split, label, sha256) as a table in key order; the source,
    dataset id, lake prefix and ignored junk ride in its footer (``table.meta``).
    """
    ingested = (ctx.previous or {}).get("source")
    resolved = resolve(
        chosen_source(ctx.config.source, ingested, ctx.log),
        ctx.settings.home,
        endpoint_url=ctx.settings.s3_endpoint,
        allowed_roots=ctx.settings.allowed_root_paths,
    )
    if ingested and ingested != resolved.source:  # said once the new source is usable
        ctx.log.warning("ingesting %s; the lake held %s until now", resolved.source, ingested)
    copied = copy_into_lake(resolved, ctx.lake, ctx.workdir, workers=ctx.config.workers)
    unchanged = copied.files - copied.uploaded
    ctx.add_metadata(
        files=copied.files,
        uploaded=copied.uploaded,
        unchanged=unchanged,
        ignored=copied.ignored,
        source=resolved.source,
        dataset_id=resolved.dataset_id,
    )
    ctx.log.info(
        "%d files from %s: %d uploaded, %d unchanged, %d ignored",
        copied.files,
        resolved.source,
        copied.uploaded,
        unchanged,
        copied.ignored,
    )
    return copied.table


@asset(IMAGE_MANIFEST, deps=[RAW_IMAGES], io=parquet_file, config=ManifestConfig)
def image_manifest(ctx: AssetContext[ManifestConfig], raw_images: ParquetTable) -> ParquetTable:
    """One row per file found, readable or not; unusable files are quarantined with a reason.

    Streamed: files are decoded a window at a time and appended to the Parquet table, so
    memory stays flat however many files there are. The manifest hash rides in its footer.
    """
    dataset_id = raw_images.meta["dataset_id"]
    written = write_manifest(
        raw_images, ctx.lake, ctx.workdir / "manifest.parquet", workers=ctx.config.workers
    )
    summary = written.summary
    if written.quarantined:
        ctx.log.warning(
            "%d of %d files quarantined under quarantine/%s/",
            len(written.quarantined),
            summary.files,
            dataset_id,
        )
    ctx.add_metadata(
        source=raw_images.meta["source"],
        files=summary.files,
        readable=summary.readable,
        quarantined=len(written.quarantined),
        ignored=len(raw_images.meta.get("ignored", [])),
        classes=len(summary.labels.get("train", ())),
        splits=dict(sorted(summary.splits.items())),
        manifest_hash=written.manifest_hash,
        dataset_id=dataset_id,
    )
    return written.table


@asset_check(IMAGE_MANIFEST, blocking=True)
def unusable_share_within_threshold(
    ctx: AssetContext[ManifestConfig], manifest: ParquetTable
) -> CheckResult:
    """The run goes on only while the share of unusable files stays under the threshold."""
    summary = ManifestSummary.of(manifest)
    share = summary.unusable_share
    limit = ctx.config.max_unusable_share
    return CheckResult(
        share <= limit,
        f"{share:.1%} of {summary.files} files unusable (limit {limit:.0%}); see "
        f"{reasons_key(manifest.meta.get('dataset_id', ''))} in the lake, then fix "
        "or remove those files and ingest again, or allow more (--max-unusable-share)",
        {"unusable_share": share},
    )


@asset_check(IMAGE_MANIFEST, blocking=True)
def manifest_has_trainable_images(ctx: AssetContext, manifest: ParquetTable) -> CheckResult:
    """Training needs readable, labelled images of at least two classes in train and val."""
    labels = ManifestSummary.of(manifest).labels
    per_split = {s: len(labels.get(s, ())) for s in ("train", "val")}
    passed = all(n >= 2 for n in per_split.values())
    return CheckResult(
        passed,
        f"labelled classes per split: {per_split} (need ≥ 2 in each)",
        {"classes_per_split": per_split},
    )


def first_key_per_label(manifest: ParquetTable) -> list[tuple[str, str]]:
    """Each label of the manifest with the first file that carries it (where it came from)."""
    seen: dict[str, str] = {}
    for frame in manifest.batches(columns=["key", "label"]):
        for key, label in zip(frame["key"], frame["label"], strict=True):
            if isinstance(label, str) and label not in seen:
                seen[label] = key
    return sorted(seen.items())


@asset_check(IMAGE_MANIFEST, blocking=True)
def class_names_are_allowed(ctx: AssetContext, manifest: ParquetTable) -> CheckResult:
    """Every label within `class_names`' rule, before any report or plot shows it."""
    labels = first_key_per_label(manifest)
    try:
        class_names.check(labels)
    except class_names.ClassNameError as err:
        return CheckResult(False, str(err), {"labels": len(labels)})
    return CheckResult(True, f"{len(labels)} class names allowed", {"labels": len(labels)})


@asset(DATA_VALIDATION, deps=[IMAGE_MANIFEST], config=ValidationConfig, io=record(ValidationResult))
def data_validation(
    ctx: AssetContext[ValidationConfig], image_manifest: ParquetTable
) -> ValidationResult:
    """Great Expectations results for the manifest: JSON, Data Docs HTML, logged to MLflow."""
    from fruitops_data.validation_report import validate_and_report

    result = validate_and_report(
        image_manifest,
        ctx.config,
        lake=ctx.lake,
        tracking=ctx.tracking,
        asset_dir=ctx.asset_dir,
        run_id=ctx.run_id,
        manifest_hash=stored_manifest_hash(image_manifest),
    )
    ctx.add_metadata(
        success=result.success,
        report_uri=result.report_uri,
        docs_uri=result.docs_uri,
        failed=len(result.failed_expectations),
        warnings=len(result.warnings),
    )
    for message in result.messages:
        ctx.log.warning("%s", message)
    return result


@asset_check(DATA_VALIDATION, blocking=True)
def critical_expectations_pass(ctx: AssetContext, result: ValidationResult) -> CheckResult:
    """Every critical expectation holds; warnings are reported but do not block."""
    failed = result.failed_expectations
    return CheckResult(
        not failed,
        f"critical expectations failed: {failed}"
        if failed
        else f"all critical expectations hold ({len(result.warnings)} warnings)",
        {"failed": failed, "warnings": result.warnings},
    )


@asset(CLASS_MAPPING, deps=[IMAGE_MANIFEST, DATA_VALIDATION], io=record(ClassMapping))
def class_mapping(
    ctx: AssetContext, image_manifest: ParquetTable, data_validation: ValidationResult
) -> ClassMapping:
    """Sorted train class names → index, as torchvision's ImageFolder numbers them; every
    name within `class_names`' rule (the manifest's check already held it to it)."""
    classes = sorted(ManifestSummary.of(image_manifest).labels.get("train", ()))
    class_names.check(first_key_per_label(image_manifest))
    ctx.add_metadata(classes=len(classes))
    return ClassMapping(classes=classes, index={name: i for i, name in enumerate(classes)})


@asset(
    TRAINING_CACHE,
    deps=[IMAGE_MANIFEST, CLASS_MAPPING, DATA_VALIDATION],
    config=TrainingCacheConfig,
    io=record(TrainingCache),
)
def training_cache(
    ctx: AssetContext[TrainingCacheConfig],
    image_manifest: ParquetTable,
    class_mapping: ClassMapping,
    data_validation: ValidationResult,
) -> TrainingCache:
    """Every usable image decoded once and resized, as uint8 shards keyed by data and size."""
    from fruitops_data.cache import cached_or_built

    digest = stored_manifest_hash(image_manifest)
    size = ctx.config.image_size
    cache, reused = cached_or_built(
        image_manifest,
        class_mapping.classes,
        size,
        ctx.lake,
        digest,
        shard_size=ctx.config.shard_size,
    )
    if reused:
        ctx.log.info("training cache %s is up to date", cache.prefix)
    counts = {split: info.count for split, info in cache.splits.items()}
    ctx.add_metadata(prefix=cache.prefix, reused=reused, image_size=size, **counts)
    return cache.model_copy(
        update={
            "manifest_hash": digest,
            "validation_success": data_validation.success,
            "source": image_manifest.meta.get("source"),  # what the cache was made of
        }
    )


@asset(INCOMING_BATCH, deps=[RAW_IMAGES], config=IncomingBatchConfig, io=record(IncomingBatch))
def incoming_batch(
    ctx: AssetContext[IncomingBatchConfig], raw_images: ParquetTable
) -> IncomingBatch:
    """The batch of new images to score: a folder or lake prefix and the image keys in it."""
    batch = list_batch(
        ctx.config.source,
        raw_images,
        ctx.lake,
        endpoint_url=ctx.settings.s3_endpoint,
        allowed_roots=ctx.settings.allowed_root_paths,
    )
    ctx.add_metadata(images=len(batch.keys), uri=batch.uri, ignored=len(batch.ignored))
    for item in batch.ignored[:20]:
        ctx.log.warning("left out %s: %s", item["path"], item["reason"])
    return batch
