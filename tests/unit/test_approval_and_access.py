"""Unit tier (Airflow blocked): what an approval request shows and records, and the artifact
ledger behind every task's OpenLineage datasets, on a real Postgres registry."""

from __future__ import annotations

from ragops.approval import ApprovalDecision, approvals_in, not_needed, record_decision, report_markdown
from ragops.artifact_access import ArtifactAccess, RecordingRegistry
from ragops.indexing.records import GateReport
from ragops.models import ModelRef
from ragops.training.records import GateDecision
from ragops.vocabulary import ApprovalOutcome, Status


def test_the_ledger_tells_inputs_from_outputs(registry):
    corpus = registry.record_artifact("corpus", "Docs", "c" * 64, "file:///c", metrics={"documents": 3})
    model = registry.record_artifact("model", "embeddings", "m" * 64, "file:///m")
    unrelated = registry.record_artifact("corpus", "Other", "o" * 64, "file:///o")
    access = ArtifactAccess()
    recording = RecordingRegistry(registry.dsn, registry.schema, access)

    assert recording.find_artifact("corpus", "Other") == unrelated      # a search is not a read
    chunks = recording.record_artifact("chunks", "Docs", "k" * 64, "file:///k", metrics={"chunks": 9},
                                       parents=[(corpus.id, "chunked_from")])
    assert recording.get_artifact(model.id) == model
    recording.update_artifact(chunks.id, metrics={"mean_tokens": 40.0})  # written already: stays an output
    inputs, outputs = access.resolve(recording)

    assert [a.id for a in inputs] == [corpus.id, model.id]
    assert [a.id for a in outputs] == [chunks.id]
    assert outputs[0].metrics == {"chunks": 9, "mean_tokens": 40.0}   # resolved as the registry holds it now
    assert list(access.read) == [corpus.id, model.id, chunks.id]      # resolving read nothing more


def test_moving_an_alias_or_a_stage_writes_its_target(registry):
    collection = registry.record_artifact("collection", "Docs", "v" * 64, "Docs_v")
    model = registry.record_artifact("model", "embeddings", "m" * 64, "file:///m")
    access = ArtifactAccess()
    recording = RecordingRegistry(registry.dsn, registry.schema, access)
    recording.set_alias("collection", "Docs", collection.id, reason="test")
    recording.set_stage(model.id, "production", reason="test")
    assert not access.read and list(access.written) == [collection.id, model.id]
    assert not ArtifactAccess()


def test_report_shows_the_gate_and_escapes_what_artifacts_say():
    gate = GateReport("Docs_abc", True, 7, "file:///r.json", {
        "object_count": {"passed": True, "observed": 10, "expected": 10},
        "smoke_hit_rate": {"passed": True, "observed": 0.9, "expected": ">= 0.7 <script>"}})
    text = report_markdown(gate)
    assert "Docs\\_abc" in text and "| object\\_count | yes | 10 | 10 |" in text
    assert "<script>" not in text and "\\<script\\>" in text
    model = ModelRef("embeddings:v3", "h" * 64, "file:///m", version=3)
    decision = GateDecision(True, Status.PROMOTED, ("beats live by 0.04",), 9, model, "embeddings:v2", 0.04)
    text = report_markdown(decision)
    assert "embeddings:v3" in text and "0.04" in text and "- beats live by 0.04" in text
    assert not_needed(decision) is None
    assert "rejected" in not_needed(decision.replace(promote=False, verdict=Status.REJECTED))
    assert not_needed(None)


def test_a_decision_is_recorded_on_its_artifact_and_in_the_summary(registry):
    from ragops.config import RagopsSettings
    from ragops.services import Services

    evaluation = registry.record_artifact("evaluation", "gate", "e" * 64, "file:///e", metrics={"decision": "passed"})
    decision = ApprovalDecision("approve_swap", ApprovalOutcome.REJECTED, False, evaluation.id, "ana",
                                "2026-11-23T07:00:00+00:00", "draft pages")
    svc = Services(RagopsSettings(pg_dsn=registry.dsn, schema=registry.schema))
    record_decision(svc, decision)
    assert registry.get_artifact(evaluation.id).metrics == {"decision": "passed", "approval": decision.to_xcom()}
    off = ApprovalDecision("approve_swap", ApprovalOutcome.NOT_REQUIRED, True, None, reason="off")
    assert approvals_in({"gate": {"passed": True}, "approve_swap": decision.to_xcom()}) == {
        "approval": decision.to_xcom()}
    assert approvals_in({"approve_swap": off.to_xcom()}) == {}
