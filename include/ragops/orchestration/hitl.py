"""Human in the loop: opt-in approvals between a gate and what it lets go live, and a label review.

``gate_approval`` is the standard provider's ``ApprovalOperator`` (Airflow 3.1+ HITL) with
ragops' rules:
- **opt-in**: it asks only when the run's ``require_approval`` param is true, or the param is
  null and the Variable ``ragops_require_approval`` names the DAG (a JSON list of DAG ids, or
  ``true`` for all); otherwise it returns at once (``not_required``) and the DAG behaves as
  without it. It does not ask either when the gate refused already (``not_needed``);
- **the request shows the gate's report** (``ragops.approval.report_markdown``: decision,
  metrics, reasons), read from the gate task's record in XCom, and takes a note (``reason``);
- **reject by default**: unanswered after the run's ``approval_timeout_hours``, the scheduler
  applies the default option, Reject. A rejection skips the task after it (the swap or the
  promotion), so what is live stays live;
- **recorded**: the decision (who, when, why) goes onto the gate's evaluation artifact and, as
  this task's XCom record, into the run summary (``close_run``).

``label_review`` (rag_synthetic_data) asks the same way, with three options: accept all, reject,
or apply a filled-in review file (``ragops.synthetic.review``) and publish the reviewed version.

Respond in the UI (the run's "Required actions") or through the REST API
(``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import SkipMixin
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import Param

from ragops.orchestration.runtime import airflow_outcomes
from ragops.params import ParamSpec
from ragops.vocabulary import APPROVAL_TIMEOUT_HOURS, REQUIRE_APPROVAL_VARIABLE, ApprovalOutcome

NOTE = "reason"              # the reviewer's note, recorded with the decision
REVIEW_FILE = "review_file"  # label review: the filled-in file to apply


class GateApproval(ApprovalOperator):
    """Approve or reject what a gate passed (see the module docstring)."""

    def __init__(self, *, gate_task: str, spec: type[ParamSpec], plan_task: str | None = None, **kwargs: Any):
        super().__init__(
            defaults=self.REJECT,  # what an unanswered request becomes
            response_timeout=timedelta(hours=APPROVAL_TIMEOUT_HOURS),  # the run's param replaces it
            **kwargs)
        self.gate_task, self.plan_task, self.spec = gate_task, plan_task, spec

    def execute(self, context: Any) -> Any:
        from ragops import approval

        run_params = _run_params(self.spec, context)
        gate = self._gate(context)
        if not _required(context, run_params):
            return _answer_now(self, gate, ApprovalOutcome.NOT_REQUIRED, "approval is off for this run")
        if reason := approval.not_needed(gate):
            return _answer_now(self, gate, ApprovalOutcome.NOT_NEEDED, reason)
        self.body = approval.report_markdown(gate, self._plan(context))
        self.response_timeout = timedelta(hours=run_params.approval_timeout_hours)
        self.log.info("asking for approval in the run's Required actions (rejected if unanswered in %s)",
                      self.response_timeout)
        return super().execute(context)  # waits in awaiting_input; resumes in execute_complete

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from ragops.approval import record_decision
        from ragops.orchestration.runtime import TaskRuntime

        answer = HITLOperator.execute_complete(self, context=context, event=event)  # validates the answer
        approved = answer["chosen_options"] == [self.APPROVE]
        decision = _decision(self, answer, event, approved, getattr(self._gate(context), "evaluation_id", None))
        rt = TaskRuntime(context)
        try:
            record_decision(rt, decision)
        finally:
            rt.close()
        if approved:
            return decision.to_xcom()
        # Rejected: the decision is this task's record, then the provider skips the next task (it raises).
        context["ti"].xcom_push(key="return_value", value=decision.to_xcom())
        return super().execute_complete(context=context, event=event)

    def _gate(self, context: Any) -> Any:
        from ragops.indexing.records import GateReport
        from ragops.training.records import GateDecision

        value = context["ti"].xcom_pull(task_ids=self.gate_task)
        if not isinstance(value, dict):
            return None
        return (GateDecision if "promote" in value else GateReport).from_xcom(value)

    def _plan(self, context: Any) -> Any:
        from ragops.indexing.records import Plan

        value = context["ti"].xcom_pull(task_ids=self.plan_task) if self.plan_task else None
        return Plan.from_xcom(value) if isinstance(value, dict) else None


def gate_approval(task_id: str, *, gate_task: str, spec: type[ParamSpec], what: str,
                  plan_task: str | None = None) -> GateApproval:
    """The approval step of a DAG: ``what`` names what waits for it (the subject's words)."""
    return GateApproval(task_id=task_id, gate_task=gate_task, plan_task=plan_task, spec=spec,
                        subject=f"Approve {what}? ({{{{ dag.dag_id }}}}, {{{{ run_id }}}})",
                        params={NOTE: _note_param()},
                        retries=0)  # an answer is given once: a retry would ask again


# -- shared by the steps -----------------------------------------------------------------------
def _note_param() -> Param:
    return Param(None, type=["null", "string"], maxLength=2000,
                 description="Why (recorded with the decision in the lineage registry).")


def _run_params(spec: type[ParamSpec], context: Any) -> Any:
    """The DAG's params spec from this task's params (which also hold the form's own fields)."""
    names = {info.name for info in spec.describe()}
    return spec.from_mapping({k: v for k, v in dict(context["params"]).items() if k in names})


def _required(context: Any, run_params: Any) -> bool:
    """The run's ``require_approval``, else the Variable (a list of DAG ids, or true for all)."""
    if run_params.require_approval is not None:
        return bool(run_params.require_approval)
    from airflow.sdk import Variable

    value = Variable.get(REQUIRE_APPROVAL_VARIABLE, default=None, deserialize_json=True)
    return value is True or (isinstance(value, list) and context["dag"].dag_id in value)


def _answer_now(op: HITLOperator, gate: Any, outcome: ApprovalOutcome, reason: str) -> dict[str, Any]:
    """Nobody asked: the step lets the run go on as without it."""
    from ragops.approval import ApprovalDecision

    op.log.info("no one asked: %s", reason)
    return ApprovalDecision(op.task_id, outcome, True, getattr(gate, "evaluation_id", None), reason=reason).to_xcom()


def _decision(op: HITLOperator, answer: dict[str, Any], event: dict[str, Any], approved: bool,
              artifact_id: int | None, note: str | None = None) -> Any:
    """A person's answer (or the timeout's default) as the decision record: who, when, why."""
    from ragops.approval import ApprovalDecision

    timed_out = bool(event.get("timedout")) and not approved
    user = answer.get("responded_by_user") or {}
    reason = (answer.get("params_input") or {}).get(NOTE) or note
    decision = ApprovalDecision(
        step=op.task_id,
        outcome=ApprovalOutcome.APPROVED if approved else ApprovalOutcome.TIMED_OUT if timed_out
        else ApprovalOutcome.REJECTED,
        approved=approved, artifact_id=artifact_id, by=user.get("name") or user.get("id") or None,
        at=answer["responded_at"].isoformat(),
        reason=reason or (f"no answer within {op.response_timeout}: rejected by default" if timed_out else None))
    op.log.info("%s: %s by %s (%s)", op.task_id, decision.outcome, decision.by or "nobody", decision.reason or "")
    return decision


class LabelReview(HITLOperator, SkipMixin):
    """rag_synthetic_data's opt-in review of a new dataset version before it is published: accept
    all, reject (the default when nobody answers), or apply a filled-in review file. Its XCom is a
    ``LabelReviewResult``: the decision, and an applied file's ``ReviewImport`` for the publishing task."""

    inherits_from_skipmixin = True
    ACCEPT, REJECT, USE_FILE = "Accept all", "Reject", "Use review file"

    def __init__(self, *, dataset_task: str, export_task: str, publish_task: str, **kwargs: Any):
        super().__init__(options=[self.ACCEPT, self.REJECT, self.USE_FILE], defaults=self.REJECT,
                         response_timeout=timedelta(hours=APPROVAL_TIMEOUT_HOURS), **kwargs)
        self.dataset_task, self.export_task, self.publish_task = dataset_task, export_task, publish_task

    def execute(self, context: Any) -> Any:
        from ragops import approval
        from ragops.synthetic.params import SyntheticParams

        dataset, export = self._dataset(context), self._export(context)
        run_params = _run_params(SyntheticParams, context)
        if not _required(context, run_params):
            return _reviewed(_answer_now(self, None, ApprovalOutcome.NOT_REQUIRED, "review is off for this run"))
        if dataset is None or not dataset.usable or not dataset.new_version or export is None or not export.uri:
            return _reviewed(_answer_now(self, None, ApprovalOutcome.NOT_NEEDED, "no new usable dataset version"))
        self.body = approval.review_markdown(dataset, export)
        self.response_timeout = timedelta(hours=run_params.approval_timeout_hours)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from ragops import approval
        from ragops.orchestration.runtime import TaskRuntime
        from ragops.runs import RunRef
        from ragops.synthetic import review
        from ragops.synthetic.params import SyntheticParams

        answer = super().execute_complete(context=context, event=event)  # validates the answer
        (choice,) = answer["chosen_options"]
        dataset, export = self._dataset(context), self._export(context)
        rt = TaskRuntime(context)
        try:
            labels = None
            if choice == self.USE_FILE:
                path = (answer.get("params_input") or {}).get(REVIEW_FILE) or rt.artifacts.rel_of(export.uri)
                run_params = _run_params(SyntheticParams, context).replace(review_labels=path,
                                                                            review_dataset_id=dataset.dataset_id)
                run = RunRef.from_xcom(context["ti"].xcom_pull(task_ids="open_run"))
                with airflow_outcomes():  # a bad file fails the step without retry, naming the line
                    labels = review.import_review(rt, run_params, run)
            decision = _decision(self, answer, event, choice != self.REJECT, dataset.dataset_id,
                                 note=labels and f"labels from {labels.review_id}: {labels.counts}")
            if choice == self.REJECT:
                approval.reject_dataset(rt, dataset.dataset_id, decision)
            else:
                approval.accept_dataset(rt, dataset.dataset_id, decision)
        finally:
            rt.close()
        # Labels that change no row leave the version reviewed as it is: that one is published.
        changed = labels if labels is not None and labels.dataset.dataset_id != dataset.dataset_id else None
        result = _reviewed(decision.to_xcom(), changed)
        if choice == self.REJECT:  # nothing published: the record first, as skipping raises
            context["ti"].xcom_push(key="return_value", value=result)
            self.skip(ti=context["ti"], tasks=[context["dag"].get_task(self.publish_task)])
        return result

    def _dataset(self, context: Any) -> Any:
        from ragops.synthetic.records import DatasetVersion

        value = context["ti"].xcom_pull(task_ids=self.dataset_task)
        return DatasetVersion.from_xcom(value) if isinstance(value, dict) else None

    def _export(self, context: Any) -> Any:
        from ragops.synthetic.records import ReviewExport

        value = context["ti"].xcom_pull(task_ids=self.export_task)
        return ReviewExport.from_xcom(value) if isinstance(value, dict) else None


def _reviewed(decision: dict[str, Any], labels: Any = None) -> dict[str, Any]:
    from ragops.approval import ApprovalDecision, LabelReviewResult

    return LabelReviewResult(ApprovalDecision.from_xcom(decision), labels).to_xcom()


def label_review(task_id: str, *, dataset_task: str, export_task: str, publish_task: str) -> LabelReview:
    """rag_synthetic_data's review step (see ``LabelReview``)."""
    return LabelReview(task_id=task_id, dataset_task=dataset_task, export_task=export_task,
                       publish_task=publish_task, retries=0,
                       subject="Review the labels of a new synthetic dataset ({{ run_id }})",
                       params={NOTE: _note_param(), REVIEW_FILE: Param(
                           None, type=["null", "string"], maxLength=1000,
                           description="Use review file: the filled-in file's path in the artifact store "
                                       "(empty: the exported sample's path).")})
