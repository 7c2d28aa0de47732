"""The incoming batch that serving scores: a folder or lake prefix and the image keys in it.

Every file but junk and links is listed (those are left out, each with why): what cannot be
decoded is quarantined by scoring, not dropped here (docs/design.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fruitops_core.lake import Lake, lake_from_uri
from fruitops_core.safe_files import check_allowed
from fruitops_core.tables import ParquetTable
from fruitops_data.layout import lake_files
from fruitops_data.records import IncomingBatch
from fruitops_data.sources import local_path


def list_batch(
    source: str | None,
    raw_images: ParquetTable,
    lake: Lake,
    endpoint_url: str | None = None,
    allowed_roots: Sequence[Path] = (),
) -> IncomingBatch:
    """The keys under ``source`` (and the files left out), or of the ingested data set's test split
    when no source is given; an empty batch is an error that says where to put images. A
    local source must lie in ``allowed_roots`` (`check_allowed`)."""
    if source:
        uri = source
        if (local := local_path(source)) is not None:
            check_allowed(local, list(allowed_roots), "batch")
        keys, ignored = lake_files(lake_from_uri(uri, endpoint_url=endpoint_url, strict=True))
    else:  # the ingested test split: its objects, wherever their version put them
        ignored = []
        uri = lake.uri("")
        test = raw_images.read(columns=["key"], filters=[("split", "==", "test")])
        keys = list(test["key"])
    if not keys:
        raise ValueError(
            f"incoming batch {uri} holds no files: put images there or set "
            "data/incoming_batch.source"
        )
    return IncomingBatch(uri=uri, keys=keys, ignored=ignored)
