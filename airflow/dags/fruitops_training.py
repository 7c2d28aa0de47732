"""Training: new data in, a better model (maybe) out as `fruit-classifier@champion`.

raw_images (ingest) → image_manifest → data_validation (a blocking gate: nothing trains on
data that failed it) → class_mapping → training_cache → `train_architecture`, one mapped task
per item of the `architectures` param (each an MLflow run and a registered version) →
trained_model (gathers them) → model_evaluation (candidates and champion on one split) →
champion_model (the alias moves only if the best candidate beats the champion by the margin)
→ training_report (table, curves, winner and why; in the lake and MLflow).

A retry, or a re-run of the same logical date, reuses the finished MLflow runs and model
versions of the earlier try, and continues an unfinished one from its checkpoint.
`fruitops_monitoring` triggers this DAG when a scored batch drifts.
"""

from __future__ import annotations

from airflow.sdk import Param

from fruitops_airflow.factory import dag_from_assets, fan_out
from fruitops_airflow.task_modes import TaskSettings
from fruitops_core.settings import FruitOpsSettings

settings = FruitOpsSettings()
task_settings = TaskSettings()
PARAM_MAP = {
    "source": ("data/raw_images", "source"),
    "architectures": ("models/trained_model", "architectures"),
    "epochs": ("models/trained_model", "epochs"),
    "image_size": ("data/training_cache", "image_size"),
}

dag = dag_from_assets(
    "fruitops_training",
    select="data/raw_images data/image_manifest data/data_validation data/class_mapping "
    "data/training_cache models/*",
    schedule=None,
    params={
        "source": Param(
            settings.source,
            type="string",
            description="a folder in the Kaggle layout, an s3:// prefix, or synthetic:...",
        ),
        "architectures": Param(
            ["cnn", "resnet18"],
            type="array",
            minItems=1,
            items={"enum": ["cnn", "resnet18", "resnet50", "efficientnet_b0"]},
            description="one mapped training task per architecture; the best may be promoted",
        ),
        "epochs": Param(3, type="integer", minimum=1),
        "image_size": Param(64, type="integer", minimum=16),
    },
    param_map=PARAM_MAP,
    tags=["training"],
    doc_md=__doc__,
    settings=settings,
    task_settings=task_settings,
)
fan_out(
    dag,
    "models/trained_model",
    param="architectures",
    field="architectures",
    task_id="train_architecture",
    param_map=PARAM_MAP,
    task_settings=task_settings,
)
