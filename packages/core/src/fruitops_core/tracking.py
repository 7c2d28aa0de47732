"""`Tracking`: the MLflow resource, the one way FruitOps code talks to MLflow.

`materialize` builds one from the settings and hands it to every asset as ``ctx.tracking``;
a command gets its own from `fruitops_core.workspace.open_workspace` and hands it on. It holds a
client bound to the profile's tracking URI (used for every registry and search call), knows
the experiment and the registered model, and is the single place that looks up the champion.

MLflow's fluent API (``mlflow.log_metrics``, ``mlflow.pytorch.log_model`` and model loading
by ``models:/`` URI) reads a process-wide tracking URI; `activate` sets it from this
resource, and `start_run` does so before it opens a run, so logging inside a run goes where
the resource points and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fruitops_core.settings import FruitOpsSettings

if TYPE_CHECKING:  # MLflow is imported on first use: the asset graph loads without it
    from mlflow import ActiveRun, MlflowClient
    from mlflow.entities.model_registry import ModelVersion

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


class Tracking:
    """The profile's MLflow store: its client, experiment, registered model and champion."""

    def __init__(self, settings: FruitOpsSettings):
        self.settings = settings
        self.uri = settings.tracking_uri
        self.registered_model = settings.registered_model

    def __repr__(self) -> str:
        return f"Tracking({self.uri!r}, model={self.registered_model!r})"

    @cached_property
    def client(self) -> MlflowClient:
        """A client bound to this store (checked reachable on first use)."""
        import mlflow

        self._reachable()
        return mlflow.MlflowClient(self.uri, registry_uri=self.uri)

    def _reachable(self) -> None:
        os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        if self.uri.startswith("sqlite:"):
            self.settings.private_home()
        elif self.uri.startswith(("http://", "https://")):
            require_server(self.uri)

    @cached_property
    def experiment_id(self) -> str:
        """The profile's experiment, made on first use; in the embedded profile its artifacts
        go under the FruitOps home rather than ``./mlruns`` of whatever folder the process
        runs in."""
        name = self.settings.mlflow_experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            name, artifact_location=self.settings.mlflow_artifacts_uri
        )

    def activate(self) -> None:
        """Point MLflow's fluent API (logging in a run, loading ``models:/`` URIs) here."""
        import mlflow

        self.client  # noqa: B018 - checks the store answers before anything is logged
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    @contextmanager
    def start_run(
        self,
        *,
        kind: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
    ) -> Iterator[ActiveRun]:
        """An MLflow run of this experiment tagged ``fruitops_kind=kind`` (``run_id``
        continues an earlier one); ``mlflow.log_*`` inside it log to it."""
        import mlflow

        self.activate()
        if run_id is not None:
            started = mlflow.start_run(run_id=run_id)
        else:
            started = mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=run_name,
                tags={"fruitops_kind": kind, **(tags or {})},
            )
        with started as run:
            yield run

    def search_runs(self, filter_string: str, max_results: int = 20) -> list[Any]:
        """Runs of this experiment matching ``filter_string``, newest first."""
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )

    def champion(self) -> ModelVersion | None:
        """The model version behind ``<registered_model>@champion``; None if there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.registered_model, CHAMPION_ALIAS)
        except MlflowException:
            return None

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.registered_model}@{CHAMPION_ALIAS}"

    def champion_summary(self) -> dict[str, Any] | None:
        """The champion as the CLI and demo print it."""
        mv = self.champion()
        if mv is None:
            return None
        return {
            "name": mv.name,
            "version": int(mv.version),
            "run_id": mv.run_id,
            "reason": mv.tags.get("promotion.reason"),
        }
