"""The task runtime: what every ragops task has, in one place, as a provider hook hides its client.

``@ragops_task`` wraps a task body ``def step(rt: TaskRuntime, run: IndexRun, ...) -> Plan`` so that:
- ``rt`` is one ``TaskRuntime`` per task execution: settings read once from Connections and
  Variables, then registry, artifacts, vector store and notifier opened lazily, once each;
- a parameter named ``params`` receives the DAG's params as its typed spec (validated);
- arguments annotated with a ``Record`` arrive as that record, and a returned record leaves as
  its XCom form (lists of records too);
- domain errors become Airflow outcomes here and nowhere else: deterministic failures
  (invalid input, data quality, gate, schema) fail without retry, ``NothingNew`` skips, anything
  else is retried by Airflow;
- a returned record with ``skip_reason`` set is pushed to XCom and the task skipped (nothing new
  went live: downstream work and asset events are skipped), and a record's ``asset_events``
  are emitted through the task's outlets (an ``AssetAlias`` names the asset at run time);
- the registry artifacts the task read and wrote reach Airflow's OpenLineage integration as its
  input and output datasets (``ragops.orchestration.openlineage``).

``run_opener`` and ``run_closer`` make each DAG's first and last task: one run lifecycle.
"""

from __future__ import annotations

import functools
import inspect
import logging
import types
import typing
from collections.abc import Callable, Generator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from ragops import runs
from ragops.errors import DETERMINISTIC, DataQualityError, GateFailed, NothingNew
from ragops.params import ParamSpec
from ragops.records import Record, to_xcom
from ragops.runs import RunRef
from ragops.services import Services

if typing.TYPE_CHECKING:
    from ragops.artifact_access import RecordingRegistry
    from ragops.training.compute import PodTrainer, TrainingConfig

log = logging.getLogger(__name__)

Summarize = Callable[[Services, RunRef, dict[str, Any]], dict[str, Any]]


class TaskRuntime(Services):
    """Services for one task execution, configured from Airflow, plus the task's context."""

    def __init__(self, context: Any):
        from ragops.orchestration import connections

        settings = connections.settings_from_airflow()
        super().__init__(settings, channels=connections.alert_channels(), llm=connections.llm_endpoint(),
                         artifact_root_path=connections.artifact_root_path(settings))
        self.context = context

    @cached_property
    def registry(self) -> RecordingRegistry:
        """The lineage registry, noting the artifacts this task touches in ``registry.access`` (its
        OpenLineage datasets); tasks never migrate."""
        from ragops.artifact_access import RecordingRegistry

        registry = RecordingRegistry(self.settings.pg_dsn, self.settings.schema)
        registry.require_current()
        return registry

    def training_config(self, compute: str | None = None) -> TrainingConfig:
        from ragops.orchestration.pod import load_config

        return load_config(compute)

    def storage_options_for(self, uri: str) -> dict[str, Any]:
        from ragops.orchestration.connections import fsspec_options

        return fsspec_options(uri)

    def run_trainer_pod(self, args: list[str], trainer: PodTrainer | None = None) -> None:
        """The entrypoint in a GPU pod: a KubernetesPodOperator executed within this task."""
        from ragops.orchestration.pod import pod_runner

        pod_runner(self, *([trainer] if trainer else []))(args)

    @property
    def dag_id(self) -> str:
        return self.context["dag"].dag_id

    @property
    def run_id(self) -> str:
        return self.context["run_id"]

    def params(self, spec: type[ParamSpec]) -> ParamSpec:
        return spec.from_mapping(dict(self.context["params"]))

    def failed_tasks(self) -> list[str]:
        """Tasks of this DAG run that failed (not merely upstream_failed), this one excepted."""
        ti = self.context["ti"]
        states = ti.get_task_states(dag_id=self.dag_id, run_ids=[self.run_id])
        return sorted(t for t, state in states.get(self.run_id, {}).items() if state == "failed" and t != ti.task_id)

    def results(self) -> dict[str, Any]:
        """Every other task's return value in this run (mapped tasks: a list), for summaries."""
        ti = self.context["ti"]
        out: dict[str, Any] = {}
        for task_id in self.context["dag"].task_ids:
            if task_id == ti.task_id:
                continue
            value = ti.xcom_pull(task_ids=task_id)
            out[task_id] = value if value is None or isinstance(value, dict | str | int | float) else list(value)
        return out

    def emit(self, uri: str, extra: dict[str, Any]) -> None:
        """An asset event for ``uri``: through the task's AssetAlias outlet, else its Asset outlet."""
        from airflow.sdk import Asset, AssetAlias

        outlets = self.context["task"].outlets or []
        events = self.context["outlet_events"]
        alias = next((o for o in outlets if isinstance(o, AssetAlias)), None)
        if alias is not None:
            events[alias].add(Asset(uri), extra=extra)
            return
        if not any(isinstance(o, Asset) and o.uri == uri for o in outlets):
            raise RuntimeError(f"task {self.context['ti'].task_id} has no outlet for {uri}")
        events[Asset(uri)].extra = extra


@contextmanager
def airflow_outcomes() -> Generator[None, None, None]:
    """Domain errors as Airflow outcomes: the one place that decides retry, fail or skip."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    try:
        yield
    except NothingNew as exc:
        raise AirflowSkipException(str(exc)) from exc
    except DETERMINISTIC as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def ragops_task(python_callable: Callable[..., Any] | None = None, *, report_lineage: bool = True,
                **task_kwargs: Any) -> Any:
    """``@task`` with ragops' defaults and runtime (see the module docstring). ``report_lineage=False``:
    the task's registry reads are bookkeeping, not inputs (``close_run``)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        from airflow.sdk.bases.decorator import task_decorator_factory

        from ragops.orchestration.openlineage import RagopsTaskOperator, leave_ledger

        signature = inspect.signature(fn)
        exposed = [p for name, p in list(signature.parameters.items())[1:] if name != "params"]

        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> Any:
            from airflow.sdk import get_current_context

            context = get_current_context()
            hints = typing.get_type_hints(fn)
            bound = inspect.Signature(exposed).bind(*args, **kwargs)
            values = {name: _as_record(hints.get(name), value) for name, value in bound.arguments.items()}
            rt = TaskRuntime(context)
            try:
                with airflow_outcomes():
                    if "params" in signature.parameters:
                        values["params"] = rt.params(hints["params"])
                    result = fn(rt, **values)
                    return _finish(rt, result)
            finally:
                if report_lineage and "registry" in rt.__dict__:
                    leave_ledger(context, rt.registry, rt.registry.access)
                rt.close()

        body.__signature__ = signature.replace(parameters=exposed, return_annotation=inspect.Signature.empty)
        body.__annotations__ = {}
        return task_decorator_factory(body, decorated_operator_class=RagopsTaskOperator,
                                      **{"multiple_outputs": False, **task_kwargs})

    return decorate(python_callable) if python_callable is not None else decorate


def _as_record(hint: Any, value: Any) -> Any:
    """An XCom value as the record its parameter's annotation names (``X | None`` too)."""
    if value is None:
        return None
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        if isinstance(option, type) and issubclass(option, Record) and isinstance(value, dict):
            return option.from_xcom(value)
        if typing.get_origin(option) is list:
            (item,) = typing.get_args(option) or (Any,)
            if isinstance(item, type) and issubclass(item, Record):
                return [item.from_xcom(v) for v in value]
    return value


def _finish(rt: TaskRuntime, result: Any) -> Any:
    from airflow.sdk.exceptions import AirflowSkipException

    for uri, extra in getattr(result, "asset_events", lambda: [])():
        rt.emit(uri, extra)
    value = to_xcom(result)
    reason = getattr(result, "skip_reason", None)
    if reason:
        # The record still reaches the run's summary; the skip stops downstream work and events.
        rt.context["ti"].xcom_push(key="return_value", value=value)
        raise AirflowSkipException(reason)
    return value


# -- one run lifecycle ---------------------------------------------------------------------------
def run_opener(spec: type[ParamSpec], *, extra_fallbacks: Callable[[TaskRuntime, Any], list[dict[str, str]]]
               | None = None, **task_kwargs: Any) -> Any:
    """The first task of a DAG: validates the params and opens the run in lineage."""

    @ragops_task(task_id="open_run", **task_kwargs)
    def open_run(rt: TaskRuntime) -> RunRef:
        params = rt.params(spec)
        extra = extra_fallbacks(rt, params) if extra_fallbacks else None
        return runs.open_run(rt, rt.dag_id, rt.run_id, params.as_dict(), extra)

    return open_run


def run_closer(summarize: Summarize, **task_kwargs: Any) -> Any:
    """The last task of a DAG, run whatever happened upstream: builds the summary (logic
    package), records the outcome, and fails if any task failed, so the run's state tells the
    truth. Its return value is the run's lineage summary in XCom."""

    # Its own failure only reports the others' (already alerted): no second alert.
    @ragops_task(task_id="close_run", trigger_rule="all_done", on_failure_callback=None, report_lineage=False,
                 **task_kwargs)
    def close_run(rt: TaskRuntime, run: RunRef | None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ragops.approval import approvals_in

        failed = rt.failed_tasks()
        if run is None:
            raise AirflowFailException(f"{rt.dag_id} failed before its run was recorded: {failed}")
        results = rt.results()
        # A person's approval or rejection (who, when, why) is part of what the run did.
        summary = {**summarize(rt, run, results), **approvals_in(results)}
        status = runs.close_run(rt, run, summary, failed_tasks=failed)
        if failed:
            raise AirflowFailException(f"{rt.dag_id} failed at {failed}; what was live stays live")
        return {"run_key": run.run_key, "status": status.value, **summary}

    return close_run


def alert_on_failure(context: Any) -> None:
    """on_failure_callback: one alert per failed task (after its last try). Data-quality and gate
    failures alerted with their numbers from inside the step, so they are not alerted twice."""
    ti = context.get("task_instance") or context.get("ti")
    exc = context.get("exception")
    if isinstance(getattr(exc, "__cause__", None), DataQualityError | GateFailed):
        return
    title = f"{context['dag'].dag_id}.{getattr(ti, 'task_id', '?')} failed"
    from ragops.lineage import run_key_for

    try:
        rt = TaskRuntime(context)
        key = run_key_for(rt.dag_id, rt.run_id)
        if rt.registry.get_run(key) is None:
            rt.registry.start_run(rt.dag_id, rt.run_id)
        rt.notifier.alert(title, str(exc or "task failed"), run_key=key,
                          context={"try_number": getattr(ti, "try_number", None)})
    except Exception:  # a broken alert path must not mask the task's own failure
        log.exception("could not record the failure alert for %s", title)
