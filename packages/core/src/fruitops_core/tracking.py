"""MLflow set-up per profile, and reading back what the registry says."""

from __future__ import annotations

import os
from typing import Any

from fruitops_core.settings import FruitOpsSettings

CHAMPION_ALIAS = "champion"


class TrackingUnavailable(ConnectionError):
    """The MLflow server does not answer; the message names its URI and what to start."""


#: How long a process waits for the MLflow server before saying it is not there (MLflow's
#: own client would retry for minutes before "Connection refused").
SERVER_WAIT_SECONDS = 20


def require_server(uri: str, wait: float = SERVER_WAIT_SECONDS) -> None:
    """Return once ``uri``/health answers; raise `TrackingUnavailable` after ``wait`` s."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers (a proxy or an older server without /health)
        except OSError as err:
            if time.monotonic() >= deadline:
                raise TrackingUnavailable(
                    f"the MLflow server at {uri} does not answer ({getattr(err, 'reason', err)}"
                    f") after {wait:.0f} s: start it (`fruitops services up` for the services "
                    "profile, `mlflow server` otherwise) or point MLFLOW_TRACKING_URI at one"
                ) from None
            time.sleep(1)


def configure_mlflow(settings: FruitOpsSettings) -> str:
    """Point MLflow at the profile's tracking store and make sure the experiment exists.

    Returns the experiment id. In the embedded profile the artifacts go under the FruitOps
    home rather than ``./mlruns`` of whatever folder the process happens to run in.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    if settings.tracking_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    elif settings.tracking_uri.startswith(("http://", "https://")):
        require_server(settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        experiment_id = client.create_experiment(
            settings.mlflow_experiment, artifact_location=settings.mlflow_artifacts_uri
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def champion(settings: FruitOpsSettings) -> dict[str, Any] | None:
    """The model version behind ``<registered_model>@champion``, or None if there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        mv = client.get_model_version_by_alias(settings.registered_model, CHAMPION_ALIAS)
    except MlflowException:
        return None
    return {
        "name": mv.name,
        "version": int(mv.version),
        "run_id": mv.run_id,
        "reason": mv.tags.get("promotion.reason"),
    }


def champion_uri(settings: FruitOpsSettings) -> str:
    return f"models:/{settings.registered_model}@{CHAMPION_ALIAS}"
