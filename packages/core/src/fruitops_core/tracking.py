"""MLflow set-up per profile, and reading back what the registry says."""

from __future__ import annotations

import os
from typing import Any

from fruitops_core.settings import FruitOpsSettings

CHAMPION_ALIAS = "champion"


def configure_mlflow(settings: FruitOpsSettings) -> str:
    """Point MLflow at the profile's tracking store and make sure the experiment exists.

    Returns the experiment id. In the embedded profile the artifacts go under the FruitOps
    home rather than ``./mlruns`` of whatever folder the process happens to run in.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    if settings.tracking_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
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
