"""Daily scoring: the day's incoming images labelled by the champion.

incoming_batch (the folder or s3:// prefix of the run's date) and precision_gate (int8 and
bf16 of each back end against fp32 on the training cache's held-out split, the fastest that
passed chosen; its verdict kept while the champion and the cache stay the same) →
batch_predictions
(``predictions/<date>/predictions.parquet`` in the lake, one table per day, and
``predictions/latest.json`` naming the last; undecodable files quarantined). Every run updates the
`serving/batch_predictions` Asset, which schedules `fruitops_monitoring`. The `batch` param
names where the images are; `{ds}` in it becomes the run's logical date (YYYY-MM-DD), so a
daily run reads that day's folder; left empty, the ingested data set's test split is scored.
``FRUITOPS_SCORING_SCHEDULE`` changes the schedule (``none``: only triggered runs).
"""

from __future__ import annotations

from fruitops_airflow.factory import dag_from_assets
from fruitops_airflow.task_modes import TaskSettings
from fruitops_core.asset_keys import BATCH_PREDICTIONS, INCOMING_BATCH
from fruitops_core.options import ConfigOption
from fruitops_core.settings import FruitOpsSettings
from fruitops_data.config import IncomingBatchConfig
from fruitops_serving.config import ScoringConfig

task_settings = TaskSettings()

dag = dag_from_assets(
    "fruitops_scoring",
    select="data/incoming_batch serving/precision_gate serving/batch_predictions",
    schedule=task_settings.scoring_schedule,
    options=[
        ConfigOption(INCOMING_BATCH, IncomingBatchConfig, "source", name="batch"),
        ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "backend"),
        ConfigOption(BATCH_PREDICTIONS, ScoringConfig, "date", override="{ds}"),
    ],
    tags=["scoring"],
    doc_md=__doc__,
    settings=FruitOpsSettings(),
    task_settings=task_settings,
)
