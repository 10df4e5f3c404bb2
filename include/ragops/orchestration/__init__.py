"""The Airflow side of ragops: everything that imports Airflow lives in this package.

- ``connections``: Connections and Variables turned into settings (read once per task);
- ``runtime``: the task runtime, ``@ragops_task`` and the run lifecycle's first and last tasks;
- ``params``: a params spec as a DAG's ``Param``s;
- ``pod``: the KubernetesPodOperator of the training pods.

DAG files import from here and from the logic package's light modules (records, params specs,
summaries); task bodies import the heavy logic lazily.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ragops.orchestration.params import airflow_params
from ragops.orchestration.runtime import (
    TaskRuntime,
    alert_on_failure,
    ragops_task,
    run_closer,
    run_opener,
)

# Every ragops DAG's default_args: retries with backoff for transient faults (deterministic
# failures skip them: see runtime.airflow_outcomes), and one alert per failed task.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ragops",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "on_failure_callback": alert_on_failure,
}

__all__ = ["DEFAULT_ARGS", "TaskRuntime", "airflow_params", "ragops_task", "run_closer", "run_opener"]
