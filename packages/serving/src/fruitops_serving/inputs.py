"""What to score: a folder, a glob, an ``s3://`` prefix, or a CSV/Parquet list of files.

Every input becomes a lake (to read bytes from) and the keys inside it. Ingest's rule
(`fruitops_data.layout.skip_reason`) leaves out OS junk, links and devices, each listed with
its reason; everything else is kept, so a file that is not an image is quarantined, never
dropped.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from fruitops_core.lake import Lake, LocalLake, lake_from_uri
from fruitops_core.names import slug
from fruitops_data.layout import lake_files

LIST_COLUMNS = ("key", "path", "image:FILE", "file")


@dataclass(frozen=True)
class ScoringInput:
    lake: Lake
    keys: list[str]
    description: str
    ignored: list[dict[str, str]] = field(default_factory=list)  # left out, with why

    @property
    def name(self) -> str:
        """A file name stem for outputs made from this input: readable and unique."""
        name = slug(self.description).strip("-")[-60:]
        return f"{name}-{hashlib.sha256(self.description.encode()).hexdigest()[:8]}"


class InputError(ValueError):
    """The input cannot be read; the message says what was expected."""


def _from_list(path: Path) -> ScoringInput:
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    column = next((c for c in LIST_COLUMNS if c in frame.columns), None)
    if column is None:
        raise InputError(
            f"{path}: a list of images needs one of the columns "
            f"{', '.join(LIST_COLUMNS)} (found {list(frame.columns)})"
        )
    files = [
        Path(p) if Path(p).is_absolute() else path.parent / p for p in frame[column].astype(str)
    ]
    root = Path("/")
    return ScoringInput(
        LocalLake(root), [str(f.resolve().relative_to(root)) for f in files], str(path)
    )


def resolve_input(spec: str, endpoint_url: str | None = None) -> ScoringInput:
    """The lake and keys behind ``spec``; a missing folder or empty prefix says so."""
    if spec.startswith(("s3://", "gs://")):
        lake = lake_from_uri(spec, endpoint_url=endpoint_url)
        keys, ignored = lake_files(lake)
        return ScoringInput(lake, keys, spec, ignored)
    parsed = urlparse(spec)
    if parsed.scheme not in ("", "file"):
        raise InputError(
            f"input {spec!r}: give a folder, a glob, s3://bucket/prefix or a "
            ".csv/.parquet list of files"
        )
    path = Path(parsed.path if parsed.scheme else spec).expanduser()
    if any(ch in spec for ch in "*?["):
        parts = path.parts
        first = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        base = Path(*parts[:first]) if first else Path(".")
        pattern = "/".join(parts[first:])
        lake = LocalLake(base)
        keys, ignored = lake_files(lake)
        return ScoringInput(
            lake,
            [k for k in keys if fnmatch.fnmatch(k, pattern)],
            spec,
            [i for i in ignored if fnmatch.fnmatch(i["path"], pattern)],
        )
    if path.is_file() and path.suffix.lower() in (".csv", ".parquet"):
        return _from_list(path)
    if not path.is_dir():
        raise InputError(
            f"{path} does not exist or is not a folder: give a folder of images, "
            "a glob, s3://bucket/prefix or a .csv/.parquet list"
        )
    lake = LocalLake(path)
    keys, ignored = lake_files(lake)
    return ScoringInput(lake, keys, str(path), ignored)
