"""The services profile for a test module: PostgreSQL, a SeaweedFS S3 server and the MLflow
server, started by ``fruitops services up`` on free ports in a temporary home, with real
clients on each (psycopg2, boto3, MlflowClient) and a small REST client for Airflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fruitops_devservices.config import ServicesConfig
from fruitops_devservices.stack import Services

BIN = Path(sys.executable).parent
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"


def _ports_module():
    """`tests/ports.py` by path (the repository root is not a package)."""
    import importlib.util

    if "fruitops_test_ports" in sys.modules:
        return sys.modules["fruitops_test_ports"]
    path = Path(__file__).resolve().parents[2] / "tests" / "ports.py"
    spec = importlib.util.spec_from_file_location("fruitops_test_ports", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # one set of handed-out ports per process
    spec.loader.exec_module(module)
    return module


_ports = _ports_module()
free_block = _ports.free_block


@dataclass
class Stack:
    services: Services
    env: dict[str, str]
    root: Path

    def run(self, *args: str, timeout: int = 600, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def sql(self, database: str, query: str, *args) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(self.services.dsn("fruitops", database)) as conn:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()

    def s3_keys(self, bucket: str, prefix: str = "") -> list[str]:
        client = self.services._s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def mlflow(self):
        """A client with the profile's login (MLflow reads it from the environment)."""
        import mlflow

        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ[name] = self.env[name]
        url = self.services.config.mlflow_url
        return mlflow.MlflowClient(url, registry_uri=url)


@contextmanager
def services_stack() -> Iterator[Stack]:
    """``fruitops services up`` in a fresh temporary home; ``services down`` at the end."""
    # PostgreSQL runs as the postgres user when we are root: its folders must be reachable
    root = Path(tempfile.mkdtemp(prefix="fruitops-services-"))
    root.chmod(0o755)
    ports = {
        "FRUITOPS_SERVICES_HOME": str(root / "services"),
        "FRUITOPS_SERVICES_POSTGRES_PORT": str(free_block(1)),
        "FRUITOPS_SERVICES_S3_PORT": str(free_block(5, twins=True)),
        "FRUITOPS_SERVICES_MLFLOW_PORT": str(free_block(1)),
    }
    config = ServicesConfig(
        home=root / "services",
        postgres_port=int(ports["FRUITOPS_SERVICES_POSTGRES_PORT"]),
        s3_port=int(ports["FRUITOPS_SERVICES_S3_PORT"]),
        mlflow_port=int(ports["FRUITOPS_SERVICES_MLFLOW_PORT"]),
    )
    services = Services(config)
    (root / "airflow").mkdir()
    env = {
        **os.environ,
        **ports,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "FRUITOPS_HOME": str(root / "home"),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FRUITOPS_RETRY_DELAY_SECONDS": "1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    up = subprocess.run(
        [str(BIN / "fruitops"), "services", "up", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert up.returncode == 0, up.stdout + up.stderr[-3000:]
    env.update(services.env())
    try:
        yield Stack(services, env, root)
    finally:
        subprocess.run(
            [str(BIN / "fruitops"), "services", "down"], env=env, capture_output=True, timeout=120
        )
        shutil.rmtree(root, ignore_errors=True)


def http(
    method: str, url: str, token: str | None = None, body: dict | None = None
) -> dict[str, Any]:
    """One JSON request (Airflow's REST API)."""
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(probe: Callable[[], Any], timeout: float, explain: Callable[[], str]) -> Any:
    """``probe()``'s first truthy value (connection errors count as not yet); on timeout an
    AssertionError with ``explain()`` (the logs that say why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"gave up after {timeout} s\n{explain()}")
