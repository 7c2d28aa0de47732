"""The retry policy: bad input fails at once, whatever the task mode; an outage is retried.

In-process and external_python runs are real Airflow runs (`test_dag_run.py`). Docker and
Kubernetes cannot run here (no engine, no cluster), so those tests build the exception each
operator raises from the output of a real ``fruitops task`` process: the container's log
lines (DockerOperator) and its last lines as termination message (KubernetesPodOperator).
"""

import json

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowException

from fruitops_airflow.retries import BadInputFails
from fruitops_airflow.task_modes import DS, PARAMS_JSON, RUN_ID, task_command
from fruitops_core.orchestration import BAD_INPUT_PREFIX, BadInput

PARAM_MAP = {"source": ("data/raw_images", "source")}


def decide(exception: BaseException) -> RetryAction:
    return BadInputFails().evaluate(exception, try_number=1, max_tries=3).action


def container_output(cli, params: dict, **env: str) -> tuple[int, list[str]]:
    """Run the container's command here; its exit code and output lines, as Docker logs them."""
    values = {PARAMS_JSON: json.dumps(params), RUN_ID: "r", DS: "2026-12-01"}
    command = [values.get(p, p) for p in task_command("data/raw_images", PARAM_MAP)]
    result = cli(*command, **env)
    return result.returncode, (result.stdout + result.stderr).splitlines()


def test_bad_input_in_process_and_in_the_venv_task_fails_without_retry():
    assert decide(BadInput("wrong source")) is RetryAction.FAIL
    # external_python: the callable's message, as the operator re-raises it
    message = f"Process returned non-zero exit status 1.\n{BAD_INPUT_PREFIX}data/raw_images: x"
    assert decide(AirflowException(message)) is RetryAction.FAIL


def test_bad_input_from_a_container_fails_without_retry_fake_docker_and_pod(cli, tmp_path):
    code, lines = container_output(cli, {"source": str(tmp_path / "no-photos")})
    assert code == 1 and any(BAD_INPUT_PREFIX in line for line in lines), lines[-5:]
    docker = DockerContainerFailedException(
        f"Docker container failed: {{'StatusCode': {code}}}", logs=[line.encode() for line in lines]
    )
    assert decide(docker) is RetryAction.FAIL
    pod = AirflowException("Pod fruitops-raw-images returned a failure.\n" + "\n".join(lines[-80:]))
    assert decide(pod) is RetryAction.FAIL


def test_an_outage_is_left_to_the_retries_fake_docker_and_pod(cli):
    # an S3 endpoint nobody listens on: storage trouble, worth a retry
    code, lines = container_output(
        cli,
        {"source": "s3://photos/day"},
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
        AWS_MAX_ATTEMPTS="1",
    )
    assert code == 1 and not any(BAD_INPUT_PREFIX in line for line in lines), lines[-5:]
    docker = DockerContainerFailedException(
        f"Docker container failed: {{'StatusCode': {code}}}", logs=lines
    )
    assert decide(docker) is RetryAction.DEFAULT
    pod = AirflowException("Pod fruitops-raw-images returned a failure.\n" + "\n".join(lines))
    assert decide(pod) is RetryAction.DEFAULT
    assert decide(ConnectionError("MLflow went away")) is RetryAction.DEFAULT
