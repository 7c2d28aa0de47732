"""The Kaggle folder layout: find the split folders and walk the files in them.

Accepts ``Fruit_dataset/{train1,val1,test1}/<class>/<image>``, plain ``train/val/test``, and
a folder that holds either one level down.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fruitops_core.lake import Lake
from fruitops_core.safe_files import (
    LINK_REASON,
    MAX_FILE_BYTES,
    SPECIAL_REASON,
    OpenedFile,
    RefusedFile,
    open_dir,
    open_file,
    size_reason,
)

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
    path: Path  # for messages: the file itself is read through ``file``, never this path
    relpath: str  # "<split>/<class>/<file>" with the split name normalised
    split: str
    label: str | None
    file: OpenedFile | None = None  # the one handle a `Walk` opened; its reader closes it


def is_junk(name: str) -> bool:
    """OS clutter (.DS_Store, Thumbs.db, hidden files) that is ignored and reported as such."""
    return name.lower() in JUNK_NAMES or name.startswith(".") or name.startswith("__MACOSX")


#: Why a file is left out. One rule for ingest, scoring and monitoring: each left-out file is
#: listed with its reason and counted, never silently dropped. (The per-file limit, links and
#: devices: `fruitops_core.safe_files`.)
JUNK_REASON = "OS junk or a hidden file"
NOT_UTF8_REASON = "a name that is not UTF-8: rename it"
#: A name's length in bytes above which it is left out: lake keys, temporary files and
#: object stores all add to it, and file systems stop at 255.
MAX_NAME_BYTES = 200


def name_reason(name: str) -> str | None:
    """Why a file or folder name is left out (junk, not UTF-8, too long), or None."""
    if is_junk(name):
        return JUNK_REASON
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # undecodable bytes, as os.scandir hands them over
        return NOT_UTF8_REASON
    if size > MAX_NAME_BYTES:
        return f"a name of {size} bytes, over the limit of {MAX_NAME_BYTES}: shorten it"
    return None


def skip_reason(parts: Sequence[str], size: int | None = None) -> str | None:
    """Why the file at relative path ``parts`` is left out by its names or its ``size``, or
    None to take it (links and devices are found when a file is opened: `scan`)."""
    for part in parts:
        if reason := name_reason(part):
            return reason
    if size is not None and size > MAX_FILE_BYTES:
        return size_reason(size, MAX_FILE_BYTES)
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


@dataclass
class Entry:
    """A file under a scanned folder: opened (``file``) or left out (``reason``)."""

    parts: tuple[str, ...]  # its path below the folder
    size: int | None = None
    file: OpenedFile | None = None
    reason: str | None = None


def scan(folder: Path, open_files: bool = False) -> Iterator[Entry]:
    """Every non-folder entry under ``folder`` with its relative path parts, in key order.

    Folders are entered through handles (``openat``, never through a link: a folder swapped
    for a link after the listing is refused, not followed). With ``open_files`` each file
    is opened then and there (`fruitops_core.safe_files.open_file`: not a link, a regular
    file, within the size limit) and the caller reads and closes that handle; without, the
    files are only looked at (``lstat``), for listings.

    Siblings are sorted with folders as ``name/``, which makes a depth-first walk yield
    paths in plain string order (``"a b/x" < "a/x"``), the order S3 lists keys in. A listing
    in key order can be merged with the previous one a window at a time, never loaded whole.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        yield from _scan_fd(fd, (), open_files)
    finally:
        os.close(fd)


def _scan_fd(fd: int, parts: tuple[str, ...], open_files: bool) -> Iterator[Entry]:
    with os.scandir(fd) as entries:
        ordered = sorted(
            entries, key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name
        )
    for entry in ordered:
        here = (*parts, entry.name)
        if reason := name_reason(entry.name):
            yield Entry(here, reason=reason)
        elif entry.is_dir(follow_symlinks=False):
            try:
                inner = open_dir(entry.name, fd)
            except RefusedFile as refused:
                yield Entry(here, reason=refused.reason)
                continue
            try:
                yield from _scan_fd(inner, here, open_files)
            finally:
                os.close(inner)
        elif open_files:
            yield _opened(fd, entry.name, here)
        else:
            yield _looked_at(fd, entry.name, here)


def _opened(fd: int, name: str, parts: tuple[str, ...]) -> Entry:
    try:
        opened = open_file(name, fd, MAX_FILE_BYTES)
    except RefusedFile as refused:
        return Entry(parts, reason=refused.reason)
    except FileNotFoundError:
        return Entry(parts, reason="gone before it was read (removed while listed)")
    except OSError as err:
        return Entry(parts, reason=f"cannot be opened: {err.strerror}")
    return Entry(parts, size=opened.size, file=opened)


def _looked_at(fd: int, name: str, parts: tuple[str, ...]) -> Entry:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return Entry(parts, reason="gone before it was read (removed while listed)")
    if stat.S_ISLNK(info.st_mode):
        return Entry(parts, reason=LINK_REASON)
    if not stat.S_ISREG(info.st_mode):
        return Entry(parts, reason=SPECIAL_REASON)
    if info.st_size > MAX_FILE_BYTES:
        return Entry(parts, size=info.st_size, reason=size_reason(info.st_size, MAX_FILE_BYTES))
    return Entry(parts, size=info.st_size)


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
        reasons = (("/".join(e.parts), e.reason) for e in scan(root))
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

    Iterating yields `FoundFile`s lazily (labels from the Kaggle CSVs applied), each with its
    file opened once (``file``: the reader hashes, decodes and copies that handle, and closes
    it); what is left out (junk, odd names, links, devices, files over the limit, files
    changed into any of these while walked) is collected in ``ignored``, with its reason, as
    the walk passes it. ``open_files=False`` only lists, for counts and reports. A walk that
    finds no file at all raises `LayoutError` at its end.
    """

    root: Path
    ignored: list[dict[str, str]] = field(default_factory=list)
    open_files: bool = True

    def _entries(self, open_files: bool) -> Iterator[tuple[str, Path, Entry]]:
        for split, split_dir in sorted(_split_dirs(self.root).items()):
            for entry in scan(split_dir, open_files):
                yield split, split_dir, entry

    def __iter__(self) -> Iterator[FoundFile]:
        self.ignored.clear()
        relabel = csv_labeller(self.root)
        found = 0
        for split, split_dir, entry in self._entries(self.open_files):
            relpath = "/".join((split, *entry.parts))
            if entry.reason:
                self.ignored.append(skipped(relpath, entry.reason))
                continue
            label = entry.parts[0] if len(entry.parts) > 1 else None
            found += 1
            path = split_dir.joinpath(*entry.parts)
            yield relabel(FoundFile(path, relpath, split, label, entry.file))
        if not found:
            raise LayoutError(f"{self.root} holds no files under its split folders")

    def count(self) -> int:
        """How many files a walk yields (a listing pass, no reads): the progress bar's total."""
        return sum(1 for *_, entry in self._entries(False) if entry.reason is None)


def walk(root: Path) -> tuple[list[FoundFile], list[dict[str, str]]]:
    """Every file under the split folders as a list (listed, not opened), and what was left
    out (with reasons). For small folders and reports; ingest streams a `Walk` instead."""
    walker = Walk(root, open_files=False)
    files = list(walker)
    return files, walker.ignored


#: The largest label file read (``*.csv``, ``classname.txt``): a 100,000-photo CSV is ~5 MB.
MAX_LABEL_FILE_BYTES = 64 * 1024**2


def read_label_file(root: Path, name: str) -> str | None:
    """The text of the label file ``name`` in ``root`` (None when there is none), read by the
    rules of photos: never through a link, a regular file, at most `MAX_LABEL_FILE_BYTES`.
    A label file that breaks them stops the walk: its lines would become labels."""
    path = root / name
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        with open_file(name, fd, MAX_LABEL_FILE_BYTES) as opened:
            data = opened.read()
    except FileNotFoundError:
        return None
    except RefusedFile as refused:
        raise LayoutError(
            f"{path}: {refused.reason}; labels are read only from the folder's own files"
        ) from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LayoutError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8"
        ) from None


def _read_csv_labels(root: Path) -> dict[str, int]:
    """``train/<class>/<file>`` → category from ``train.csv``/``val.csv``/``test.csv``."""
    labels: dict[str, int] = {}
    for split in ("train", "val", "test"):
        text = read_label_file(root, f"{split}.csv")
        if text is not None:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            labels.update(_csv_rows(root / f"{split}.csv", reader))
    return labels


_HEADER = re.compile(r"[\w .:-]{0,40}")


def _shown(fields: Sequence[str] | None) -> str:
    """A header as an error message shows it: only what looks like column names, since the
    file may be anything (an error message lands in task logs)."""
    fields = list(fields or [])
    if fields and all(_HEADER.fullmatch(f) for f in fields) and len(",".join(fields)) <= 80:
        return ",".join(fields)
    return f"{len(fields)} fields that do not look like column names"


def _csv_rows(path: Path, reader: csv.DictReader) -> Iterator[tuple[str, int]]:
    """``image:FILE → category`` of one Kaggle CSV; a malformed row names its line."""
    if not reader.fieldnames or not {"image:FILE", "category"} <= set(reader.fieldnames):
        raise LayoutError(
            f"{path}: expected the columns image:FILE,category (found {_shown(reader.fieldnames)})"
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
                f"{path}:{line}: category ({_shown([category])}) is not an integer "
                "(-1 means unlabeled)"
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
    names = (read_label_file(root, "classname.txt") or "").splitlines()

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
