"""The three services as one stack: `fruitops services up|down|status|env`.

Up starts PostgreSQL, then the S3 server, then the MLflow server that runs on both (each only
if it is not running yet: idempotent); down stops them in the reverse order and keeps their
data. `env` gives the variables that point FruitOps, MLflow, boto3 and Airflow at them.
"""

from __future__ import annotations

from typing import Any

from fruitops_core.settings import private_folder
from fruitops_devservices.mlflow_server import MLFLOW_USER, MlflowServer
from fruitops_devservices.seaweedfs import S3_TASKS


class Services(MlflowServer):
    """Start, stop and describe the three services of one services home."""

    def env(self) -> dict[str, str]:
        """Variables that point FruitOps, MLflow, boto3 and Airflow at these services."""
        s = self.secrets()
        airflow_db = self.dsn("airflow", "airflow", driver="psycopg2")
        return {
            "FRUITOPS_PROFILE": "services",
            "FRUITOPS_LAKE_URI": f"s3://{self.config.lake_bucket}",
            "MLFLOW_TRACKING_URI": self.config.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
            "MLFLOW_TRACKING_PASSWORD": s["mlflow_admin_password"],
            "AWS_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": S3_TASKS,  # the lake's user: the MLflow bucket is the server's
            "AWS_SECRET_ACCESS_KEY": s["s3_tasks_secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        }

    def up(self) -> dict[str, Any]:
        private_folder(self.root)
        self.start_postgres()
        self.start_s3()
        self.start_mlflow()
        return self.status()

    def down(self) -> dict[str, Any]:
        self._stop("mlflow")
        self._stop("seaweedfs")
        self.stop_postgres()
        return self.status()

    def status(self) -> dict[str, Any]:
        return {
            "home": str(self.root),
            "postgres": self.postgres_status(),
            "s3": self.s3_status(),
            "mlflow": self.mlflow_status(),
            "airflow_db": self.dsn("airflow", "airflow", password=False, driver="psycopg2"),
            "logs": str(self.root),
        }
