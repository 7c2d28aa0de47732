"""What a class name may be. Names come from data (folder names, ``classname.txt``, CSVs) and
end up in HTML reports, plots, MLflow tags and file names, so they are held to a small rule:

- 1 to `MAX_LENGTH` characters;
- letters and digits of any script (``pomme_à_la_crème``, ``香蕉``), and ``space _ - . ( ) +``;
- not only dots, no leading or trailing space.

Nothing a browser, a shell, matplotlib's math text or a spreadsheet reads as markup
(``< > & " ' $ = @ / \\``) passes. The check runs on the manifest, before validation writes
its Data Docs, and again at the class mapping.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_LENGTH = 64
PUNCTUATION = " _-.()+"
RULE = (
    f"1 to {MAX_LENGTH} letters, digits and '{PUNCTUATION}' (space included), "
    "not only dots, no space at either end"
)


class ClassNameError(ValueError):
    """A class name breaks the rule; the message names it, where it came from and the rule."""


def refusal(name: str) -> str | None:
    """Why ``name`` cannot be a class name, or None when it can."""
    if not name or len(name) > MAX_LENGTH:
        return f"{len(name)} characters"
    bad = sorted({c for c in name if not (c.isalnum() or c in PUNCTUATION)})
    if bad:
        return "the character" + ("s " if len(bad) > 1 else " ") + " ".join(map(repr, bad))
    if name != name.strip():
        return "a space at one end"
    if set(name) == {"."}:
        return "only dots"
    return None


def origin(label: str, key: str) -> str:
    """Where a label seen on file ``key`` (``…/<split>/<folder>/<file>``) came from."""
    parts = key.split("/")
    folder = "/".join(parts[-3:-1]) if len(parts) >= 3 else key
    if len(parts) >= 2 and parts[-2] == label:
        return f"the folder {folder}"
    return f"a line of classname.txt or a Kaggle CSV (file {key})"


def check(labels: Iterable[tuple[str, str]]) -> None:
    """Raise `ClassNameError` for the first ``(label, example key)`` whose label breaks the
    rule."""
    for label, key in labels:
        if reason := refusal(label):
            raise ClassNameError(
                f"class name {label!r} from {origin(label, key)} is not allowed ({reason}): "
                f"a class name is {RULE}; rename it"
            )
