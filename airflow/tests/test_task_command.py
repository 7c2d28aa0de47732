"""The command the Docker and Kubernetes task modes run, run here without a container.

`task_command()` is what DockerOperator/KubernetesPodOperator get; with its templates filled
in as Airflow would, it must materialize the asset, print the small record as the last line
(DockerOperator's XCom) and write it to the XCom file (KubernetesPodOperator's sidecar).
"""

import json

import pytest

from fruitops_airflow.task_modes import DS, PARAMS_JSON, RUN_ID, task_command
from fruitops_core.orchestration import BAD_INPUT_PREFIX

TINY = "synthetic:classes=3,per_class=20,size=40,seed=11"
PARAM_MAP = {
    "source": ("data/raw_images", "source"),
    "epochs": ("models/trained_model", "epochs"),
    "architectures": ("models/trained_model", "architectures"),
}


def filled(command: list[str], params: dict, run_id: str) -> list[str]:
    values = {PARAMS_JSON: json.dumps(params), RUN_ID: run_id, DS: "2026-11-21"}
    return [values.get(part, part) for part in command]


def test_the_container_command_materializes_and_hands_back_the_record(cli, settings, tmp_path):
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    command = filled(task_command("data/raw_images", PARAM_MAP), {"source": TINY}, "run-1")
    result = cli(*command, "--xcom-file", str(xcom))
    assert result.returncode == 0, result.stderr[-3000:]
    last_line = result.stdout.strip().splitlines()[-1]
    record = json.loads(last_line)
    assert record == json.loads(xcom.read_text())
    assert record["asset_key"] == "data/raw_images" and record["run_id"] == "run-1"
    assert record["metadata"]["rows"] == 60 and "data.parquet" in record["artifact_uri"]


@pytest.mark.slow
def test_a_mapped_item_trains_one_architecture_that_the_gathering_task_then_reuses(cli, settings):
    import mlflow

    params = {"source": TINY, "epochs": 1, "architectures": ["cnn"]}
    upstream = ["-c", f"data/raw_images.source={TINY}", "-c", "data/training_cache.image_size=32"]
    done = cli("fruitops", "materialize", "data/training_cache", "--with-upstream", *upstream)
    assert done.returncode == 0, done.stderr[-3000:]
    one_arch = json.dumps({"architectures": ["cnn"]})
    item = cli(*filled(task_command("models/trained_model", PARAM_MAP, one_arch), params, "r2"))
    assert item.returncode == 0, item.stderr[-3000:]
    (candidate,) = json.loads(item.stdout)["candidates"]
    gathered = cli(*filled(task_command("models/trained_model", PARAM_MAP), params, "r2"))
    assert gathered.returncode == 0, gathered.stderr[-3000:]
    record = json.loads(gathered.stdout)
    assert record["metadata"]["cnn_val_macro_f1"] == candidate["metrics"]["val_macro_f1"]
    client = mlflow.MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    (version,) = client.search_model_versions("name = 'fruit-classifier'")  # trained once
    assert int(version.version) == candidate["version"]


def test_bad_input_exits_non_zero_naming_the_problem(cli, settings, tmp_path):
    missing = tmp_path / "no-photos"
    command = filled(task_command("data/raw_images", PARAM_MAP), {"source": str(missing)}, "r")
    result = cli(*command)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["error_type"] == "BadInput" and "no-photos does not exist" in error["error"]
    # the mark the retry policy reads once the exception class is lost with the process
    assert error["error"].startswith(BAD_INPUT_PREFIX)
