"""Assets of the ``data/`` group.

raw_images → image_manifest (+ quarantine) → data_validation (GX, gates training)
→ class_mapping → training_cache; and the incoming batch that serving scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from fruitops_core.assets import AssetContext, CheckResult, asset, asset_check, parquet_file
from fruitops_core.lake import lake_from_uri
from fruitops_core.progress import progress_bar
from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_data.layout import FoundFile, Walk, lake_files, sha256_no_follow
from fruitops_data.manifest import (
    MANIFEST_COLUMNS,
    manifest_frames,
    table_manifest_hash,
    windows,
)
from fruitops_data.sources import resolve
from fruitops_data.validation import ValidationConfig

#: the raw_images table: one row per file copied into the lake
RAW_COLUMNS = {"key": "string", "split": "string", "label": "string", "sha256": "string"}


class RawImagesConfig(BaseModel):
    source: str | None = Field(
        None,
        description="folder in the Kaggle layout, .zip, s3:// or gs://bucket/prefix, "
        "kaggle:owner/dataset or synthetic:classes=N,per_class=M,size=S,seed=K; "
        "default: FRUITOPS_SOURCE, else the data set already ingested",
    )
    workers: int = Field(8, ge=1, le=64, description="files read and uploaded at once")


NO_DATA_SET = (
    "no data set: nothing has been ingested into the lake yet and no source was given. "
    "Ingest one with `fruitops data ingest SOURCE` (a folder in the Kaggle layout, a .zip, "
    "s3://bucket/prefix or synthetic:...), or name one with --source, the DAG's source "
    "param or FRUITOPS_SOURCE"
)


def chosen_source(ctx: AssetContext[RawImagesConfig]) -> str:
    """The source given (config or FRUITOPS_SOURCE), else the one the lake already holds."""
    ingested = (ctx.previous or {}).get("source")
    if ctx.config.source:
        return ctx.config.source
    if not ingested:
        raise ValueError(NO_DATA_SET)
    ctx.log.info("no source given: ingesting the lake's data set %s again", ingested)
    return ingested


class SortedLookup:
    """``key → sha256`` from a table in key order, asked for keys in ascending order.

    The previous listing is merged with the new walk as both stream past: a missed or
    out-of-order key only means that file is uploaded again.
    """

    def __init__(self, table: ParquetTable | None):
        self._rows = self._iterate(table)
        self._current: tuple[str, str] | None = next(self._rows, None)

    @staticmethod
    def _iterate(table: ParquetTable | None) -> Iterator[tuple[str, str]]:
        if table is None:
            return
        for frame in table.batches(columns=["key", "sha256"]):
            yield from zip(frame["key"], frame["sha256"], strict=True)

    def get(self, key: str) -> str | None:
        while self._current is not None and self._current[0] < key:
            self._current = next(self._rows, None)
        if self._current is not None and self._current[0] == key:
            return self._current[1]
        return None


@asset(
    "data/raw_images",
    io=parquet_file,
    config=RawImagesConfig,
    config_from_settings={"source": "source"},
)
def raw_images(ctx: AssetContext[RawImagesConfig]) -> ParquetTable:
    """The source's files copied into the lake under raw/<dataset>/, skipping unchanged ones.

    The value is the listing (key, split, label, sha256) as a table in key order; the source,
    dataset id, lake prefix and ignored junk ride in its footer (``table.meta``).
    """
    resolved = resolve(
        chosen_source(ctx),
        ctx.settings.home,
        endpoint_url=ctx.settings.s3_endpoint,
    )
    ingested = (ctx.previous or {}).get("source")
    if ingested and ingested != resolved.source:  # said once the new source is usable
        ctx.log.warning("ingesting %s; the lake held %s until now", resolved.source, ingested)
    walker = Walk(resolved.root)
    total = walker.count()
    prefix = f"raw/{resolved.dataset_id}"
    index_path = f"{prefix}/_index.parquet"
    previous = None
    if ctx.lake.exists(index_path):
        previous = ParquetTable(ctx.lake.get_file(index_path, ctx.workdir / "previous.parquet"))
    known = SortedLookup(previous)

    def copy(found: FoundFile, known_sha: str | None) -> tuple[str, bool]:
        # hashed and uploaded a chunk at a time: a worker never holds a whole file
        sha = sha256_no_follow(found.path)
        key = f"{prefix}/{found.relpath}"
        if known_sha == sha and ctx.lake.exists(key):
            return sha, False
        ctx.lake.put_file(found.path, key)
        return sha, True

    uploaded = files = 0
    with (
        TableWriter(ctx.workdir / "raw_images.parquet", RAW_COLUMNS) as writer,
        ThreadPoolExecutor(ctx.config.workers) as pool,
        progress_bar(total, "upload", "files") as bar,
    ):
        for window in windows(walker, 256):
            keys = [f"{prefix}/{f.relpath}" for f in window]
            results = list(pool.map(copy, window, [known.get(k) for k in keys]))
            writer.write(
                pd.DataFrame(
                    {
                        "key": keys,
                        "split": [f.split for f in window],
                        "label": [f.label for f in window],
                        "sha256": [sha for sha, _ in results],
                    }
                )
            )
            uploaded += sum(1 for _, up in results if up)
            files += len(window)
            bar.update(len(window))
        table = writer.close(
            source=resolved.source,
            dataset_id=resolved.dataset_id,
            prefix=prefix,
            uri=ctx.lake.uri(prefix),
            ignored=[*resolved.refused, *walker.ignored],
        )
    ctx.lake.put_file(table.path, index_path)  # the next run's `previous`
    ctx.add_metadata(
        files=files,
        uploaded=uploaded,
        unchanged=files - uploaded,
        ignored=len(walker.ignored) + len(resolved.refused),
        source=resolved.source,
        dataset_id=resolved.dataset_id,
    )
    ctx.log.info(
        "%d files from %s: %d uploaded, %d unchanged, %d ignored",
        files,
        resolved.source,
        uploaded,
        files - uploaded,
        len(walker.ignored) + len(resolved.refused),
    )
    return table


class ManifestConfig(BaseModel):
    max_unusable_share: float = Field(
        0.05, ge=0, le=1, description="the run fails when more files than this are unusable"
    )
    workers: int = Field(8, ge=1, le=64)


def quarantine(ctx: AssetContext, frame: pd.DataFrame, dataset_id: str) -> list[dict]:
    """Copy each unusable file of ``frame`` to quarantine/<dataset>/; return the entries."""
    bad = frame[~frame["readable"]]
    entries = []
    for key, reason in zip(bad["key"], bad["error"], strict=True):
        target = f"quarantine/{dataset_id}/{key.split('/', 2)[-1]}"
        ctx.lake.write_bytes(target, ctx.lake.read_bytes(key))
        entries.append({"key": key, "reason": reason, "quarantine_key": target})
    return entries


#: the manifest columns `ManifestSummary` reads
SUMMARY_COLUMNS = ["split", "label", "readable"]


class ManifestSummary:
    """The counts a manifest's record and checks need, gathered as its windows stream past."""

    def __init__(self) -> None:
        self.files = self.readable = 0
        self.splits: Counter[str] = Counter()
        self.labels: dict[str, set[str]] = {}  # split → labels of readable files

    def add(self, frame: pd.DataFrame) -> None:
        self.files += len(frame)
        self.readable += int(frame["readable"].sum())
        self.splits.update(frame["split"].tolist())
        usable = frame[frame["readable"] & frame["label"].notna()]
        for split, labels in usable.groupby("split")["label"]:
            self.labels.setdefault(str(split), set()).update(labels)

    @classmethod
    def of(cls, table: ParquetTable) -> ManifestSummary:
        summary = cls()
        for frame in table.batches(columns=SUMMARY_COLUMNS):
            summary.add(frame)
        return summary


def _entries(table: ParquetTable) -> Iterator[tuple[str, str, str | None, str]]:
    for frame in table.batches(columns=["key", "split", "label", "sha256"]):
        labels = frame["label"].astype(object).where(frame["label"].notna(), None)
        yield from zip(frame["key"], frame["split"], labels, frame["sha256"], strict=True)


@asset("data/image_manifest", deps=["data/raw_images"], io=parquet_file, config=ManifestConfig)
def image_manifest(ctx: AssetContext[ManifestConfig], raw_images: ParquetTable) -> ParquetTable:
    """One row per file found, readable or not; unusable files are quarantined with a reason.

    Streamed: files are decoded a window at a time and appended to the Parquet table, so
    memory stays flat however many files there are.
    """
    dataset_id = raw_images.meta["dataset_id"]
    summary = ManifestSummary()
    quarantined: list[dict] = []
    with TableWriter(ctx.workdir / "manifest.parquet", MANIFEST_COLUMNS) as writer:
        for frame in manifest_frames(
            _entries(raw_images),
            ctx.lake.read_bytes,
            total=len(raw_images),
            workers=ctx.config.workers,
        ):
            writer.write(frame)
            summary.add(frame)
            quarantined += quarantine(ctx, frame, dataset_id)
        table = writer.close(dataset_id=dataset_id, source=raw_images.meta["source"])
    if quarantined:
        ctx.lake.write_json(f"quarantine/{dataset_id}/reasons.json", quarantined)
        ctx.log.warning(
            "%d of %d files quarantined under quarantine/%s/",
            len(quarantined),
            summary.files,
            dataset_id,
        )
    ctx.add_metadata(
        source=raw_images.meta["source"],
        files=summary.files,
        readable=summary.readable,
        quarantined=len(quarantined),
        ignored=len(raw_images.meta.get("ignored", [])),
        classes=len(summary.labels.get("train", ())),
        splits=dict(sorted(summary.splits.items())),
        manifest_hash=table_manifest_hash(table),
        dataset_id=dataset_id,
    )
    return table


@asset_check("data/image_manifest", blocking=True)
def unusable_share_within_threshold(
    ctx: AssetContext[ManifestConfig], manifest: ParquetTable
) -> CheckResult:
    """The run goes on only while the share of unusable files stays under the threshold."""
    summary = ManifestSummary.of(manifest)
    share = 1 - summary.readable / summary.files if summary.files else 1.0
    limit = ctx.config.max_unusable_share
    return CheckResult(
        share <= limit,
        f"{share:.1%} of {summary.files} files unusable (limit {limit:.0%}); see "
        f"quarantine/{manifest.meta.get('dataset_id', '')}/reasons.json in the lake, then fix "
        "or remove those files and ingest again, or allow more (--max-unusable-share)",
        {"unusable_share": share},
    )


@asset_check("data/image_manifest", blocking=True)
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


@asset("data/data_validation", deps=["data/image_manifest"], config=ValidationConfig)
def data_validation(
    ctx: AssetContext[ValidationConfig], image_manifest: ParquetTable
) -> dict[str, Any]:
    """Great Expectations results for the manifest: JSON, Data Docs HTML, logged to MLflow."""
    import mlflow

    from fruitops_core.tracking import configure_mlflow
    from fruitops_data.validation import validate

    digest = table_manifest_hash(image_manifest)
    docs_prefix = f"{ctx.asset_dir}/data_docs"
    configure_mlflow(ctx.settings)
    with validate(image_manifest, ctx.config) as outcome:
        summary = outcome.summary
        report_uri = ctx.lake.write_json(f"{ctx.asset_dir}/result.json", summary)
        ctx.lake.delete_prefix(docs_prefix)
        for path in sorted(outcome.docs_dir.rglob("*")):
            if path.is_file():
                ctx.lake.put_file(
                    path, f"{docs_prefix}/{path.relative_to(outcome.docs_dir).as_posix()}"
                )
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
    docs_uri = ctx.lake.uri(f"{docs_prefix}/index.html")
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
    ctx: AssetContext, image_manifest: ParquetTable, data_validation: dict[str, Any]
) -> dict[str, Any]:
    """Sorted train class names → index, as torchvision's ImageFolder numbers them."""
    classes = sorted(ManifestSummary.of(image_manifest).labels.get("train", ()))
    ctx.add_metadata(classes=len(classes))
    return {"classes": classes, "index": {name: i for i, name in enumerate(classes)}}


class TrainingCacheConfig(BaseModel):
    image_size: int = Field(
        256,
        ge=16,
        le=1024,
        description="side of the cached square images; each model sees its --input-size of "
        "them, at most this",
    )
    shard_size: int = Field(2048, ge=1, description="images per shard file")


@asset(
    "data/training_cache",
    deps=["data/image_manifest", "data/class_mapping", "data/data_validation"],
    config=TrainingCacheConfig,
)
def training_cache(
    ctx: AssetContext[TrainingCacheConfig],
    image_manifest: ParquetTable,
    class_mapping: dict[str, Any],
    data_validation: dict[str, Any],
) -> dict[str, Any]:
    """Every usable image decoded once and resized, as uint8 shards keyed by data and size."""
    from fruitops_data.cache import build_cache, cache_prefix

    digest = table_manifest_hash(image_manifest)
    size = ctx.config.image_size
    prefix = cache_prefix(digest, size)
    index_path = f"{prefix}/index.json"
    if ctx.lake.exists(index_path):
        cache = ctx.lake.read_json(index_path)
        ctx.log.info("training cache %s is up to date", prefix)
        reused = True
    else:
        # the columns that pick usable images (the cache's index lists their keys anyway)
        usable = image_manifest.read(columns=["key", "split", "label", "readable"])
        cache = build_cache(
            usable,
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
        "source": image_manifest.meta.get("source"),  # what the cache was made of
    }


class IncomingBatchConfig(BaseModel):
    source: str | None = Field(
        None,
        description="folder or s3:// prefix of the images to score, e.g. s3://incoming/{ds} "
        "({ds}: the DAG run's date); empty: the ingested data set's test split",
    )


@asset("data/incoming_batch", deps=["data/raw_images"], config=IncomingBatchConfig)
def incoming_batch(
    ctx: AssetContext[IncomingBatchConfig], raw_images: ParquetTable
) -> dict[str, Any]:
    """The batch of new images to score: a folder or lake prefix and the image keys in it."""
    if ctx.config.source:
        uri = ctx.config.source
        source_lake = lake_from_uri(uri, endpoint_url=ctx.settings.s3_endpoint)
        # every file but junk and links (listed, with why): what cannot be decoded is
        # quarantined by scoring, not dropped
        keys, ignored = lake_files(source_lake)
    else:
        ignored = []
        prefix = raw_images.meta["prefix"]
        uri = ctx.lake.uri(f"{prefix}/test")
        test = raw_images.read(columns=["key"], filters=[("split", "==", "test")])
        keys = [k.removeprefix(f"{prefix}/test/") for k in test["key"]]
    if not keys:
        raise ValueError(
            f"incoming batch {uri} holds no files: put images there or set "
            "data/incoming_batch.source"
        )
    ctx.add_metadata(images=len(keys), uri=uri, ignored=len(ignored))
    for item in ignored[:20]:
        ctx.log.warning("left out %s: %s", item["path"], item["reason"])
    return {"uri": uri, "keys": keys, "ignored": ignored}
