"""The Kaggle folder layout: find the split folders and walk the files in them.

Accepts ``Fruit_dataset/{train1,val1,test1}/<class>/<image>``, plain ``train/val/test``, and
a folder that holds either one level down.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fruitops_core.lake import Lake

SPLIT_ALIASES = {
    "train1": "train",
    "train": "train",
    "val1": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test1": "test",
    "test": "test",
}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


class LayoutError(ValueError):
    """The folder is not laid out like the Kaggle set; the message says what was expected."""


@dataclass(frozen=True)
class FoundFile:
    path: Path
    relpath: str  # "<split>/<class>/<file>" with the split name normalised
    split: str
    label: str | None


def is_junk(name: str) -> bool:
    """OS clutter (.DS_Store, Thumbs.db, hidden files) that is ignored and reported as such."""
    return name.lower() in JUNK_NAMES or name.startswith(".") or name.startswith("__MACOSX")


#: The largest single file taken (a photo is a few MB): larger ones are left out, with why,
#: by ingest and scoring alike, so a worker's memory is bounded whatever a folder holds.
MAX_FILE_BYTES = 256 * 1024**2

#: Why a file is left out. One rule for ingest, scoring and monitoring: each left-out file is
#: listed with its reason and counted, never silently dropped.
JUNK_REASON = "OS junk or a hidden file"
LINK_REASON = "a symbolic link: links are never followed (copy the file itself)"
SPECIAL_REASON = "not a regular file (a pipe, socket or device)"


def skip_reason(
    parts: Sequence[str], entry: os.DirEntry | None = None, size: int | None = None
) -> str | None:
    """Why the file at relative path ``parts`` is left out, or None to take it. ``entry``
    (a local file's) adds the links-and-devices rule; ``size`` (or the entry's) the
    per-file limit."""
    if any(is_junk(part) for part in parts):
        return JUNK_REASON
    if entry is not None:
        if entry.is_symlink():
            return LINK_REASON
        if not entry.is_file(follow_symlinks=False):
            return SPECIAL_REASON
        size = entry.stat(follow_symlinks=False).st_size
    if size is not None and size > MAX_FILE_BYTES:
        return f"{size} bytes, over the per-file limit of {MAX_FILE_BYTES} (a photo needs far less)"
    return None


def key_refusal(key: str) -> str | None:
    """Why an object key is refused (it cannot become a local path), or None when clean."""
    if key.startswith("/"):
        return "refused: a key with a leading '/' (or an empty segment after the prefix)"
    parts = key.split("/")
    if "" in parts:
        return "refused: a key with an empty segment ('//')"
    if any(part in (".", "..") for part in parts):
        return "refused: a key with a '.' or '..' segment"
    if "\\" in key or "\0" in key:
        return "refused: a key with a backslash or a NUL byte"
    return None


def skipped(path: str, reason: str) -> dict[str, str]:
    """A left-out file as reports list it."""
    return {"path": path, "reason": reason}


def scan(
    folder: Path, parts: tuple[str, ...] = ()
) -> Iterator[tuple[os.DirEntry, tuple[str, ...]]]:
    """Every non-folder entry under ``folder`` with its relative path parts, never entering
    a linked folder (a link is yielded as an entry, for `skip_reason` to name).

    Siblings are sorted with folders as ``name/``, which makes a depth-first walk yield
    paths in plain string order (``"a b/x" < "a/x"``), the order S3 lists keys in. A listing
    in key order can be merged with the previous one a window at a time, never loaded whole.
    """
    with os.scandir(folder) as entries:
        ordered = sorted(
            entries, key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name
        )
    for entry in ordered:
        if entry.is_dir(follow_symlinks=False):
            yield from scan(Path(entry.path), (*parts, entry.name))
        else:
            yield entry, (*parts, entry.name)


def sha256_no_follow(path: Path, chunk: int = 1 << 20) -> str:
    """A listed file's SHA-256, read a chunk at a time (memory stays bounded by ``chunk``);
    a file swapped for a link since the listing is refused."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def lake_files(lake: Lake) -> tuple[list[str], list[dict[str, str]]]:
    """A lake's files to take (in order) and those left out, by the rules of `skip_reason`:
    a local folder is scanned (links and devices named), an object store's keys are
    refused when unclean (`key_refusal`) and filtered by name and listed size."""
    root = lake.local_path()
    if root is None:
        reasons = (
            (key, key_refusal(key) or skip_reason(key.split("/"), size=size))
            for key, size, _ in lake.listing()
        )
    elif root.is_dir():
        reasons = (("/".join(parts), skip_reason(parts, entry)) for entry, parts in scan(root))
    else:
        reasons = iter(())
    keys: list[str] = []
    left_out: list[dict[str, str]] = []
    for key, reason in reasons:
        if reason:
            left_out.append(skipped(key, reason))
        else:
            keys.append(key)
    return keys, left_out


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _split_dirs(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(child.name.lower())
        if _is_real_dir(child) and split and split not in found:
            found[split] = child
    return found


def find_dataset_root(folder: Path) -> Path:
    """The folder whose children are the split folders."""
    if not folder.exists():
        raise LayoutError(f"{folder} does not exist: give a folder in the Kaggle layout")
    if not folder.is_dir():
        raise LayoutError(f"{folder} is not a folder")
    candidates = [folder, folder / "Fruit_dataset"]
    candidates += sorted(p for p in folder.iterdir() if _is_real_dir(p) and not is_junk(p.name))
    for candidate in candidates:
        if (candidate == folder or _is_real_dir(candidate)) and "train" in _split_dirs(candidate):
            return candidate
    raise LayoutError(
        f"no train split found in {folder}: expected Fruit_dataset/train1|val1|test1/<class>/"
        "<image> (or train/val/test folders)"
    )


@dataclass
class Walk:
    """Every file under the split folders of ``root``, streamed in ``relpath`` order.

    Iterating yields `FoundFile`s lazily (labels from the Kaggle CSVs applied); what
    `skip_reason` leaves out (junk, links, devices) is collected in ``ignored``, with its
    reason, as the walk passes it. A walk that finds no file at all raises `LayoutError` at
    its end.
    """

    root: Path
    ignored: list[dict[str, str]] = field(default_factory=list)

    def _entries(self) -> Iterator[tuple[str, Path, tuple[str, ...], str | None]]:
        for split, split_dir in sorted(_split_dirs(self.root).items()):
            for entry, rel_parts in scan(split_dir):
                yield split, Path(entry.path), rel_parts, skip_reason(rel_parts, entry)

    def __iter__(self) -> Iterator[FoundFile]:
        self.ignored.clear()
        relabel = csv_labeller(self.root)
        found = 0
        for split, path, rel_parts, reason in self._entries():
            relpath = "/".join((split, *rel_parts))
            if reason:
                self.ignored.append(skipped(relpath, reason))
                continue
            label = rel_parts[0] if len(rel_parts) > 1 else None
            found += 1
            yield relabel(FoundFile(path, relpath, split, label))
        if not found:
            raise LayoutError(f"{self.root} holds no files under its split folders")

    def count(self) -> int:
        """How many files a walk yields (a listing pass, no reads): the progress bar's total."""
        return sum(1 for *_, reason in self._entries() if reason is None)


def walk(root: Path) -> tuple[list[FoundFile], list[dict[str, str]]]:
    """Every file under the split folders as a list, and what was left out (with reasons).

    For small folders and reports; ingest streams a `Walk` instead.
    """
    walker = Walk(root)
    files = list(walker)
    return files, walker.ignored


def _read_csv_labels(root: Path) -> dict[str, int]:
    """``train/<class>/<file>`` → category from ``train.csv``/``val.csv``/``test.csv``."""
    labels: dict[str, int] = {}
    for split in ("train", "val", "test"):
        path = root / f"{split}.csv"
        if not path.is_file():
            continue
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                labels.update(_csv_rows(path, csv.DictReader(handle)))
        except UnicodeDecodeError as err:
            raise LayoutError(
                f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8"
            ) from None
    return labels


def _csv_rows(path: Path, reader: csv.DictReader) -> Iterator[tuple[str, int]]:
    """``image:FILE → category`` of one Kaggle CSV; a malformed row names its line."""
    if not reader.fieldnames or not {"image:FILE", "category"} <= set(reader.fieldnames):
        raise LayoutError(
            f"{path}: expected the columns image:FILE,category (found {reader.fieldnames})"
        )
    for row in reader:
        line = reader.line_num
        name, category = row.get("image:FILE"), row.get("category")
        if name is None or category is None or None in row:
            found = [v for k, v in row.items() if k is not None and v is not None]
            raise LayoutError(
                f"{path}:{line}: expected {len(reader.fieldnames)} fields "
                f"({','.join(reader.fieldnames)}), found {len(found) + len(row.get(None, []))}"
            )
        try:
            yield name.strip().replace("\\", "/"), int(category)
        except ValueError:
            raise LayoutError(
                f"{path}:{line}: category {category!r} is not an integer (-1 means unlabeled)"
            ) from None


def csv_labeller(root: Path):
    """A function that applies the Kaggle CSVs' labels to a `FoundFile`: ``-1`` is unlabeled,
    other categories are named by ``classname.txt`` (else the folder name stands).

    The CSV rows are held in memory (one small entry per listed file); without CSVs the
    function is the identity.
    """
    categories = _read_csv_labels(root)
    if not categories:
        return lambda found: found
    names_file = root / "classname.txt"
    names = names_file.read_text(encoding="utf-8").splitlines() if names_file.is_file() else []

    def relabel(found: FoundFile) -> FoundFile:
        category = categories.get(found.relpath)
        if category is None:
            return found
        if category == -1:
            return replace(found, label=None)
        if 0 <= category < len(names) and names[category].strip():
            return replace(found, label=names[category].strip())
        return found

    return relabel
