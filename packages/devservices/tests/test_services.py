"""The services profile's set-up errors: clear, naming the setting, before anything starts.

The services themselves are started for real in airflow/tests/test_services_profile.py.
"""

import socket
from pathlib import Path

import pytest

from fruitops_devservices.config import ServicesConfig
from fruitops_devservices.stack import Services
from fruitops_devservices.supervisor import ServiceError


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


def test_a_pid_file_whose_pid_was_reused_signals_nothing(tmp_path):
    """The service died and the OS gave its PID to another process: `services down` must
    leave that process alone (its command line is not the service's)."""
    import subprocess
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        services = Services(ServicesConfig(home=tmp_path), log=lambda _: None)
        services.pidfile("mlflow").write_text(str(bystander.pid))
        assert services._pid_alive("mlflow") is None
        services._stop("mlflow")
        assert bystander.poll() is None  # still running
        assert not services.pidfile("mlflow").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_secret_files_are_private_from_their_first_byte(tmp_path):
    import os

    from fruitops_devservices.supervisor import write_private

    old = os.umask(0o000)  # the most permissive umask: os.open's mode alone must do it
    try:
        loose = tmp_path / "loose"
        loose.write_text("x")
        loose.chmod(0o644)
        write_private(loose, "secret")
        write_private(tmp_path / "new", "secret")
    finally:
        os.umask(old)
    for path in (loose, tmp_path / "new"):
        assert oct(path.stat().st_mode)[-3:] == "600" and path.read_text() == "secret"
