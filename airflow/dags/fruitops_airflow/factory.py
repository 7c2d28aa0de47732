"""`dag_from_assets`: one Airflow task and one Airflow `Asset` outlet per FruitOps asset.

The tasks call the same `materialize()` as the CLI and the tests (through
`fruitops_core.orchestration`). Only URIs and small records travel through XCom; the
artifacts stay in the lake. Where a task runs is `TaskSettings.task_mode`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from fruitops_airflow.retries import BadInputFails
from fruitops_airflow.task_modes import (
    DS,
    PARAMS_JSON,
    RUN_ID,
    TaskMode,
    TaskSettings,
    command_kwargs,
    container_operator,
    task_command,
)
from fruitops_core.assets import asset_dir
from fruitops_core.lake import Lake, open_lake
from fruitops_core.options import ConfigOption, ParamMap, param_schema
from fruitops_core.options import param_map as options_param_map
from fruitops_core.orchestration import ASSET_CONFIG_PARAM
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings


def default_args(task_settings: TaskSettings) -> dict[str, Any]:
    return {
        "owner": "fruitops",
        "retries": 2,
        "retry_delay": timedelta(seconds=task_settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,  # Airflow 3's multiplier: the delay doubles
        "max_retry_delay": timedelta(minutes=10),
        "retry_policy": BadInputFails(),  # bad input fails at once, in every task mode
    }


def task_id_for(key: str) -> str:
    return key.replace("/", "__")


def airflow_asset(key: str, lake: Lake) -> Asset:
    """The Airflow `Asset` of a FruitOps asset: its task's outlet, and a DAG's schedule."""
    return Asset(name=key, uri=lake.uri(asset_dir(key)), group="fruitops")


def render(template: str, context: Any) -> str:
    """``template`` (`RUN_ID`, `DS`) filled in for a task running in this process, with the
    DAG's own Jinja environment: the templates are the one definition of both values."""
    return context["dag"].get_template_env().from_string(template).render(**context)


def run_in_process(
    key: str, param_map: ParamMap, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Materialize one asset inside the task (in_process mode); return its small record.
    With ``overrides``, run one item of it instead (a mapped task) and return its value.

    Bad input (a wrong source, config or data that fails a blocking check) fails the task at
    once: retrying cannot fix it. Anything else (an S3 or MLflow outage) is retried.
    """
    from fruitops_core.orchestration import BadInput, run_asset_task, run_mapped_task

    context = get_current_context()
    common = {
        "params": dict(context["params"]),
        "param_map": param_map,
        "run_id": render(RUN_ID, context),
        "logical_date": render(DS, context),
    }
    try:
        if overrides is not None:
            value = run_mapped_task(key, overrides, **common)
        else:
            value = run_asset_task(key, **common)
    except BadInput as err:
        raise AirflowFailException(str(err)) from err
    return value


def run_in_venv(key: str, param_map: dict, params_json: str, asset_run: str, date: str) -> dict:
    """`@task.external_python` body: runs in the pipeline venv, from its source alone."""
    from fruitops_core.orchestration import run_serialized

    return run_serialized(key, params_json, param_map, asset_run, date)


def mapped_in_venv(
    item: Any, key: str, field: str, param_map: dict, params_json: str, asset_run: str, date: str
) -> Any:
    """`@task.external_python` body of one mapped item (``field = [item]``)."""
    import json

    from fruitops_core.orchestration import run_serialized

    return run_serialized(
        key, params_json, param_map, asset_run, date, mapped_json=json.dumps({field: [item]})
    )


class Runner:
    """How one task mode runs an asset: ``whole`` (its own task) or ``mapped`` (one mapped
    task per item of a list, each running the asset with ``field = [item]``)."""

    def __init__(
        self, key: str, param_map: ParamMap, task_settings: TaskSettings, settings: FruitOpsSettings
    ):
        self.key, self.param_map, self.task_settings = key, param_map, task_settings
        self.settings = settings  # the DAG's: what a container is told of the lake and MLflow

    def whole(self, **common: Any) -> Any:
        raise NotImplementedError

    def mapped(self, field: str, listed: Any, task_id: str) -> Any:
        raise NotImplementedError


class InProcess(Runner):
    def whole(self, **common: Any) -> Any:
        return task(**common)(run_in_process)(self.key, self.param_map)

    def mapped(self, field: str, listed: Any, task_id: str) -> Any:
        key, param_map = self.key, self.param_map

        @task(task_id=task_id, map_index_template="{{ mapped_item }}")
        def run_item(item: Any) -> Any:
            """Run the asset for one item (the item in the label); return it compacted."""
            get_current_context()["mapped_item"] = str(item)  # type: ignore[typeddict-unknown-key]
            return run_in_process(key, param_map, {field: [item]})

        return run_item.expand(item=listed)


class InVenv(Runner):
    def _python(self, **common: Any):
        return task.external_python(python=self.task_settings.task_python, **common)

    def whole(self, **common: Any) -> Any:
        return self._python(**common)(run_in_venv)(
            self.key, self.param_map, PARAMS_JSON, RUN_ID, DS
        )

    def mapped(self, field: str, listed: Any, task_id: str) -> Any:
        return (
            self._python(task_id=task_id)(mapped_in_venv)
            .partial(
                key=self.key,
                field=field,
                param_map=self.param_map,
                params_json=PARAMS_JSON,
                asset_run=RUN_ID,
                date=DS,
            )
            .expand(item=listed)
        )


class InContainer(Runner):
    """The docker and kubernetes modes: ``fruitops task`` in the task image."""

    def whole(self, **common: Any) -> Any:
        mode = self.task_settings.task_mode
        operator, kwargs = container_operator(mode, self.key, self.task_settings, self.settings)
        command = task_command(self.key, self.param_map)
        return operator(**common, **kwargs, **command_kwargs(mode, command))

    def mapped(self, field: str, listed: Any, task_id: str) -> Any:
        key, param_map, mode = self.key, self.param_map, self.task_settings.task_mode

        @task(task_id=f"{task_id}_commands")
        def commands(values: list) -> list[dict[str, Any]]:
            """The per-item ``fruitops task --mapped`` commands, templates filled in."""
            context = get_current_context()
            filled = {template: render(template, context) for template in (RUN_ID, DS)}
            filled[PARAMS_JSON] = json.dumps(dict(context["params"]))
            return [
                command_kwargs(
                    mode,
                    [
                        filled.get(part, part)
                        for part in task_command(key, param_map, json.dumps({field: [v]}))
                    ],
                )
                for v in values
            ]

        operator, kwargs = container_operator(mode, key, self.task_settings, self.settings)
        return operator.partial(task_id=task_id, **kwargs).expand_kwargs(commands(listed))


RUNNERS: dict[TaskMode, type[Runner]] = {
    TaskMode.in_process: InProcess,
    TaskMode.external_python: InVenv,
    TaskMode.docker: InContainer,
    TaskMode.kubernetes: InContainer,
}


def mapped_task_id(key: str, param: str) -> str:
    """The task mapping `key` over `param`'s items: `models__trained_model__architectures`."""
    return f"{task_id_for(key)}__{param}"


def mapped_tasks(key: str, param: str, runner: Runner, param_map: ParamMap) -> tuple[Any, Any]:
    """The task listing the items of the list param ``param``, and the mapped task running
    ``key`` once per item. ``key``'s asset function must find an item done by the same run
    instead of redoing it: its own task then only gathers the items."""
    asset, field = param_map[param]
    if asset != key:
        raise ValueError(f"mapped: param {param!r} configures {asset}, not {key}")

    @task(task_id=f"list_{param}")
    def items() -> list:
        """The items the mapped task runs over, read from the run's params."""
        return list(get_current_context()["params"][param])

    listed = items()
    return listed, runner.mapped(field, listed, mapped_task_id(key, param))


def dag_params(options: Sequence[ConfigOption]) -> dict[str, Param]:
    """One Param per option, from its config field (default, bounds, choices, help), and
    ``asset_config`` for any other asset config."""
    params = {}
    for option in options:
        schema = param_schema(option)
        params[option.param] = Param(schema.pop("default"), **schema)
    params[ASSET_CONFIG_PARAM] = Param(
        {},
        type="object",
        description='config of any asset, e.g. {"models/trained_model": {"lr": 0.001}}; '
        "it wins over the params above",
    )
    return params


def dag_from_assets(
    dag_id: str,
    *,
    select: str,
    schedule: Any = None,
    options: Sequence[ConfigOption] = (),
    mapped: Mapping[str, str] | None = None,
    tags: list[str] | None = None,
    doc_md: str | None = None,
    settings: FruitOpsSettings | None = None,
    graph: AssetGraph | None = None,
    task_settings: TaskSettings | None = None,
) -> DAG:
    """A DAG with a task per selected asset, wired by the assets' dependencies.

    ``mapped`` maps an asset over one of its list params (``{"models/trained_model":
    "architectures"}``): that asset first runs as one mapped task per item, after its
    upstream tasks, and its own task gathers them.
    """
    settings = settings or FruitOpsSettings()
    task_settings = task_settings or TaskSettings()
    graph = graph or AssetGraph.from_entry_points()
    lake = open_lake(settings)
    keys = graph.select(select)
    params = dag_params(options)
    param_map = options_param_map(options)
    runner = RUNNERS[task_settings.task_mode]
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(task_settings),
        params=params,
        tags=["fruitops", *(tags or [])],
        doc_md=doc_md,
    ) as dag:
        tasks = {
            key: runner(key, param_map, task_settings, settings).whole(
                task_id=task_id_for(key),
                outlets=[airflow_asset(key, lake)],
                doc_md=graph[key].description,
            )
            for key in keys
        }
        for key in keys:
            for dep in graph[key].deps:
                if dep in tasks:
                    tasks[dep] >> tasks[key]
        for key, param in (mapped or {}).items():
            item_runner = runner(key, param_map, task_settings, settings)
            listed, mapped_task = mapped_tasks(key, param, item_runner, param_map)
            gather = dag.get_task(task_id_for(key))
            for upstream in gather.upstream_list:
                upstream >> listed
            mapped_task >> gather
    return dag
