"""The walking skeleton's DAG: every FruitOps asset, from raw images to the drift report.

ingest → manifest (blocking check) → train → promote champion → score batch → drift report
"""

from __future__ import annotations

from airflow.sdk import Param

from fruitops_airflow.factory import dag_from_assets
from fruitops_core.settings import FruitOpsSettings

settings = FruitOpsSettings()

dag = dag_from_assets(
    "fruitops_pipeline",
    select="data/* models/* serving/* monitoring/*",
    schedule=None,
    params={
        "source": Param(
            settings.source,
            type="string",
            description="SOURCE: a folder in the Kaggle layout or synthetic:...",
        ),
        "architectures": Param(
            ["cnn"],
            type="array",
            items={"enum": ["cnn", "resnet18", "resnet50", "efficientnet_b0"]},
            description="one candidate is trained per architecture; the best may be promoted",
        ),
        "epochs": Param(3, type="integer", minimum=1),
        "image_size": Param(64, type="integer", minimum=16),
    },
    param_map={
        "source": ("data/raw_images", "source"),
        "architectures": ("models/trained_model", "architectures"),
        "epochs": ("models/trained_model", "epochs"),
        "image_size": ("data/training_cache", "image_size"),
    },
    tags=["skeleton"],
    doc_md=__doc__,
    settings=settings,
)
