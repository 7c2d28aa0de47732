"""The predictions table: its columns, and the writer that publishes it whole or not at all.

One row per scored image (its key and content hash, the top-1 label and confidence, the top
five, and which model version scored it when). The drift monitoring reads these tables
(`fruitops monitor`, `monitoring/drift_report`), so the columns are written down once, here,
for both formats.

Rows go to a local temporary file while a run scores; the finished file is put in place in
one step (`Lake.put_file`), so a reader sees the old table or the new one, never half of
one, and an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PREDICTION_COLUMNS = [
    "key",
    "sha256",
    "label",
    "confidence",
    "top5",
    "model_name",
    "model_version",
    "run_id",
    "scored_at",
    "source_uri",
]
SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("sha256", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("top5", pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("run_id", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("source_uri", pa.string()),
    ]
)


#: What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (a file named ``=cmd|...``)
    gets a leading ``'``, which spreadsheets show as text; other values pass as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class PredictionWriter:
    """Rows go to a local temporary file; the caller puts the `close`d file in place at once."""

    def __init__(self, fmt: str, workdir: Path):
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"unknown format {fmt!r}: use parquet or csv")
        self.fmt = fmt
        self.path = workdir / f"predictions.{fmt}"
        self._parquet: pq.ParquetWriter | None = None
        self._csv = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, SCHEMA)
            self._parquet.write_table(
                pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
            )
            return
        if self._csv is None:
            self._csv = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
            csv.writer(self._csv).writerow(PREDICTION_COLUMNS)
        rows = frame.assign(
            top5=frame["top5"].map(json.dumps),
            scored_at=frame["scored_at"].map(lambda t: t.isoformat()),
        )
        cells = (
            [spreadsheet_safe(v) for v in row]
            for row in rows[PREDICTION_COLUMNS].itertuples(index=False)
        )
        csv.writer(self._csv).writerows(cells)

    def close(self) -> Path:
        if self.fmt == "parquet":
            if self._parquet is None:  # no rows: still a valid, empty table
                pq.write_table(SCHEMA.empty_table(), self.path)
            else:
                self._parquet.close()
        else:
            if self._csv is None:
                self._csv = open(self.path, "w", newline="")  # noqa: SIM115
                csv.writer(self._csv).writerow(PREDICTION_COLUMNS)
            self._csv.close()
        return self.path


def read_predictions(lake: Any, path: str) -> pd.DataFrame:
    """A predictions table: one file (batch scoring), or a folder of part files (a day of
    online answers, `fruitops_serving.recorder`), read as one table."""
    folder = path.rstrip("/")
    if folder.endswith(".parquet"):
        return lake.read_parquet(path)
    parts = [key for key in lake.list(folder + "/") if key.endswith(".parquet")]
    if not parts:
        raise FileNotFoundError(
            f"{lake.uri(path)}: no predictions table there (a .parquet file, or a folder of "
            "them such as predictions/online/<date>/)"
        )
    return pd.concat([lake.read_parquet(key) for key in parts], ignore_index=True)
