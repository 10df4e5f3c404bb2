"""Data-quality suites (great-expectations 1.x) on real document and chunk tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ragops.chunking import ChunkingConfig, chunk_documents
from ragops.documents import Block, Document
from ragops.quality import DQResult, DQThresholds, run_suite, validate_chunks, validate_documents
from ragops.sources import load_source

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_source({"type": "folder", "path": str(FIXTURE_CORPUS), "name": "fixture"}, on_error="fail").documents


@pytest.fixture(scope="module")
def docs_df(documents) -> pd.DataFrame:
    return pd.DataFrame([d.to_row() for d in documents])


@pytest.fixture(scope="module")
def chunks_df(documents, base_model_path) -> pd.DataFrame:
    from ragops.embedding import load_tokenizer

    chunks = chunk_documents(documents, ChunkingConfig(chunk_size=64, chunk_overlap=8), load_tokenizer(base_model_path))
    return pd.DataFrame([c.to_row() for c in chunks])


def extra_doc(doc_id: str, text: str) -> dict:
    return Document(doc_id=doc_id, source="t", title=doc_id, blocks=[Block("paragraph", text)], format="text").to_row()


def failed(result: DQResult) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in result.failures}


def test_clean_corpus_passes(docs_df):
    result = validate_documents(docs_df, DQThresholds())
    assert result.success, result.failures
    assert result.failures == []
    assert result.statistics["evaluated_expectations"] == 9
    assert result.statistics["rows"] == len(docs_df)


def test_clean_chunks_pass(chunks_df):
    result = validate_chunks(chunks_df, 256, DQThresholds())
    assert result.success, result.failures
    assert result.statistics["evaluated_expectations"] == 8


def test_each_document_defect_is_reported(docs_df):
    damaged = pd.concat([docs_df, pd.DataFrame([
        extra_doc("fixture:faq.txt", "A second document claiming an existing id, with enough text to pass."),
        extra_doc("blank.txt", "   "),
        extra_doc("mojibake.txt", "The caf\ufffd menu lists espresso and tea for the whole afternoon."),
        extra_doc("control.txt", "A log line with a bell \x07 character pasted into the docs page."),
        extra_doc("banner.html", "We use cookies to improve your experience. Accept all cookies to continue."),
    ])], ignore_index=True)
    strict = DQThresholds(min_doc_chars=30, doc_length_mostly=1.0, max_boilerplate_share=0.0)
    result = validate_documents(damaged, strict)
    assert not result.success
    assert failed(result) == {
        ("expect_column_values_to_be_unique", "doc_id"),
        ("expect_column_values_to_not_match_regex", "text"),  # blank, encoding and boilerplate
        ("expect_column_value_lengths_to_be_between", "text"),
    }
    messages = " | ".join(f["message"] for f in result.failures)
    for expected in ("doc_id values repeat", "documents with blank text", "encoding damage",
                     "site boilerplate", "outside 30..2000000 chars"):
        assert expected in messages
    encoding = next(f for f in result.failures if "encoding" in f["message"])
    assert encoding["observed"]["unexpected_count"] == 2
    assert any("caf\ufffd" in example for example in encoding["observed"]["examples"])


def test_duplicates_fail_beyond_the_ratio(docs_df):
    copies = pd.concat([docs_df, docs_df.assign(doc_id=docs_df["doc_id"] + ".copy")], ignore_index=True)
    result = validate_documents(copies, DQThresholds(max_duplicate_ratio=0.1))
    assert failed(result) == {("expect_column_proportion_of_unique_values_to_be_between", "content_hash")}
    assert result.failures[0]["observed"] == 0.5
    assert validate_documents(copies, DQThresholds(max_duplicate_ratio=0.5)).success


def test_boilerplate_share_is_a_threshold(docs_df):
    one_banner = pd.concat([docs_df, pd.DataFrame([extra_doc("b.html", "Copyright 2026 Tern. All rights reserved.")])],
                           ignore_index=True)  # 1 of 9 documents
    assert not validate_documents(one_banner, DQThresholds(max_boilerplate_share=0.05)).success
    assert validate_documents(one_banner, DQThresholds(max_boilerplate_share=0.2)).success


def test_chunk_defects_are_reported(chunks_df):
    bad = chunks_df.copy()
    bad.loc[0, "token_count"] = 300                     # would be truncated by the model
    bad.loc[1, "chunk_id"] = bad.loc[2, "chunk_id"]     # a repeated id
    bad.loc[3, "text"] = "x" * 9000                     # far too long for its tokens
    bad.loc[4, "text"] = "broken \ufffd bytes"
    result = validate_chunks(bad, 256, DQThresholds())
    assert failed(result) == {
        ("expect_column_values_to_be_between", "token_count"),
        ("expect_column_values_to_be_unique", "chunk_id"),
        ("expect_column_value_lengths_to_be_between", "text"),
        ("expect_column_values_to_not_match_regex", "text"),
    }
    tokens = next(f for f in result.failures if f["column"] == "token_count")
    assert tokens["observed"]["examples"] == ["300"]
    assert "1..256 model tokens" in tokens["message"]


def test_empty_tables_fail(docs_df):
    result = validate_documents(docs_df.iloc[0:0], DQThresholds())
    assert ("expect_table_row_count_to_be_between", None) in failed(result)
    assert "no documents" in result.summary()


def test_generic_runner_for_other_suites():
    df = pd.DataFrame({"question": ["What is WAL?", "How do snapshots work?", "What is WAL?"], "words": [3, 4, 3]})
    result = run_suite(df, "synthetic questions", [
        {"type": "expect_column_values_to_be_unique", "column": "question", "message": "repeated questions"},
        {"type": "expect_column_values_to_be_between", "column": "words", "min_value": 3, "max_value": 64},
    ])
    assert result.suite == "synthetic questions"
    assert not result.success
    (failure,) = result.failures
    assert failure["message"].startswith("repeated questions on column 'question'")
    assert result.as_dict()["statistics"]["unsuccessful_expectations"] == 1
    with pytest.raises(ValueError, match="expect_nonsense"):
        run_suite(df, "x", [{"type": "expect_nonsense", "column": "question"}])


def test_thresholds_validate_and_come_from_params():
    assert DQThresholds.from_params({"max_duplicate_ratio": 0.1}).max_duplicate_ratio == 0.1
    with pytest.raises(ValueError, match="max_duplicate_ratio"):
        DQThresholds(max_duplicate_ratio=1.5)
    with pytest.raises(ValueError, match="min_doc_char"):
        DQThresholds.from_params({"min_doc_char": 3})


def test_no_progress_bars_on_stderr(docs_df, capfd):
    validate_documents(docs_df, DQThresholds())
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
