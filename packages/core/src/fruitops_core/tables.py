"""Tables that grow with the data set: Parquet files on local disk, written and read in batches.

A manifest of a million images must not be a million rows in memory. An asset that returns
a `ParquetTable` hands over a file, not a frame: the `parquet_file` IO policy uploads it as is
and gives downstream assets a local copy to stream through (`batches`). Small projections
(`read(columns, filters)`) are for the few places that need one split's keys, and for tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"fruitops"
BATCH_ROWS = 16_384


@dataclass(frozen=True)
class ParquetTable:
    """A Parquet file on local disk, streamed in batches rather than loaded whole."""

    path: Path

    def __len__(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    @property
    def columns(self) -> list[str]:
        return pq.ParquetFile(self.path).schema_arrow.names

    @property
    def meta(self) -> dict[str, Any]:
        """The small JSON record the writer attached (dataset id, source, counts...)."""
        raw = pq.ParquetFile(self.path).metadata.metadata or {}
        return json.loads(raw[META_KEY]) if META_KEY in raw else {}

    def batches(
        self, columns: list[str] | None = None, rows: int = BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        """The table as consecutive frames of at most ``rows`` rows, in file order."""
        file = pq.ParquetFile(self.path)
        for batch in file.iter_batches(batch_size=rows, columns=columns):
            yield batch.to_pandas()

    def read(self, columns: list[str] | None = None, filters: Any = None) -> pd.DataFrame:
        """A projection in memory: only for slices known to be small, and for tests."""
        return pq.read_table(self.path, columns=columns, filters=filters).to_pandas()

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()


class TableWriter:
    """Append frames of one schema to a local Parquet file; `close` returns the table.

    ``dtypes`` fixes the schema up front, so a first frame of all-null values cannot type a
    column wrongly for the frames after it.
    """

    def __init__(self, path: Path, dtypes: dict[str, str], meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dtypes = dtypes
        self.meta = dict(meta or {})
        empty = pd.DataFrame(columns=list(dtypes)).astype(dtypes)
        self.schema = pa.Schema.from_pandas(empty, preserve_index=False)
        self._writer = pq.ParquetWriter(self.path, self.schema)
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        frame = frame[list(self.dtypes)].astype(self.dtypes)
        self._writer.write_table(
            pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        )
        self.rows += len(frame)

    def close(self, **meta: Any) -> ParquetTable:
        """Finish the file; ``meta`` joins the small record stored in its footer."""
        self.meta.update(meta)
        self._writer.add_key_value_metadata({META_KEY: json.dumps(self.meta, default=str)})
        self._writer.close()
        return ParquetTable(self.path)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer.is_open:
            self._writer.close()
