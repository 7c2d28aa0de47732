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


class ValidationResult(BaseModel):
    """``data/data_validation``: Great Expectations' verdict on the manifest (every result
    and statistic is in ``result.json`` beside it, and the Data Docs site)."""

    success: bool = Field(description="no critical expectation failed")
    failed_expectations: list[str] = Field(description="the critical ones that failed")
    warnings: list[str] = Field(description="the failed ones that are not critical")
    messages: list[str] = Field(description="what the warnings mean, in words")
    report_uri: str
    docs_uri: str
    manifest_hash: str


class ClassMapping(BaseModel):
    """``data/class_mapping``: the train split's class names, sorted, and their indices (as
    torchvision's ImageFolder numbers them)."""

    classes: list[str]
    index: dict[str, int]


class IncomingBatch(BaseModel):
    """``data/incoming_batch``: the photos to score, as keys under one folder or prefix."""

    uri: str = Field(description="the folder or prefix the keys are under")
    keys: list[str]
    ignored: list[dict[str, str]] = Field(
        default_factory=list, description="files left out of the batch, each with its reason"
    )
    description: str = Field("", description="how messages name the batch (default: its uri)")
