"""What an orchestrator's task does, whatever runs it: one asset materialized for one run.

Airflow runs this in-process, in the pipeline venv (`@task.external_python`), in a container
(`fruitops task run …` in DockerOperator or KubernetesPodOperator). Keeping it here, free of
Airflow imports, means every mode runs the same code and the task image needs no Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from fruitops_core.lake import LakeError
from fruitops_core.materialize import materialize, run_mapped
from fruitops_core.names import slug
from fruitops_core.options import ParamMap
from fruitops_core.records import MaterializationError, MaterializationRecord
from fruitops_core.registry import AssetGraph
from fruitops_core.resources import Resources
from fruitops_core.settings import FruitOpsSettings


class BadInput(ValueError):
    """Wrong source, config or data: retrying cannot help, so the task fails at once."""


#: What a task process's message starts with when a retry cannot fix its failure: across a
#: process boundary (a container's logs, a pod's termination message, an external_python
#: task's error) the exception class is lost, this text is not. Airflow's retry policy
#: (`fruitops_airflow.retries`) reads it.
BAD_INPUT_PREFIX = "bad input, not retried: "


def safe_run_id(run_id: str) -> str:
    """An orchestrator's run id as a lake- and MLflow-safe name (same id → same name)."""
    return slug(run_id, sep="_")


#: The DAG param that sets any asset's config, ``{"asset/key": {"field": value}}``.
ASSET_CONFIG_PARAM = "asset_config"


def config_from_params(
    params: dict[str, Any], param_map: ParamMap, logical_date: str | None = None
) -> dict[str, dict[str, Any]]:
    """Asset configs from DAG params; ``{ds}`` in a string param becomes the run's date.

    An empty param means "not given". ``asset_config`` is applied last: it is the precise
    form (every named param always has a value in a run, its default at least)."""
    config: dict[str, dict[str, Any]] = {}
    for name, (key, field) in param_map.items():
        value = params.get(name)
        if isinstance(value, str) and logical_date is not None:
            value = value.replace("{ds}", logical_date)
        if value is not None and value != "":
            config.setdefault(key, {})[field] = value
    for key, values in (params.get(ASSET_CONFIG_PARAM) or {}).items():
        config.setdefault(key, {}).update(values)
    return config


def compact(value: Any) -> Any:
    """A value cut down for XCom: scalars and small containers; long lists become counts; a
    typed record as its JSON."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [compact(v) for v in value] if len(value) <= 8 else f"[{len(value)} items]"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def small_record(record: MaterializationRecord) -> dict[str, Any]:
    """What goes to XCom: URIs, versions and scalar metadata, never the artifact."""
    return {
        "asset_key": record.asset_key,
        "version": record.version,
        "artifact_uri": record.artifact_uri,
        "run_id": record.run_id,
        "metadata": {
            k: v
            for k, v in record.metadata.items()
            if isinstance(v, (str, int, float, bool)) or v is None
        },
    }


@contextmanager
def bad_input_raised_as_such(key: str) -> Iterator[None]:
    """Turn what a retry cannot fix into `BadInput`; storage trouble passes through.

    A `MaterializationError` caused by a `LakeError` is an S3 or disk outage: worth a retry.
    Any other (upstream missing, blocking check failed) and any `ValueError` (wrong source,
    layout, config or data) is bad input.
    """
    try:
        yield
    except MaterializationError as err:
        if isinstance(err.__cause__, LakeError):
            raise
        raise BadInput(str(err)) from err
    except ValueError as err:
        raise BadInput(f"{key}: {err}") from err


def run_asset_task(
    key: str,
    *,
    params: dict[str, Any],
    param_map: ParamMap,
    run_id: str,
    logical_date: str | None = None,
    settings: FruitOpsSettings | None = None,
) -> dict[str, Any]:
    """Materialize ``key`` with the configs the run's params give it; return a small record.

    The asset run id is derived from the orchestrator's run id, so a retry or a re-run of
    the same logical date finds the checkpoints and MLflow runs of the first try.
    Raises `BadInput` for what a retry cannot fix; storage trouble propagates (retry it).
    """
    config = config_from_params(params, param_map, logical_date)
    with bad_input_raised_as_such(key):
        (record,) = materialize(
            [key],
            settings=settings,
            config={key: config[key]} if key in config else None,
            run_id=safe_run_id(run_id),
        )
    return small_record(record)


def run_mapped_task(
    key: str,
    overrides: dict[str, Any],
    *,
    params: dict[str, Any],
    param_map: ParamMap,
    run_id: str,
    logical_date: str | None = None,
    settings: FruitOpsSettings | None = None,
) -> Any:
    """Run ``key``'s function with ``overrides`` on its config, storing nothing; return the
    value `compact`ed.

    One item of a mapped task (one architecture of ``models/trained_model``): the asset
    function must make that item's work idempotent per run id, so the asset's own task later
    finds it done rather than doing it again.
    """
    settings = settings or FruitOpsSettings()
    graph = AssetGraph.from_entry_points()
    config = {**config_from_params(params, param_map, logical_date).get(key, {}), **overrides}
    with bad_input_raised_as_such(key):
        resources = Resources.of(settings)
        value = run_mapped(graph[key], graph, resources, safe_run_id(run_id), config)
    return compact(value)


def run_serialized(
    key: str,
    params_json: str,
    param_map: dict[str, Any],
    run_id: str,
    logical_date: str | None,
    *,
    mapped_json: str | None = None,
) -> Any:
    """`run_asset_task` (or, with ``mapped_json``, `run_mapped_task`) for a process that got
    the run's params as JSON: ``fruitops task`` in a container, an external_python task.

    Its `BadInput` message starts with `BAD_INPUT_PREFIX`, for the orchestrator outside.
    """
    common = {
        "params": json.loads(params_json),
        "param_map": {name: tuple(target) for name, target in param_map.items()},
        "run_id": run_id,
        "logical_date": logical_date,
    }
    try:
        if mapped_json is not None:
            return run_mapped_task(key, json.loads(mapped_json), **common)
        return run_asset_task(key, **common)
    except BadInput as err:
        raise BadInput(f"{BAD_INPUT_PREFIX}{err}") from err
