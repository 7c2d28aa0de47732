"""infra/compose: schema-valid, healthy dependencies, volumes, secrets only from .env."""

from __future__ import annotations

import re
import subprocess
import sys

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
    assert "postgresql+psycopg2://mlflow:" in mlflow
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
            if SECRET_NAME.search(key):
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
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (COMPOSE / "compose.yaml").read_text()))
    assert set(values) == required and all(len(v) >= 8 for v in values.values())
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
