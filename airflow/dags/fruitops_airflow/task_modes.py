"""How an asset task runs: a setting, not a code change (``FRUITOPS_TASK_MODE``).

- ``in_process``: the worker's Python runs `materialize()` (the default; `airflow dags test`).
- ``external_python``: `@task.external_python` in the pipeline venv (``FRUITOPS_TASK_PYTHON``),
  so Airflow's own environment need not hold torch.
- ``docker``: `DockerOperator` runs ``fruitops task`` in the task image on the compose network.
- ``kubernetes``: `KubernetesPodOperator` on GKE; training tasks request a GPU.

Every mode ends in `fruitops_core.orchestration`, so they differ only in where it runs.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fruitops_core.asset_keys import TRAINED_MODEL
from fruitops_core.orchestration import ParamMap
from fruitops_core.settings import FruitOpsSettings

#: Templates every mode passes: the run's params, id and date. A run started by an Asset
#: event or by REST with ``"logical_date": null`` has no ``logical_date`` nor ``ds`` in its
#: (StrictUndefined) context, so each is tested with ``is defined`` first.
PARAMS_JSON = "{{ params | tojson }}"
#: The asset run id: the DAG and its logical date, so a retry *and* a re-run of the same
#: date find the first one's work; the run id where a run has no logical date.
RUN_ID = (
    "{{ dag.dag_id }}__{{ logical_date.isoformat() "
    "if logical_date is defined and logical_date else run_id }}"
)
#: The run's date for ``{ds}`` in params: the logical date's, else the day the run was made.
DS = "{{ ds if ds is defined and ds else dag_run.run_after | ds }}"
#: Asset keys whose tasks train: on Kubernetes they get the GPU node pool.
GPU_ASSETS = frozenset({TRAINED_MODEL})
#: Where KubernetesPodOperator's sidecar reads a pod's XCom from.
XCOM_FILE = "/airflow/xcom/return.json"
#: The S3 keys a docker-mode task container gets from the worker, outside the rendered
#: template fields (DockerOperator's ``private_environment``). Kubernetes pods get none: they
#: reach ``gs://`` with Workload Identity.
S3_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class TaskMode(StrEnum):
    in_process = "in_process"
    external_python = "external_python"
    docker = "docker"
    kubernetes = "kubernetes"


class TaskSettings(BaseSettings):
    """Where the DAGs' tasks run, and when scoring does. Only the chosen mode's fields matter."""

    model_config = SettingsConfigDict(env_prefix="FRUITOPS_", extra="ignore")

    task_mode: TaskMode = TaskMode.in_process
    task_python: str = Field(sys.executable, description="external_python: the pipeline venv")
    task_image: str = Field("fruitops-task:latest", description="docker/kubernetes image")
    task_profile: str = Field("compose", description="FRUITOPS_PROFILE inside the container")
    docker_url: str = "unix://var/run/docker.sock"
    docker_network: str = Field("fruitops", description="the compose project's network")
    k8s_namespace: str = "fruitops"
    k8s_service_account: str = Field("fruitops-tasks", description="Workload Identity KSA")
    k8s_gpu_accelerator: str = Field("nvidia-tesla-t4", description="GKE GPU pool's accelerator")
    retry_delay_seconds: float = Field(30, gt=0, description="first retry's delay; doubles")
    scoring_schedule: str | None = Field(
        "@daily", description="fruitops_scoring's cron or preset; 'none': only when triggered"
    )

    @field_validator("scoring_schedule")
    @classmethod
    def _none(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "none") else value


def task_command(key: str, param_map: ParamMap, mapped_json: str | None = None) -> list[str]:
    """The ``fruitops task`` command line a container runs for ``key`` (templated)."""
    command = [
        "fruitops",
        "task",
        key,
        "--json",
        "--run-id",
        RUN_ID,
        "--ds",
        DS,
        "--params",
        PARAMS_JSON,
        "--param-map",
        json.dumps(param_map),
    ]
    if mapped_json is not None:
        command += ["--mapped", mapped_json]
    return command


def container_env(settings: TaskSettings, worker: FruitOpsSettings) -> dict[str, str]:
    """A task container's settings: its profile, and where the lake and MLflow are when the
    worker names them (the ``gcp`` profile has no default for either)."""
    env = {"FRUITOPS_PROFILE": settings.task_profile, "FRUITOPS_TASK_MODE": "in_process"}
    named = {
        "FRUITOPS_LAKE_URI": worker.lake_uri,
        "MLFLOW_TRACKING_URI": worker.mlflow_tracking_uri,
        "AWS_ENDPOINT_URL": worker.s3_endpoint_url,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION"),
    }
    return env | {name: value for name, value in named.items() if value}


def s3_credentials() -> dict[str, str]:
    """The worker's S3 keys, for a docker-mode container (never a template field)."""
    return {name: os.environ[name] for name in S3_CREDENTIALS if os.environ.get(name)}


def container_operator(
    mode: TaskMode, key: str, settings: TaskSettings, worker: FruitOpsSettings
) -> tuple[type, dict[str, Any]]:
    """The operator class and its fixed arguments for ``key`` in the docker/kubernetes modes.

    Returned unbuilt so a caller can either build it or ``.partial(...).expand(...)`` it.
    The command goes in `command_kwargs`.
    """
    if mode is TaskMode.docker:
        from airflow.providers.docker.operators.docker import DockerOperator

        # the last stdout line, the JSON record, goes to XCom
        return DockerOperator, {
            "image": settings.task_image,
            "docker_url": settings.docker_url,
            "network_mode": settings.docker_network,
            "environment": container_env(settings, worker),
            "private_environment": s3_credentials(),
            "auto_remove": "success",
            "mount_tmp_dir": False,
            "do_xcom_push": True,
        }
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    gpu: dict[str, Any] = {}
    if key in GPU_ASSETS:  # training pods go to the GPU pool, which scales from zero
        gpu = {
            "container_resources": k8s.V1ResourceRequirements(
                requests={"cpu": "4", "memory": "16Gi"},
                limits={"nvidia.com/gpu": "1", "memory": "16Gi"},
            ),
            "node_selector": {"cloud.google.com/gke-accelerator": settings.k8s_gpu_accelerator},
            "tolerations": [
                k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
            ],
        }
    return KubernetesPodOperator, {
        "namespace": settings.k8s_namespace,
        "image": settings.task_image,
        "service_account_name": settings.k8s_service_account,
        "env_vars": container_env(settings, worker),
        "do_xcom_push": True,
        "get_logs": True,
        # a failed pod's last log lines become the error Airflow sees (`retries.py` reads it)
        "termination_message_policy": "FallbackToLogsOnError",
        "on_finish_action": "delete_succeeded_pod",
        **gpu,
    }


def command_kwargs(mode: TaskMode, command: list[str]) -> dict[str, Any]:
    """``command`` as the docker/kubernetes operator takes it."""
    if mode is TaskMode.docker:
        return {"command": command}
    return {"cmds": command[:1], "arguments": [*command[1:], "--xcom-file", XCOM_FILE]}
