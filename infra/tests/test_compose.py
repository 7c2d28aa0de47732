"""infra/compose: schema-valid, healthy dependencies, volumes, secrets only from .env."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra_checks import INFRA, ROOT

COMPOSE = INFRA / "compose"
ONE_SHOT = {"minio-init", "airflow-init"}
STATEFUL = {"postgres": "/var/lib/postgresql/data", "minio": "/data", "redis": "/data"}
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
    for name in ("postgres", "minio", "minio-init", "mlflow", "airflow-init",
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
    init = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing local/fruitops-lake local/fruitops-mlflow" in init
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
            assert value.startswith("change-me") or name == "MINIO_ROOT_USER", line


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


def test_root_s3_credentials_stay_in_minio_and_its_init_job(compose):
    text = (COMPOSE / "compose.yaml").read_text()
    for name, service in compose["services"].items():
        env = json.dumps(service.get("environment") or {})
        if name not in ("minio", "minio-init"):
            assert "MINIO_ROOT" not in env, name
    # one user per bucket, each allowed its own bucket and nothing else
    for user, policy, bucket in (("fruitops-tasks", "lake-rw", "fruitops-lake"),
                                 ("fruitops-mlflow", "mlflow-rw", "fruitops-mlflow")):  # fmt: skip
        document = json.loads((COMPOSE / "minio" / f"{policy}.json").read_text())
        resources = {r for s in document["Statement"] for r in s["Resource"]}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, policy
        actions = {a for s in document["Statement"] for a in s["Action"]}
        assert not any(a.startswith("s3:*") or "Bucket" in a and "List" not in a and
                       "Location" not in a for a in actions), actions  # fmt: skip
        assert f"mc admin policy attach local fruitops-{policy} --user {user}" in text
    users = {
        name: service["environment"].get("AWS_ACCESS_KEY_ID")
        for name, service in compose["services"].items()
        if "AWS_ACCESS_KEY_ID" in (service.get("environment") or {})
    }
    assert users == {"airflow-scheduler": "fruitops-tasks", "airflow-worker": "fruitops-tasks",
                     "model-server": "fruitops-tasks", "mlflow": "fruitops-mlflow"}  # fmt: skip


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
    dockerfile = (COMPOSE / "Dockerfile.mlflow").read_text()
    pinned = re.search(r"google-cloud-storage==([\d.]+)", dockerfile)
    assert pinned, "Dockerfile.mlflow must install google-cloud-storage"
    # the version this checkout's mlflow runs with
    assert pinned[1] == importlib.metadata.version("google-cloud-storage")
