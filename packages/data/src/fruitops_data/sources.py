"""Sources: one ``SOURCE`` string selects where the photos come from.

- ``synthetic:classes=N,per_class=M,size=S,seed=K`` draws a set (see `synthetic`);
- a folder path (or ``file://`` URI) in the Kaggle layout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from fruitops_data import synthetic
from fruitops_data.layout import find_dataset_root


class SourceError(ValueError):
    """The source string cannot be used; the message says what to give instead."""


@dataclass(frozen=True)
class ResolvedSource:
    source: str
    dataset_id: str  # stable name of this data set inside the lake
    root: Path  # local folder whose children are the split folders


def resolve(source: str, workdir: Path) -> ResolvedSource:
    """Make ``source`` available as a local folder (drawing a synthetic set under ``workdir``)."""
    source = source.strip()
    if not source:
        raise SourceError("empty source: set FRUITOPS_SOURCE to a folder or synthetic:...")
    if source.startswith("synthetic:") or source == "synthetic":
        spec = synthetic.SyntheticSpec.parse(source.partition(":")[2])
        dataset = synthetic.generate(spec, workdir / "sources" / spec.slug)
        return ResolvedSource(source, spec.slug, find_dataset_root(dataset))
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file"):
        raise SourceError(
            f"source {source!r}: scheme {parsed.scheme!r} is not supported; give a folder in "
            "the Kaggle layout or synthetic:classes=N,per_class=M,size=S,seed=K"
        )
    folder = Path(unquote(parsed.path) if parsed.scheme else source).expanduser().resolve()
    root = find_dataset_root(folder)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return ResolvedSource(source, f"{folder.name or 'root'}-{digest}", root)
