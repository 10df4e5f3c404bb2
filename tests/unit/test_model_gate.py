"""The promotion gate: constructed reports for every rule, and real evaluations of real models."""

from __future__ import annotations

import copy

import pytest
from tests.unit.training_data import SCIFACT, save_broken_model, scifact_pairs

from ragops.errors import InvalidInput
from ragops.training.gate import Decision, decide, record_decision
from ragops.vocabulary import Relation, Status

DIMS = ("384", "256", "128", "64")


def report(label: str, primary: dict[str, float], guard: dict[str, float] | None = None) -> dict:
    metrics = {"synthetic-test": {d: {"ndcg@10": primary[d], "mrr@10": primary[d]} for d in DIMS}}
    if guard is not None:
        metrics["golden"] = {d: {"ndcg@10": guard[d]} for d in DIMS}
    return {"label": label, "primary_set": "synthetic-test", "metrics": metrics}


LIVE = report("live", dict.fromkeys(DIMS, 0.60), dict.fromkeys(DIMS, 0.50))


def with_values(primary_full: float, **changes: float) -> dict:
    r = copy.deepcopy(LIVE)
    r["label"] = "candidate"
    r["metrics"]["synthetic-test"]["384"]["ndcg@10"] = primary_full
    for key, value in changes.items():
        set_name, dim = key.rsplit("_", 1)
        r["metrics"][set_name.replace("_", "-")][dim]["ndcg@10"] = value
    return r


def test_a_better_candidate_is_promoted():
    d = decide(with_values(0.63, golden_64=0.495), LIVE, margin=0.01, guard_tolerance=0.01)
    assert d.promote and d.verdict == "promoted"
    assert d.inputs["primary_dim"] == 384 and d.inputs["delta"] == pytest.approx(0.03)
    assert any("no guard regresses" in r for r in d.reasons)


def test_a_worse_or_equal_candidate_is_rejected():
    assert not decide(with_values(0.58), LIVE, margin=0.0).promote
    equal = decide(with_values(0.60), LIVE, margin=0.0)
    assert not equal.promote and "does not beat" in equal.reasons[0]


def test_a_gain_below_the_margin_is_rejected():
    d = decide(with_values(0.605), LIVE, margin=0.01)
    assert not d.promote and "margin 0.01" in d.reasons[0]


def test_a_guard_regression_vetoes_a_primary_win():
    d = decide(with_values(0.70, golden_128=0.45), LIVE, margin=0.01, guard_tolerance=0.02)
    assert not d.promote
    assert any("guard golden@128" in r and "regresses" in r for r in d.reasons)
    regressed = [g for g in d.inputs["guards"] if g["regressed"]]
    assert [(g["set"], g["dim"]) for g in regressed] == [("golden", 128)]
    # A lower dim of the primary set is a guard too.
    d = decide(with_values(0.70, synthetic_test_64=0.50), LIVE, margin=0.01, guard_tolerance=0.02)
    assert not d.promote and any("synthetic-test@64" in r for r in d.reasons)


def test_bad_gate_arguments_are_named():
    with pytest.raises(InvalidInput, match="margin"):
        decide(LIVE, LIVE, margin=-0.1)
    with pytest.raises(InvalidInput, match="lacks ndcg@10"):
        decide(LIVE, LIVE, primary_dim=512)


def test_decision_is_recorded_in_lineage(registry):
    from ragops.models import register_base_model, register_candidate

    run_key = registry.start_run("rag_finetune_embeddings", "manual__1")
    base = register_base_model(registry, run_key=run_key)
    candidate = register_candidate(registry, "/models/c1", "c1" * 32, run_key=run_key, parents=[(base.id, "finetuned_from")])
    decision = decide(with_values(0.58), LIVE)
    full_report = {"models": {"live": LIVE, "candidate": with_values(0.58)}}
    evaluation = record_decision(registry, decision, candidate_id=candidate.id, report=full_report,
                                 report_uri="/evaluations/x/report.json", live_id=base.id, run_key=run_key,
                                 extra_uris={"chart_uri": "/evaluations/x/ndcg_by_dim.png"})
    assert evaluation.kind == "evaluation" and evaluation.status == Status.REJECTED == decision.verdict
    assert evaluation.metrics["reasons"] == decision.reasons and evaluation.params["chart_uri"].endswith(".png")
    assert {(p.id, rel) for p, rel in registry.parents(evaluation.id)} == {(candidate.id, Relation.EVALUATES),
                                                                         (base.id, Relation.BASELINE)}
    stored = registry.get_artifact(candidate.id)
    assert stored.status == "rejected" and stored.stage == "candidate"
    assert stored.metrics["gate"]["decision"] == "rejected" and stored.metrics["gate"]["evaluation_id"] == evaluation.id
    # Recording again (a retried task) updates the same evaluation.
    again = record_decision(registry, decision, candidate_id=candidate.id, report=full_report,
                            report_uri="/evaluations/x/report.json", live_id=base.id, run_key=run_key)
    assert again.id == evaluation.id


@pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")
def test_real_evaluations_promote_the_better_model_and_reject_the_worse(base_model_path, tmp_path):
    from ragops.training.evaluate import evaluate_models, model_report

    broken = save_broken_model(base_model_path, tmp_path / "broken")
    rows = scifact_pairs(16, offset=40)
    result = evaluate_models({"base": base_model_path, "broken": str(broken)}, rows, [384, 64], [10])
    base, bad = model_report(result, "base"), model_report(result, "broken")
    assert base["metrics"]["synthetic-test"]["384"]["ndcg@10"] > bad["metrics"]["synthetic-test"]["384"]["ndcg@10"]

    rejected = decide(bad, base, margin=0.0, guard_tolerance=0.0)
    assert isinstance(rejected, Decision) and not rejected.promote
    promoted = decide(base, bad, margin=0.05, guard_tolerance=0.0)
    assert promoted.promote, promoted.reasons
