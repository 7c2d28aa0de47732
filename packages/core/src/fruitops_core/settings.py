"""One settings object selects where everything lives (docs/design.md §3).

Values come from `FRUITOPS_*` environment variables plus the standard `MLFLOW_TRACKING_URI`
and `AWS_ENDPOINT_URL`. Profiles only change defaults: anything set explicitly wins.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(StrEnum):
    embedded = "embedded"
    services = "services"
    compose = "compose"
    gcp = "gcp"


_PROFILE_DEFAULTS: dict[Profile, dict[str, str | None]] = {
    Profile.embedded: {"lake": None, "mlflow": None, "s3": None},
    Profile.services: {
        "lake": "s3://fruitops-lake",
        "mlflow": "http://127.0.0.1:5000",
        "s3": "http://127.0.0.1:8333",
    },
    Profile.compose: {
        "lake": "s3://fruitops-lake",
        "mlflow": "http://mlflow:5000",
        "s3": "http://s3:8333",
    },
    # GCP has no sensible default bucket: the user must name theirs.
    Profile.gcp: {"lake": None, "mlflow": None, "s3": None},
}


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable to set."""


class FruitOpsSettings(BaseSettings):
    """Where the lake, MLflow and Airflow metadata live, for one run profile."""

    model_config = SettingsConfigDict(env_prefix="FRUITOPS_", extra="ignore")

    profile: Profile = Profile.embedded
    home: Path = Field(default=Path(".fruitops"), description="embedded state folder")
    lake_uri: str | None = Field(default=None, description="root of the lake: a path or s3://")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FRUITOPS_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FRUITOPS_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
    )
    mlflow_experiment: str = "fruitops"
    registered_model: str = "fruit-classifier"
    source: str | None = Field(
        default=None,
        description="SOURCE to ingest when a step is given none (FRUITOPS_SOURCE); unset: the "
        "data set already in the lake",
    )

    allowed_roots: str | None = Field(
        default=None,
        description="folders (separated by ':') that local sources, batches and scoring "
        "inputs must lie in (FRUITOPS_ALLOWED_ROOTS); unset: anywhere but the system "
        "folders (/, /proc, /sys, /dev, /etc, /boot, /run)",
    )

    @property
    def allowed_root_paths(self) -> list[Path]:
        """`allowed_roots` as resolved paths; empty when unset."""
        return [
            Path(part).expanduser().resolve()
            for part in (self.allowed_roots or "").split(os.pathsep)
            if part.strip()
        ]

    @field_validator("profile", mode="before")
    @classmethod
    def _known_profile(cls, value: object) -> object:
        choices = [p.value for p in Profile]
        if isinstance(value, str) and value not in choices:
            raise ValueError(
                f"FRUITOPS_PROFILE={value!r} is not a profile: choose one of "
                f"{', '.join(choices)} (or unset it for embedded)"
            )
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def _resolve(self, explicit: str | None, kind: str, gcp_hint: str, embedded: str) -> str:
        """Explicit setting, else the profile's default; gcp has none and says what to set."""
        if explicit:
            return explicit
        default = _PROFILE_DEFAULTS[self.profile][kind]
        if default:
            return default
        if self.profile is Profile.gcp:
            raise SettingsError(f"profile 'gcp' needs {gcp_hint}")
        return embedded

    @property
    def lake_root(self) -> str:
        """The lake root URI."""
        return self._resolve(
            self.lake_uri,
            "lake",
            "FRUITOPS_LAKE_URI=gs://<bucket>[/prefix] (the bucket made by infra/terraform)",
            (self.home / "lake").as_uri(),
        )

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI."""
        return self._resolve(
            self.mlflow_tracking_uri,
            "mlflow",
            "MLFLOW_TRACKING_URI (the MLflow server on GKE/Cloud Run)",
            f"sqlite:///{self.home / 'mlflow.db'}",
        )

    def private_home(self) -> Path:
        """The FruitOps home, made mode 700 if it is not there yet: it holds the lake,
        MLflow's store, logs and the services' secrets, none of them for other users."""
        private_folder(self.home)
        return self.home

    @property
    def local_cache(self) -> Path:
        """This machine's copies of lake data (training cache shards, converted models):
        made again from the lake when missing, so any of it may be deleted."""
        return self.home / "cache-local"

    @property
    def s3_endpoint(self) -> str | None:
        return self.s3_endpoint_url or _PROFILE_DEFAULTS[self.profile]["s3"]

    @property
    def mlflow_artifacts_uri(self) -> str | None:
        """Where a new experiment keeps its artifacts; None lets the server decide."""
        if self.tracking_uri.startswith("sqlite:"):
            return (self.home / "mlartifacts").as_uri()
        return None

    def describe(self) -> dict[str, str | None]:
        return {
            "profile": self.profile.value,
            "home": str(self.home),
            "lake_uri": self.lake_root,
            "mlflow_tracking_uri": self.tracking_uri,
            "s3_endpoint_url": self.s3_endpoint,
            "source": self.source,
        }


def private_folder(path: Path) -> Path:
    """Make ``path`` and its missing parents with mode 700 (whatever the umask); a folder
    that exists keeps its mode."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    return path
