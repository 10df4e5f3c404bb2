"""Tier 3: the opt-in approval steps (Airflow's human-in-the-loop) in whole dag.test() runs.

dag.test() leaves a HITL task parked in ``awaiting_input`` until something outside answers, as
the UI would. A responder thread plays that person: it waits for the approval task to park, then
answers through Airflow's own HITL REST handler (the function behind
``PATCH .../taskInstances/{task_id}/-1/hitlDetails``, called with a signed-in user), or lets the
request time out and runs the scheduler's own timeout sweep. Approval off (the default) is what
the DAGs' own tests run; here a default run next to an approved one shows it passing straight through.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import get_dag, run_dag, task_states, xcom
from .test_rag_finetune_embeddings import CONF as FINETUNE_CONF
from .test_rag_finetune_embeddings import needs_scifact, prepared  # noqa: F401 (a fixture)

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun
WAIT_SECONDS = 900   # a whole rag_index run before the approval step, on a loaded 2-core machine


@pytest.fixture
def corpus(tmp_path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, target)
    return target


@pytest.fixture
def alias() -> str:
    """This test's own alias: it also tells this test's runs apart from other sessions' runs."""
    return f"Hitl{uuid.uuid4().hex[:10]}"


def index_conf(corpus: Path, alias: str, **overrides: Any) -> dict[str, Any]:
    base = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
            "alias": alias, "chunk_size": 96, "chunk_overlap": 16, "keep_versions": 2,
            "smoke_sample": 10, "smoke_min_hit_rate": 0.7}
    return base | overrides


# -- the person at the other end -------------------------------------------------------------
def answer(option: str, reason: str, **form: Any) -> Callable[[Any], None]:
    """Answers through the HITL REST handler, as the signed-in user 'reviewer' (``form``: the
    request's other fields)."""

    def respond(ti: Any) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.utils.session import create_session

        with create_session() as session:
            update_hitl_detail(dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                               update_hitl_detail_payload=UpdateHITLDetailPayload(
                                   chosen_options=[option], params_input={"reason": reason, **form}),
                               user=SimpleAuthManagerUser(username="reviewer", role="admin"), session=session)

    return respond


def let_it_time_out(ti: Any) -> None:
    """Waits past the request's deadline, then runs the scheduler's awaiting-input timeout sweep."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.timezone import utcnow
    from airflow.utils.session import create_session

    with create_session() as session:
        deadline = session.get(TaskInstance, ti.id).trigger_timeout
    assert deadline is not None, "the approval request has no deadline: it would wait forever"
    while utcnow() <= deadline:
        time.sleep(0.5)
    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()


class Responder(threading.Thread):
    """Waits for ``task_id`` of this test's ``dag_id`` run (its conf holds ``marker``; other
    sessions may run the same DAG on the same metadata DB) to park in awaiting_input, keeps the
    request, then answers with ``respond``."""

    def __init__(self, dag_id: str, task_id: str, marker: dict[str, Any], respond: Callable[[Any], None]):
        super().__init__(daemon=True)
        self.dag_id, self.task_id, self.marker, self.respond = dag_id, task_id, marker, respond
        self.request: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            ti = self._parked()
            from airflow.models.hitl import HITLDetail
            from airflow.utils.session import create_session

            with create_session() as session:
                detail = session.get(HITLDetail, ti.id)
                self.request = {"subject": detail.subject, "body": detail.body, "options": detail.options,
                                "defaults": detail.defaults, "params": dict(detail.params or {})}
            self.respond(ti)
        except Exception as exc:  # noqa: BLE001 (any failure is re-raised in the test's main thread)
            self.error = exc

    def _parked(self) -> Any:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            with create_session() as session:
                for ti in session.query(TaskInstance).filter_by(dag_id=self.dag_id, task_id=self.task_id,
                                                                state="awaiting_input"):
                    conf = ti.dag_run.conf or {}
                    if all(conf.get(k) == v for k, v in self.marker.items()):
                        session.expunge(ti)
                        return ti
            time.sleep(1)
        raise TimeoutError(f"{self.dag_id}.{self.task_id} never waited for input")


def run_answered(dag_id: str, conf: dict[str, Any], task_id: str, marker: str,
                 respond: Callable[[Any], None]) -> tuple[Any, dict]:
    # Everything the responder imports is imported here first: two threads importing Airflow's
    # models at once can deadlock (an import lock against SQLAlchemy's mapper configuration).
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401
    import airflow.jobs.scheduler_job_runner  # noqa: F401
    import airflow.models.hitl  # noqa: F401
    from airflow.models import import_all_models

    import_all_models()
    dag = get_dag(dag_id)
    responder = Responder(dag_id, task_id, {marker: conf[marker]}, respond)
    responder.start()
    dag_run = dag.test(run_conf=conf)
    responder.join(timeout=60)
    if responder.error is not None:
        raise responder.error
    assert responder.request is not None, "the run finished without asking"
    return dag_run, responder.request


# -- rag_index --------------------------------------------------------------------------------
def test_index_swap_waits_for_approval_and_goes_live_when_approved(ragops_env, corpus, alias):
    store, registry = ragops_env.store(), ragops_env.registry

    dag_run, request = run_answered("rag_index", index_conf(corpus, alias, require_approval=True),
                                    "approve_swap", "alias",
                                    answer("Approve", "checked the smoke test"))
    assert dag_run.state == "success", task_states(dag_run)
    assert task_states(dag_run)["swap_alias"] == "success"
    # The request showed the gate's report and rejects by default.
    gate = xcom(dag_run, "gate")
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert gate["collection"].replace("_", "\\_") in request["body"] and "object\\_count" in request["body"]
    assert "smoke" in request["body"] and "nothing (first version)" in request["body"]
    assert set(request["params"]) == {"reason"}
    # The swap happened, and the decision is on the gate's evaluation and in the run summary.
    live = store.get_alias(alias)
    assert live == gate["collection"]
    decision = xcom(dag_run, "close_run")["approval"]
    assert (decision["outcome"], decision["approved"], decision["by"], decision["reason"]) == (
        "approved", True, "reviewer", "checked the smoke test")
    assert decision["at"] and decision["artifact_id"] == gate["evaluation_id"]
    assert registry.get_artifact(gate["evaluation_id"]).metrics["approval"] == decision
    assert registry.get_run(xcom(dag_run, "close_run")["run_key"])["summary"]["approval"] == decision


@pytest.mark.timeout(3 * 900)  # three whole runs
def test_index_rejection_and_timeout_leave_the_live_collection(ragops_env, corpus, alias, monkeypatch):
    store, registry = ragops_env.store(), ragops_env.registry

    # Approval off (the default): no one is asked, the swap happens, the summary has no approval.
    first = run_dag("rag_index", index_conf(corpus, alias))
    assert first.state == "success", task_states(first)
    assert task_states(first)["approve_swap"] == "success" and task_states(first)["swap_alias"] == "success"
    assert xcom(first, "approve_swap")["outcome"] == "not_required"
    assert "approval" not in xcom(first, "close_run")
    live = store.get_alias(alias)
    history = registry.alias_history("collection", alias)

    # A changed corpus, approval on through the Variable, a person rejects: nothing moves.
    (corpus / "added.md").write_text("# Replication slots\n\nA replication slot keeps WAL until every consumer "
                                     "has received it, so a stalled consumer can fill the disk.\n")
    monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_REQUIRE_APPROVAL", '["rag_index"]')
    second, _ = run_answered("rag_index", index_conf(corpus, alias), "approve_swap", "alias",
                             answer("Reject", "the new page is a draft"))
    assert second.state == "success", task_states(second)
    assert task_states(second)["swap_alias"] == "skipped"
    assert store.get_alias(alias) == live and registry.alias_history("collection", alias) == history
    rejected = xcom(second, "close_run")["approval"]
    assert (rejected["outcome"], rejected["approved"], rejected["by"], rejected["reason"]) == (
        "rejected", False, "reviewer", "the new page is a draft")
    assert registry.get_artifact(rejected["artifact_id"]).metrics["approval"] == rejected

    # Nobody answers within the run's timeout: rejected by default, nothing moves.
    (corpus / "added.md").write_text("# Replication slots\n\nSlots keep WAL for their consumers.\n")
    third, request = run_answered("rag_index", index_conf(corpus, alias, approval_timeout_hours=0.001),
                                  "approve_swap", "alias",
                                  let_it_time_out)
    assert third.state == "success", task_states(third)
    assert task_states(third)["swap_alias"] == "skipped"
    assert store.get_alias(alias) == live and registry.alias_history("collection", alias) == history
    timed_out = xcom(third, "close_run")["approval"]
    assert (timed_out["outcome"], timed_out["approved"], timed_out["by"]) == ("timed_out", False, None)
    assert "rejected by default" in timed_out["reason"]
    assert registry.get_artifact(timed_out["artifact_id"]).metrics["approval"] == timed_out


# -- rag_finetune_embeddings ----------------------------------------------------------------------
@needs_scifact
def test_promotion_waits_and_a_rejection_keeps_production(ragops_env, prepared):  # noqa: F811
    registry = ragops_env.registry
    marker = 1 + uuid.uuid4().int % 1000 / 1000   # this run's own timeout tells it apart
    conf = FINETUNE_CONF | {"require_approval": True, "approval_timeout_hours": marker}
    dag_run, request = run_answered("rag_finetune_embeddings", conf, "approve_promotion", "approval_timeout_hours",
                                    answer("Reject", "wait for the quarterly freeze to end"))
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["gate"] == "success" and states["promote"] == "skipped"
    gate = xcom(dag_run, "gate")
    assert gate["promote"] is True   # the gate would have promoted: the person said no
    assert gate["candidate"]["model_id"] in request["body"] and "Reasons" in request["body"]
    # Production is the model it was; the candidate stays a candidate; the decision is recorded.
    assert registry.in_stage("model", "embeddings", "production").id == prepared["broken"].id
    assert registry.get_artifact(gate["candidate"]["artifact_id"]).stage != "production"
    decision = xcom(dag_run, "close_run")["approval"]
    assert (decision["outcome"], decision["approved"], decision["by"], decision["reason"]) == (
        "rejected", False, "reviewer", "wait for the quarterly freeze to end")
    assert registry.get_artifact(gate["evaluation_id"]).metrics["approval"] == decision
