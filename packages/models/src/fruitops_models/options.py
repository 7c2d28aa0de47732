"""The training options `fruitops train` and the training DAGs share, field by field."""

from __future__ import annotations

from fruitops_core.options import ConfigOption
from fruitops_data.config import RawImagesConfig, TrainingCacheConfig
from fruitops_models.config import DAG_CANDIDATES, CandidatesConfig, TrainingRecipe

TRAINED = "models/trained_model"
SOURCE = ConfigOption("data/raw_images", RawImagesConfig, "source")
IMAGE_SIZE = ConfigOption("data/training_cache", TrainingCacheConfig, "image_size")


def recipe(*fields: str) -> list[ConfigOption]:
    """Options for ``fields`` of the training recipe (all of them when none are named)."""
    return [
        ConfigOption(TRAINED, CandidatesConfig, f) for f in fields or TrainingRecipe.model_fields
    ]


#: `fruitops train`: the data, ``--arch`` (repeatable) and the whole recipe
TRAIN_COMMAND = [
    SOURCE,
    IMAGE_SIZE,
    ConfigOption(TRAINED, CandidatesConfig, "architectures", name="arch"),
    *recipe(),
]
#: the training and pipeline DAGs' Params
TRAINING_PARAMS = [
    SOURCE,
    ConfigOption(TRAINED, CandidatesConfig, "architectures", override=DAG_CANDIDATES),
    IMAGE_SIZE,
    *recipe("epochs", "batch_size", "lr", "patience"),
]
