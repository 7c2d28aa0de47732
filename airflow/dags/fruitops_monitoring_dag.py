"""DAG fruitops_monitoring (this file is not named after it: that would shadow the
fruitops_monitoring package on the DAG folder's import path).

Drift monitoring: runs whenever a batch has been scored, and asks for retraining on drift.

Scheduled on the `serving/batch_predictions` Asset (every scoring run updates it):
reference_profile (the held-out split as the champion sees it, reused while it holds) →
drift_report (Evidently, HTML + JSON in the lake and MLflow) → drift_decision branches:
`trigger_retraining` starts `fruitops_training` when the drift policy says the batch drifted,
`no_drift` ends the run otherwise.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, task

from fruitops_airflow.factory import dag_from_assets, task_id_for
from fruitops_core.lake import open_lake
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings

settings = FruitOpsSettings()
graph = AssetGraph.from_entry_points()
predictions = Asset(
    name="serving/batch_predictions",
    uri=open_lake(settings).uri(graph["serving/batch_predictions"].artifact_path),
    group="fruitops",
)
RETRAIN = "trigger_retraining"
QUIET = "no_drift"

dag = dag_from_assets(
    "fruitops_monitoring",
    select="monitoring/*",
    schedule=[predictions],
    params={
        "drift_share": Param(
            0.5,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="dataset drift when at least this share of columns drift",
        ),
        "critical_columns": Param(
            [],
            type="array",
            items={"type": "string"},
            description="columns whose drift alone means dataset drift (e.g. predicted_class)",
        ),
    },
    param_map={
        "drift_share": ("monitoring/drift_report", "drift_share"),
        "critical_columns": ("monitoring/drift_report", "critical_columns"),
    },
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

    decision = drift_decision(dag.get_task(task_id_for("monitoring/drift_report")).output)
    retrain = TriggerDagRunOperator(
        task_id=RETRAIN,
        trigger_dag_id="fruitops_training",
        conf={"source": settings.source},
        doc_md="Start fruitops_training: ingest, validate, train, evaluate, promote.",
    )
    decision >> [retrain, EmptyOperator(task_id=QUIET)]
