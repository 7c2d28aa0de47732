"""The Kaggle folder layout: find the split folders and walk the files in them.

Accepts ``Fruit_dataset/{train1,val1,test1}/<class>/<image>``, plain ``train/val/test``, and
a folder that holds either one level down.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

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


def _split_dirs(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(child.name.lower())
        if child.is_dir() and split and split not in found:
            found[split] = child
    return found


def find_dataset_root(folder: Path) -> Path:
    """The folder whose children are the split folders."""
    if not folder.exists():
        raise LayoutError(f"{folder} does not exist: give a folder in the Kaggle layout")
    if not folder.is_dir():
        raise LayoutError(f"{folder} is not a folder")
    candidates = [folder, folder / "Fruit_dataset"]
    candidates += sorted(p for p in folder.iterdir() if p.is_dir() and not is_junk(p.name))
    for candidate in candidates:
        if candidate.is_dir() and "train" in _split_dirs(candidate):
            return candidate
    raise LayoutError(
        f"no train split found in {folder}: expected Fruit_dataset/train1|val1|test1/<class>/"
        "<image> (or train/val/test folders)"
    )


def _sorted_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` in the order of their relative path strings.

    Siblings are sorted with folders as ``name/``, which makes a depth-first walk yield
    paths in plain string order (``"a b/x" < "a/x"``), the order S3 lists keys in. A listing
    in key order can be merged with the previous one a window at a time, never loaded whole.
    """
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda e: e.name + "/" if e.is_dir() else e.name)
    for entry in entries:
        if entry.is_dir():
            yield from _sorted_files(Path(entry.path))
        elif entry.is_file():
            yield Path(entry.path)


@dataclass
class Walk:
    """Every file under the split folders of ``root``, streamed in ``relpath`` order.

    Iterating yields `FoundFile`s lazily (labels from the Kaggle CSVs applied); OS junk is
    skipped and collected in ``ignored`` as the walk passes it. A walk that finds no file at
    all raises `LayoutError` at its end.
    """

    root: Path
    ignored: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[FoundFile]:
        self.ignored.clear()
        relabel = csv_labeller(self.root)
        found = 0
        for split, split_dir in sorted(_split_dirs(self.root).items()):
            for path in _sorted_files(split_dir):
                rel_parts = path.relative_to(split_dir).parts
                relpath = "/".join((split, *rel_parts))
                if any(is_junk(part) for part in rel_parts):
                    self.ignored.append(relpath)
                    continue
                label = rel_parts[0] if len(rel_parts) > 1 else None
                found += 1
                yield relabel(FoundFile(path, relpath, split, label))
        if not found:
            raise LayoutError(f"{self.root} holds no files under its split folders")

    def count(self) -> int:
        """How many files a walk yields (a listing pass, no reads): the progress bar's total."""
        return sum(
            1
            for split_dir in _split_dirs(self.root).values()
            for path in _sorted_files(split_dir)
            if not any(is_junk(p) for p in path.relative_to(split_dir).parts)
        )


def walk(root: Path) -> tuple[list[FoundFile], list[str]]:
    """Every file under the split folders as a list, and the junk that was ignored.

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
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"image:FILE", "category"} <= set(reader.fieldnames):
                raise LayoutError(
                    f"{path}: expected the columns image:FILE,category (found {reader.fieldnames})"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    labels[row["image:FILE"].strip().replace("\\", "/")] = int(row["category"])
                except (TypeError, ValueError):
                    raise LayoutError(
                        f"{path}:{line}: category {row['category']!r} is not an "
                        "integer (-1 means unlabeled)"
                    ) from None
    return labels


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
