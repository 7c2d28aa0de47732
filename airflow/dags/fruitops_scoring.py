"""Daily scoring: the day's incoming images labelled by the champion.

incoming_batch (the folder or s3:// prefix of the run's date) → batch_predictions
(predictions.parquet in the lake, undecodable files quarantined). Every run updates the
`serving/batch_predictions` Asset, which schedules `fruitops_monitoring`. The `batch` param
names where the images are; `{ds}` in it becomes the run's logical date (YYYY-MM-DD), so a
daily run reads that day's folder; left empty, the ingested data set's test split is scored.
"""

from __future__ import annotations

from airflow.sdk import Param

from fruitops_airflow.factory import dag_from_assets
from fruitops_core.settings import FruitOpsSettings

dag = dag_from_assets(
    "fruitops_scoring",
    select="data/incoming_batch serving/batch_predictions",
    schedule="@daily",
    params={
        "batch": Param(
            "",
            type="string",
            description="folder or s3:// prefix of the images to score, e.g. "
            "s3://incoming/{ds}; empty: the ingested test split",
        ),
        "backend": Param("openvino", enum=["openvino", "torch"]),
    },
    param_map={
        "batch": ("data/incoming_batch", "source"),
        "backend": ("serving/batch_predictions", "backend"),
    },
    tags=["scoring"],
    doc_md=__doc__,
    settings=FruitOpsSettings(),
)
