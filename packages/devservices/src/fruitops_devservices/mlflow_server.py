"""The MLflow server of the services profile: ``mlflow server`` on PostgreSQL and S3.

Its backend store is the ``mlflow`` database (`postgres`), and with
``--artifacts-destination s3://…`` (`seaweedfs`) it proxies artifacts, so clients need no
S3 credentials for MLflow. Its database password comes from the environment (libpq reads
``PGPASSWORD``), never from its command line.
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.request
from pathlib import Path
from typing import Any

from fruitops_devservices.postgres import Postgres
from fruitops_devservices.seaweedfs import S3_MLFLOW, SeaweedFS
from fruitops_devservices.supervisor import write_private

#: The login the MLflow server asks of every client (MLflow's basic-auth app).
MLFLOW_USER = "fruitops"


class MlflowServer(Postgres, SeaweedFS):
    """Start and describe the MLflow server of a services home: it runs on the ``mlflow``
    database and the MLflow bucket, so it is made of both (`Supervisor._stop` stops it).

    It is MLflow's ``basic-auth`` app: every request but ``/health`` needs the login
    `MLFLOW_USER` with the generated password, which clients take from
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (`Services.env`); the users
    live in a SQLite file of the services home, the admin's password comes from the
    server's environment, never a command line or a file."""

    COMMANDS = {"mlflow": "mlflow"}
    SECRETS = {
        "mlflow_admin_password": lambda: secrets.token_urlsafe(24),
        "mlflow_flask_secret_key": lambda: secrets.token_urlsafe(32),  # its CSRF tokens' key
    }

    def _auth_config(self) -> Path:
        """MLflow's auth settings, in a private file of the services home."""
        path = self.root / "mlflow-auth.ini"
        write_private(
            path,
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{self.root / 'mlflow-auth.db'}\n"
            f"admin_username = {MLFLOW_USER}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            # a password's hash is checked once a minute per worker, not on every request
            "auth_cache_ttl_seconds = 60\n",
        )
        return path

    @property
    def artifacts_destination(self) -> str:
        return f"s3://{self.config.mlflow_bucket}/artifacts"

    def _mlflow_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.config.mlflow_url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def mlflow_running(self) -> bool:
        return self._pid_alive("mlflow") is not None and self._mlflow_healthy()

    def start_mlflow(self) -> None:
        if self.mlflow_running():
            self.log(f"mlflow: already running at {self.config.mlflow_url}")
            return
        self._require_free(self.config.mlflow_port, "FRUITOPS_SERVICES_MLFLOW_PORT", "mlflow")
        s = self.secrets()
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [
            str(mlflow if mlflow.exists() else "mlflow"),
            "server",
            "--backend-store-uri",  # no password here: libpq reads PGPASSWORD
            self.dsn("mlflow", "mlflow", password=False, driver="psycopg2"),
            "--artifacts-destination",
            self.artifacts_destination,
            "--host",
            self.config.host,
            "--port",
            str(self.config.mlflow_port),
            "--workers",
            "1",
            "--app-name",
            "basic-auth",
        ]
        env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": S3_MLFLOW,  # its artifacts' bucket only
            "AWS_SECRET_ACCESS_KEY": s["s3_mlflow_secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "PGPASSWORD": s["mlflow_password"],
            "MLFLOW_AUTH_CONFIG_PATH": str(self._auth_config()),
            "MLFLOW_AUTH_ADMIN_PASSWORD": s["mlflow_admin_password"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": s["mlflow_flask_secret_key"],
        }
        self._spawn("mlflow", command, env)
        self._wait("mlflow server", self._mlflow_healthy, 180, self.logfile("mlflow"))
        self.log(f"mlflow: up at {self.config.mlflow_url}")

    def mlflow_status(self) -> dict[str, Any]:
        return {
            "state": "running" if self.mlflow_running() else "stopped",
            "mlflow_url": self.config.mlflow_url,
            "backend": self.dsn("mlflow", "mlflow", password=False),
            "login": MLFLOW_USER,  # its password: `fruitops services env`
            "artifacts_destination": self.artifacts_destination,
        }
