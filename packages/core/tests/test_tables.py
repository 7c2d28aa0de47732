from pathlib import Path

import pandas as pd
import pytest

from fruitops_core.assets import parquet_file
from fruitops_core.tables import ParquetTable, TableWriter

DTYPES = {"key": "string", "width": "Int64", "readable": "bool"}


def write(path: Path, frames: list[pd.DataFrame], **meta) -> ParquetTable:
    with TableWriter(path, DTYPES, {"source": "test"}) as writer:
        for frame in frames:
            writer.write(frame)
        return writer.close(**meta)


def test_frames_append_with_a_fixed_schema_and_stream_back(tmp_path: Path):
    # the first frame is all-null in `width`: the declared dtype, not the data, types it
    first = pd.DataFrame({"key": ["a", "b"], "width": [None, None], "readable": [False, False]})
    second = pd.DataFrame({"key": ["c"], "width": [7], "readable": [True]})
    table = write(tmp_path / "t.parquet", [first, second], rows_written=3)
    assert len(table) == 3 and table.columns == ["key", "width", "readable"]
    assert table.meta == {"source": "test", "rows_written": 3}
    batches = list(table.batches(rows=2))
    assert [len(b) for b in batches] == [2, 1]
    assert batches[1]["width"].dtype == "Int64" and batches[1]["width"].iloc[0] == 7
    assert table.read(columns=["key"], filters=[("readable", "==", True)])["key"].tolist() == ["c"]


def test_parquet_file_io_moves_the_file_through_a_lake(tmp_path: Path, s3_server):
    from fruitops_core.lake import lake_from_uri

    table = write(
        tmp_path / "t.parquet", [pd.DataFrame({"key": ["x"], "width": [1], "readable": [True]})]
    )
    lake = lake_from_uri(f"s3://{s3_server.bucket}/tables", endpoint_url=s3_server.endpoint)
    uri, version = parquet_file.store(lake, "assets/t/data.parquet", table)
    assert uri.endswith("assets/t/data.parquet") and version == table.sha256()[:16]
    loaded = parquet_file.load(lake, "assets/t/data.parquet")
    assert loaded.path != table.path and loaded.read().equals(table.read())
    with pytest.raises(TypeError, match="must return a ParquetTable"):
        parquet_file.store(lake, "assets/t/data.parquet", table.read())
