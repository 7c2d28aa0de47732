"""What to score: a folder, a glob, an ``s3://`` prefix, or a CSV/Parquet list of files.

Every input becomes a lake (to read bytes from) and the keys inside it. Ingest's rule
(`fruitops_data.layout.skip_reason`) leaves out OS junk, links and devices, each listed with
its reason; everything else is kept, so a file that is not an image is quarantined, never
dropped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd

from fruitops_core.lake import Lake, LocalLake, lake_from_uri
from fruitops_core.names import slug
from fruitops_core.safe_files import (
    LINK_REASON,
    MAX_FILE_BYTES,
    SPECIAL_REASON,
    OutsideAllowedRoots,
    check_allowed,
    size_reason,
)
from fruitops_data.layout import lake_files, skip_reason, skipped

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


def _from_list(path: Path, allowed: list[Path]) -> ScoringInput:
    """The files a CSV/Parquet list names, by the rules of a folder's files: a relative path
    stays inside the list's folder, an absolute one must be allowed (`check_allowed`), and
    each must be a regular file within the per-file limit, never a link."""
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    column = next((c for c in LIST_COLUMNS if c in frame.columns), None)
    if column is None:
        raise InputError(
            f"{path}: a list of images needs one of the columns "
            f"{', '.join(LIST_COLUMNS)} (found {list(frame.columns)})"
        )
    base = path.parent.resolve()
    keys, ignored = [], []
    for listed in frame[column].astype(str):
        reason, key = _listed_key(listed, base, allowed)
        if reason is None:
            reason = _looked_at(Path("/") / key)
        if reason:
            ignored.append(skipped(listed, reason))
        else:
            keys.append(key)
    return ScoringInput(LocalLake(Path("/"), strict=True), keys, str(path), ignored)


def _listed_key(listed: str, base: Path, allowed: list[Path]) -> tuple[str | None, str]:
    """(why ``listed`` is left out, or None; its path from the root, folders resolved)."""
    entry = PurePosixPath(listed)
    if not entry.is_absolute():
        if ".." in entry.parts:
            return "a relative path that leaves the list's folder ('..')", ""
        entry = PurePosixPath(base) / entry
    else:
        try:
            check_allowed(Path(entry.parent), allowed, "listed file")
        except OutsideAllowedRoots as err:
            return str(err), ""
    if reason := skip_reason(entry.parts[1:]):
        return reason, ""
    # the folders as they are now (links in them resolved once, here); the file is opened
    # later without following any link, so a folder swapped since is refused then
    folder = Path(os.path.realpath(entry.parent))
    return None, str((folder / entry.name).relative_to("/"))


def _looked_at(path: Path) -> str | None:
    """Why the file at ``path`` is left out as it is now (a link, not a regular file, too
    large, missing), or None. Reading it checks again, on the handle."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return LINK_REASON
    if not stat.S_ISREG(info.st_mode):
        return SPECIAL_REASON
    if info.st_size > MAX_FILE_BYTES:
        return size_reason(info.st_size, MAX_FILE_BYTES)
    return None


def resolve_input(
    spec: str, endpoint_url: str | None = None, allowed_roots: Sequence[Path] = ()
) -> ScoringInput:
    """The lake and keys behind ``spec``; a missing folder or empty prefix says so. A local
    input must lie in ``allowed_roots`` (FRUITOPS_ALLOWED_ROOTS; none: not a system folder)."""
    allowed = list(allowed_roots)
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
        check_allowed(base, allowed, "input")
        pattern = "/".join(parts[first:])
        lake = LocalLake(base, strict=True)
        keys, ignored = lake_files(lake)
        return ScoringInput(
            lake,
            [k for k in keys if fnmatch.fnmatch(k, pattern)],
            spec,
            [i for i in ignored if fnmatch.fnmatch(i["path"], pattern)],
        )
    check_allowed(path, allowed, "input")
    if path.is_file() and path.suffix.lower() in (".csv", ".parquet"):
        return _from_list(path, allowed)
    if not path.is_dir():
        raise InputError(
            f"{path} does not exist or is not a folder: give a folder of images, "
            "a glob, s3://bucket/prefix or a .csv/.parquet list"
        )
    lake = LocalLake(path, strict=True)
    keys, ignored = lake_files(lake)
    return ScoringInput(lake, keys, str(path), ignored)
