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
    db = Path(demo["mlflow_tracking_uri"].removeprefix("sqlite:///"))
    assert db.exists()
    client = mlflow.MlflowClient(
        demo["mlflow_tracking_uri"], registry_uri=demo["mlflow_tracking_uri"]
    )
    champion = client.get_model_version_by_alias("fruit-classifier", "champion")
    assert demo["champion"] == {
        "name": "fruit-classifier",
        "version": int(champion.version),
        "run_id": champion.run_id,
    }
    (run,) = demo["runs"]
    assert run["arch"] == "cnn" and run["run_id"] == champion.run_id
    assert 0 <= run["metrics"]["val_accuracy"] <= 1

    listed = cli("airflow", "dags", "list", "-o", "json")
    # airflow prints its own warnings on stdout too: the JSON is the line that starts with [
    (listing,) = [line for line in listed.stdout.splitlines() if line.startswith("[")]
    assert "fruitops_pipeline" in {d["dag_id"] for d in json.loads(listing)}


def test_bad_source_fails_at_once_with_the_reason(cli, tmp_path):
    migrate(cli)
    conf = json.dumps({"source": str(tmp_path / "missing-photos")})
    result = cli("airflow", "dags", "test", "fruitops_pipeline", "-c", conf)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing-photos does not exist" in log
    assert "new_state=up_for_retry" not in log  # bad input is not retried
