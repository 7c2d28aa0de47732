"""Training: new data in, a better model (maybe) out as `fruit-classifier@champion`.

raw_images (ingest) → image_manifest → data_validation (a blocking gate: nothing trains on
data that failed it) → class_mapping → training_cache → `models__trained_model__architectures`,
one mapped task per item of the `architectures` param (each an MLflow run and a registered
version; `mapped` below) →
trained_model (gathers them) → model_evaluation (candidates and champion on one split) →
champion_model (the alias moves only if the best candidate beats the champion by the margin)
→ training_report (table, curves, winner and why; in the lake and MLflow).

A retry, or a re-run of the same logical date, reuses the finished MLflow runs and model
versions of the earlier try, and continues an unfinished one from its checkpoint.
`fruitops_monitoring` triggers this DAG when a scored batch drifts.
"""

from __future__ import annotations

from fruitops_airflow.factory import dag_from_assets
from fruitops_core.asset_keys import TRAINED_MODEL
from fruitops_core.settings import FruitOpsSettings
from fruitops_models.options import TRAINING_PARAMS

dag = dag_from_assets(
    "fruitops_training",
    select="data/raw_images data/image_manifest data/data_validation data/class_mapping "
    "data/training_cache models/*",
    schedule=None,
    options=TRAINING_PARAMS,
    mapped={TRAINED_MODEL: "architectures"},
    tags=["training"],
    doc_md=__doc__,
    settings=FruitOpsSettings(),
)
