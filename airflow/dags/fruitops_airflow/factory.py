"""`dag_from_assets`: one Airflow task and one Airflow `Asset` outlet per FruitOps asset.

The tasks call the same `materialize()` as the CLI and the tests. Only URIs and small
records travel through XCom; the artifacts stay in the lake.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from fruitops_core.lake import open_lake
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings

DEFAULT_ARGS = {
    "owner": "fruitops",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

#: DAG param → (asset key, config field) it sets.
ParamMap = dict[str, tuple[str, str]]


def task_id_for(key: str) -> str:
    return key.replace("/", "__")


def _safe_run_id(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def _config_from_params(
    params: dict[str, Any], param_map: ParamMap, logical_date: str | None = None
) -> dict[str, dict]:
    """Asset configs from DAG params; ``{ds}`` in a string param becomes the run's date."""
    config: dict[str, dict[str, Any]] = {}
    for name, (key, field) in param_map.items():
        value = params.get(name)
        if isinstance(value, str) and logical_date is not None:
            value = value.replace("{ds}", logical_date)
        if value is not None and value != "":
            config.setdefault(key, {})[field] = value
    return config


def run_asset(key: str, param_map: ParamMap) -> dict[str, Any]:
    """Materialize one asset inside a task; return the small record that goes to XCom.

    Bad input (a wrong source, config or data that fails a blocking check) fails the task at
    once: retrying cannot fix it. Anything else (an S3 or MLflow outage) is retried.
    """
    from fruitops_core.lake import LakeError
    from fruitops_core.materialize import MaterializationError, materialize

    context = get_current_context()
    config = _config_from_params(dict(context["params"]), param_map, context.get("ds"))
    try:
        record = materialize(
            [key],
            config={key: config[key]} if key in config else None,
            run_id=_safe_run_id(context["run_id"]),
        )[0]
    except MaterializationError as err:
        if isinstance(err.__cause__, LakeError):
            raise  # storage trouble: worth a retry
        raise AirflowFailException(str(err)) from err
    except ValueError as err:  # wrong source, layout, config or data
        raise AirflowFailException(f"{key}: {err}") from err
    small = {
        k: v
        for k, v in record.metadata.items()
        if isinstance(v, (str, int, float, bool)) or v is None
    }
    return {
        "asset_key": record.asset_key,
        "version": record.version,
        "artifact_uri": record.artifact_uri,
        "run_id": record.run_id,
        "metadata": small,
    }


def dag_from_assets(
    dag_id: str,
    *,
    select: str,
    schedule: Any = None,
    params: dict[str, Param] | None = None,
    param_map: ParamMap | None = None,
    tags: list[str] | None = None,
    doc_md: str | None = None,
    settings: FruitOpsSettings | None = None,
    graph: AssetGraph | None = None,
) -> DAG:
    """A DAG with a task per selected asset, wired by the assets' dependencies."""
    settings = settings or FruitOpsSettings()
    graph = graph or AssetGraph.from_entry_points()
    lake = open_lake(settings)
    keys = graph.select(select)
    param_map = param_map or {}
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        params=params or {},
        tags=["fruitops", *(tags or [])],
        doc_md=doc_md,
    ) as dag:
        tasks = {}
        for key in keys:
            spec = graph[key]
            tasks[key] = task(
                task_id=task_id_for(key),
                outlets=[Asset(name=key, uri=lake.uri(spec.artifact_path), group="fruitops")],
                doc_md=spec.description,
            )(run_asset)(key, param_map)
        for key in keys:
            for dep in graph[key].deps:
                if dep in tasks:
                    tasks[dep] >> tasks[key]
    return dag
