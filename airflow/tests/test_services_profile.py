"""The three DAGs on the real services: PostgreSQL, a SeaweedFS S3 server, the MLflow server.

`fruitops services up` starts them (on free ports, in a temporary home), Airflow keeps its
metadata in their PostgreSQL, and every claim is checked with a real client: the MLflow API
and MLflow's own tables, boto3 on the buckets, Airflow's tables, Airflow's REST API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from services_stack import Stack, services_stack

pytestmark = pytest.mark.slow
TINY = "synthetic:classes=3,per_class=20,size=40,seed=11"
TRAIN_DATE = "2026-11-20"
ARCHS = ["cnn", "resnet18"]
#: models__trained_model__architectures (a mapped task: every item) and the gathering task
#: fail once each, through the test-only cluster policy in fail_first_try/ (on PYTHONPATH)
FAIL_ONCE = "models__trained_model__architectures,models__trained_model"
FAIL_FIRST_TRY = Path(__file__).resolve().parent / "fail_first_try"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with services_stack() as stack:
        yield stack


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
        stack,
        "fruitops_training",
        TRAIN_DATE,
        "-c",
        conf,
        FRUITOPS_TEST_FAIL_FIRST_TRY=FAIL_ONCE,
        PYTHONPATH=str(FAIL_FIRST_TRY),
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


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on, from /proc (its socket inodes)."""
    import os

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def assert_needs_a_client_certificate(port: int, ca: Path) -> None:
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(ca))  # the server's chain is trusted
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                tls.recv(64)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        try:
            answer = raw.recv(64)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", f"port {port} answered gRPC in plain text"


def test_mlflow_asks_a_login_and_the_services_home_is_private(stack):
    """MLflow's basic-auth app: no login, no answer (but /health); the login of `services
    env` works. The home and its folders are for their owner (711 where root must let the
    postgres user through to its data, 700 below), and SeaweedFS's master and volume write
    APIs answer the profile's own address only."""
    import base64
    import stat
    import urllib.error
    import urllib.request

    url = stack.services.config.mlflow_url
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=10)
    assert refused.value.code == 401
    assert urllib.request.urlopen(f"{url}/health", timeout=10).status == 200
    login = f"{stack.env['MLFLOW_TRACKING_USERNAME']}:{stack.env['MLFLOW_TRACKING_PASSWORD']}"
    request = urllib.request.Request(
        search, headers={"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
    )
    assert urllib.request.urlopen(request, timeout=10).status == 200
    root = stack.services.root
    assert stat.S_IMODE(root.stat().st_mode) & 0o066 == 0  # no read or write for others
    for folder in (root / "seaweedfs", root / "postgres"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert (
        f'[guard]\nwhite_list = "{stack.services.config.host},@"'
        in (root / "seaweedfs" / "security.toml").read_text()
    )
    # ... and the profile's own S3 gateway still writes through it (a too narrow list made
    # every PUT time out)
    bucket = stack.services.config.lake_bucket
    client = stack.services._s3_client()
    client.put_object(Bucket=bucket, Key="guard-check", Body=b"ok")
    assert "guard-check" in stack.s3_keys(bucket, "guard-check")
    client.delete_object(Bucket=bucket, Key="guard-check")  # leave the lake as it was


def test_no_secret_on_any_command_line_and_only_s3_opens_the_objects(stack):
    import urllib.error
    import urllib.request

    secrets = list(stack.services.secrets().values())
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue  # the process ended
        assert not any(secret in text for secret in secrets), cmdline
    config = stack.services.config
    ports = config.seaweed_ports()
    # the filer refuses what has no JWT of SeaweedFS's own keys: writes and reads
    post = urllib.request.Request(
        f"http://127.0.0.1:{ports['filer']}/buckets/{config.lake_bucket}/planted.txt",
        data=b"planted",
        method="PUT",
    )
    for request in (post, f"http://127.0.0.1:{ports['filer']}/buckets/{config.lake_bucket}/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    assert "planted.txt" not in stack.s3_keys(config.lake_bucket)
    # weed listens on the profile's ports (and their gRPC twins) only: no Iceberg/Lance
    own = listening_ports(stack.services._pid_alive("seaweedfs"))
    chosen = set(ports.values())
    assert own and own <= chosen | {p + 10000 for p in chosen}, sorted(own - chosen)
    # every gRPC listener wants mutual TLS: a client without the profile's certificate is
    # turned away in the handshake, one in plain text gets nothing
    ca = stack.services.root / "seaweedfs" / "tls" / "ca.crt"
    grpc = sorted(own - chosen)
    assert grpc, "no gRPC listener found"
    for port in grpc:
        assert_needs_a_client_certificate(port, ca)


def test_the_exported_s3_key_reaches_the_lake_only(stack):
    """`fruitops services env` hands out the compose stack's lake user (the same identities
    script): it writes the lake, and the MLflow bucket (the server's) refuses it."""
    import boto3
    from botocore.exceptions import ClientError

    env, config = stack.services.env(), stack.services.config
    assert env["AWS_ACCESS_KEY_ID"] == "fruitops-tasks"
    tasks = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    tasks.put_object(Bucket=config.lake_bucket, Key="user-check", Body=b"ok")
    tasks.delete_object(Bucket=config.lake_bucket, Key="user-check")
    with pytest.raises(ClientError, match="AccessDenied"):
        tasks.put_object(Bucket=config.mlflow_bucket, Key="user-check", Body=b"no")
    with pytest.raises(ClientError, match="AccessDenied"):
        tasks.list_objects_v2(Bucket=config.mlflow_bucket)


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
        ("models__trained_model__architectures", 0, 2, "success"),
        ("models__trained_model__architectures", 1, 2, "success"),
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
