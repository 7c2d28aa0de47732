"""Assets of the ``data/`` group: raw images in the lake, the manifest, the incoming batch."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field
from tqdm import tqdm

from fruitops_core.assets import AssetContext, CheckResult, asset, asset_check, parquet
from fruitops_core.lake import lake_from_uri
from fruitops_data.layout import FoundFile, is_junk, walk
from fruitops_data.manifest import build_manifest
from fruitops_data.sources import resolve


class RawImagesConfig(BaseModel):
    source: str | None = Field(None, description="SOURCE string; default FRUITOPS_SOURCE")
    workers: int = Field(8, ge=1, le=64)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@asset("data/raw_images", config=RawImagesConfig)
def raw_images(ctx: AssetContext[RawImagesConfig]) -> dict[str, Any]:
    """The source's files copied into the lake under raw/<dataset>/, skipping unchanged ones."""
    resolved = resolve(ctx.config.source or ctx.settings.source, ctx.settings.home)
    files, ignored = walk(resolved.root)
    prefix = f"raw/{resolved.dataset_id}"
    index_path = f"{prefix}/_index.json"
    previous: dict[str, str] = ctx.lake.read_json(index_path) if ctx.lake.exists(index_path) else {}

    def copy(found: FoundFile) -> tuple[str, bool]:
        sha = _sha256_file(found.path)
        key = f"{prefix}/{found.relpath}"
        if previous.get(key) == sha and ctx.lake.exists(key):
            return sha, False
        ctx.lake.put_file(found.path, key)
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


@asset("data/image_manifest", deps=["data/raw_images"], io=parquet)
def image_manifest(ctx: AssetContext, raw_images: dict[str, Any]) -> pd.DataFrame:
    """One row per file found, readable or not, with its hash, size, format and mode."""
    entries = [(f["key"], f["split"], f["label"]) for f in raw_images["files"]]
    frame = build_manifest(entries, ctx.lake.read_bytes, total=len(entries))
    unreadable = int((~frame["readable"]).sum())
    ctx.add_metadata(
        readable=int(frame["readable"].sum()),
        unreadable=unreadable,
        classes=int(frame.loc[frame["split"] == "train", "label"].nunique()),
        splits={k: int(v) for k, v in frame["split"].value_counts().items()},
    )
    return frame


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
