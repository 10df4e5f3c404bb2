"""rag_evaluate's generation checks: a fixed sample, checks without an LLM, the judge through the
chat-completions protocol and the registry's cache (no call paid twice), and the cost cap."""

from __future__ import annotations

import json

from tests.llm_server import LLMTestServer, Reply

from ragops.answers import AnswerCitation, answer, extractive_answer
from ragops.evaluation.generation import (
    CachedChat,
    Item,
    Ledger,
    answer_checks,
    judge,
    parse_verdict,
    sample_items,
)
from ragops.retrieval.hits import Citation, Hit
from ragops.retrieval_eval import LabelledQueries

API_KEY = "eval-key"
VERDICT = {"faithfulness": 1.0, "answer_relevance": 0.5, "context_precision": 0.25, "citation_correctness": 1.0}


def make_hit(n: int, text: str, doc: str) -> Hit:
    citation = Citation(chunk_id=f"c{n}", doc_id=doc, source="fx", location=None, title="Doc", heading_path="Doc")
    return Hit(rank=n, chunk_id=f"c{n}", score=1.0 / n, text=text, title="Doc", citation=citation,
               scores={"dense": 0.8})


HITS = [make_hit(1, "The write-ahead log is flushed before a commit returns.", "fx:wal.md"),
        make_hit(2, "Backups are taken nightly with pg_basebackup.", "fx:backup.md")]
ITEM = Item("golden", "q1", "what does the write-ahead log guarantee", frozenset({"fx:wal.md"}), "doc")


def test_the_sample_is_fixed_by_its_seed_and_spans_the_sets():
    sets = [("golden", LabelledQueries({f"g{i}": f"golden {i}" for i in range(10)},
                                       {f"g{i}": {"d": 1} for i in range(10)})),
            ("beir", LabelledQueries({f"b{i}": f"beir {i}" for i in range(10)}, {f"b{i}": {"d": 1} for i in range(10)}))]
    first, again = sample_items(sets, 6, seed=7), sample_items(list(reversed(sets)), 6, seed=7)
    assert first == again and len(first) == 6
    assert sample_items(sets, 6, seed=8) != first
    assert len(sample_items(sets, 100, seed=7)) == 20


def test_checks_without_an_llm_score_citations_and_gold_overlap():
    extractive = extractive_answer(ITEM.question, HITS, reason="no LLM")
    checks = answer_checks(extractive, ITEM, HITS[0].text)
    assert checks == {"citation_validity": 1.0, "cited_relevant": 1.0, "gold_overlap": 1.0}
    # an answer citing the wrong passage: valid citation, not relevant, little overlap with the gold
    wrong = extractive.__class__(ITEM.question, "Backups run nightly [2].", "generated", HITS,
                                 [AnswerCitation(2, HITS[1])])
    checks = answer_checks(wrong, ITEM, HITS[0].text)
    assert checks["citation_validity"] == 1.0 and checks["cited_relevant"] == 0.0 and checks["gold_overlap"] < 0.5
    # a citation of a passage that was not given is invalid
    removed = wrong.__class__(ITEM.question, "Backups run nightly.", "generated", HITS, [], removed_citations=[7])
    assert answer_checks(removed, ITEM, HITS[0].text)["citation_validity"] == 0.0
    unknown = answer(ITEM.question, [], None)
    assert answer_checks(unknown, ITEM, HITS[0].text) is None


def test_parse_verdict_takes_the_four_scores_in_range_only():
    assert parse_verdict(json.dumps(VERDICT)) == VERDICT
    assert parse_verdict(json.dumps({**VERDICT, "faithfulness": 2})) is None
    assert parse_verdict('{"faithfulness": 1}') is None and parse_verdict("fine") is None


def test_answers_and_verdicts_are_paid_once_and_the_ledger_counts_them(registry):
    from ragops.answers import chat_client
    from ragops.services import LLMEndpoint

    with LLMTestServer(api_key=API_KEY) as server:
        endpoint = LLMEndpoint(server.base_url, API_KEY, {"model": "test-model", "price_prompt_per_1m": 1000.0,
                                                        "price_completion_per_1m": 2000.0})
        client = chat_client(endpoint)
        try:
            ledger = Ledger(cap_usd=10.0)
            answer_chat = CachedChat(client, client.settings, registry, ledger, "answer")
            judge_chat = CachedChat(client, client.settings, registry, ledger, "rag_judge")
            server.enqueue(Reply(), Reply(content=json.dumps(VERDICT)))
            reply = answer(ITEM.question, HITS, answer_chat)
            assert reply.kind == "generated" and [c.n for c in reply.citations] == [1, 2]
            assert judge(judge_chat, reply) == VERDICT
            assert server.calls == 2 and ledger.calls == 2 and ledger.cache_hits == 0
            # priced from the connection's extra: prompt words x $1000/1M (the server counts words as tokens)
            prompt_words = sum(len(m["content"].split()) for r in server.requests for m in r["messages"])
            assert ledger.cost_usd > prompt_words * 1000.0 / 1e6 > 0
            judge_prompt = server.requests[1]["messages"][-1]["content"]
            assert "write-ahead log is flushed" in judge_prompt and reply.text in judge_prompt

            # the same questions again (a re-run): answered from the registry's cache, nothing paid
            again = Ledger(cap_usd=10.0)
            answer_again = CachedChat(client, client.settings, registry, again, "answer")
            judge_again = CachedChat(client, client.settings, registry, again, "rag_judge")
            assert answer(ITEM.question, HITS, answer_again).text == reply.text
            assert judge(judge_again, reply) == VERDICT
            assert server.calls == 2 and again.calls == 0 and again.cache_hits == 2 and again.cost_usd == 0.0
        finally:
            client.close()


def test_the_ledger_is_exhausted_at_its_cap():
    ledger = Ledger(cap_usd=0.01)
    assert not ledger.exhausted
    ledger.cost_usd = 0.01
    assert ledger.exhausted and ledger.as_dict()["cost_cap_usd"] == 0.01
    assert Ledger(cap_usd=0.0).exhausted   # a zero cap pays for nothing
