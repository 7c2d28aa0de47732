"""`scripts/airflow-standalone`, as the README starts it: in the background, then `kill`.

`airflow standalone` itself shuts its components down only on SIGINT; on SIGTERM it exits
and leaves the scheduler, API server and triggerer running. The wrapper must leave nothing.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from services_stack import free_block, http, wait_for

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "airflow-standalone"


def test_a_plain_kill_stops_every_component_and_it_serves_loopback_only(tmp_path):
    port = free_block(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FRUITOPS_"))}
    env.update(FRUITOPS_HOME=str(tmp_path / "home"), AIRFLOW__API__PORT=str(port))
    log = tmp_path / "standalone.log"
    with open(log, "wb") as out:
        wrapper = subprocess.Popen(
            [str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT,
            # a background job of a script: SIGINT ignored, as `cmd &` does
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
    try:
        health = f"http://127.0.0.1:{port}/api/v2/monitor/health"
        wait_for(
            lambda: all(
                (http("GET", health).get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
            ),
            240,
            lambda: log.read_text(errors="replace")[-4000:],
        )
        assert f"Uvicorn running on http://127.0.0.1:{port}" in log.read_text()
        wrapper.send_signal(signal.SIGTERM)  # `kill <pid>`
        assert wrapper.wait(timeout=120) is not None
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    # the components ran in the wrapper's child's process group: none of it is left
    deadline = time.monotonic() + 10
    leftover = _leftovers(tmp_path)
    while leftover and time.monotonic() < deadline:
        time.sleep(1)
        leftover = _leftovers(tmp_path)
    assert leftover == [], leftover
    assert "Shutting down components" in log.read_text()


def _leftovers(home: Path) -> list[str]:
    """Processes whose environment points at this test's FruitOps home."""
    found = []
    marker = f"FRUITOPS_HOME={home / 'home'}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes():
                found.append(Path(environ.parent, "cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return found
