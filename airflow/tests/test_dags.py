"""DAG integrity: imports cleanly, no cycles, owner/tags/retries, a task per asset."""

import json

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from fruitops_airflow.factory import task_id_for
from fruitops_core.registry import AssetGraph


@pytest.fixture(scope="module")
def dagbag(dags_folder) -> DagBag:
    return DagBag(dag_folder=str(dags_folder))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "fruitops_pipeline",
        "fruitops_training",
        "fruitops_monitoring",
        "fruitops_scoring",
    }


def test_every_dag_has_owner_tags_doc_and_retries_with_backoff(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags and "fruitops" in dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 80, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "fruitops", task.task_id
            assert task.retries >= 1, task.task_id
            assert task.retry_exponential_backoff == 2.0, task.task_id  # a multiplier
        assert dag.start_date.tzinfo is not None, dag.dag_id


@pytest.mark.parametrize("mode", ["in_process", "external_python", "docker", "kubernetes"])
def test_every_task_fails_bad_input_at_once_in_every_mode(monkeypatch, dags_folder, mode):
    from fruitops_airflow.retries import BadInputFails

    bag = _dagbag_in_mode(monkeypatch, dags_folder, mode)
    for dag in bag.dags.values():
        for task in dag.tasks:
            policy = (
                task.partial_kwargs.get("retry_policy")
                if isinstance(task, MappedOperator)
                else task.retry_policy
            )
            assert isinstance(policy, BadInputFails), (mode, dag.dag_id, task.task_id)


def test_no_cycles_and_order_follows_asset_graph(dagbag):
    graph = AssetGraph.from_entry_points()
    for dag in dagbag.dags.values():
        dag.check_cycle()  # raises on a cycle
        order = [t.task_id for t in dag.topological_sort()]
        for key in graph.assets:
            if task_id_for(key) not in order:
                continue
            for dep in graph[key].deps:
                if task_id_for(dep) in order:
                    assert order.index(task_id_for(dep)) < order.index(task_id_for(key))


def test_every_asset_task_is_named_after_its_asset_and_declares_it(dagbag):
    graph = AssetGraph.from_entry_points()
    by_id = {task_id_for(k): k for k in graph.assets}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if task.task_id in by_id:
                (outlet,) = task.outlets
                assert outlet.name == by_id[task.task_id], (dag.dag_id, task.task_id)


def test_training_maps_one_task_per_architecture_between_cache_and_gathering(dagbag):
    dag = dagbag.dags["fruitops_training"]
    train = dag.get_task("models__trained_model__architectures")
    assert isinstance(train, MappedOperator)
    assert train.upstream_task_ids == {"list_architectures"}
    assert dag.get_task("list_architectures").upstream_task_ids == {
        "data__training_cache",
        "data__data_validation",
    }
    assert (
        "models__trained_model__architectures"
        in dag.get_task("models__trained_model").upstream_task_ids
    )
    order = [t.task_id for t in dag.topological_sort()]
    assert order[-4:] == [
        "models__trained_model",
        "models__model_evaluation",
        "models__champion_model",
        "models__training_report",
    ]
    assert not any(t.startswith(("serving__", "monitoring__")) for t in order)


def test_one_task_and_one_asset_outlet_per_asset(dagbag, settings):
    dag = dagbag.dags["fruitops_pipeline"]
    graph = AssetGraph.from_entry_points()
    assert {t.task_id for t in dag.tasks} == {task_id_for(k) for k in graph.assets}
    for task in dag.tasks:
        (outlet,) = task.outlets
        assert task_id_for(outlet.name) == task.task_id
        assert outlet.uri.endswith(f"assets/{outlet.name}")  # its folder: every version


def test_params_reach_the_asset_configs(dagbag):
    from fruitops_core.orchestration import config_from_params

    dag = dagbag.dags["fruitops_pipeline"]
    assert set(dag.params) >= {"source", "architectures", "epochs", "image_size", "asset_config"}
    mapping = {
        "source": ("data/raw_images", "source"),
        "epochs": ("models/trained_model", "epochs"),
    }
    assert config_from_params({"source": "/photos", "epochs": 5, "x": 1}, mapping) == {
        "data/raw_images": {"source": "/photos"},
        "models/trained_model": {"epochs": 5},
    }
    # an empty source is "not given" (the ingested data set); asset_config wins
    params = {"source": "", "epochs": 40, "asset_config": {"models/trained_model": {"epochs": 3}}}
    assert config_from_params(params, mapping) == {"models/trained_model": {"epochs": 3}}


def test_dag_params_are_made_from_the_config_fields(dagbag):
    """One default, bound, choice list and help per option: the CLI's and the DAGs' agree."""
    from fruitops_data.config import TrainingCacheConfig
    from fruitops_models.config import ARCHITECTURES, DAG_CANDIDATES, CandidatesConfig
    from fruitops_monitoring.config import DriftConfig

    for dag_id in ("fruitops_training", "fruitops_pipeline"):
        params = dagbag.dags[dag_id].params
        assert params["epochs"] == CandidatesConfig.model_fields["epochs"].default
        assert params["image_size"] == TrainingCacheConfig.model_fields["image_size"].default
        # the fine-tuned default and the from-scratch baseline
        assert params["architectures"] == DAG_CANDIDATES == ["efficientnet_lite0", "cnn"]
        assert params["source"] == ""  # empty: the ingested data set
        schema = params.get_param("architectures").schema
        assert schema["items"]["enum"] == list(ARCHITECTURES) and schema["minItems"] == 1
        # None: each architecture's own recipe
        epochs = params.get_param("epochs").schema
        assert epochs["type"] == ["integer", "null"] and epochs["minimum"] == 1
        description = params.get_param("epochs").description
        assert description == CandidatesConfig.model_fields["epochs"].description
    monitoring = dagbag.dags["fruitops_monitoring"].params
    assert monitoring["drift_share"] == DriftConfig().drift_share
    assert monitoring.get_param("drift_share").schema["exclusiveMinimum"] == 0
    scoring = dagbag.dags["fruitops_scoring"].params
    assert scoring.get_param("backend").schema["enum"] == ["openvino", "torch"]


def test_the_precision_gate_runs_between_the_champion_and_the_scoring(dagbag):
    pipeline = dagbag.dags["fruitops_pipeline"]
    gate = pipeline.get_task("serving__precision_gate")
    assert gate.upstream_task_ids == {"models__champion_model", "data__training_cache"}
    assert "serving__batch_predictions" in gate.downstream_task_ids
    assert [o.name for o in gate.outlets] == ["serving/precision_gate"]
    training = dagbag.dags["fruitops_training"]
    assert "serving__precision_gate" not in {t.task_id for t in training.tasks}


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
    retrain = monitoring.get_task("trigger_retraining")
    assert retrain.trigger_dag_id == "fruitops_training"
    # its conf: the reference's data set and the fruitops_retraining_conf Variable
    assert retrain.upstream_task_ids == {"drift_decision", "retraining_conf"}
    assert monitoring.get_task("retraining_conf").upstream_task_ids == {
        "monitoring__reference_profile"
    }
    assert set(monitoring.params) == {
        "drift_share",
        "critical_columns",
        "online_day",  # a day of `fruitops serve`'s answers instead of the scored batch
        "asset_config",
    }
    assert monitoring.params["online_day"] == ""  # not given: the batch that triggered it


def test_scoring_runs_daily_on_the_days_folder(dagbag):
    from fruitops_core.orchestration import config_from_params

    scoring = dagbag.dags["fruitops_scoring"]
    assert [t.task_id for t in scoring.topological_sort()] == [
        "data__incoming_batch",
        "serving__precision_gate",
        "serving__batch_predictions",
    ]
    # the gate's own upstreams (champion, training cache) come from fruitops_training's runs
    assert scoring.get_task("serving__precision_gate").upstream_task_ids == set()
    assert scoring.get_task("serving__batch_predictions").upstream_task_ids == {
        "data__incoming_batch",
        "serving__precision_gate",
    }
    assert scoring.schedule == "@daily" and set(scoring.params) == {
        "batch",
        "backend",
        "date",
        "asset_config",
    }
    assert scoring.params["date"] == "{ds}"  # each day's table is kept apart
    mapping = {
        "batch": ("data/incoming_batch", "source"),
        "date": ("serving/batch_predictions", "date"),
    }
    params = {"batch": "s3://in/{ds}", "date": "{ds}"}
    assert config_from_params(params, mapping, "2026-11-27") == {
        "data/incoming_batch": {"source": "s3://in/2026-11-27"},
        "serving/batch_predictions": {"date": "2026-11-27"},
    }


def test_the_scoring_schedule_is_a_setting(monkeypatch, dags_folder):
    assert (
        _dagbag_in_mode(
            monkeypatch, dags_folder, "in_process", FRUITOPS_SCORING_SCHEDULE="0 6 * * *"
        )
        .dags["fruitops_scoring"]
        .schedule
        == "0 6 * * *"
    )
    triggered_only = _dagbag_in_mode(
        monkeypatch, dags_folder, "in_process", FRUITOPS_SCORING_SCHEDULE="none"
    )
    assert triggered_only.dags["fruitops_scoring"].schedule is None


def _dagbag_in_mode(monkeypatch, dags_folder, mode: str, **env: str) -> DagBag:
    monkeypatch.setenv("FRUITOPS_TASK_MODE", mode)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors == {}
    return bag


def test_docker_mode_runs_fruitops_task_in_the_task_image(monkeypatch, dags_folder):
    from airflow.providers.docker.operators.docker import DockerOperator

    bag = _dagbag_in_mode(
        monkeypatch, dags_folder, "docker", FRUITOPS_TASK_IMAGE="registry/fruitops-task:1"
    )
    dag = bag.dags["fruitops_training"]
    train = dag.get_task("models__trained_model")
    assert isinstance(train, DockerOperator) and train.image == "registry/fruitops-task:1"
    assert train.command[:3] == ["fruitops", "task", "models/trained_model"]
    assert "--params" in train.command and train.environment["FRUITOPS_PROFILE"] == "compose"
    assert train.network_mode == "fruitops" and train.do_xcom_push
    assert "AWS_SECRET_ACCESS_KEY" not in train.environment  # a template field: rendered, shown
    assert [o.name for o in train.outlets] == ["models/trained_model"]
    mapped = dag.get_task("models__trained_model__architectures")
    assert isinstance(mapped, MappedOperator) and mapped.operator_class is DockerOperator
    assert dag.get_task("models__trained_model__architectures_commands").downstream_task_ids == {
        "models__trained_model__architectures"
    }


def test_docker_mode_containers_get_the_workers_lake_mlflow_and_s3_keys(monkeypatch, dags_folder):
    bag = _dagbag_in_mode(
        monkeypatch, dags_folder, "docker",
        FRUITOPS_LAKE_URI="s3://team-lake/fruit", MLFLOW_TRACKING_URI="http://mlflow:5000",
        AWS_ENDPOINT_URL="http://s3:8333", AWS_ACCESS_KEY_ID="fruitops-tasks",
        AWS_SECRET_ACCESS_KEY="s3cret-of-the-tasks-user",
    )  # fmt: skip
    ingest = bag.dags["fruitops_pipeline"].get_task("data__raw_images")
    assert ingest.environment["FRUITOPS_LAKE_URI"] == "s3://team-lake/fruit"
    assert ingest.environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert ingest.environment["AWS_ENDPOINT_URL"] == "http://s3:8333"
    assert ingest._private_environment == {
        "AWS_ACCESS_KEY_ID": "fruitops-tasks",
        "AWS_SECRET_ACCESS_KEY": "s3cret-of-the-tasks-user",
    }
    assert "s3cret" not in json.dumps(ingest.environment)


def test_kubernetes_pods_get_the_lake_and_mlflow_but_no_keys(monkeypatch, dags_folder):
    bag = _dagbag_in_mode(
        monkeypatch, dags_folder, "kubernetes", FRUITOPS_LAKE_URI="gs://p-fruitops-lake",
        MLFLOW_TRACKING_URI="http://mlflow.fruitops.svc.cluster.local:5000",
        AWS_SECRET_ACCESS_KEY="must-not-travel",
    )  # fmt: skip
    ingest = bag.dags["fruitops_pipeline"].get_task("data__raw_images")
    env = ingest.env_vars  # a dict until the pod is built
    assert env["FRUITOPS_LAKE_URI"] == "gs://p-fruitops-lake"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.fruitops")
    assert "must-not-travel" not in json.dumps(env)


def test_kubernetes_mode_gives_training_pods_a_gpu_and_others_none(monkeypatch, dags_folder):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    bag = _dagbag_in_mode(monkeypatch, dags_folder, "kubernetes")
    dag = bag.dags["fruitops_training"]
    train = dag.get_task("models__trained_model")
    assert isinstance(train, KubernetesPodOperator)
    assert train.container_resources.limits["nvidia.com/gpu"] == "1"
    assert train.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert train.cmds == ["fruitops"] and train.arguments[-2:] == [
        "--xcom-file",
        "/airflow/xcom/return.json",
    ]
    ingest = dag.get_task("data__raw_images")
    assert ingest.container_resources is None and ingest.service_account_name == "fruitops-tasks"
    scoring = bag.dags["fruitops_scoring"].get_task("serving__batch_predictions")
    assert isinstance(scoring, KubernetesPodOperator)


def test_external_python_mode_runs_in_the_configured_venv(monkeypatch, dags_folder, tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    bag = _dagbag_in_mode(
        monkeypatch, dags_folder, "external_python", FRUITOPS_TASK_PYTHON=str(python)
    )
    task = bag.dags["fruitops_scoring"].get_task("serving__batch_predictions")
    assert type(task).__name__ == "_PythonExternalDecoratedOperator"
    assert task.python == str(python)
    assert task.op_args[2] == "{{ params | tojson }}"


def test_an_unknown_task_mode_is_an_import_error_naming_the_setting(monkeypatch, dags_folder):
    monkeypatch.setenv("FRUITOPS_TASK_MODE", "celery")
    bag = DagBag(dag_folder=str(dags_folder))
    assert bag.import_errors
    assert all("task_mode" in error for error in bag.import_errors.values())


def _rendered_without_logical_date(task, dag, run_id: str):
    """``task``'s templated fields rendered as a run with no logical date renders them: an
    Asset-triggered run, or one made over REST with ``"logical_date": null``."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    context = {
        "dag": dag,
        "task": task,
        "run_id": run_id,
        "params": {name: dag.params[name] for name in dag.params},
        "dag_run": SimpleNamespace(run_id=run_id, run_after=datetime(2026, 12, 1, 9, tzinfo=UTC)),
    }
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return task


@pytest.mark.parametrize("mode", ["docker", "kubernetes", "external_python"])
def test_runs_without_a_logical_date_render_in_every_task_mode(monkeypatch, dags_folder, mode):
    bag = _dagbag_in_mode(monkeypatch, dags_folder, mode)
    dag = bag.dags["fruitops_monitoring"]
    run_id = "asset_triggered__2026-12-01T09:00:00+00:00"
    task = _rendered_without_logical_date(dag.get_task("monitoring__drift_report"), dag, run_id)
    if mode == "docker":
        words = task.command
    elif mode == "kubernetes":
        words = task.arguments
    else:
        words = [str(v) for v in task.op_args]
    text = " ".join(map(str, words))
    assert f"fruitops_monitoring__{run_id}" in text  # the run key comes from the run id
    assert "2026-12-01" in text and "{{" not in text  # {ds}: the day the run was made


def test_in_process_run_key_and_date_without_a_logical_date(dagbag):
    """The in-process tasks render the same `RUN_ID` and `DS` templates the containers get."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from fruitops_airflow.factory import render
    from fruitops_airflow.task_modes import DS, RUN_ID

    context = {
        "dag": dagbag.dags["fruitops_scoring"],
        "run_id": "manual__2026-12-01T09:00:00+00:00",
        "dag_run": SimpleNamespace(run_after=datetime(2026, 12, 1, 9, tzinfo=UTC)),
    }
    assert render(RUN_ID, context) == "fruitops_scoring__manual__2026-12-01T09:00:00+00:00"
    assert render(DS, context) == "2026-12-01"
    dated = {**context, "logical_date": datetime(2026, 11, 27, tzinfo=UTC), "ds": "2026-11-27"}
    assert render(RUN_ID, dated) == "fruitops_scoring__2026-11-27T00:00:00+00:00"
    assert render(DS, dated) == "2026-11-27"


def test_mapped_names_a_list_param_of_its_own_asset(dags_folder):
    from fruitops_airflow.factory import dag_from_assets
    from fruitops_models.options import TRAINING_PARAMS

    with pytest.raises(ValueError, match="configures data/"):
        dag_from_assets("bad_mapped", select="data/* models/*", options=TRAINING_PARAMS,
                        mapped={"models/trained_model": "source"})  # fmt: skip
