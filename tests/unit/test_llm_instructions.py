"""The instruction-data builder: rows in the serving prompt, passages, answers, the split, the suite,
and answers written by an LLM through the cache. No Airflow, no model."""

from __future__ import annotations

import json

import pytest

from ragops.llm.instructions import (
    ANSWER_PROMPT,
    answer_text,
    build_instruction_rows,
    extractive_answer,
    instructions_hash,
    pick_passages,
)
from ragops.llm.quality import validate_instructions
from ragops.prompts import load_prompt
from ragops.training.llm_eval import check_citations
from ragops.vocabulary import AnswerWriter

PROMPT = load_prompt(*ANSWER_PROMPT.rsplit(".", 1))


def pair(i: int, split_doc: str | None = None) -> dict:
    doc = split_doc or f"doc-{i // 2}"
    return {"query_id": f"q{i}", "query": f"How does checkpoint {i} flush buffers?", "doc_id": doc,
            "chunk_id": f"{doc}#{i % 2}", "negative": None,
            "positive": f"Intro sentence number {i}. Checkpoint {i} flushes dirty buffers to disk. Unrelated tail."}


SPLITS = {"train": [pair(i) for i in range(12)], "test": [pair(i) for i in range(12, 18)]}


def build(**kwargs):
    return build_instruction_rows(SPLITS, prompt=PROMPT, answer=extractive_answer, source=AnswerWriter.EXTRACTIVE,
                                  **{"passages_per_prompt": 3, "seed": 1, **kwargs})


def test_rows_ask_the_serving_prompt_and_cite_the_positive():
    rows, dropped = build()
    assert dropped == {"no_answer": 0} and [len(rows["train"]), len(rows["test"])] == [12, 6]
    row = rows["train"][0]
    system, user = row["prompt"]
    assert system["role"] == "system" and user["role"] == "user" and "Question: How does checkpoint 0" in user["content"]
    assert user["content"].count("\n[") == 3 and "Passages:\n[1] " in user["content"]
    positive = row["positive_index"]
    assert f"[{positive}] {row['doc_id']}\nIntro sentence number 0." in user["content"]
    answer = answer_text(row)
    assert json.loads(row["completion"][0]["content"]) == {"answer": answer}
    # The extractive answer: the positive's best sentence(s) for the question, each cited.
    assert answer.startswith("Intro sentence number 0.") or "Checkpoint 0 flushes dirty buffers" in answer
    assert f"Checkpoint 0 flushes dirty buffers to disk. [{positive}]" in answer
    assert check_citations(answer, 3) == {"valid": True, "cited": [positive], "invalid": [], "has_citation": True,
                                          "n_passages": 3}
    assert row["answer_source"] == "extractive"


def test_distractors_come_from_other_documents_of_the_same_split_and_positions_vary():
    rows, _ = build()
    positions = set()
    for split, part in rows.items():
        docs = {r["doc_id"] for r in SPLITS[split]}
        for row in part:
            user = row["prompt"][1]["content"]
            headings = [line.split(" ", 1)[1] for line in user.split("Passages:\n", 1)[1].split("\n")
                        if line.startswith("[")]
            assert len(headings) == 3 and headings.count(row["doc_id"]) == 1 and set(headings) <= docs
            positions.add(row["positive_index"])
    assert positions == {1, 2, 3}   # the answer is not always passage 1: the model must read


def test_a_hard_negative_is_the_first_distractor():
    row = {**pair(0), "negative": "A plausible but wrong passage."}
    passages, positive = pick_passages(row, SPLITS["train"], k=3, seed=0, passage_chars=60)
    assert ("passage", "A plausible but wrong passage.") in passages and passages[positive - 1][0] == "doc-0"
    assert all(len(text) <= 64 for _, text in passages)   # clipped at a word, " ..." appended


def test_the_build_is_deterministic_keeps_the_split_and_caps_training_rows():
    first, _ = build()
    again, _ = build()
    assert instructions_hash(first) == instructions_hash(again)
    assert instructions_hash(build(seed=2)[0]) != instructions_hash(first)
    capped, _ = build(max_rows=5)
    assert len(capped["train"]) == 5 and len(capped["test"]) == 6
    assert {r["query_id"] for r in capped["test"]} == {f"q{i}" for i in range(12, 18)}


def test_the_suite_passes_good_rows_and_names_what_is_wrong():
    rows, _ = build()
    assert validate_instructions(rows).success
    bad = {"train": [dict(r) for r in rows["train"]], "test": [dict(r) for r in rows["test"]]}
    bad["train"][0]["completion"] = [{"role": "assistant", "content": json.dumps({"answer": "Wrong [7]."})}]
    bad["train"][1]["completion"] = [{"role": "assistant", "content": json.dumps({"answer": "No citation."})}]
    bad["test"][0] = {**bad["test"][0], "doc_id": bad["train"][2]["doc_id"]}   # a document on both sides
    result = validate_instructions(bad)
    assert not result.success
    messages = " | ".join(f["message"] for f in result.failures)
    for expected in ("answers citing passages the prompt did not give", "answers without a citation",
                     "leakage"):
        assert expected in messages, messages
    empty_test = validate_instructions({"train": rows["train"], "test": []})
    assert not empty_test.success and "a split is empty" in empty_test.failures[0]["message"]


def test_llm_answers_are_cached_and_bad_ones_dropped(registry):
    from tests.llm_server import LLMTestServer, Reply

    from ragops.llm.answers import LLMAnswerWriter
    from ragops.synthetic.llm import LLMSettings

    splits = {"train": [pair(i) for i in range(4)], "test": [pair(i) for i in range(4, 6)]}
    with LLMTestServer(api_key="sk-test-123") as server:
        settings = LLMSettings(base_url=server.base_url, model="teacher", api_key="sk-test-123", temperature=0.0)
        rows_for_positions = build_instruction_rows(
            splits, prompt=PROMPT, answer=extractive_answer, source=AnswerWriter.EXTRACTIVE, seed=1)[0]
        positives = [r["positive_index"] for part in ("train", "test") for r in rows_for_positions[part]]
        replies = [json.dumps({"answer": f"Buffers are flushed [{p}]."}) for p in positives]
        replies[1] = json.dumps({"answer": "Flushed [9]."})                   # a passage that was not given
        replies[2] = "not json"
        replies[3] = json.dumps({"answer": None})                            # the passages do not answer
        server.enqueue(*(Reply(content=c) for c in replies))
        writer = LLMAnswerWriter(settings, PROMPT, registry, seed=1)
        rows, dropped = build_instruction_rows(splits, prompt=PROMPT, answer=writer, source=AnswerWriter.LLM, seed=1)
        assert [len(rows["train"]), len(rows["test"])] == [1, 2] and dropped == {"no_answer": 3}
        assert {"calls": 6, "dropped_invalid_citation": 1, "dropped_malformed_or_null": 2}.items() <= \
            writer.stats().items()
        assert rows["train"][0]["answer_source"] == "llm" and answer_text(rows["train"][0]).endswith(
            f"[{positives[0]}].")
        # The same rows again: every answer from the cache, no call.
        calls = server.calls
        again = LLMAnswerWriter(settings, PROMPT, registry, seed=1)
        rows_again, _ = build_instruction_rows(splits, prompt=PROMPT, answer=again, source=AnswerWriter.LLM, seed=1)
        assert server.calls == calls and again.stats()["cache_hits"] == 6
        assert instructions_hash(rows_again) == instructions_hash(rows)
        writer.close()
        again.close()
        # The key never reaches what is recorded.
        assert "sk-test-123" not in json.dumps(settings.public())


@pytest.mark.parametrize("content,expected", [('{"answer": " x [1] "}', "x [1]"), ('{"answer": null}', None),
                                              ('{"answer": ""}', None), ("[1, 2]", None), ("{", None)])
def test_parse_answer(content, expected):
    from ragops.llm.answers import parse_answer

    assert parse_answer(content) == expected
