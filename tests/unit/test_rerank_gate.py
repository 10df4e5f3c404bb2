"""The reranker gate: a margin on the held-out queries, and guard sets that each count on their own."""

from __future__ import annotations

import pytest

from ragops.errors import InvalidInput
from ragops.reranking.gate import decide


def report(sets: dict[str, tuple[float, float, float]], *, live_is_first_stage: bool = False) -> dict:
    """sets: name -> (first_stage, live, candidate) nDCG@10; the first set is the held-out one."""
    return {"primary_set": next(iter(sets)), "live_is_first_stage": live_is_first_stage,
            "model_ids": {"first_stage": "identity", "live": "identity" if live_is_first_stage else "reranker:v1",
                          "candidate": "reranker:v2"},
            "metrics": {name: {"first_stage": {"ndcg@10": f}, "live": {"ndcg@10": v}, "candidate": {"ndcg@10": c}}
                        for name, (f, v, c) in sets.items()}}


def test_promotes_past_the_margin_with_no_guard_regressing():
    r = report({"held-out": (0.60, 0.62, 0.66), "golden": (0.8, 0.8, 0.81), "synthetic-test": (0.5, 0.5, 0.5)})
    d = decide(r, margin=0.02, guard_tolerance=0.01)
    assert d.promote and d.inputs["delta"] == pytest.approx(0.04)
    assert "no guard regresses" in d.reasons[-1]
    # each guard set is compared against the live reranker and the first stage alone
    assert {(g["set"], g["against"]) for g in d.inputs["guards"]} == {
        ("held-out", "first_stage"), ("golden", "live"), ("golden", "first_stage"),
        ("synthetic-test", "live"), ("synthetic-test", "first_stage")}


def test_rejects_below_the_margin():
    d = decide(report({"held-out": (0.60, 0.62, 0.625)}), margin=0.02, guard_tolerance=0.01)
    assert not d.promote and "does not beat it by margin 0.02" in d.reasons[0]


@pytest.mark.parametrize("guard", ["golden", "review", "synthetic-test", "beir-dev-eval"])
def test_one_regressing_guard_set_is_enough_to_reject(guard):
    sets = {"held-out": (0.60, 0.60, 0.70), "golden": (0.8, 0.8, 0.8), "review": (0.7, 0.7, 0.7),
            "synthetic-test": (0.5, 0.5, 0.5), "beir-dev-eval": (0.72, 0.72, 0.72)}
    f, v, _ = sets[guard]
    sets[guard] = (f, v, v - 0.05)
    d = decide(report(sets), margin=0.02, guard_tolerance=0.01)
    assert not d.promote
    assert [r for r in d.reasons if r.startswith(f"guard {guard} ")], d.reasons


def test_a_candidate_worse_than_the_first_stage_alone_is_rejected_even_if_it_beats_a_broken_live_one():
    d = decide(report({"held-out": (0.70, 0.40, 0.60)}), margin=0.02, guard_tolerance=0.05)
    assert not d.promote and any("vs first_stage" in r for r in d.reasons)
    lenient = decide(report({"held-out": (0.70, 0.40, 0.66)}), margin=0.02, guard_tolerance=0.05)
    assert lenient.promote


def test_without_a_live_reranker_the_first_stage_is_the_baseline():
    d = decide(report({"held-out": (0.6, 0.6, 0.65), "golden": (0.7, 0.7, 0.7)}, live_is_first_stage=True),
               margin=0.02, guard_tolerance=0.0)
    assert d.promote and "the first stage alone" in d.reasons[0]
    assert {g["against"] for g in d.inputs["guards"]} == {"first_stage"}
    with pytest.raises(InvalidInput):
        decide(report({"held-out": (0.6, 0.6, 0.65)}), margin=-1, guard_tolerance=0)
