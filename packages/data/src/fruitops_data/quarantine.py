"""Quarantine: an unusable file is copied to ``quarantine/<dataset>/`` with its reason.

Never silently dropped (docs/design.md §4): the file keeps its manifest row with the error,
and ``quarantine/<dataset>/reasons.json`` lists every one with why.
"""

from __future__ import annotations

import pandas as pd

from fruitops_core.lake import Lake


def unusable(frame: pd.DataFrame) -> list[dict[str, str]]:
    """``{"key", "reason"}`` for each unreadable row of a manifest frame."""
    bad = frame[~frame["readable"]]
    return [{"key": k, "reason": r} for k, r in zip(bad["key"], bad["error"], strict=True)]


def reasons_key(dataset_id: str) -> str:
    """Where the quarantine's reasons for a data set are written in the lake."""
    return f"quarantine/{dataset_id}/reasons.json"


def quarantine(lake: Lake, frame: pd.DataFrame, dataset_id: str) -> list[dict[str, str]]:
    """Copy each unusable file of ``frame`` to quarantine/<dataset>/; return the entries."""
    entries = []
    for entry in unusable(frame):
        target = f"quarantine/{dataset_id}/{entry['key'].split('/', 2)[-1]}"
        lake.write_bytes(target, lake.read_bytes(entry["key"]))
        entries.append({**entry, "quarantine_key": target})
    return entries


def write_reasons(lake: Lake, dataset_id: str, entries: list[dict[str, str]]) -> None:
    """Write the reasons list, when anything was quarantined."""
    if entries:
        lake.write_json(reasons_key(dataset_id), entries)
