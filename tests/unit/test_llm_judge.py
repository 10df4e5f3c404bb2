"""The LLM judge speaks the chat-completions protocol: verdicts parsed, cached, malformed ones counted."""

from __future__ import annotations

import json

from tests.llm_server import LLMTestServer, Reply

from ragops.llm.judge import Judge, parse_verdict
from ragops.synthetic.llm import LLMSettings


def test_parse_verdict_takes_scores_in_range_only():
    assert parse_verdict('{"faithfulness": 1, "relevance": 0.5}') == {"faithfulness": 1.0, "relevance": 0.5}
    assert parse_verdict('{"faithfulness": 1.5, "relevance": 0.5}') is None
    assert parse_verdict("not json") is None and parse_verdict('{"faithfulness": 1}') is None


def test_the_judge_grades_through_the_endpoint_and_never_asks_twice(registry):
    items = [("Does WAL protect commits?", "[1] WAL is flushed before commit.", "Yes [1]."),
             ("What is a slot?", "[1] A slot keeps WAL.", "A slot keeps WAL [1]."),
             ("Who wrote it?", "[1] Nothing about authors.", "Bob [1].")]
    with LLMTestServer(api_key="judge-key") as server:
        server.enqueue(Reply(content=json.dumps({"faithfulness": 1.0, "relevance": 1.0})),
                       Reply(content=json.dumps({"faithfulness": 0.5, "relevance": 1.0})),
                       Reply(content="I think it is fine"))  # malformed: counted, left out of the means
        settings = LLMSettings(base_url=server.base_url, api_key="judge-key", model="judge-model", temperature=0.0)
        judge = Judge(settings, registry)
        try:
            scores = judge.score(items)
            assert scores == {"faithfulness": 0.75, "relevance": 1.0, "graded": 2}
            assert judge.counts["calls"] == 3 and judge.counts["malformed"] == 1
            prompt = server.requests[0]["messages"]
            assert any("WAL is flushed before commit" in m["content"] for m in prompt)
            calls = server.calls
            again = Judge(settings, registry)  # a retried evaluation: answered from the cache
            assert again.score(items[:2]) == {"faithfulness": 0.75, "relevance": 1.0, "graded": 2}
            assert server.calls == calls and again.counts["cache_hits"] == 2
            again.close()
        finally:
            judge.close()
