"""The Kaggle folder layout: find the split folders and walk the files in them.

Accepts ``Fruit_dataset/{train1,val1,test1}/<class>/<image>``, plain ``train/val/test``, and
a folder that holds either one level down.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    return files, ignored
