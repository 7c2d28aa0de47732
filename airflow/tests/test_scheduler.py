"""The product's loop under Airflow's real scheduler, with no `airflow dags test` in it.

On the services profile (PostgreSQL metadata, S3, the MLflow server), Airflow runs as it
does in production: `airflow api-server`, `scheduler` (LocalExecutor), `dag-processor` and
`triggerer`, each its own process. Everything is driven over the REST API, as a user or a
CI job would: a `fruitops_scoring` run made with ``"logical_date": null`` on darkened real
photos updates the `serving/batch_predictions` Asset; the scheduler starts
`fruitops_monitoring` from that event; drift triggers `fruitops_training`, which registers and
evaluates a candidate; a second batch, in distribution, takes `no_drift`. Headless Chromium
then logs in and looks at the UI.

Training is kept tiny (a cnn, one epoch, 32 px): this tests wiring, not quality. The Airflow
home (logs of every process and task) stays in pytest's temporary folder for a failure's
post-mortem; every process is stopped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from services_stack import BIN, Stack, free_block, http, services_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "samples" / "fruits-real-mini"
TINY_TRAINING = {"epochs": 1, "image_size": 32, "architectures": ["cnn"]}
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Where the UI screenshots go (the README's come from a run with this set to docs/airflow)
SCREENSHOTS = "UI_SCREENSHOTS"


@dataclass
class Airflow:
    """The running Airflow: its REST API (logged in) and its home, for the logs."""

    base: str
    home: Path
    stack: Stack
    password: str = ""
    token: str = ""

    def api(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        return http(method, f"{self.base}/api/v2/{path}", self.token, body)

    def logs(self) -> str:
        """The tail of every process's log, and where the task logs are."""
        parts = [f"Airflow home (task logs under logs/): {self.home}"]
        for name in PROCESSES:
            log = self.home / f"{name}.log"
            if log.exists():
                parts.append(f"--- {name}.log\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        return self.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})

    def finished(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        """The run once it has succeeded or failed."""
        path = f"dags/{dag_id}/dagRuns/{run_id}"
        return wait_for(
            lambda: (run := self.api("GET", path))["state"] in ("success", "failed") and run,
            timeout,
            lambda: (
                f"{dag_id} {run_id} did not finish\n{self.task_states(dag_id, run_id)}\n"
                + self.logs()
            ),
        )

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        listed = self.api("GET", f"dags/{dag_id}/dagRuns?order_by=run_after&limit=100")
        return listed["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        listed = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        states: dict[str, str | None] = {}
        for ti in listed["task_instances"]:
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
            states[name] = ti["state"]
        return states

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.api("GET", f"{path}?deserialize=true&stringify=false")["value"]

    def next_run(self, dag_id: str, known: set[str], timeout: float = 300) -> dict[str, Any]:
        """The first run of ``dag_id`` not in ``known``, once the scheduler has made it."""
        return wait_for(
            lambda: next((r for r in self.runs(dag_id) if r["dag_run_id"] not in known), None),
            timeout,
            lambda: f"no new {dag_id} run\n" + self.logs(),
        )


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-scheduler")
    with services_stack() as stack:
        port = free_block(1)
        base = f"http://127.0.0.1:{port}"
        env = {
            **stack.env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            # separate processes must share the secrets that sign their tokens
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # scoring runs when the test says so, not on its daily schedule
            "FRUITOPS_SCORING_SCHEDULE": "none",
            "AIRFLOW_VAR_FRUITOPS_RETRAINING_CONF": json.dumps(TINY_TRAINING),
        }
        migrated = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        processes = []
        try:
            for name in PROCESSES:
                with open(home / f"{name}.log", "wb") as log:
                    processes.append(
                        subprocess.Popen(
                            [str(BIN / "airflow"), name],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            running = Airflow(base, home, stack)
            wait_for(lambda: _healthy(base), 240, running.logs)
            passwords = home / "simple_auth_manager_passwords.json.generated"
            running.password = json.loads(passwords.read_text())["admin"]
            login = {"username": "admin", "password": running.password}
            running.token = http("POST", f"{base}/auth/token", body=login)["access_token"]
            for dag_id in ("fruitops_training", "fruitops_scoring", "fruitops_monitoring"):
                wait_for(lambda d=dag_id: running.api("GET", f"dags/{d}"), 180, running.logs)
            yield running
        finally:
            _stop(processes)


def _healthy(base: str) -> bool:
    health = http("GET", f"{base}/api/v2/monitor/health")
    parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all((health.get(p) or {}).get("status") == "healthy" for p in parts)


@pytest.fixture(scope="module")
def champion(airflow: Airflow) -> dict[str, Any]:
    """A first champion, trained by a REST-triggered run (no logical date) on real photos."""
    # two architectures, so the mapped task has two map indexes to show in the UI
    conf = {"source": str(PHOTOS), **TINY_TRAINING, "architectures": ["cnn", "resnet18"]}
    run = airflow.trigger("fruitops_training", conf)
    assert run["logical_date"] is None and run["triggered_by"] == "rest_api"
    done = airflow.finished("fruitops_training", run["dag_run_id"])
    assert done["state"] == "success", airflow.task_states("fruitops_training", run["dag_run_id"])
    return done


def batch_of(stack: Stack, folder: Path, split: str, brightness: float) -> Path:
    """The ingested ``split``'s photos, copied from the lake, at ``brightness`` (1: as is)."""
    from PIL import Image, ImageEnhance

    client = stack.services._s3_client()
    keys = [k for k in stack.s3_keys("fruitops-lake", "raw/") if f"/{split}/" in k]
    assert len(keys) >= 8, keys
    for key in keys:
        target = folder / key.split("/")[-2] / key.split("/")[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file("fruitops-lake", key, str(target))
        if brightness != 1:
            with Image.open(target) as image:
                dark = ImageEnhance.Brightness(image.convert("RGB")).enhance(brightness)
            dark.save(target)
    return folder


def score(airflow: Airflow, batch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A REST-triggered scoring run of ``batch``, and the monitoring run its Asset event made."""
    before = {r["dag_run_id"] for r in airflow.runs("fruitops_monitoring")}
    run = airflow.trigger("fruitops_scoring", {"batch": str(batch)})
    assert run["logical_date"] is None
    done = airflow.finished("fruitops_scoring", run["dag_run_id"])
    assert done["state"] == "success", airflow.task_states("fruitops_scoring", run["dag_run_id"])
    monitoring = airflow.next_run("fruitops_monitoring", before)
    assert monitoring["run_type"] == "asset_triggered" and monitoring["logical_date"] is None
    events = airflow.api(
        "GET", f"dags/fruitops_monitoring/dagRuns/{monitoring['dag_run_id']}/upstreamAssetEvents"
    )["asset_events"]
    assert [(e["name"], e["source_run_id"]) for e in events] == [
        ("serving/batch_predictions", run["dag_run_id"])
    ]
    finished = airflow.finished("fruitops_monitoring", monitoring["dag_run_id"])
    return done, finished


def test_a_drifted_batch_starts_monitoring_whose_drift_retrains(airflow, champion, tmp_path):
    stack = airflow.stack
    trainings = {r["dag_run_id"] for r in airflow.runs("fruitops_training")}
    versions = stack.mlflow().search_model_versions("name = 'fruit-classifier'")
    dark = batch_of(stack, tmp_path / "dim-camera", "val", brightness=0.25)
    scored, monitoring = score(airflow, dark)

    # the scheduler ran the scoring tasks (not `dags test`): its job queued each of them
    jobs = stack.sql(
        "airflow",
        "SELECT DISTINCT j.job_type FROM task_instance t JOIN job j ON j.id = t.queued_by_job_id"
        " WHERE t.dag_id = 'fruitops_scoring' AND t.run_id = %s",
        scored["dag_run_id"],
    )
    assert jobs == [("SchedulerJob",)]
    states = airflow.task_states("fruitops_monitoring", monitoring["dag_run_id"])
    assert monitoring["state"] == "success", states
    assert states["trigger_retraining"] == "success" and states["no_drift"] == "skipped"
    report = airflow.xcom(
        "fruitops_monitoring", monitoring["dag_run_id"], "monitoring__drift_report"
    )
    assert report["metadata"]["dataset_drift"] is True

    retraining = airflow.next_run("fruitops_training", trainings)
    done = airflow.finished("fruitops_training", retraining["dag_run_id"], timeout=900)
    states = airflow.task_states("fruitops_training", retraining["dag_run_id"])
    assert done["state"] == "success", states
    assert done["conf"]["source"] and done["conf"]["epochs"] == 1  # the Variable's conf
    assert states["models__trained_model__architectures[0]"] == "success"
    after = stack.mlflow().search_model_versions("name = 'fruit-classifier'")
    (candidate,) = [v for v in after if v.version not in {o.version for o in versions}]
    assert candidate.tags["arch"] == "cnn"
    evaluation = airflow.xcom(
        "fruitops_training", retraining["dag_run_id"], "models__model_evaluation"
    )
    assert evaluation["metadata"]["best_candidate"] == int(candidate.version)
    assert evaluation["metadata"]["champion_version"] is not None  # weighed against it


def test_a_batch_in_distribution_takes_no_drift(airflow, champion, tmp_path):
    trainings = {r["dag_run_id"] for r in airflow.runs("fruitops_training")}
    _, monitoring = score(airflow, batch_of(airflow.stack, tmp_path / "as-is", "val", 1))
    states = airflow.task_states("fruitops_monitoring", monitoring["dag_run_id"])
    assert monitoring["state"] == "success", states
    assert states["no_drift"] == "success" and states["trigger_retraining"] == "skipped"
    assert {r["dag_run_id"] for r in airflow.runs("fruitops_training")} == trainings


def test_the_ui_shows_the_dags_the_mapped_training_graph_an_xcom_and_the_assets(
    airflow, champion, tmp_path, chromium
):
    out = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    run_id = champion["dag_run_id"]
    training = f"{airflow.base}/dags/fruitops_training"
    chromium.open(f"{airflow.base}/auth/login")
    chromium.type_into("input[name=username]", "admin")
    chromium.type_into("input[name=password]", airflow.password)
    chromium.press_enter()
    chromium.wait_for_text("Dags")
    # the DAG page opens on its graph, drawn top-down (a user's last choices, kept there)
    chromium.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
    chromium.evaluate("localStorage.setItem('direction-fruitops_training', JSON.stringify('DOWN'))")

    chromium.open(f"{airflow.base}/dags")
    chromium.wait_for_text(
        "fruitops_training", "fruitops_scoring", "fruitops_monitoring", "fruitops_pipeline"
    )
    chromium.settle()
    shots = [chromium.screenshot(out / "airflow-dags.png")]
    chromium.open(f"{training}/runs/{run_id}")
    chromium.wait_for_text("models__trained_model__architectures", "models__trained_model")
    nodes = "document.querySelectorAll('.react-flow__node').length"
    chromium.wait_for(f"{nodes} >= 11", "drew the graph's 11 tasks")
    chromium.settle()
    shots.append(chromium.screenshot(out / "airflow-training-graph.png"))
    chromium.open(f"{training}/runs/{run_id}/tasks/models__model_evaluation/xcom")
    chromium.wait_for_text("return_value", "asset_key", "s3://fruitops-lake/assets/models/")
    chromium.settle()
    shots.append(chromium.screenshot(out / "airflow-xcom.png"))
    chromium.open(f"{airflow.base}/assets")
    chromium.wait_for_text("serving/batch_predictions", "models/trained_model")
    chromium.settle()
    shots.append(chromium.screenshot(out / "airflow-assets.png"))
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
