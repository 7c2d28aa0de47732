"""No secret on any command line of any file the project ships: compose services (commands,
entrypoints, health checks), Kubernetes manifests and Helm values (``command``/``args``).

A command line is world-readable on its host (``ps``, ``/proc/<pid>/cmdline``). A secret
reaches one when compose interpolates ``${SECRET}`` into a command, when Kubernetes expands
``$(SECRET)`` in ``args``, or when a shell script passes ``$SECRET`` to a program it starts.
Allowed: secrets in the environment, an assignment in front of a command
(``REDISCLI_AUTH="$SECRET" redis-cli``), and the shell's own ``printf``/``echo``, which start
no process (``printf '%s' "$SECRET" | mc …`` feeds a program on stdin).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra_checks import INFRA

SECRET_VAR = r"[A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|FERNET|_KEY)[A-Z0-9_]*"
#: what compose substitutes before the container starts: in argv as the value
COMPOSE_INTERPOLATION = re.compile(r"(?<!\$)\$\{?(" + SECRET_VAR + r")\b")
#: what Kubernetes substitutes in command/args before the container starts
K8S_EXPANSION = re.compile(r"(?<!\$)\$\((" + SECRET_VAR + r")\)")
#: a variable a shell script expands at run time ($$ in compose files)
SHELL_REF = re.compile(r"\$\$?\{?(" + SECRET_VAR + r")\b")
BUILTINS = {"printf", "echo", ":", "export", "test", "["}
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash"}

COMPOSE_FILES = sorted((INFRA / "compose").glob("compose*.yaml"))
MANIFESTS = [INFRA / "deploy" / "mlflow.yaml", INFRA / "deploy" / "airflow-values.yaml"]


def shell_leaks(script: str) -> list[str]:
    """The secrets a shell script hands to a program it starts, as arguments."""
    leaks = []
    for command in re.split(r";|\|\||&&|\||\n", script):
        try:
            words = shlex.split(command, posix=False)
        except ValueError:
            words = command.split()
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]  # NAME=value in front: that program's environment, not argv
        if not words or words[0] in BUILTINS:
            continue
        leaks += [m for word in words[1:] for m in SHELL_REF.findall(word)]
    return leaks


def argv_leaks(argv: list[str] | str, expansion: re.Pattern) -> list[str]:
    """The secrets one command line would hold: substituted by compose or Kubernetes, or
    passed on by the shell script it runs."""
    items = [argv] if isinstance(argv, str) else [str(a) for a in argv]
    leaks = [m for item in items for m in expansion.findall(item)]
    if isinstance(argv, str) or not items:
        return leaks + shell_leaks(" ".join(items).replace("$$", "$"))
    if items[0] == "CMD-SHELL" or items[0] in SHELLS or any(i in ("-c",) for i in items[:3]):
        leaks += shell_leaks(items[-1].replace("$$", "$"))
    return leaks


def compose_command_lines(compose: dict) -> Iterator[tuple[str, list[str] | str]]:
    for name, service in compose.get("services", {}).items():
        entrypoint, command = service.get("entrypoint"), service.get("command")
        if entrypoint is not None and command is not None and isinstance(command, list):
            entry = entrypoint if isinstance(entrypoint, list) else [entrypoint]
            yield f"{name}: entrypoint+command", [*entry, *command]
        else:
            for part, value in (("entrypoint", entrypoint), ("command", command)):
                if value is not None:
                    yield f"{name}: {part}", value
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            yield f"{name}: healthcheck", test


def k8s_command_lines(document) -> Iterator[tuple[str, list[str] | str]]:
    """Every ``command`` and ``args`` list anywhere in a manifest or values file."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("command", "args") and isinstance(value, (list, str)):
                yield key, value
            else:
                yield from k8s_command_lines(value)
    elif isinstance(document, list):
        for item in document:
            yield from k8s_command_lines(item)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_no_compose_command_line_holds_a_secret(path: Path):
    compose = yaml.safe_load(path.read_text())
    found = {
        where: leaks
        for where, argv in compose_command_lines(compose)
        if (leaks := argv_leaks(argv, COMPOSE_INTERPOLATION))
    }
    assert found == {}, found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_no_kubernetes_or_helm_command_line_holds_a_secret(path: Path):
    lines = [
        (where, argv)
        for document in yaml.safe_load_all(path.read_text())
        for where, argv in k8s_command_lines(document)
    ]
    found = [(w, leaks) for w, argv in lines if (leaks := argv_leaks(argv, K8S_EXPANSION))]
    assert found == []


@pytest.mark.parametrize(
    "argv,expansion,leaked",
    [
        (["redis-server", "--requirepass", "${REDIS_PASSWORD:?x}"], COMPOSE_INTERPOLATION,
         ["REDIS_PASSWORD"]),
        (["CMD-SHELL", 'redis-cli -a "$$REDIS_PASSWORD" ping'], COMPOSE_INTERPOLATION,
         ["REDIS_PASSWORD"]),
        (["/bin/sh", "-c", 'mc alias set local http://m "$$U" "$$MINIO_ROOT_PASSWORD"'],
         COMPOSE_INTERPOLATION, ["MINIO_ROOT_PASSWORD"]),
        (["--backend-store-uri=postgresql://u:$(MLFLOW_DB_PASSWORD)@db/m"], K8S_EXPANSION,
         ["MLFLOW_DB_PASSWORD"]),
        (["CMD-SHELL", 'REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli ping'],
         COMPOSE_INTERPOLATION, []),
        (["sh", "-c", "printf '%s\\n' \"$$SECRET_KEY\" | mc admin user add local u"],
         COMPOSE_INTERPOLATION, []),
    ],
)  # fmt: skip
def test_the_check_finds_each_way_a_secret_reaches_argv(argv, expansion, leaked):
    """The patterns this project had (redis, redis-cli, mc, MLflow on GKE) are found, and
    the ways it passes secrets now are not."""
    assert argv_leaks(argv, expansion) == leaked
