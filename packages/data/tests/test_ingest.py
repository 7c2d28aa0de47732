"""Ingest merges the previous listing with the new walk as both stream past in key order."""

from pathlib import Path

import pandas as pd

from fruitops_core.tables import TableWriter
from fruitops_data.ingest import RAW_COLUMNS, SortedLookup


def test_sorted_lookup_merges_a_previous_listing(tmp_path: Path):
    with TableWriter(tmp_path / "prev.parquet", RAW_COLUMNS) as writer:
        writer.write(
            pd.DataFrame(
                {
                    "key": ["raw/d/v/1/a", "raw/d/v/2/c", "raw/d/v/1/e"],
                    "path": ["a", "c", "e"],
                    "split": "train",
                    "label": None,
                    "sha256": ["1", "3", "5"],
                }
            )
        )
        previous = writer.close()
    lookup = SortedLookup(previous, "raw/d")
    assert [lookup.get(p) for p in ("a", "b", "c", "d", "f")] == [
        ("raw/d/v/1/a", "1"),
        None,
        ("raw/d/v/2/c", "3"),
        None,
        None,
    ]
    # a listing from before raw files were versioned: its keys hold the path
    old_columns = {k: v for k, v in RAW_COLUMNS.items() if k != "path"}
    with TableWriter(tmp_path / "old.parquet", old_columns) as writer:
        writer.write(
            pd.DataFrame(
                {
                    "key": ["raw/d/a", "raw/d/c"],
                    "split": "train",
                    "label": None,
                    "sha256": ["1", "3"],
                }
            )  # fmt: skip
        )
        old = writer.close()
    assert SortedLookup(old, "raw/d").get("c") == ("raw/d/c", "3")
    assert SortedLookup(None, "raw/d").get("a") is None
