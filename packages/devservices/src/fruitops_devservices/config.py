"""Ports and names of the services profile, from ``FRUITOPS_SERVICES_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fruitops_core.settings import FruitOpsSettings


class ServicesConfig(BaseSettings):
    """Ports and names of the services profile (``FRUITOPS_SERVICES_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="FRUITOPS_SERVICES_", extra="ignore")

    home: Path | None = Field(None, description="default: <FRUITOPS_HOME>/services")
    host: str = "127.0.0.1"
    postgres_port: int = 55432
    s3_port: int = 8333
    mlflow_port: int = 5000
    lake_bucket: str = "fruitops-lake"
    mlflow_bucket: str = "fruitops-mlflow"
    pg_bin: Path | None = Field(None, description="PostgreSQL server binaries (initdb, pg_ctl)")

    def root(self) -> Path:
        return (self.home or FruitOpsSettings().home / "services").expanduser().resolve()

    @property
    def buckets(self) -> list[str]:
        return [self.lake_bucket, self.mlflow_bucket]

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    def seaweed_ports(self) -> dict[str, int]:
        """weed mini's other listeners, next to the S3 port so two stacks never collide."""
        return {
            "s3": self.s3_port,
            "master": self.s3_port + 1,
            "volume": self.s3_port + 2,
            "filer": self.s3_port + 3,
            "admin": self.s3_port + 4,
        }
