"""LLM generation against the local OpenAI-compatible server: retries, strict parsing, cache,
resume after a kill, budget cap, and no API key anywhere it should not be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from tests.llm_server import LLMTestServer, Reply
from tests.unit.synthetic_corpus import chunk_rows

from ragops.errors import InvalidInput
from ragops.prompts import load_prompt
from ragops.services import LLMEndpoint
from ragops.synthetic.cache import LLMCache
from ragops.synthetic.generation import Budget, generate_with_llm
from ragops.synthetic.llm import ChatClient, LLMSettings, MalformedAnswer, parse_queries

REPO = Path(__file__).resolve().parents[2]

API_KEY = "sk-test-SECRET-0123456789"


@pytest.fixture
def server():
    with LLMTestServer(api_key=API_KEY) as srv:
        yield srv


def settings_for(server: LLMTestServer, **overrides) -> LLMSettings:
    values = {"base_url": server.base_url, "api_key": API_KEY, "model": "test-model", "temperature": 0.5,
              "max_attempts": 4, "max_wait_s": 30.0, "json_attempts": 3, "price_prompt_per_1m": 1.0,
              "price_completion_per_1m": 2.0, **overrides}
    return LLMSettings(**values)


class RecordingSleep:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


MESSAGES = [{"role": "user", "content": "Write 2 different questions.\n\nPassage:\nVacuum reclaims dead tuples."}]


def test_429_waits_exactly_retry_after_then_succeeds(server):
    server.enqueue(Reply(status=429, retry_after="7"), Reply(status=429, retry_after="2"))
    sleep = RecordingSleep()
    client = ChatClient(settings_for(server), sleep=sleep)
    completion = client.complete(MESSAGES)
    assert sleep.waits == [7.0, 2.0]
    assert server.calls == 3 and client.http_attempts == 3 and client.retries == 2
    assert parse_queries(completion.content, 2)
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0


def test_retry_after_is_clamped_and_5xx_backs_off(server):
    server.enqueue(Reply(status=429, retry_after="3600"), Reply(status=500), Reply(status=503))
    sleep = RecordingSleep()
    ChatClient(settings_for(server, max_wait_s=5.0), sleep=sleep, initial_wait_s=0.25).complete(MESSAGES)
    assert sleep.waits[0] == 5.0                 # a huge Retry-After never stalls a run beyond max_wait_s
    assert len(sleep.waits) == 3 and all(0 < w <= 5.0 for w in sleep.waits[1:])


def test_attempts_are_bounded(server):
    server.enqueue(*[Reply(status=500)] * 10)
    sleep = RecordingSleep()
    with pytest.raises(openai.InternalServerError):
        ChatClient(settings_for(server, max_attempts=3), sleep=sleep).complete(MESSAGES)
    assert server.calls == 3 and len(sleep.waits) == 2


def test_auth_error_is_not_retried(server):
    sleep = RecordingSleep()
    with pytest.raises(openai.AuthenticationError):
        ChatClient(settings_for(server, api_key="wrong"), sleep=sleep).complete(MESSAGES)
    assert server.calls == 1 and sleep.waits == []


@pytest.mark.parametrize("content", ['{"queries": "not a list"}', "[\"a\"]", '{"queries": []}',
                                     '{"queries": ["a"], "extra": 1}', "Sure! Here are queries: ...",
                                     '{"queries": [1, 2]}'])
def test_parse_queries_is_strict(content):
    with pytest.raises(MalformedAnswer):
        parse_queries(content, 3)


def test_parse_queries_keeps_at_most_n():
    assert parse_queries('{"queries": [" a b c ", "d e f", "g h i"]}', 2) == ["a b c", "d e f"]


def test_malformed_json_is_retried_then_dropped_and_counted(server, registry):
    chunks = chunk_rows()[:3]
    # one worker takes the chunks in order, so the script lines up with chunks and attempts
    server.enqueue(Reply(content="not json"),                       # chunk 0, attempt 0 -> retried
                   Reply(content='{"queries": "x"}'),                # chunk 0, attempt 1 -> retried
                   Reply(content="{"),                               # chunk 0, attempt 2 -> dropped
                   Reply(content="```json\n{}\n```"))                # chunk 1, attempt 0 -> retried, then ok
    records, stats = generate_with_llm(chunks, settings=settings_for(server), prompt=load_prompt(),
                                       registry=registry, questions_per_chunk=2, concurrency=1,
                                       client=ChatClient(settings_for(server), sleep=RecordingSleep()))
    assert stats.malformed_answers == 4 and stats.dropped_malformed == 1
    assert {r["chunk_id"] for r in records} == {chunks[1]["chunk_id"], chunks[2]["chunk_id"]}
    assert server.calls == 6 and stats.calls == 6
    # every paid answer was cached, the malformed ones too: a re-run pays nothing
    before = server.calls
    records2, stats2 = generate_with_llm(chunks, settings=settings_for(server), prompt=load_prompt(),
                                         registry=registry, questions_per_chunk=2, concurrency=1)
    assert server.calls == before and stats2.calls == 0 and stats2.cache_hits == 6
    assert records2 == records and stats2.dropped_malformed == 1


def test_cache_makes_a_rerun_free_and_records_tokens_and_cost(server, registry):
    chunks = chunk_rows()
    settings = settings_for(server)
    records, stats = generate_with_llm(chunks, settings=settings, prompt=load_prompt(), registry=registry,
                                       questions_per_chunk=2, concurrency=4)
    assert server.calls == len(chunks) and len(records) == 2 * len(chunks)
    assert stats.prompt_tokens > 0 and stats.cost_usd == pytest.approx(
        (stats.prompt_tokens * 1.0 + stats.completion_tokens * 2.0) / 1e6)
    assert LLMCache(registry).count(load_prompt().version_id) == len(chunks)
    records2, stats2 = generate_with_llm(chunks, settings=settings, prompt=load_prompt(), registry=registry,
                                         questions_per_chunk=2, concurrency=4)
    assert server.calls == len(chunks)                        # zero new calls
    assert records2 == records and stats2.cache_hits == len(chunks) and stats2.new_cost_usd == 0
    assert stats2.cost_usd == pytest.approx(stats.cost_usd)   # the dataset's cost is what its answers cost
    # another temperature is another question: new calls
    generate_with_llm(chunks[:2], settings=settings_for(server, temperature=0.9), prompt=load_prompt(),
                      registry=registry, questions_per_chunk=2)
    assert server.calls == len(chunks) + 2


def test_budget_cap_stops_new_calls(server, registry):
    chunks = chunk_rows()
    budget = Budget(max_tokens=1)        # reached by the first answer
    records, stats = generate_with_llm(chunks, settings=settings_for(server), prompt=load_prompt(),
                                       registry=registry, questions_per_chunk=2, concurrency=1, budget=budget)
    assert server.calls == 1 and stats.calls == 1
    assert stats.dropped_budget == len(chunks) - 1 and len(records) == 2
    budget = Budget(max_cost_usd=1e-12)
    generate_with_llm(chunks, settings=settings_for(server, temperature=0.1), prompt=load_prompt(),
                      registry=registry, questions_per_chunk=2, concurrency=1, budget=budget)
    assert server.calls == 2


def test_exception_mid_run_then_resume_repeats_no_paid_call(server, registry):
    chunks = chunk_rows()
    answered: list[str] = []

    def crash_after_five(key: str) -> None:
        answered.append(key)
        if len(answered) == 5:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        generate_with_llm(chunks, settings=settings_for(server), prompt=load_prompt(), registry=registry,
                          questions_per_chunk=2, concurrency=3, on_answer=crash_after_five)
    paid_first = server.answered_total
    assert paid_first >= 5 and LLMCache(registry).count() == paid_first
    records, stats = generate_with_llm(chunks, settings=settings_for(server), prompt=load_prompt(),
                                       registry=registry, questions_per_chunk=2, concurrency=3)
    assert max(server.answered.values()) == 1                  # no call answered (paid) twice
    assert server.answered_total == len(chunks)
    assert stats.calls == len(chunks) - paid_first and stats.cache_hits == paid_first
    assert len(records) == 2 * len(chunks)


CHILD = """
import json, sys
from ragops.lineage import Registry
from ragops.prompts import load_prompt
from ragops.synthetic.generation import generate_with_llm
from ragops.synthetic.llm import LLMSettings
args = json.load(open(sys.argv[1]))
generate_with_llm(args["chunks"], settings=LLMSettings(**args["settings"]), prompt=load_prompt(),
                  registry=Registry(args["dsn"], args["schema"]), questions_per_chunk=2, concurrency=3)
"""


def test_killed_process_then_resume_repeats_no_paid_call(server, registry, tmp_path):
    chunks = chunk_rows()
    settings = settings_for(server)
    args = {"chunks": chunks, "dsn": registry.dsn, "schema": registry.schema,
            "settings": {**settings.public(), "api_key": API_KEY}}
    (tmp_path / "args.json").write_text(json.dumps(args))
    server.hang_after = 5            # from the 5th answer on, requests hang: the child is stuck mid-run
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "args.json")], env=env)
    cache = LLMCache(registry)
    try:
        deadline = time.monotonic() + 120
        while not (server.answered_total >= 5 and server.in_flight == 0
                   and cache.count() == server.answered_total):
            assert child.poll() is None, "the child finished before it could be killed"
            assert time.monotonic() < deadline, "the child never reached 5 answers"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    server.hang_after = None
    server.release()
    paid_before_kill = server.answered_total
    assert child.returncode == -signal.SIGKILL and paid_before_kill < len(chunks)
    records, stats = generate_with_llm(chunks, settings=settings, prompt=load_prompt(), registry=registry,
                                       questions_per_chunk=2, concurrency=3)
    assert max(server.answered.values()) == 1
    assert server.answered_total == len(chunks)
    assert stats.cache_hits == paid_before_kill and stats.calls == len(chunks) - paid_before_kill
    assert len(records) == 2 * len(chunks)


def test_api_key_never_reaches_logs_or_records(server, registry, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    settings = settings_for(server)
    server.enqueue(Reply(status=429, retry_after="0"))
    _, stats = generate_with_llm(chunk_rows()[:2], settings=settings, prompt=load_prompt(), registry=registry,
                                 questions_per_chunk=2)
    assert API_KEY not in repr(settings) and API_KEY not in json.dumps(settings.public())
    assert API_KEY not in caplog.text and API_KEY not in json.dumps(stats.as_dict())
    with registry.transaction() as cur:
        cur.execute("SELECT coalesce(string_agg(response::text || model || prompt_version, ''), '') AS cached"
                    " FROM llm_cache")
        assert API_KEY not in cur.fetchone()["cached"]


def test_settings_from_connection_endpoint():
    endpoint = LLMEndpoint("https://llm.example/v1", API_KEY, {"model": "gpt-x", "price_prompt_per_1m": 0.5})
    s = LLMSettings.from_endpoint(endpoint, temperature=0.2, model="")
    assert (s.model, s.price_prompt_per_1m, s.temperature, s.api_key) == ("gpt-x", 0.5, 0.2, API_KEY)
    assert LLMSettings.from_endpoint(endpoint, model="other").model == "other"
    assert API_KEY not in repr(endpoint) and API_KEY not in repr(s)
    with pytest.raises(InvalidInput, match="llm_model"):
        LLMSettings.from_endpoint(LLMEndpoint("http://x", "k"))


def test_slow_answer_times_out_and_is_retried(server):
    server.enqueue(Reply(delay_s=1.5))                 # slower than the client's timeout
    sleep = RecordingSleep()
    completion = ChatClient(settings_for(server, timeout_s=0.3), sleep=sleep).complete(MESSAGES)
    assert parse_queries(completion.content, 2)
    assert server.calls == 2 and len(sleep.waits) == 1
