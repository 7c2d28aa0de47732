"""Every FruitOps asset in one run, from raw images to the drift report (what `make demo` runs).

ingest → manifest (blocking check) → train → promote champion → precision gate → score batch
→ drift report
"""

from __future__ import annotations

from fruitops_airflow.factory import dag_from_assets
from fruitops_core.settings import FruitOpsSettings
from fruitops_models.options import TRAINING_PARAMS

dag = dag_from_assets(
    "fruitops_pipeline",
    select="data/* models/* serving/* monitoring/*",
    schedule=None,
    options=TRAINING_PARAMS,
    tags=["pipeline"],
    doc_md=__doc__,
    settings=FruitOpsSettings(),
)
