"""Ingest: a source's files copied into the lake under ``raw/<dataset>/`` (``data/raw_images``).

Raw files are versioned like every other asset: each ingest writes the files that are new
or changed under a folder of its own, ``raw/<dataset>/v/<version>/<split>/<class>/<file>``,
and never writes over a file a listing already names. The listing (the asset's value,
committed by its record) names the object of every file, old or new: a re-ingest that fails
half-way leaves the committed listing and every byte it names as they were.

A file whose content hash matches the previous listing and whose object the lake still holds
is not uploaded again: the previous listing and the new walk are merged as both stream past
in path order (`SortedLookup`), so memory stays flat however many files there are.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_core.safe_files import RefusedFile
from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_data.layout import FoundFile, Walk, skipped
from fruitops_data.manifest import windows
from fruitops_data.sources import ResolvedSource

#: the raw_images table: one row per file copied into the lake; ``key`` is its object in
#: the lake, ``path`` its place in the source (``<split>/<class>/<file>``)
RAW_COLUMNS = {
    "key": "string",
    "path": "string",
    "split": "string",
    "label": "string",
    "sha256": "string",
}

NO_DATA_SET = (
    "no data set: nothing has been ingested into the lake yet and no source was given. "
    "Ingest one with `fruitops data ingest SOURCE` (a folder in the Kaggle layout, a .zip, "
    "s3://bucket/prefix or synthetic:...), or name one with --source, the DAG's source "
    "param or FRUITOPS_SOURCE"
)


def chosen_source(given: str | None, ingested: str | None, log: logging.Logger) -> str:
    """The source given (config or FRUITOPS_SOURCE), else the one the lake already holds."""
    if given:
        return given
    if not ingested:
        raise ValueError(NO_DATA_SET)
    log.info("no source given: ingesting the lake's data set %s again", ingested)
    return ingested


class SortedLookup:
    """``path → (object key, sha256)`` from a listing in path order, asked for paths in
    ascending order.

    The previous listing is merged with the new walk as both stream past: a missed or
    out-of-order path only means that file is uploaded again. A listing from before raw
    files were versioned has no ``path``: its keys are ``<prefix>/<path>``.
    """

    def __init__(self, table: ParquetTable | None, prefix: str):
        self._rows = self._iterate(table, prefix)
        self._current: tuple[str, str, str] | None = next(self._rows, None)

    @staticmethod
    def _iterate(table: ParquetTable | None, prefix: str) -> Iterator[tuple[str, str, str]]:
        if table is None:
            return
        versioned = "path" in table.columns
        columns = ["path", "key", "sha256"] if versioned else ["key", "sha256"]
        for frame in table.batches(columns=columns):
            paths = frame["path"] if versioned else frame["key"].str.removeprefix(f"{prefix}/")
            yield from zip(paths, frame["key"], frame["sha256"], strict=True)

    def get(self, path: str) -> tuple[str, str] | None:
        while self._current is not None and self._current[0] < path:
            self._current = next(self._rows, None)
        if self._current is not None and self._current[0] == path:
            return self._current[1], self._current[2]
        return None


def new_version() -> str:
    """A folder name no other ingest uses: its time, then random hex."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Copied:
    """The listing written (source, dataset id, prefix and ignored junk in its footer) and
    how many files were walked and uploaded."""

    table: ParquetTable
    files: int
    uploaded: int
    ignored: int


def copy_into_lake(resolved: ResolvedSource, lake: Lake, workdir: Path, workers: int = 8) -> Copied:
    """Walk ``resolved`` and copy its changed and new files into a version folder of their
    own; the listing is written to ``workdir`` and kept in the lake as the next run's
    previous listing.

    Each file is read through the one handle the walk opened (`Walk`): hashed, then, when
    new or changed, copied with its hash taken again on the way; a file whose bytes changed
    between the two (or grew past the limit) is left out with why, so the lake never holds
    bytes the listing's sha256 does not describe.
    """
    walker = Walk(resolved.root)
    total = walker.count()
    prefix = f"raw/{resolved.dataset_id}"
    version = f"{prefix}/v/{new_version()}"
    index_path = f"{prefix}/_index.parquet"
    previous = None
    if lake.exists(index_path):
        previous = ParquetTable(lake.get_file(index_path, workdir / "previous.parquet"))
    known = SortedLookup(previous, prefix)
    changed: list[dict[str, str]] = []

    def copy(found: FoundFile, earlier: tuple[str, str] | None) -> tuple[str | None, str, bool]:
        """(sha256, object key, uploaded); no sha256 when the file was left out."""
        assert found.file is not None  # a Walk opens every file it yields
        key = f"{version}/{found.relpath}"
        with found.file as opened:
            try:
                sha = opened.sha256()
                if earlier is not None and earlier[1] == sha and lake.exists(earlier[0]):
                    return sha, earlier[0], False
                copied = lake.put_chunks(opened.chunks(), key)
            except RefusedFile as refused:
                changed.append(skipped(found.relpath, refused.reason))
                return None, key, False
        if copied != sha:
            lake.delete_prefix(key)
            changed.append(skipped(found.relpath, "changed while it was read: ingest it again"))
            return None, key, False
        return sha, key, True

    uploaded = files = 0
    with (
        TableWriter(workdir / "raw_images.parquet", RAW_COLUMNS) as writer,
        ThreadPoolExecutor(workers) as pool,
        progress_bar(total, "upload", "files") as bar,
    ):
        for window in windows(walker, 256):
            earlier = [known.get(f.relpath) for f in window]
            results = list(pool.map(copy, window, earlier))
            kept = [(f, r) for f, r in zip(window, results, strict=True) if r[0]]
            writer.write(
                pd.DataFrame(
                    {
                        "key": [key for _, (_, key, _) in kept],
                        "path": [f.relpath for f, _ in kept],
                        "split": [f.split for f, _ in kept],
                        "label": [f.label for f, _ in kept],
                        "sha256": [sha for _, (sha, _, _) in kept],
                    }
                )
            )
            uploaded += sum(1 for _, _, up in results if up)
            files += len(kept)
            bar.update(len(window))
        ignored = [*resolved.refused, *walker.ignored, *changed]
        table = writer.close(
            source=resolved.source,
            dataset_id=resolved.dataset_id,
            prefix=prefix,
            version=version,
            uri=lake.uri(prefix),
            ignored=ignored,
        )
    lake.put_file(table.path, index_path)  # the next run's `previous`
    return Copied(table, files, uploaded, len(ignored))
