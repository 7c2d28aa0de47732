"""The typed records the ``data/`` assets hand on: JSON in the lake, torch- and MLflow-free,
so any layer above may read them (`fruitops_core.assets.record`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Shard(BaseModel):
    """One ``.images.npy`` + ``.labels.npy`` pair of the training cache."""

    path: str = Field(description="lake key without the .images.npy / .labels.npy suffix")
    count: int


class CacheSplit(BaseModel):
    count: int
    shards: list[Shard]
    keys: list[str] = Field(description="the images' keys, in the shards' order")


class TrainingCache(BaseModel):
    """``data/training_cache``: where every usable image lies decoded and resized, per split
    (`fruitops_data.cache`), and what the cache was made of."""

    prefix: str
    image_size: int
    classes: list[str]
    splits: dict[str, CacheSplit]
    manifest_hash: str | None = Field(None, description="the image manifest it was made of")
    validation_success: bool | None = None
    source: str | None = Field(None, description="the data set's source, as ingested")
