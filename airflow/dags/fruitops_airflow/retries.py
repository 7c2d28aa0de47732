"""Which failures Airflow retries: not bad input, in any task mode.

A wrong source, config or data set fails the same way on every try, so retrying it only
delays the error. In-process the task sees `BadInput` itself; in the other modes the task
runs in another process, and what comes back is the operator's own exception:

- external_python: ``AirflowException`` holding the callable's error message;
- docker: ``DockerContainerFailedException`` holding the container's log lines;
- kubernetes: ``AirflowException`` holding the pod's termination message (the last log
  lines, with ``termination_message_policy="FallbackToLogsOnError"``).

Each carries `BAD_INPUT_PREFIX`, which ``fruitops task`` and the venv task put on the
message of a `BadInput`. Anything else (S3, MLflow or a node going away) is retried.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from fruitops_core.orchestration import BAD_INPUT_PREFIX, BadInput


def is_bad_input(exception: BaseException) -> bool:
    """Whether ``exception`` (or the log lines it carries) says a retry cannot fix it."""
    if isinstance(exception, BadInput):
        return True
    lines = [str(exception), *(getattr(exception, "logs", None) or [])]
    return any(
        BAD_INPUT_PREFIX in (line.decode(errors="replace") if isinstance(line, bytes) else line)
        for line in lines
    )


class BadInputFails(RetryPolicy):
    """Fail bad input at once; leave everything else to the task's retries."""

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        if is_bad_input(exception):
            return RetryDecision.fail(reason="bad input: a retry cannot fix it")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        # the worker evaluates the policy of the DAG it parsed; the scheduler sees a flag
        return {"__type": type(self).__name__}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> BadInputFails:
        return cls()
