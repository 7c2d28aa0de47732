"""Ingest merges the previous listing with the new walk as both stream past in key order."""

from pathlib import Path

import pandas as pd

from fruitops_core.tables import TableWriter
from fruitops_data.ingest import RAW_COLUMNS, SortedLookup


def test_sorted_lookup_merges_a_previous_listing(tmp_path: Path):
    with TableWriter(tmp_path / "prev.parquet", RAW_COLUMNS) as writer:
        writer.write(
            pd.DataFrame(
                {"key": ["a", "c", "e"], "split": "train", "label": None, "sha256": ["1", "3", "5"]}
            )
        )
        previous = writer.close()
    lookup = SortedLookup(previous)
    assert [lookup.get(k) for k in ("a", "b", "c", "d", "f")] == ["1", None, "3", None, None]
    assert SortedLookup(None).get("a") is None
