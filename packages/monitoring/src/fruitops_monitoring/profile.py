"""Feature tables of image sets, streamed to Parquet: the reference profile and scored batches.

A table is built in one pass over the images. Embeddings go to a scratch file chunk by chunk
while their mean and covariance accumulate; for the reference the projection is fitted from
those moments at the end (no N×D matrix in memory), then each chunk gets its components and
is appended to the table. For a batch the reference's projection is applied directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fruitops_core.tables import ParquetTable, TableWriter
from fruitops_monitoring.features import (
    IMAGE_COLUMNS,
    Projection,
    add_components,
    feature_frames,
)


class Moments:
    """Running mean and covariance of embedding rows (for the projection)."""

    def __init__(self) -> None:
        self.n = 0
        self.total: np.ndarray | None = None
        self.outer: np.ndarray | None = None

    def add(self, rows: np.ndarray) -> None:
        if self.total is None:
            self.total = np.zeros(rows.shape[1])
            self.outer = np.zeros((rows.shape[1], rows.shape[1]))
        self.n += len(rows)
        self.total += rows.sum(0)
        self.outer += rows.T @ rows

    def projection(self, k: int) -> Projection:
        if self.n < 2 or self.total is None or self.outer is None:
            raise ValueError("fitting the embedding projection needs at least 2 images")
        mean = self.total / self.n
        covariance = (self.outer - self.n * np.outer(mean, mean)) / (self.n - 1)
        values, vectors = np.linalg.eigh(covariance)
        components = vectors[:, np.argsort(values)[::-1][:k]].T
        signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
        return Projection(mean, components * signs[:, None])


@dataclass
class FeatureTable:
    table: ParquetTable
    rows: int
    quarantined: list[dict[str, str]] = field(default_factory=list)
    projection: Projection | None = None


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {
        c: ("string" if c in ("key", "predicted_class", "label") else "float64")
        for c in frame.columns
    }


def build_features(
    keys: Iterable[str],
    read: Callable[[str], bytes],
    path: Path,
    model: Any | None = None,
    projection: Projection | None = None,
    fit_components: int = 0,
    label_of: Callable[[str], str | None] | None = None,
    total: int | None = None,
    chunk: int = 64,
    desc: str = "features",
) -> FeatureTable:
    """Features of every image of ``keys`` into a Parquet table at ``path``.

    With ``fit_components`` (the reference), the embedding projection is fitted on these
    images; else ``projection`` (the reference's) is applied. ``label_of`` adds true labels.
    """
    scratch = path.parent / f".{path.name}.chunks"
    scratch.mkdir(parents=True, exist_ok=True)
    moments = Moments()
    quarantined: list[dict[str, str]] = []
    chunks = 0
    for frame, embeddings, bad in feature_frames(
        keys,
        read,
        model,
        None if fit_components else projection,
        chunk=chunk,
        total=total,
        desc=desc,
        keep_embeddings=bool(fit_components),
    ):
        quarantined += bad
        if label_of is not None:
            frame["label"] = [label_of(k) for k in frame["key"]]
        if frame.empty:
            continue
        frame.to_parquet(scratch / f"{chunks:06d}.parquet", index=False)
        if embeddings is not None:
            np.save(scratch / f"{chunks:06d}.npy", embeddings)
            moments.add(embeddings)
        chunks += 1
    if fit_components:
        projection = moments.projection(fit_components) if moments.n >= 2 else None
    rows = 0
    writer: TableWriter | None = None
    for i in range(chunks):
        frame = pd.read_parquet(scratch / f"{i:06d}.parquet")
        if fit_components:
            frame = add_components(frame, np.load(scratch / f"{i:06d}.npy"), projection)
        if writer is None:
            writer = TableWriter(path, _dtypes(frame))
        writer.write(frame)
        rows += len(frame)
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    if writer is None:  # nothing decodable: an empty table with the image columns
        writer = TableWriter(path, _dtypes(pd.DataFrame(columns=["key", *IMAGE_COLUMNS])))
    table = writer.close(projection=projection.to_dict() if projection is not None else None)
    return FeatureTable(table, rows, quarantined, projection)
