"""The services profile's set-up errors: clear, naming the setting, before anything starts.

The services themselves are started for real in airflow/tests/test_services_profile.py.
"""

import socket
from pathlib import Path

import pytest

from fruitops_core.services import ServiceError, Services, ServicesConfig


def test_a_taken_port_is_named_with_the_setting_that_moves_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        services = Services(ServicesConfig(home=tmp_path, postgres_port=port), log=lambda _: None)
        with pytest.raises(ServiceError) as err:
            services.start_postgres()
    message = str(err.value)
    assert f"port {port}" in message and "FRUITOPS_SERVICES_POSTGRES_PORT" in message
    assert not (tmp_path / "postgres" / "data").exists()  # nothing was initialised


def test_wrong_postgres_binaries_folder_says_what_to_set(tmp_path):
    config = ServicesConfig(home=tmp_path, pg_bin=tmp_path / "nowhere")
    with pytest.raises(ServiceError, match="FRUITOPS_SERVICES_PG_BIN=.*has no initdb"):
        Services(config).pg_bin()


def test_status_of_a_fresh_home_is_stopped_and_shows_no_password(tmp_path):
    services = Services(ServicesConfig(home=tmp_path, postgres_port=1, s3_port=2, mlflow_port=3))
    status = services.status()
    assert {status[s]["state"] for s in ("postgres", "s3", "mlflow")} == {"stopped"}
    assert status["postgres"]["dsn"] == "postgresql://fruitops@127.0.0.1:1/postgres"
    assert status["airflow_db"] == "postgresql+psycopg2://airflow@127.0.0.1:1/airflow"
    env = services.env()  # makes the secrets
    secret = Services(ServicesConfig(home=tmp_path)).secrets()["airflow_password"]
    assert secret in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert secret not in str(services.status())
    assert oct(Path(tmp_path / "secrets.json").stat().st_mode)[-3:] == "600"
