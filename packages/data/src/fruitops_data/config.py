"""The options of the ``data/`` assets, one pydantic model per configurable asset.

The one place each option's default, bounds and help are written (docs/design.md §1): the
assets declare these models, and the commands' options, the DAGs' Params and other packages
read them from here.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

#: The kinds of source `data/raw_images` ingests (the asset's option and `fruitops data ingest`).
SOURCE_FORMS = (
    "folder in the Kaggle layout, .zip, s3:// or gs://bucket/prefix, "
    "kaggle:owner/dataset or synthetic:classes=N,per_class=M,size=S,seed=K"
)
#: Where local paths may lie, said wherever one is asked for (CLI help and DAG Params).
LOCAL_PATHS = "a local path must lie in FRUITOPS_ALLOWED_ROOTS (unset: not a system folder)"


class RawImagesConfig(BaseModel):
    source: str | None = Field(
        None,
        description=f"{SOURCE_FORMS}; default: FRUITOPS_SOURCE, else the data set already "
        f"ingested; {LOCAL_PATHS}",
    )
    workers: int = Field(8, ge=1, le=64, description="files read and uploaded at once")


class ManifestConfig(BaseModel):
    max_unusable_share: float = Field(
        0.05, ge=0, le=1, description="the run fails when more files than this are unusable"
    )
    workers: int = Field(8, ge=1, le=64)


class ValidationConfig(BaseModel):
    min_train_per_class: int = Field(10, ge=1, description="train images each class needs")
    max_imbalance_ratio: float = Field(10.0, ge=1, description="largest / smallest train class")
    min_val_per_class: int = Field(
        5,
        ge=1,
        description="val images below which a class gets a warning: early stopping and "
        "promotion judge it on too few photos (one photo moves its F1 by a fifth at 5)",
    )
    min_side: int = Field(16, ge=1, description="smallest width or height accepted")
    max_side: int = Field(12_000, ge=1, description="largest width or height accepted")


class TrainingCacheConfig(BaseModel):
    image_size: int = Field(
        256,
        ge=16,
        le=1024,
        description="side of the cached square images; each model sees its --input-size of "
        "them, at most this",
    )
    shard_size: int = Field(2048, ge=1, description="images per shard file")


class IncomingBatchConfig(BaseModel):
    source: str | None = Field(
        None,
        description="folder or s3:// prefix of the images to score, e.g. s3://incoming/{ds} "
        f"({{ds}}: the DAG run's date); empty: the ingested data set's test split; {LOCAL_PATHS}",
    )
