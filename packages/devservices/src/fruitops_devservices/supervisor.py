"""What the services share: their home folder, the generated secrets and process handling.

Passwords and keys are generated on the first start into ``secrets.json``; every secret file
is mode 600 from its first byte, and no secret is ever on a command line (``ps`` shows
none). Each service runs in a session of its own (it outlives `fruitops services up`) with
its log and pid file in the home; a pid file whose process does not match names a reused
PID (the service died, the OS gave its number away), never to be signalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from fruitops_core.settings import private_folder
from fruitops_devservices.config import ServicesConfig


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


class Supervisor:
    """One services home: its paths, secrets and processes.

    Each service's class extends it and declares, as class attributes merged over the
    classes it is made of, the ``SECRETS`` it needs (name -> how to make one) and the
    ``COMMANDS`` its processes run (pid file name -> what their command line holds).
    """

    SECRETS: ClassVar[dict[str, Callable[[], str]]] = {}
    COMMANDS: ClassVar[dict[str, str]] = {}

    def __init__(self, config: ServicesConfig | None = None, log: Callable[[str], None] = print):
        self.config = config or ServicesConfig()
        self.root = self.config.root()
        self.log = log

    @classmethod
    def _declared(cls, attribute: str) -> dict[str, Any]:
        """``attribute`` of every class in the MRO, merged (the nearest class wins a name)."""
        merged: dict[str, Any] = {}
        for klass in cls.__mro__:
            for name, value in vars(klass).get(attribute, {}).items():
                merged.setdefault(name, value)
        return merged

    # -- paths and secrets ---------------------------------------------------------------

    def logfile(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def pidfile(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def secrets(self) -> dict[str, str]:
        """The generated passwords and keys, made on first use (and any a newer version
        adds, on the next)."""
        path = self.root / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        wanted = self._declared("SECRETS")
        missing = {key: make() for key, make in wanted.items() if key not in values}
        if missing:
            values.update(missing)
            private_folder(self.root)
            write_private(path, json.dumps(values, indent=2))
        return values

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
        if self._declared("COMMANDS")[name] not in command_line(pid):
            return None
        return pid

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
