"""The pipeline DAG run by Airflow's own `airflow dags test`, as `make demo` runs it."""

import json
from pathlib import Path

import mlflow
import pytest

from fruitops_core.lake import uri_exists

pytestmark = pytest.mark.slow
TINY = "synthetic:classes=3,per_class=20,size=40,seed=11"


def migrate(cli):
    result = cli("airflow", "db", "migrate")
    assert result.returncode == 0, result.stderr[-3000:]


def test_dags_test_runs_the_pipeline_end_to_end(cli):
    migrate(cli)
    conf = json.dumps({"source": TINY, "epochs": 2, "image_size": 40})
    result = cli("airflow", "dags", "test", "fruitops_pipeline", "-c", conf)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert "state=success" in log

    summary = cli("fruitops", "demo", "--no-run", "--json")
    assert summary.returncode == 0, summary.stderr[-3000:]
    demo = json.loads(summary.stdout)
    for key in ("predictions_uri", "drift_report_uri", "validation_report_uri", "lake_uri"):
        assert uri_exists(demo[key]), (key, demo[key])
    # the precision the gate chose for the scoring, as the summary shows it
    backend, precision = demo["scored_in"].split()
    assert backend == "openvino" and precision in ("fp32", "bf16", "int8")
    db = Path(demo["mlflow_tracking_uri"].removeprefix("sqlite:///"))
    assert db.exists()
    client = mlflow.MlflowClient(
        demo["mlflow_tracking_uri"], registry_uri=demo["mlflow_tracking_uri"]
    )
    champion = client.get_model_version_by_alias("fruit-classifier", "champion")
    assert {k: demo["champion"][k] for k in ("name", "version", "run_id")} == {
        "name": "fruit-classifier",
        "version": int(champion.version),
        "run_id": champion.run_id,
    }
    # the DAG's default candidates: the fine-tuned Lite0 and the from-scratch cnn
    runs = {run["arch"]: run for run in demo["runs"]}
    assert set(runs) == {"efficientnet_lite0", "cnn"}
    assert champion.run_id in {run["run_id"] for run in runs.values()}
    assert all(0 <= run["metrics"]["val_accuracy"] <= 1 for run in runs.values())

    listed = cli("airflow", "dags", "list", "-o", "json")
    # airflow prints its own warnings on stdout too: the JSON is the line that starts with [
    (listing,) = [line for line in listed.stdout.splitlines() if line.startswith("[")]
    assert "fruitops_pipeline" in {d["dag_id"] for d in json.loads(listing)}


def test_scoring_and_monitoring_dags_branch_on_drift_and_trigger_retraining(
    cli, tmp_path, settings
):
    """The three DAGs in the embedded profile: fruitops_training, then fruitops_scoring of the
    test split, which does not drift; a day of the same photos darkened, scored by
    fruitops_scoring, does, and the monitoring run then triggers fruitops_training."""
    from PIL import Image, ImageEnhance

    migrate(cli)
    conf = json.dumps({"source": TINY, "epochs": 2, "image_size": 40, "architectures": ["cnn"]})
    trained = cli("airflow", "dags", "test", "fruitops_training", "-c", conf)
    log = trained.stdout + trained.stderr
    assert trained.returncode == 0 and "state=success" in log, log[-5000:]
    assert ran(log, "models__trained_model__architectures") and ran(log, "models__training_report")
    scored = cli("airflow", "dags", "test", "fruitops_scoring")  # the ingested test split
    assert scored.returncode == 0, (scored.stdout + scored.stderr)[-5000:]

    quiet = cli("airflow", "dags", "test", "fruitops_monitoring")
    log = quiet.stdout + quiet.stderr
    assert quiet.returncode == 0, log[-5000:]
    assert "Following branch {'no_drift'}" in log, log[-5000:]
    assert ran(log, "no_drift") and not ran(log, "trigger_retraining")

    # the day's photos come from a dim camera; fruitops_scoring reads the folder of its date
    day = tmp_path / "incoming" / "2026-11-27"
    for photo in sorted((settings.home / "lake" / "raw").rglob("test/*/*.jpg")):
        target = day / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(photo) as image:
            ImageEnhance.Brightness(image.convert("RGB")).enhance(0.3).save(target)
    conf = json.dumps({"batch": str(tmp_path / "incoming" / "{ds}")})
    scored = cli("airflow", "dags", "test", "fruitops_scoring", "2026-11-27", "-c", conf)
    log = scored.stdout + scored.stderr
    assert scored.returncode == 0 and "state=success" in log, log[-5000:]
    incoming = json.loads(
        (settings.home / "lake/assets/data/incoming_batch/current/data.json").read_text()
    )
    assert incoming["uri"] == str(day) and len(incoming["keys"]) == 9
    conf = json.dumps({"critical_columns": ["brightness"]})
    drifted = cli("airflow", "dags", "test", "fruitops_monitoring", "-c", conf)
    log = drifted.stdout + drifted.stderr
    assert drifted.returncode == 0, log[-5000:]
    assert "Following branch {'trigger_retraining'}" in log, log[-5000:]
    assert ran(log, "trigger_retraining") and "state=success, run_type=manual" in log
    runs = cli("airflow", "dags", "list-runs", "fruitops_training", "-o", "json")
    (listing,) = [line for line in runs.stdout.splitlines() if line.startswith("[")]
    states = sorted(r["state"] for r in json.loads(listing))
    # the test's own training run, and the one drift asked for, queued for the scheduler
    assert states == ["queued", "success"], listing


def ran(log: str, task_id: str) -> bool:
    """Whether `airflow dags test` ran ``task_id`` to its end (skipped tasks never start)."""
    return f"[DAG TEST] end task task_id={task_id} " in log


def test_bad_source_fails_at_once_with_the_reason(cli, tmp_path):
    migrate(cli)
    conf = json.dumps({"source": str(tmp_path / "missing-photos")})
    result = cli("airflow", "dags", "test", "fruitops_pipeline", "-c", conf)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing-photos does not exist" in log
    assert "new_state=up_for_retry" not in log  # bad input is not retried


def test_bad_source_in_the_venv_task_mode_fails_at_once_too(cli, airflow_env, tmp_path):
    """external_python: the BadInput is raised in another interpreter; the retry policy
    reads its mark in the message the operator brings back."""
    import sys

    migrate(cli)
    airflow_env["FRUITOPS_TASK_MODE"] = "external_python"
    airflow_env["FRUITOPS_TASK_PYTHON"] = sys.executable
    conf = json.dumps({"source": str(tmp_path / "missing-photos")})
    result = cli("airflow", "dags", "test", "fruitops_pipeline", "-c", conf)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing-photos does not exist" in log
    assert "reason='bad input: a retry cannot fix it'" in log
    assert "new_state=up_for_retry" not in log


def test_external_python_mode_runs_the_task_in_the_pipeline_venv(cli, airflow_env, settings):
    """FRUITOPS_TASK_MODE=external_python: the task body runs in another interpreter."""
    import sys

    migrate(cli)
    airflow_env["FRUITOPS_TASK_MODE"] = "external_python"
    airflow_env["FRUITOPS_TASK_PYTHON"] = sys.executable
    params = json.dumps({"source": TINY})
    result = cli(
        "airflow", "tasks", "test", "fruitops_training", "data__raw_images", "2026-11-21",
        "-t", params,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert f"Executing cmd: {sys.executable} " in log
    stored = settings.home / "lake/assets/data/raw_images/materialization.json"
    record = json.loads(stored.read_text())
    assert record["run_id"] == "fruitops_training__2026-11-21T00_00_00_00_00"
    assert record["metadata"]["rows"] == 60


def test_training_with_an_empty_source_trains_on_the_ingested_data_set(cli, airflow_env, settings):
    airflow_env.pop("FRUITOPS_SOURCE")  # nothing names a source but the ingest
    migrate(cli)
    ingested = "synthetic:classes=3,per_class=20,size=40,seed=5"
    assert cli("fruitops", "data", "ingest", ingested).returncode == 0
    conf = json.dumps({"epochs": 1, "image_size": 32, "architectures": ["cnn"]})
    trained = cli("airflow", "dags", "test", "fruitops_training", "-c", conf)
    log = trained.stdout + trained.stderr
    assert trained.returncode == 0 and "state=success" in log, log[-5000:]
    assert f"no source given: ingesting the lake's data set {ingested} again" in log
    cache = json.loads(
        (settings.home / "lake/assets/data/training_cache/current/data.json").read_text()
    )
    assert cache["source"] == ingested and len(cache["classes"]) == 3
