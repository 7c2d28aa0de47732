"""The Kaggle folder layout: find the split folders and walk the files in them.

Accepts ``Fruit_dataset/{train1,val1,test1}/<class>/<image>``, plain ``train/val/test``, and
a folder that holds either one level down.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
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


def walk(root: Path) -> tuple[list[FoundFile], list[str]]:
    """Every file under the split folders, and the junk files that were ignored."""
    files: list[FoundFile] = []
    ignored: list[str] = []
    for split, split_dir in _split_dirs(root).items():
        for path in sorted(split_dir.rglob("*")):
            if not path.is_file():
                continue
            rel_parts = path.relative_to(split_dir).parts
            relpath = "/".join((split, *rel_parts))
            if any(is_junk(part) for part in rel_parts):
                ignored.append(relpath)
                continue
            label = rel_parts[0] if len(rel_parts) > 1 else None
            files.append(FoundFile(path, relpath, split, label))
    if not files:
        raise LayoutError(f"{root} holds no files under its split folders")
    return apply_csv_labels(root, files), ignored


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


def apply_csv_labels(root: Path, files: list[FoundFile]) -> list[FoundFile]:
    """Labels from the Kaggle CSVs where they exist: ``-1`` is unlabeled, other categories are
    named by ``classname.txt`` (else the folder name stands)."""
    categories = _read_csv_labels(root)
    if not categories:
        return files
    names_file = root / "classname.txt"
    names = names_file.read_text(encoding="utf-8").splitlines() if names_file.is_file() else []
    labelled = []
    for found in files:
        category = categories.get(found.relpath)
        if category is None:
            labelled.append(found)
        elif category == -1:
            labelled.append(replace(found, label=None))
        elif 0 <= category < len(names) and names[category].strip():
            labelled.append(replace(found, label=names[category].strip()))
        else:
            labelled.append(found)
    return labelled
