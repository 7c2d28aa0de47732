"""The manifest: one row per file found, readable or not (DESIGN.md §4).

"Readable" means the image decoded completely, not just that its header parsed. Files are
inspected in parallel threads, a bounded window at a time, so memory stays flat however
many files there are.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import pandas as pd
from PIL import Image, ImageOps
from tqdm import tqdm

from fruitops_data.images import DECODE_ERRORS, decode_failure_reason

MANIFEST_COLUMNS = {
    "key": "string",
    "split": "string",
    "label": "string",
    "sha256": "string",
    "bytes": "int64",
    "format": "string",
    "width": "Int64",
    "height": "Int64",
    "mode": "string",
    "readable": "bool",
    "error": "string",
}


def inspect_image(data: bytes, sha256: str | None = None) -> dict[str, Any]:
    """Decode fully; return format, size after EXIF orientation, mode, or the error.

    ``sha256`` may be passed when the caller already hashed these bytes.
    """
    row: dict[str, Any] = {
        "sha256": sha256 or hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "format": None,
        "width": None,
        "height": None,
        "mode": None,
        "readable": False,
        "error": None,
    }
    if not data:
        row["error"] = "empty file (0 bytes)"
        return row
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                row["format"] = image.format
                image.load()  # the whole decode: catches truncated files
                oriented = ImageOps.exif_transpose(image)
                row["width"], row["height"] = oriented.size
                row["mode"] = image.mode
        row["readable"] = True
    except DECODE_ERRORS as err:
        row["error"] = decode_failure_reason(err)
    return row


def windows(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items, pulled lazily from any iterable."""
    iterator = iter(items)
    while window := list(islice(iterator, size)):
        yield window


def build_manifest(
    entries: Iterable[tuple[str, str, str | None] | tuple[str, str, str | None, str]],
    read: Callable[[str], bytes],
    total: int | None = None,
    workers: int = 8,
    window: int = 256,
) -> pd.DataFrame:
    """Rows for ``(key, split, label[, sha256])`` entries, reading each key with ``read``."""

    def one(entry: tuple) -> dict[str, Any]:
        key, split, label, *known = entry
        return {"key": key, "split": split, "label": label, **inspect_image(read(key), *known)}

    # each window becomes a typed (columnar) frame at once: a few dozen bytes per file
    # instead of a dict per file
    frames: list[pd.DataFrame] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=total, desc="manifest", unit="img", leave=False) as bar,
    ):
        for chunk in windows(entries, window):
            rows = list(pool.map(one, chunk))
            bar.update(len(rows))
            frames.append(
                pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(MANIFEST_COLUMNS)
            )
    if not frames:
        return pd.DataFrame(columns=list(MANIFEST_COLUMNS)).astype(MANIFEST_COLUMNS)
    return pd.concat(frames, ignore_index=True).astype(MANIFEST_COLUMNS)


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short hash of a data set's content: every key with its content hash and label."""
    digest = hashlib.sha256()
    rows = sorted(
        zip(manifest["key"], manifest["sha256"], manifest["label"].fillna(""), strict=True)
    )
    for key, sha, label in rows:
        digest.update(f"{key}\0{sha}\0{label}\n".encode())
    return digest.hexdigest()[:16]
