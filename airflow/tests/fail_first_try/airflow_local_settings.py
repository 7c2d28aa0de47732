"""Test-only Airflow cluster policy: chosen tasks fail their first try after their work.

On ``PYTHONPATH`` (the services tests put it there), Airflow imports this module in every
process that parses the DAGs. ``FRUITOPS_TEST_FAIL_FIRST_TRY`` names the task ids (comma
separated); each gets a post-execute hook that raises on try 1, after the asset was
materialized, so a test can prove that the retry neither repeats nor duplicates the work.
Production DAG code knows nothing of it.
"""

from __future__ import annotations

import os
from typing import Any

VARIABLE = "FRUITOPS_TEST_FAIL_FIRST_TRY"


def _fail_on_first_try(context: Any, result: Any = None) -> None:
    ti = context["ti"]
    if ti.try_number == 1:
        raise RuntimeError(f"{ti.task_id}: failing its first try on purpose ({VARIABLE})")


def task_policy(task: Any) -> None:
    if task.task_id not in os.environ.get(VARIABLE, "").split(","):
        return
    if hasattr(task, "partial_kwargs"):  # a mapped task: each expanded one gets the hook
        task.partial_kwargs["post_execute"] = _fail_on_first_try
    else:
        task._post_execute_hook = _fail_on_first_try
