"""DAG integrity: imports cleanly, no cycles, owner/tags/retries, a task per asset."""

import pytest
from airflow.dag_processing.dagbag import DagBag

from fruitops_airflow.factory import task_id_for
from fruitops_core.registry import AssetGraph


@pytest.fixture(scope="module")
def dagbag(dags_folder) -> DagBag:
    return DagBag(dag_folder=str(dags_folder))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"fruitops_pipeline", "fruitops_monitoring", "fruitops_scoring"}


def test_every_dag_has_owner_tags_and_retries(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags and "fruitops" in dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "fruitops", task.task_id
            assert task.retries >= 1, task.task_id


def test_no_cycles_and_order_follows_asset_graph(dagbag):
    dag = dagbag.dags["fruitops_pipeline"]
    dag.check_cycle()  # raises on a cycle
    graph = AssetGraph.from_entry_points()
    order = [t.task_id for t in dag.topological_sort()]
    for key in graph.assets:
        for dep in graph[key].deps:
            assert order.index(task_id_for(dep)) < order.index(task_id_for(key))


def test_one_task_and_one_asset_outlet_per_asset(dagbag, settings):
    dag = dagbag.dags["fruitops_pipeline"]
    graph = AssetGraph.from_entry_points()
    assert {t.task_id for t in dag.tasks} == {task_id_for(k) for k in graph.assets}
    for task in dag.tasks:
        (outlet,) = task.outlets
        assert task_id_for(outlet.name) == task.task_id
        assert outlet.uri.endswith(f"assets/{outlet.name}/{graph[outlet.name].io.filename}")


def test_params_reach_the_asset_configs(dagbag):
    from fruitops_airflow.factory import _config_from_params

    dag = dagbag.dags["fruitops_pipeline"]
    assert set(dag.params) == {"source", "architectures", "epochs", "image_size"}
    mapping = {
        "source": ("data/raw_images", "source"),
        "epochs": ("models/trained_model", "epochs"),
    }
    assert _config_from_params({"source": "/photos", "epochs": 5, "x": 1}, mapping) == {
        "data/raw_images": {"source": "/photos"},
        "models/trained_model": {"epochs": 5},
    }


def test_monitoring_runs_on_the_predictions_asset_and_branches_to_retraining(dagbag):
    pipeline = dagbag.dags["fruitops_pipeline"]
    monitoring = dagbag.dags["fruitops_monitoring"]
    monitoring.check_cycle()
    (outlet,) = pipeline.get_task("serving__batch_predictions").outlets
    scheduled_on = monitoring.timetable.asset_condition.objects
    assert [(a.name, a.uri) for a in scheduled_on] == [(outlet.name, outlet.uri)]
    decision = monitoring.get_task("drift_decision")
    assert decision.upstream_task_ids == {"monitoring__drift_report"}
    assert decision.downstream_task_ids == {"trigger_retraining", "no_drift"}
    assert monitoring.get_task("trigger_retraining").trigger_dag_id == "fruitops_pipeline"
    assert set(monitoring.params) == {"drift_share", "critical_columns"}


def test_scoring_runs_daily_on_the_days_folder(dagbag):
    from fruitops_airflow.factory import _config_from_params

    scoring = dagbag.dags["fruitops_scoring"]
    assert [t.task_id for t in scoring.topological_sort()] == [
        "data__incoming_batch",
        "serving__batch_predictions",
    ]
    assert scoring.schedule == "@daily" and set(scoring.params) == {"batch", "backend"}
    mapping = {"batch": ("data/incoming_batch", "source")}
    assert _config_from_params({"batch": "s3://in/{ds}"}, mapping, "2026-11-27") == {
        "data/incoming_batch": {"source": "s3://in/2026-11-27"}
    }
