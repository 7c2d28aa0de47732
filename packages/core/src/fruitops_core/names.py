"""Names made from arbitrary text (run ids, model URIs, input descriptions) that are safe as a
lake key segment, a file name and an MLflow run name."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(text: str, sep: str = "-") -> str:
    """``text`` with each run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``sep``
    (same text → same name)."""
    return _UNSAFE.sub(sep, text)
