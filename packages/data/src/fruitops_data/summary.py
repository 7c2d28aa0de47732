"""`ManifestSummary`: the counts a manifest's record, checks and ingest report need.

Gathered as the manifest's frames stream past (while it is written, or read back in
batches), so no caller holds the whole manifest in memory (docs/design.md §4).
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from fruitops_core.tables import ParquetTable

#: the manifest columns `ManifestSummary` reads
SUMMARY_COLUMNS = ["split", "label", "readable"]


class ManifestSummary:
    """Files, readable files, files per split and the labels of readable files per split."""

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

    @property
    def unusable_share(self) -> float:
        """The share of files that cannot be used; 1 for a manifest without files."""
        return 1 - self.readable / self.files if self.files else 1.0
