"""PostgreSQL for the services profile: a cluster of the project's own, made with ``initdb``.

Debian's server binaries (which `make setup` installs) run it on the profile's port, with
databases and users ``airflow`` and ``mlflow`` owned by them. PostgreSQL refuses to run as
root: as root, every server command runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fruitops_core.settings import private_folder
from fruitops_devservices.supervisor import ServiceError, Supervisor, write_private

SUPERUSER = "fruitops"
DATABASES = ("airflow", "mlflow")


def _password() -> str:
    return secrets.token_urlsafe(18)


class Postgres(Supervisor):
    """Start, stop and describe the PostgreSQL cluster of a services home."""

    SECRETS = {
        "postgres_password": _password,  # the superuser's
        **{f"{name}_password": _password for name in DATABASES},
    }

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    def dsn(self, user: str, database: str, password: bool = True, driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        secret = ""
        if password:
            key = "postgres_password" if user == SUPERUSER else f"{user}_password"
            secret = ":" + self.secrets()[key]
        host, port = self.config.host, self.config.postgres_port
        return f"{scheme}://{user}{secret}@{host}:{port}/{database}"

    def pg_bin(self) -> Path:
        if self.config.pg_bin:
            if not (self.config.pg_bin / "initdb").exists():
                raise ServiceError(
                    f"FRUITOPS_SERVICES_PG_BIN={self.config.pg_bin} has no initdb: point it at "
                    "the PostgreSQL server binaries, e.g. /usr/lib/postgresql/15/bin"
                )
            return self.config.pg_bin
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
        )
        if found:
            return Path(found[-1]).parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).parent
        raise ServiceError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make setup`, which "
            "installs Debian's postgresql, or set FRUITOPS_SERVICES_PG_BIN to their folder"
        )

    def _as_postgres(self, args: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", "postgres", "--", *args]

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._as_postgres([str(self.pg_bin() / "pg_ctl"), "-D", str(self.pg_data), *args]),
            capture_output=True,
            text=True,
        )

    def postgres_running(self) -> bool:
        return self.pg_data.exists() and self._pg_ctl("status").returncode == 0

    def _initdb(self) -> None:
        folder = private_folder(self.pg_data.parent)
        pwfile = folder / "pwfile"
        write_private(pwfile, self.secrets()["postgres_password"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            self._let_postgres_through(folder)
        result = subprocess.run(
            self._as_postgres(
                [
                    str(self.pg_bin() / "initdb"),
                    "-D",
                    str(self.pg_data),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                ]
            ),
            capture_output=True,
            text=True,
        )
        pwfile.unlink()
        if result.returncode != 0:
            hint = ""
            if os.geteuid() == 0 and "Permission denied" in result.stderr:
                hint = f" (the postgres user must be able to reach {folder}: make its parents o+x)"
            raise ServiceError(f"initdb failed{hint}:\n{result.stderr[-2000:]}")

    def _let_postgres_through(self, folder: Path) -> None:
        """Run as root, the server runs as the postgres user, who must pass the private
        folders above its data (mode 700): they become 711, passable but not listable."""
        for parent in folder.parents:
            mode = parent.stat().st_mode & 0o777
            if mode & 0o001:
                break  # from here up, already passable
            parent.chmod(mode | 0o011)

    def start_postgres(self) -> None:
        if self.postgres_running():
            self.log(f"postgres: already running on {self.config.host}:{self.config.postgres_port}")
            self._create_databases()
            return
        self._require_free(self.config.postgres_port, "FRUITOPS_SERVICES_POSTGRES_PORT", "postgres")
        if not (self.pg_data / "PG_VERSION").exists():
            self._initdb()
        log = self.logfile("postgres")
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, "postgres", "postgres")
        options = f"-p {self.config.postgres_port} -h {self.config.host} -k {self.pg_data}"
        result = self._pg_ctl("-l", str(log), "-o", options, "-w", "-t", "60", "start")
        if result.returncode != 0:
            raise ServiceError(f"postgres did not start; see {log}:\n{result.stderr[-2000:]}")
        self._create_databases()
        self.log(f"postgres: up on {self.config.host}:{self.config.postgres_port}")

    def _create_databases(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn(SUPERUSER, "postgres"))
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction: no `with conn`
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if cur.fetchone() is None:
                    password = self.secrets()[f"{name}_password"]
                    cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", (password,))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {name} OWNER {name}")
        conn.close()

    def stop_postgres(self) -> None:
        if self.postgres_running():
            self._pg_ctl("-m", "fast", "-w", "stop")
            self.log("postgres: stopped")

    def postgres_status(self) -> dict[str, Any]:
        return {
            "state": "running" if self.postgres_running() else "stopped",
            "dsn": self.dsn(SUPERUSER, "postgres", password=False),
            "databases": list(DATABASES),
        }
