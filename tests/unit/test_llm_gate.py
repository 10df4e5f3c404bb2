"""The LLM gate: promote only past the perplexity margin with no guard regressing; reasons always."""

from __future__ import annotations

import pytest

from ragops.errors import InvalidInput
from ragops.llm.gate import decide


def report(ppl: float, valid: float = 1.0, judge: dict | None = None, label: str = "m") -> dict:
    return {"label": label, "perplexity": ppl, "citations": {"valid_rate": valid, "citation_rate": 1.0},
            "judge": judge}


def test_a_better_candidate_within_the_guards_is_promoted():
    decision = decide(report(90.0, label="candidate"), report(100.0, label="live"), margin=0.05, guard_tolerance=0.02)
    assert decision.promote and decision.verdict == "promoted"
    assert decision.reasons[0] == ("perplexity of the held-out reference answers: 90.0000 vs live 100.0000 "
                                   "(+10.00% lower >= margin 5.00%)")
    assert decision.reasons[-1].startswith("no guard regresses beyond 0.02 (citation_valid_rate)")
    assert decision.inputs["delta"] == pytest.approx(0.1) and decision.inputs["judged"] is False


def test_a_gain_below_the_margin_is_rejected():
    decision = decide(report(98.0), report(100.0), margin=0.05, guard_tolerance=0.02)
    assert not decision.promote and decision.verdict == "rejected"
    assert "does not reach margin 5.00%" in decision.reasons[0]
    worse = decide(report(101.0), report(100.0), margin=0.0, guard_tolerance=0.02)
    assert not worse.promote and "-1.00% lower" in worse.reasons[0]


def test_a_regressing_guard_rejects_even_a_big_gain():
    citations = decide(report(50.0, valid=0.8), report(100.0, valid=0.95), margin=0.05, guard_tolerance=0.1)
    assert not citations.promote
    assert any(r.startswith("guard citation_valid_rate: 0.8000 vs live 0.9500 (-0.1500) regresses") for r in
               citations.reasons)
    judged = decide(report(50.0, judge={"faithfulness": 0.6, "relevance": 0.9}),
                    report(100.0, judge={"faithfulness": 0.8, "relevance": 0.85}), margin=0.05, guard_tolerance=0.05)
    assert not judged.promote and judged.inputs["judged"] is True
    assert [g["guard"] for g in judged.inputs["guards"] if g["regressed"]] == ["judge_faithfulness"]
    within = decide(report(50.0, judge={"faithfulness": 0.78, "relevance": 0.9}),
                    report(100.0, judge={"faithfulness": 0.8, "relevance": 0.85}), margin=0.05, guard_tolerance=0.05)
    assert within.promote


def test_a_judge_score_on_one_side_only_is_named_not_compared():
    decision = decide(report(50.0, judge={"faithfulness": 0.1, "relevance": 0.1}), report(100.0), margin=0.05,
                      guard_tolerance=0.0)
    assert decision.promote
    assert "guard judge_faithfulness: the live model has no value; not compared" in decision.reasons


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidInput):
        decide(report(1.0), report(1.0), margin=-0.1, guard_tolerance=0.0)
    with pytest.raises(InvalidInput, match="not a positive number"):
        decide(report(1.0), report(0.0), margin=0.0, guard_tolerance=0.0)
