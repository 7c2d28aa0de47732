"""Drift monitoring: runs whenever a batch has been scored, and asks for retraining on drift.

Scheduled on the `serving/batch_predictions` Asset (every scoring run updates it):
reference_profile (the held-out split as the champion sees it, reused while it holds) →
drift_report (Evidently, HTML + JSON in the lake and MLflow) → drift_decision branches:
`trigger_retraining` starts `fruitops_training` when the drift policy says the batch drifted,
`no_drift` ends the run otherwise. Triggered by hand with the `online_day` param, it looks at
that day of `fruitops serve`'s answers instead of the scored batch. The retraining run
trains on the reference's data set; the Airflow Variable `fruitops_retraining_conf` (JSON,
e.g. ``{"epochs": 30}``; or the environment variable ``AIRFLOW_VAR_FRUITOPS_RETRAINING_CONF``)
adds to its conf.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Variable, task

from fruitops_airflow.factory import airflow_asset, dag_from_assets, task_id_for
from fruitops_core.asset_keys import BATCH_PREDICTIONS, DRIFT_REPORT, REFERENCE_PROFILE
from fruitops_core.lake import open_lake
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings
from fruitops_monitoring.options import MONITORING_PARAMS

settings = FruitOpsSettings()
graph = AssetGraph.from_entry_points()
predictions = airflow_asset(BATCH_PREDICTIONS, open_lake(settings))
REFERENCE = task_id_for(REFERENCE_PROFILE)
RETRAIN = "trigger_retraining"
QUIET = "no_drift"
#: The Airflow Variable whose JSON object is added to the retraining run's conf.
RETRAINING_CONF = "fruitops_retraining_conf"

dag = dag_from_assets(
    "fruitops_monitoring",
    select="monitoring/*",
    schedule=[predictions],
    options=MONITORING_PARAMS,
    tags=["monitoring"],
    doc_md=__doc__,
    settings=settings,
    graph=graph,
)

with dag:

    @task.branch(task_id="drift_decision")
    def drift_decision(record: dict[str, Any]) -> str:
        """Retrain when the drift policy says the batch drifted."""
        return RETRAIN if record["metadata"].get("dataset_drift") else QUIET

    @task(task_id="retraining_conf")
    def retraining_conf(reference: dict[str, Any]) -> dict[str, Any]:
        """The retraining run's conf: the data set the reference (and so the champion) was
        made of, and the `fruitops_retraining_conf` Variable's values."""
        extra = Variable.get(RETRAINING_CONF, default={}, deserialize_json=True)
        if not isinstance(extra, dict):
            raise ValueError(f"Airflow Variable {RETRAINING_CONF} must be a JSON object")
        return {"source": reference["metadata"].get("source") or "", **extra}

    decision = drift_decision(dag.get_task(task_id_for(DRIFT_REPORT)).output)
    retrain = TriggerDagRunOperator(
        task_id=RETRAIN,
        trigger_dag_id="fruitops_training",
        conf=retraining_conf(dag.get_task(REFERENCE).output),
        doc_md="Start fruitops_training: ingest, validate, train, evaluate, promote.",
    )
    decision >> [retrain, EmptyOperator(task_id=QUIET)]
