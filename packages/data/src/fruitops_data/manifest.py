"""The manifest: one row per file found, readable or not (docs/design.md §4).

"Readable" means the image decoded completely, not just that its header parsed. Files are
inspected in parallel threads, a bounded window at a time, so memory stays flat however
many files there are. The manifest hash (the data set's content) is computed while the rows
are written and rides in the table's footer with ``dataset_id`` and ``source``: downstream
reads it (`stored_manifest_hash`) instead of hashing the table again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_data.images import try_decode
from fruitops_data.quarantine import quarantine, write_reasons
from fruitops_data.summary import ManifestSummary

MANIFEST_COLUMNS = {
    "key": "string",
    "split": "string",
    "label": "string",
    "sha256": "string",
    "bytes": "int64",
    "format": "string",
    "width": "Int64",
    "height": "Int64",
    "mode": "string",
    "readable": "bool",
    "error": "string",
}


def inspect_image(data: bytes, sha256: str | None = None) -> dict[str, Any]:
    """Decode fully (`try_decode`); return format, size after EXIF orientation, mode, or the
    error. ``sha256`` may be passed when the caller already hashed these bytes."""
    decoded = try_decode(data)
    width, height = decoded.image.size if decoded.image is not None else (None, None)
    return {
        "sha256": sha256 or hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "format": decoded.format,
        "width": width,
        "height": height,
        "mode": decoded.mode,
        "readable": decoded.error is None,
        "error": decoded.error,
    }


def windows(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items, pulled lazily from any iterable."""
    iterator = iter(items)
    while window := list(islice(iterator, size)):
        yield window


def manifest_frames(
    entries: Iterable[tuple[str, str, str | None] | tuple[str, str, str | None, str]],
    read: Callable[[str], bytes],
    total: int | None = None,
    workers: int = 8,
    window: int = 256,
) -> Iterator[pd.DataFrame]:
    """Typed manifest rows for ``(key, split, label[, sha256])`` entries, a window at a time.

    Each key is read with ``read`` and decoded in a thread; only one window of files is in
    flight, so memory does not grow with the number of entries.
    """

    def one(entry: tuple) -> dict[str, Any]:
        key, split, label, *known = entry
        return {"key": key, "split": split, "label": label, **inspect_image(read(key), *known)}

    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(total, "manifest", "images") as bar,
    ):
        for chunk in windows(entries, window):
            rows = list(pool.map(one, chunk))
            bar.update(len(rows))
            yield pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(MANIFEST_COLUMNS)


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame(columns=list(MANIFEST_COLUMNS)).astype(MANIFEST_COLUMNS)


def build_manifest(
    entries: Iterable[tuple[str, str, str | None] | tuple[str, str, str | None, str]],
    read: Callable[[str], bytes],
    total: int | None = None,
    workers: int = 8,
    window: int = 256,
) -> pd.DataFrame:
    """The whole manifest in memory, for small sets and tests (ingest streams to Parquet)."""
    frames = list(manifest_frames(entries, read, total, workers, window))
    return pd.concat(frames, ignore_index=True) if frames else empty_manifest()


class ManifestDigest:
    """`manifest_hash` fed a frame at a time, for rows that arrive in key order."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._last: str | None = None
        self.in_order = True

    def update(self, frame: pd.DataFrame) -> None:
        for key, sha, label in zip(
            frame["key"], frame["sha256"], frame["label"].fillna(""), strict=True
        ):
            if self._last is not None and key <= self._last:
                self.in_order = False
            self._last = key
            self._digest.update(f"{key}\0{sha}\0{label}\n".encode())

    def hexdigest(self) -> str:
        if not self.in_order:
            raise ValueError("rows were not in key order: hash a sorted manifest instead")
        return self._digest.hexdigest()[:16]


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short hash of a data set's content: every key with its content hash and label."""
    digest = ManifestDigest()
    digest.update(manifest.sort_values("key", kind="stable"))
    return digest.hexdigest()


def table_manifest_hash(table: ParquetTable) -> str:
    """`manifest_hash` of a stored manifest, streamed when its rows are in key order (as
    ingest writes them), else computed from the sorted hash columns."""
    digest = ManifestDigest()
    for frame in table.batches(columns=["key", "sha256", "label"]):
        digest.update(frame)
        if not digest.in_order:
            return manifest_hash(table.read(columns=["key", "sha256", "label"]))
    return digest.hexdigest()


#: the footer entry that holds the manifest hash
HASH_META_KEY = "manifest_hash"


def stored_manifest_hash(table: ParquetTable) -> str:
    """The manifest hash from the table's footer; a manifest written before the footer held
    it (a lake made by an older version) is hashed here instead (`table_manifest_hash`)."""
    return table.meta.get(HASH_META_KEY) or table_manifest_hash(table)


def raw_entries(raw_images: ParquetTable) -> Iterator[tuple[str, str, str | None, str]]:
    """``(key, split, label, sha256)`` of each file of the raw_images listing, in its order."""
    for frame in raw_images.batches(columns=["key", "split", "label", "sha256"]):
        labels = frame["label"].astype(object).where(frame["label"].notna(), None)
        yield from zip(frame["key"], frame["split"], labels, frame["sha256"], strict=True)


@dataclass(frozen=True)
class WrittenManifest:
    table: ParquetTable
    summary: ManifestSummary
    quarantined: list[dict[str, str]]
    manifest_hash: str


def write_manifest(
    raw_images: ParquetTable, lake: Lake, path: Path, workers: int = 8
) -> WrittenManifest:
    """Inspect every file of the raw_images listing into a manifest table at ``path``,
    quarantining the unusable ones; the footer gets ``dataset_id``, ``source`` and the hash."""
    dataset_id = raw_images.meta["dataset_id"]
    summary, digest = ManifestSummary(), ManifestDigest()
    quarantined: list[dict[str, str]] = []
    with TableWriter(path, MANIFEST_COLUMNS) as writer:
        frames = manifest_frames(
            raw_entries(raw_images), lake.read_bytes, total=len(raw_images), workers=workers
        )
        for frame in frames:
            writer.write(frame)
            digest.update(frame)
            summary.add(frame)
            quarantined += quarantine(lake, frame, dataset_id)
        # rows out of key order cannot be hashed as they stream: left to stored_manifest_hash
        hashed = {HASH_META_KEY: digest.hexdigest()} if digest.in_order else {}
        table = writer.close(dataset_id=dataset_id, source=raw_images.meta["source"], **hashed)
    write_reasons(lake, dataset_id, quarantined)
    return WrittenManifest(table, summary, quarantined, stored_manifest_hash(table))
