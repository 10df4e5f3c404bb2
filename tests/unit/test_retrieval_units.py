"""The query path's pure parts: fusion, spans, the reranker protocol, cited answers (no store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.llm_server import LLMTestServer, Reply

from ragops.answers import EXTRACTIVE, GENERATED, UNKNOWN, answer, check_citations, extractive_answer
from ragops.errors import InvalidInput
from ragops.retrieval import DEFAULT_FUSION, Citation, FusionConfig, Hit, IdentityReranker, chunk_spans, fuse, fusion_of
from ragops.retrieval.fusion import weighted_score_fusion
from ragops.retrieval.rerank import apply_reranker
from ragops.stores.base import SearchHit
from ragops.stores.fusion import reciprocal_rank_fusion
from ragops.synthetic.llm import ChatClient, LLMSettings

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
API_KEY = "sk-answer-test-0123456789"


def hits(*pairs: tuple[str, float]) -> list[SearchHit]:
    return [SearchHit(i, s, {"chunk_id": i}) for i, s in pairs]


# -- fusion --------------------------------------------------------------------------------------
def test_default_fusion_is_the_stores_rrf():
    dense, keyword = hits(("a", 0.9), ("b", 0.8), ("c", 0.1)), hits(("c", 12.0), ("d", 3.0), ("a", 1.0))
    assert [h.id for h in fuse(dense, keyword, DEFAULT_FUSION, k=4)] == \
        [h.id for h in reciprocal_rank_fusion(dense, keyword, alpha=0.5, k=4)]


def test_weighted_fusion_uses_score_margins_that_rrf_ignores():
    # keyword: "c" wins by a mile; dense: "a" barely leads. RRF sees two first places and
    # breaks the tie by id; weighted fusion sees the margins.
    dense, keyword = hits(("a", 0.61), ("c", 0.60), ("b", 0.10)), hits(("c", 30.0), ("a", 2.0), ("b", 1.0))
    weighted = weighted_score_fusion(dense, keyword, alpha=0.5, k=3)
    assert [h.id for h in weighted] == ["c", "a", "b"]
    assert weighted[0].score == pytest.approx(0.5 * (0.60 - 0.10) / 0.51 + 0.5 * 1.0)
    assert [h.id for h in weighted_score_fusion(dense, keyword, alpha=1.0, k=3)] == ["a", "c", "b"]


def test_weighted_fusion_of_the_head_does_not_depend_on_list_depth():
    dense = hits(*[(f"d{i}", 1.0 - i / 100) for i in range(90)])
    keyword = hits(*[(f"d{(i * 7) % 90}", 50.0 - i / 3) for i in range(90)])
    shallow = weighted_score_fusion(dense[:30], keyword[:30], alpha=0.4, k=10)
    deep = weighted_score_fusion(dense, keyword, alpha=0.4, k=10)
    assert [(h.id, round(h.score, 9)) for h in shallow] == [(h.id, round(h.score, 9)) for h in deep]


def test_fusion_config_is_validated_and_read_from_collection_params():
    with pytest.raises(InvalidInput, match="method"):
        FusionConfig("sum")
    with pytest.raises(InvalidInput, match="alpha"):
        FusionConfig("weighted", 1.5)
    assert fusion_of({}) == DEFAULT_FUSION
    assert fusion_of({"retrieval": {"fusion": {"method": "weighted", "alpha": 0.3}}}) == FusionConfig("weighted", 0.3)
    assert FusionConfig.from_dict(FusionConfig("rrf", 0.7, 10).as_dict()) == FusionConfig("rrf", 0.7, 10)


# -- spans ---------------------------------------------------------------------------------------
def test_spans_point_at_every_chunk_of_real_chunked_documents(base_model_path):
    from ragops.chunking import ChunkingConfig, chunk_document
    from ragops.embedding import load_tokenizer
    from ragops.sources import load_source

    tokenizer = load_tokenizer(base_model_path)
    docs = load_source({"type": "folder", "name": "fx", "path": str(FIXTURE_CORPUS)}).documents
    assert docs
    for strategy in ("structure", "fixed"):
        config = ChunkingConfig(strategy=strategy, chunk_size=48, chunk_overlap=12, max_tokens=128)
        for doc in docs:
            chunks = chunk_document(doc, config, tokenizer)
            spans = chunk_spans(doc.text, [c.text for c in chunks])
            for chunk, span in zip(chunks, spans, strict=True):
                assert span is not None, (strategy, doc.doc_id, chunk.position)
                assert " ".join(doc.text[span[0]:span[1]].split()) == " ".join(chunk.text.split())


def test_spans_follow_document_order_for_repeated_text():
    doc = "Intro.\n\nSame text here.\n\nMiddle part.\n\nSame   text\nhere."
    assert chunk_spans(doc, ["Same text here.", "Middle part.", "Same text here."]) == [(8, 23), (25, 37), (39, 56)]
    assert chunk_spans(doc, ["not in the document"]) == [None]


# -- the rerank stage ----------------------------------------------------------------------------
def make_hit(n: int, text: str, similarity: float | None = 0.6, doc: str = "fx:doc.md") -> Hit:
    citation = Citation(chunk_id=f"c{n}", doc_id=doc, source="fx", location=f"/docs/{doc}", title="Doc",
                        heading_path=f"Doc > Section {n}", char_start=n * 100, char_end=n * 100 + len(text), position=n)
    scores = {"dense": similarity} if similarity is not None else {}
    return Hit(rank=n, chunk_id=f"c{n}", score=1.0 / n, text=text, title=f"Section {n}", citation=citation,
               scores=scores)


def test_identity_reranker_keeps_order_and_a_reranker_may_not_invent_hits():
    candidates = [make_hit(i, f"text {i}") for i in (1, 2, 3)]
    assert [h.chunk_id for h in apply_reranker(IdentityReranker(), "q", candidates)] == ["c1", "c2", "c3"]

    class Reverse:
        name = "reverse"

        def rerank(self, query, hits):
            return list(reversed(hits))

    reranked = apply_reranker(Reverse(), "q", candidates)
    assert [(h.rank, h.chunk_id) for h in reranked] == [(1, "c3"), (2, "c2"), (3, "c1")]

    class Inventive:
        name = "inventive"

        def rerank(self, query, hits):
            return [*hits, make_hit(9, "not a candidate")]

    with pytest.raises(ValueError, match="not one of the candidates"):
        apply_reranker(Inventive(), "q", candidates)


# -- answers -------------------------------------------------------------------------------------
PASSAGES = [
    make_hit(1, "Point-in-time recovery replays archived WAL files. Stop the server before restoring.", 0.62),
    make_hit(2, "Snapshots are taken with ternctl snapshot create. They are stored in the archive.", 0.48),
    make_hit(3, "The admin port exposes Prometheus metrics under /metrics.", 0.21),
]


def test_citations_outside_the_passages_are_removed_and_reported():
    text, cited, removed = check_citations("WAL is replayed [1]. Snapshots [2, 7]. Made up [9]. Also [Passage 3].", 3)
    assert text == "WAL is replayed [1]. Snapshots [2]. Made up. Also [3]."
    assert cited == [1, 2, 3] and removed == [7, 9]


def test_extractive_answer_cites_its_sentences_and_names_the_fallback():
    reply = extractive_answer("how do I restore archived WAL files", PASSAGES, reason="no LLM here")
    assert reply.kind == EXTRACTIVE and reply.fallback == {"service": "LLM", "using": "extractive answer",
                                                           "reason": "no LLM here"}
    assert "replays archived WAL files. [1]" in reply.text and "before restoring. [1]" in reply.text
    numbers = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", reply.text)}
    assert numbers == {c.n for c in reply.citations} and numbers <= {1, 2, 3}
    assert all(c.hit is PASSAGES[c.n - 1] for c in reply.citations)


def test_no_llm_gives_the_extractive_fallback_and_a_weak_best_passage_gives_i_dont_know():
    reply = answer("how do I restore the archive", PASSAGES, None)
    assert reply.kind == EXTRACTIVE and "no ragops_llm endpoint" in reply.fallback["reason"]
    weak = [make_hit(1, "Unrelated text about cakes.", 0.05)]
    reply = answer("how do I restore the archive", weak, None)
    assert reply.kind == UNKNOWN and reply.citations == [] and "don't know" in reply.text
    assert answer("anything", [], None).kind == UNKNOWN
    with pytest.raises(InvalidInput, match="question"):
        answer("  ", PASSAGES, None)


@pytest.fixture
def llm():
    with LLMTestServer(api_key=API_KEY) as server:
        client = ChatClient(LLMSettings(base_url=server.base_url, api_key=API_KEY, model="test-model",
                                        max_attempts=2, max_wait_s=0.1), sleep=lambda s: None)
        yield server, client
        client.close()


def test_generated_answer_cites_passages_that_map_to_their_hits(llm):
    server, client = llm
    reply = answer("how do I restore a backup", PASSAGES, client)
    assert reply.kind == GENERATED and reply.fallback is None and reply.model == "test-model"
    assert reply.text.startswith("Point-in-time recovery replays archived WAL files. [1]")
    assert [c.n for c in reply.citations] == [1, 2]
    assert [c.as_dict()["chunk_id"] for c in reply.citations] == ["c1", "c2"]
    assert reply.prompt_version.startswith("answer.v1@")
    prompt = server.requests[-1]["messages"][1]["content"]
    assert "[1] Doc > Section 1\nPoint-in-time" in prompt and "[3] Doc > Section 3" in prompt


def test_a_model_citing_passages_it_was_not_given_has_them_removed(llm):
    server, client = llm
    server.enqueue(Reply(content=json.dumps({"answer": "Replay the WAL [1][4]. Use snapshots [2, 12]."})))
    reply = answer("how do I restore a backup", PASSAGES, client)
    assert reply.text == "Replay the WAL [1]. Use snapshots [2]."
    assert reply.removed_citations == [4, 12] and [c.n for c in reply.citations] == [1, 2]


def test_a_model_that_finds_no_answer_says_so_and_a_failing_model_falls_back(llm):
    server, client = llm
    server.enqueue(Reply(content=json.dumps({"answer": None})))
    assert answer("how do I restore a backup", PASSAGES, client).kind == UNKNOWN
    server.enqueue(Reply(status=500), Reply(status=500))
    reply = answer("how do I restore a backup", PASSAGES, client)
    assert reply.kind == EXTRACTIVE and "InternalServerError" in reply.fallback["reason"]
    server.enqueue(Reply(content="not json"))
    assert answer("how do I restore a backup", PASSAGES, client).kind == EXTRACTIVE
