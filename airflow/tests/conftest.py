"""Airflow test set-up: the DAG folder on sys.path (as Airflow puts it) and isolated homes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
BIN = Path(sys.executable).parent
if str(DAGS_FOLDER) not in sys.path:
    sys.path.insert(0, str(DAGS_FOLDER))


@pytest.fixture
def airflow_env(tmp_path: Path, settings) -> dict[str, str]:
    """Environment for `airflow` subprocesses: SQLite metadata and a FruitOps home in tmp."""
    home = tmp_path / "airflow"
    home.mkdir()
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "FRUITOPS_HOME": str(settings.home),
    }


@pytest.fixture
def cli(airflow_env: dict[str, str]):
    """Run one of the venv's commands (airflow, fruitops) with the test environment."""

    def run(*args: str, timeout: int = 600, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            env={**airflow_env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER
