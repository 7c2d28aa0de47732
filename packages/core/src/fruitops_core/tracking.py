"""`Tracking`: the MLflow resource, the one way FruitOps code talks to MLflow.

`materialize` builds one from the settings and hands it to every asset as ``ctx.tracking``;
a command gets its own from `fruitops_core.workspace.open_workspace` and hands it on. It holds a
client bound to the profile's tracking URI (used for every registry and search call), knows
the experiment and the registered model, and is the single place that looks up the champion.

Nothing else in `packages/` calls MLflow's fluent API (``tests/test_layout.py`` checks):
a step logs through the `TrackedRun` that `start_run` yields (to that run, by id), and loads
or downloads ``models:/`` and ``runs:/`` URIs through this resource. Those loaders, and a
flavor's ``log_model``, read MLflow's process-wide tracking URI: this module alone sets it
(`activate`), from the resource, right before it calls them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fruitops_core.settings import FruitOpsSettings

if TYPE_CHECKING:  # MLflow is imported on first use: the asset graph loads without it
    from mlflow import MlflowClient
    from mlflow.entities import RunInfo
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

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
        """Point MLflow's process-wide API (a flavor's ``log_model``, loading ``models:/``
        URIs) here. FruitOps code calls the methods below instead; plain-MLflow callers
        (tests that act as a user, a notebook) may call this."""
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
    ) -> Iterator[TrackedRun]:
        """An MLflow run of this experiment tagged ``fruitops_kind=kind`` (``run_id``
        continues an earlier one), as the `TrackedRun` to log to; it ends with the block
        (FAILED when the block raises)."""
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
            yield TrackedRun(self, run.info)

    def model_info(self, uri: str) -> ModelInfo:
        """What MLflow knows of the logged or registered model at ``uri`` (its flavors and
        metadata), without downloading it."""
        import mlflow

        self.activate()
        return mlflow.models.get_model_info(uri)

    def download(self, uri: str, dst: Path | str) -> Path:
        """The artifacts at ``uri`` (``models:/``, ``runs:/``) copied into the folder ``dst``."""
        import mlflow

        self.activate()
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))

    def load_dict(self, uri: str) -> dict[str, Any]:
        """The JSON artifact at ``uri`` (``runs:/RUN/path.json``)."""
        import mlflow

        self.activate()
        return mlflow.artifacts.load_dict(uri)

    def load_pyfunc(self, uri: str) -> Any:
        """The registered model at ``uri`` as MLflow's pyfunc loads it (its own loader)."""
        import mlflow

        self.activate()
        return mlflow.pyfunc.load_model(uri)

    def load_pytorch(self, uri: str) -> Any:
        """The torch module logged with MLflow's pytorch flavor at ``uri``, on the CPU."""
        import mlflow

        self.activate()
        return mlflow.pytorch.load_model(uri, map_location="cpu")

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


class TrackedRun:
    """An open run of a `Tracking` store, as `Tracking.start_run` yields it.

    What a step logs goes through it, to this run by its id (MLflow's client calls), so a
    helper handed the run cannot log to another one.
    """

    def __init__(self, tracking: Tracking, info: RunInfo):
        self.tracking = tracking
        self.info = info
        self.run_id: str = info.run_id
        self._client = tracking.client

    def __repr__(self) -> str:
        return f"TrackedRun({self.run_id!r}, {self.tracking!r})"

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        self._client.log_batch(self.run_id, params=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        self._client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, str(value)) for key, value in tags.items()]
        self._client.log_batch(self.run_id, tags=items)

    def log_dict(self, value: Any, path: str) -> None:
        self._client.log_dict(self.run_id, value, path)

    def log_text(self, text: str, path: str) -> None:
        self._client.log_text(self.run_id, text, path)

    def log_figure(self, figure: Any, path: str) -> None:
        self._client.log_figure(self.run_id, figure, path)

    def log_table(self, table: Any, path: str) -> None:
        self._client.log_table(self.run_id, table, path)

    def log_artifact(self, local_path: Path | str, folder: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(local_path), folder)

    def log_artifacts(self, local_dir: Path | str, folder: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(local_dir), folder)

    def log_model(self, flavor: Any, **kwargs: Any) -> Any:
        """``flavor.log_model(**kwargs)`` (e.g. ``mlflow.pyfunc``) into this run: MLflow's
        flavors log into the active run, which `start_run` made this one."""
        import mlflow

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"{self!r} is not MLflow's active run: log its model inside it")
        self.tracking.activate()
        return flavor.log_model(**kwargs)
