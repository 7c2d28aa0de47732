"""Ingest: a source's files copied into the lake under ``raw/<dataset>/`` (``data/raw_images``).

A file whose content hash matches the previous listing and that the lake still holds is not
uploaded again: the previous listing and the new walk are merged as both stream past in key
order (`SortedLookup`), so memory stays flat however many files there are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_core.safe_files import RefusedFile
from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_data.layout import FoundFile, Walk, skipped
from fruitops_data.manifest import windows
from fruitops_data.sources import ResolvedSource

#: the raw_images table: one row per file copied into the lake
RAW_COLUMNS = {"key": "string", "split": "string", "label": "string", "sha256": "string"}

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


@dataclass(frozen=True)
class Copied:
    """The listing written (source, dataset id, prefix and ignored junk in its footer) and
    how many files were walked and uploaded."""

    table: ParquetTable
    files: int
    uploaded: int
    ignored: int


def copy_into_lake(resolved: ResolvedSource, lake: Lake, workdir: Path, workers: int = 8) -> Copied:
    """Walk ``resolved`` and copy its changed and new files into the lake; the listing is
    written to ``workdir`` and kept in the lake as the next run's previous listing.

    Each file is read through the one handle the walk opened (`Walk`): hashed, then, when
    new or changed, copied with its hash taken again on the way; a file whose bytes changed
    between the two (or grew past the limit) is left out with why, so the lake never holds
    bytes the listing's sha256 does not describe.
    """
    walker = Walk(resolved.root)
    total = walker.count()
    prefix = f"raw/{resolved.dataset_id}"
    index_path = f"{prefix}/_index.parquet"
    previous = None
    if lake.exists(index_path):
        previous = ParquetTable(lake.get_file(index_path, workdir / "previous.parquet"))
    known = SortedLookup(previous)
    changed: list[dict[str, str]] = []

    def copy(found: FoundFile, known_sha: str | None) -> tuple[str | None, bool]:
        assert found.file is not None  # a Walk opens every file it yields
        with found.file as opened:
            try:
                sha = opened.sha256()
                key = f"{prefix}/{found.relpath}"
                if known_sha == sha and lake.exists(key):
                    return sha, False
                copied = lake.put_chunks(opened.chunks(), key)
            except RefusedFile as refused:
                changed.append(skipped(found.relpath, refused.reason))
                return None, False
        if copied != sha:
            lake.delete_prefix(key)
            changed.append(skipped(found.relpath, "changed while it was read: ingest it again"))
            return None, False
        return sha, True

    uploaded = files = 0
    with (
        TableWriter(workdir / "raw_images.parquet", RAW_COLUMNS) as writer,
        ThreadPoolExecutor(workers) as pool,
        progress_bar(total, "upload", "files") as bar,
    ):
        for window in windows(walker, 256):
            results = list(
                pool.map(copy, window, [known.get(f"{prefix}/{f.relpath}") for f in window])
            )
            kept = [(f, sha) for f, (sha, _) in zip(window, results, strict=True) if sha]
            writer.write(
                pd.DataFrame(
                    {
                        "key": [f"{prefix}/{f.relpath}" for f, _ in kept],
                        "split": [f.split for f, _ in kept],
                        "label": [f.label for f, _ in kept],
                        "sha256": [sha for _, sha in kept],
                    }
                )
            )
            uploaded += sum(1 for _, up in results if up)
            files += len(kept)
            bar.update(len(window))
        ignored = [*resolved.refused, *walker.ignored, *changed]
        table = writer.close(
            source=resolved.source,
            dataset_id=resolved.dataset_id,
            prefix=prefix,
            uri=lake.uri(prefix),
            ignored=ignored,
        )
    lake.put_file(table.path, index_path)  # the next run's `previous`
    return Copied(table, files, uploaded, len(ignored))
