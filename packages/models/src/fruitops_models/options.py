"""The training options `fruitops train` and the training DAGs share, field by field."""

from __future__ import annotations

from fruitops_core.asset_keys import RAW_IMAGES, TRAINED_MODEL, TRAINING_CACHE
from fruitops_core.options import ConfigOption
from fruitops_data.config import RawImagesConfig, TrainingCacheConfig
from fruitops_models.config import DAG_CANDIDATES, CandidatesConfig, TrainingRecipe

SOURCE = ConfigOption(RAW_IMAGES, RawImagesConfig, "source")
IMAGE_SIZE = ConfigOption(TRAINING_CACHE, TrainingCacheConfig, "image_size")


def recipe(*fields: str) -> list[ConfigOption]:
    """Options for ``fields`` of the training recipe (all of them when none are named)."""
    return [
        ConfigOption(TRAINED_MODEL, CandidatesConfig, f)
        for f in fields or TrainingRecipe.model_fields
    ]


#: `fruitops train`: the data, ``--arch`` (repeatable) and the whole recipe
TRAIN_COMMAND = [
    SOURCE,
    IMAGE_SIZE,
    ConfigOption(TRAINED_MODEL, CandidatesConfig, "architectures", name="arch"),
    *recipe(),
]
#: the training and pipeline DAGs' Params
TRAINING_PARAMS = [
    SOURCE,
    ConfigOption(TRAINED_MODEL, CandidatesConfig, "architectures", override=DAG_CANDIDATES),
    IMAGE_SIZE,
    *recipe("epochs", "batch_size", "lr", "patience"),
]
