"""The three DAGs on the real services: PostgreSQL, a SeaweedFS S3 server, the MLflow server.

`fruitops services up` starts them (on free ports, in a temporary home), Airflow keeps its
metadata in their PostgreSQL, and every claim is checked with a real client: the MLflow API
and MLflow's own tables, boto3 on the buckets, Airflow's tables, Airflow's REST API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fruitops_core.services import Services, ServicesConfig

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
TINY = "synthetic:classes=3,per_class=20,size=40,seed=11"
TRAIN_DATE = "2026-11-20"
ARCHS = ["cnn", "resnet18"]
#: train_architecture (a mapped task: every slice) and the gathering task fail once each
FAIL_ONCE = "train_architecture,models__trained_model"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_block(size: int) -> int:
    """A port p with p..p+size-1 and their gRPC twins (+10000) free (weed mini uses both)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 10000 + size < 65535 and all(
            _free(base + i) and _free(base + 10000 + i) for i in range(size)
        ):
            return base
    raise RuntimeError("no free block of ports")


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
        import mlflow

        url = self.services.config.mlflow_url
        return mlflow.MlflowClient(url, registry_uri=url)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # PostgreSQL runs as the postgres user when we are root: its folders must be reachable
    root = Path(tempfile.mkdtemp(prefix="fruitops-services-"))
    root.chmod(0o755)
    ports = {
        "FRUITOPS_SERVICES_HOME": str(root / "services"),
        "FRUITOPS_SERVICES_POSTGRES_PORT": str(free_block(1)),
        "FRUITOPS_SERVICES_S3_PORT": str(free_block(5)),
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


def dags_test(stack: Stack, dag_id: str, *args: str, **extra: str) -> str:
    result = stack.run("airflow", "dags", "test", dag_id, *args, **extra)
    log = result.stdout + result.stderr
    assert result.returncode == 0 and "state=success" in log, log[-6000:]
    return log


@pytest.fixture(scope="module")
def trained(stack: Stack) -> str:
    """fruitops_training run once on the services, its mapped and gathering tasks each
    failing their first try on purpose."""
    migrated = stack.run("airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    conf = json.dumps({"source": TINY, "epochs": 2, "image_size": 40, "architectures": ARCHS})
    return dags_test(
        stack, "fruitops_training", TRAIN_DATE, "-c", conf, FRUITOPS_TEST_FAIL_FIRST_TRY=FAIL_ONCE
    )


def test_services_up_again_changes_nothing_and_status_names_every_address(stack):
    again = stack.run("fruitops", "services", "up")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already running") == 3
    status = json.loads(stack.run("fruitops", "services", "status", "--json").stdout)
    config = stack.services.config
    assert status["postgres"]["state"] == status["s3"]["state"] == "running"
    assert status["mlflow"]["state"] == "running"
    assert status["s3"]["s3_endpoint"] == f"http://127.0.0.1:{config.s3_port}"
    assert status["mlflow"]["mlflow_url"] == f"http://127.0.0.1:{config.mlflow_port}"
    assert status["s3"]["buckets"] == ["fruitops-lake", "fruitops-mlflow"]
    assert status["airflow_db"].endswith(f"airflow@127.0.0.1:{config.postgres_port}/airflow")
    assert stack.services.secrets()["postgres_password"] not in json.dumps(status)
    for log in ("postgres.log", "seaweedfs.log", "mlflow.log"):
        assert (stack.root / "services" / log).stat().st_size > 0, log


def test_training_runs_and_alias_are_in_mlflow_and_in_its_postgres_tables(stack, trained):
    client = stack.mlflow()
    versions = client.search_model_versions("name = 'fruit-classifier'")
    assert sorted(v.tags["arch"] for v in versions) == sorted(ARCHS)
    champion = client.get_model_version_by_alias("fruit-classifier", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED" and "val_macro_f1" in run.data.metrics
    assert (
        run.data.tags["fruitops_asset_run_id"] == f"fruitops_training__{TRAIN_DATE}T00_00_00_00_00"
    )
    # the same facts, straight from MLflow's PostgreSQL database
    rows = stack.sql(
        "mlflow", "SELECT version, run_id FROM model_versions WHERE name = %s", "fruit-classifier"
    )
    assert sorted(rows) == sorted((int(v.version), v.run_id) for v in versions)
    (alias,) = stack.sql(
        "mlflow", "SELECT version FROM registered_model_aliases WHERE alias = 'champion'"
    )
    assert alias[0] == int(champion.version)
    (finished,) = stack.sql(
        "mlflow",
        "SELECT count(*) FROM runs WHERE status = 'FINISHED' AND run_uuid = %s",
        champion.run_id,
    )
    assert finished[0] == 1


def test_model_artifacts_and_lake_outputs_are_objects_in_the_buckets(stack, trained):
    champion = stack.mlflow().get_model_version_by_alias("fruit-classifier", "champion")
    artifacts = stack.s3_keys("fruitops-mlflow", "artifacts/")
    assert any(k.endswith("/MLmodel") for k in artifacts), artifacts[:20]
    assert any(champion.run_id in k and k.endswith("training_curves.png") for k in artifacts)
    lake = stack.s3_keys("fruitops-lake")
    for key in (
        "assets/data/training_cache/",
        "assets/models/trained_model/",
        "assets/models/training_report/",
    ):
        assert any(k.startswith(key) for k in lake), key
    assert any(k.startswith("raw/") and k.endswith(".jpg") for k in lake)


def test_tasks_failed_once_succeeded_on_retry_without_a_second_model_version(stack, trained):
    rows = stack.sql(
        "airflow",
        "SELECT task_id, map_index, try_number, state FROM task_instance "
        "WHERE dag_id = 'fruitops_training' AND task_id = ANY(%s) ORDER BY task_id, map_index",
        FAIL_ONCE.split(","),
    )
    assert rows == [
        ("models__trained_model", -1, 2, "success"),
        ("train_architecture", 0, 2, "success"),
        ("train_architecture", 1, 2, "success"),
    ]
    assert "failing its first try on purpose" in trained
    assert len(stack.mlflow().search_model_versions("name = 'fruit-classifier'")) == len(ARCHS)
    (state,) = stack.sql("airflow", "SELECT state FROM dag_run WHERE dag_id = 'fruitops_training'")
    assert state == ("success",)


def test_a_rerun_of_the_same_logical_date_registers_nothing_new(stack, trained):
    before = stack.s3_keys("fruitops-mlflow", "artifacts/")
    conf = json.dumps({"source": TINY, "epochs": 2, "image_size": 40, "architectures": ARCHS})
    dags_test(stack, "fruitops_training", TRAIN_DATE, "-c", conf)
    client = stack.mlflow()
    assert len(client.search_model_versions("name = 'fruit-classifier'")) == len(ARCHS)
    training = client.search_runs(
        [client.get_experiment_by_name("fruitops").experiment_id],
        "tags.fruitops_kind = 'training'",
    )
    assert len(training) == len(ARCHS)
    models = [k for k in stack.s3_keys("fruitops-mlflow", "artifacts/") if k.endswith("/MLmodel")]
    assert len(models) == len([k for k in before if k.endswith("/MLmodel")])


def test_scoring_then_monitoring_on_drifted_photos_triggers_training(stack, trained, tmp_path):
    from PIL import Image, ImageEnhance

    client = stack.services._s3_client()
    day = tmp_path / "incoming" / "2026-11-27"
    photos = [k for k in stack.s3_keys("fruitops-lake", "raw/") if "/test/" in k]
    assert photos
    for key in photos:
        target = day / key.split("/")[-2] / key.split("/")[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file("fruitops-lake", key, str(target))
        with Image.open(target) as image:
            dark = ImageEnhance.Brightness(image.convert("RGB")).enhance(0.3)
        dark.save(target)
    conf = json.dumps({"batch": str(tmp_path / "incoming" / "{ds}")})
    dags_test(stack, "fruitops_scoring", "2026-11-27", "-c", conf)
    assert "assets/serving/batch_predictions/predictions.parquet" in stack.s3_keys(
        "fruitops-lake", "assets/serving/"
    )
    log = dags_test(
        stack, "fruitops_monitoring", "-c", json.dumps({"critical_columns": ["brightness"]})
    )
    assert "Following branch {'trigger_retraining'}" in log, log[-5000:]
    assert any(k.endswith("drift_report.html") for k in stack.s3_keys("fruitops-lake", "assets/"))
    runs = stack.sql(
        "airflow",
        "SELECT dag_id, state FROM dag_run WHERE dag_id IN "
        "('fruitops_scoring', 'fruitops_monitoring') ORDER BY dag_id",
    )
    assert runs == [("fruitops_monitoring", "success"), ("fruitops_scoring", "success")]
    (queued,) = stack.sql(
        "airflow",
        "SELECT count(*) FROM dag_run WHERE dag_id = 'fruitops_training' AND state = 'queued'",
    )
    assert queued[0] == 1  # the retraining that drift asked for, left for the scheduler


def _http(method: str, url: str, token: str | None = None, body: dict | None = None) -> dict:
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


def test_airflow_standalone_answers_health_and_runs_a_dag_triggered_over_rest(stack, trained):
    port = free_block(1)
    home = stack.root / "standalone"
    home.mkdir()
    env = {
        **stack.env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }
    base = f"http://127.0.0.1:{port}"
    with open(home / "standalone.log", "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "airflow"), "standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        health = _wait_for(lambda: _http("GET", f"{base}/api/v2/monitor/health"), 180, home)
        assert health["metadatabase"]["status"] == "healthy"
        assert _wait_for(
            lambda: (
                _http("GET", f"{base}/api/v2/monitor/health")["scheduler"]["status"] == "healthy"
                or None
            ),
            120,
            home,
        )
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        token = _http(
            "POST", f"{base}/auth/token", body={"username": "admin", "password": passwords["admin"]}
        )["access_token"]
        api = f"{base}/api/v2/dags/fruitops_scoring"
        _wait_for(lambda: _http("GET", api, token), 120, home)  # parsed by the dag-processor
        run = _http("POST", f"{api}/dagRuns", token, {"logical_date": None, "conf": {}})
        assert run["state"] == "queued" and run["triggered_by"] == "rest_api"
        _http("PATCH", api, token, {"is_paused": False})
        url = f"{api}/dagRuns/{run['dag_run_id']}"
        final = _wait_for(
            lambda: (s := _http("GET", url, token)["state"]) in ("success", "failed") and s,
            420,
            home,
        )
        assert final == "success", (home / "standalone.log").read_text()[-5000:]
    finally:
        process.send_signal(signal.SIGINT)  # standalone stops its children cleanly on SIGINT
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for(probe, timeout: float, home: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(2)
    log = home / "standalone.log"
    raise AssertionError(f"gave up after {timeout} s; standalone log:\n{log.read_text()[-5000:]}")
