"""Human approval of a gate's verdict, the logic side: what the reviewer reads, and what is recorded.

A DAG may ask a person before its alias swap or promotion (the ``require_approval`` param, or the
Variable ``ragops_require_approval``). The request shows the gate's report rendered here as
Markdown (``report_markdown``); the answer (who, when, why) becomes an ``ApprovalDecision``,
recorded on the gate's evaluation artifact (``record_decision``) and in the run summary
(``approvals_in``). Nothing here knows Airflow: ``ragops.orchestration.hitl`` asks and waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.params import param
from ragops.records import Record
from ragops.synthetic.records import ReviewImport
from ragops.vocabulary import (
    APPROVAL_MAX_TIMEOUT_HOURS,
    APPROVAL_TIMEOUT_HOURS,
    REQUIRE_APPROVAL_VARIABLE,
    ApprovalOutcome,
)

if TYPE_CHECKING:
    from ragops.indexing.records import GateReport, Plan
    from ragops.services import Services
    from ragops.training.records import GateDecision

SUMMARY_KEY = "approval"
_UNSAFE = re.compile(r"[<>|`*_\[\]\\]")  # Markdown/HTML that a value must not inject into the report


@dataclass(frozen=True)
class ApprovalDecision(Record):
    """One approval step's outcome. ``approved``: the swap or promotion may go ahead."""

    step: str                       # the approval task's id
    outcome: ApprovalOutcome
    approved: bool
    artifact_id: int | None         # where the decision is recorded too: the gate's evaluation, the dataset
    by: str | None = None           # who answered (Airflow user name, else id); None when nobody did
    at: str | None = None           # when (ISO 8601, UTC)
    reason: str | None = None       # the reviewer's note, or why nobody was asked


def require_approval_param(what: str) -> Any:
    """The ``require_approval`` param of a DAG whose gate may wait for a person before ``what``."""
    return param(None, f"Ask a person to approve {what} after the gate passes (Airflow's Required actions "
                       "page), showing the gate's report: true or false for this run; null: as the Variable "
                       f"{REQUIRE_APPROVAL_VARIABLE} says (a JSON list of DAG ids, or true for all; default off).",
                 cli=False)  # the CLI asks nobody


def approval_timeout_param() -> Any:
    """The ``approval_timeout_hours`` param: how long a request waits before it counts as rejected."""
    return param(APPROVAL_TIMEOUT_HOURS, "Hours an approval request waits for an answer; unanswered, it is "
                                         "rejected and what is live stays live.",
                 exclusiveMinimum=0, maximum=APPROVAL_MAX_TIMEOUT_HOURS, cli=False)


@dataclass(frozen=True)
class LabelReviewResult(Record):
    """rag_synthetic_data's review step: the decision, and the labels applied (Use review file)."""

    decision: ApprovalDecision
    labels: ReviewImport | None = None   # a new reviewed version to publish instead of the generated one


def _cell(value: Any) -> str:
    """A value as plain text in a Markdown table: no HTML, links or emphasis from artifacts."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    return _UNSAFE.sub(lambda m: "\\" + m.group(0), text.replace("\n", " "))[:300]


def report_markdown(gate: GateReport | GateDecision, plan: Plan | None = None) -> str:
    """The reviewer's view of a gate: decision, metrics and reasons, as Markdown."""
    from ragops.training.records import GateDecision

    if isinstance(gate, GateDecision):
        lines = [
            f"**Gate decision**: {_cell(gate.verdict)} (promote: {'yes' if gate.promote else 'no'})",
            "",
            "| | |", "|---|---|",
            f"| candidate | {_cell(gate.candidate.model_id)} |",
            f"| live model | {_cell(gate.live_model)} |",
            f"| nDCG@10 delta (candidate - live) | {_cell(gate.delta if gate.delta is not None else 'n/a')} |",
            f"| evaluation artifact | {gate.evaluation_id} |",
            "", "**Reasons**", "",
            *[f"- {_cell(r)}" for r in gate.reasons or ("(none given)",)],
        ]
    else:
        lines = [
            f"**Gate decision**: {'passed' if gate.passed else 'failed'}",
            "",
            f"Collection **{_cell(gate.collection)}** would replace "
            f"**{_cell(plan.live_before) if plan and plan.live_before else 'nothing (first version)'}** "
            f"behind the alias.",
            "",
            "| check | passed | observed | expected |", "|---|---|---|---|",
            *[_check_row(name, check) for name, check in sorted(gate.checks.items())],
            "",
            f"Evaluation artifact {gate.evaluation_id}; report `{_cell(gate.report_uri)}`.",
        ]
    lines += ["", "Approve to go ahead; reject (or let the request time out) and what is live stays live."]
    return "\n".join(lines)


def _check_row(name: str, check: Any) -> str:
    if not isinstance(check, dict):
        return f"| {_cell(name)} | | {_cell(check)} | |"
    passed = check.get("passed")
    mark = "yes" if passed else "no" if passed is not None else ""
    return f"| {_cell(name)} | {mark} | {_cell(check.get('observed', ''))} | {_cell(check.get('expected', ''))} |"


def not_needed(gate: GateReport | GateDecision | None) -> str | None:
    """Why no person needs to be asked (the gate refused already, or produced nothing), or None."""
    from ragops.indexing.records import GateReport
    from ragops.training.records import GateDecision

    if gate is None:
        return "the gate produced no verdict"
    if isinstance(gate, GateDecision) and not gate.promote:
        return f"the gate rejected {gate.candidate.model_id}: nothing to promote"
    if isinstance(gate, GateReport) and not gate.passed:
        return f"the gate failed {gate.collection}: nothing to swap"
    return None


def record_decision(svc: Services, decision: ApprovalDecision) -> ApprovalDecision:
    """Writes the decision onto the gate's evaluation artifact (metrics.approval): who, when, why."""
    if decision.artifact_id is not None:
        svc.registry.update_artifact(decision.artifact_id, metrics={SUMMARY_KEY: decision.to_xcom()})
    return decision


def approvals_in(results: dict[str, Any]) -> dict[str, Any]:
    """The run summary's approval entry: the approval steps' decisions among a run's task results."""
    names = set(ApprovalDecision.__dataclass_fields__)
    decisions = [v["decision"] if isinstance(v, dict) and set(v) == set(LabelReviewResult.__dataclass_fields__)
                 else v for v in results.values()]
    # An approval that was off changes nothing, so it adds nothing: the summary stays as it was.
    found = [v for v in decisions if isinstance(v, dict) and set(v) == names
             and v["outcome"] != ApprovalOutcome.NOT_REQUIRED]
    if not found:
        return {}
    return {SUMMARY_KEY: found[0] if len(found) == 1 else found}


# -- the synthetic dataset's label review ---------------------------------------------------------
def review_markdown(dataset: Any, export: Any) -> str:
    """The reviewer's view of a new dataset version and its exported review sample."""
    lines = [
        f"**Dataset** v{dataset.version} ({_cell(dataset.status)}): {dataset.rows_train} train and "
        f"{dataset.rows_test} test rows; artifact {dataset.dataset_id}.",
        "",
        f"**Review sample**: {export.rows} rows in `{_cell(export.uri)}` (columns id, query, positive, decision, "
        "edited_query; decision accept, reject or edit, blank: not reviewed).",
        "",
        "- **Accept all**: publish this version as it is.",
        "- **Use review file**: apply a filled-in review file (its path in the artifact store in *review_file*; "
        "empty: the exported sample, filled in place) and publish the reviewed version.",
        "- **Reject** (also when nobody answers in time): publish nothing; the version is marked rejected.",
    ]
    return "\n".join(lines)


def reject_dataset(svc: Services, dataset_id: int, decision: ApprovalDecision) -> None:
    """A rejected dataset version is never trained on: its status says so, with the decision."""
    from ragops.vocabulary import Status

    svc.registry.update_artifact(dataset_id, status=Status.REJECTED, metrics={SUMMARY_KEY: decision.to_xcom()})


def accept_dataset(svc: Services, dataset_id: int, decision: ApprovalDecision) -> None:
    svc.registry.update_artifact(dataset_id, metrics={SUMMARY_KEY: decision.to_xcom()})
