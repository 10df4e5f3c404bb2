"""Query filters (counted per filter), the round-trip filter and hard-negative mining with the real model."""

from __future__ import annotations

from tests.unit.synthetic_corpus import chunk_rows

from ragops.documents import embedding_text_of
from ragops.synthetic.filters import (
    FilterConfig,
    apply_filters,
    copies_passage,
    local_retriever,
    near_duplicate_mask,
    round_trip_filter,
)
from ragops.synthetic.negatives import local_searcher, mine_hard_negatives

PASSAGE = "PostgreSQL keeps old row versions after updates and deletes. The VACUUM command reclaims the space."


def rec(query: str, positive: str = PASSAGE, chunk_id: str = "c1", doc_id: str = "d1") -> dict:
    return {"query": query, "positive": positive, "chunk_id": chunk_id, "doc_id": doc_id}


def test_each_filter_drops_and_counts():
    records = [
        rec(""), rec("   "),                                               # empty
        rec("vacuum"), rec("what vacuum"),                                  # too short (< 3 words)
        rec(" ".join(["word"] * 70)),                                       # too long
        rec("The VACUUM command reclaims the space"),                       # substring of the passage
        rec("postgresql keeps old row versions after updates and deletes daily"),  # nearly all 4-grams copied
        rec("why does postgres need vacuum to reclaim space"),              # kept
        rec("Why does Postgres need VACUUM to reclaim space?"),             # same normalised text
        rec("why does postgres need vacuum to reclaim the space"),          # token Jaccard 8/9 >= 0.85
        rec("how are dead row versions cleaned up in postgres"),            # kept
    ]
    kept, counts = apply_filters(records, FilterConfig(min_words=3, max_words=64, near_duplicate_jaccard=0.85))
    assert counts == {"empty": 2, "too_short": 2, "too_long": 1, "copies_passage": 2, "near_duplicate": 2,
                      "round_trip": 0}
    assert [r["query"] for r in kept] == ["why does postgres need vacuum to reclaim space",
                                          "how are dead row versions cleaned up in postgres"]


def test_copy_check_allows_shared_vocabulary():
    assert not copies_passage("which command reclaims space from old row versions", PASSAGE)
    assert copies_passage("keeps old row versions after updates", PASSAGE)


def test_near_duplicate_mask_matches_brute_force():
    import itertools
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(12)]
    queries = [" ".join(rng.sample(vocab, rng.randint(3, 8))) for _ in range(300)]
    mask = near_duplicate_mask(queries, 0.7)
    # brute force: a query is a duplicate when it matches an earlier NON-duplicate query
    sets = [set(q.split()) for q in queries]
    kept: list[int] = []
    expected = []
    for i, s in enumerate(sets):
        dup = any(len(s & sets[j]) / len(s | sets[j]) >= 0.7 for j in kept)
        expected.append(dup)
        if not dup:
            kept.append(i)
    assert mask == expected
    assert any(mask) and not all(mask)
    assert list(itertools.islice(mask, 1)) == [False]


def test_round_trip_keeps_queries_that_find_their_chunk(embedder):
    chunks = chunk_rows()
    retrieve = local_retriever(embedder, chunks)
    by_heading = {c["heading_path"]: c for c in chunks}
    good = rec("how does postgres prevent transaction id wraparound",
               chunk_id=by_heading["Routine vacuuming > Transaction ID wraparound"]["chunk_id"])
    wrong = rec("how does postgres prevent transaction id wraparound",
                chunk_id=by_heading["Pools > Priority weights"]["chunk_id"])
    kept, dropped = round_trip_filter([good, wrong], retrieve, k=1)
    assert kept == [good] and dropped == 1


def test_hard_negatives_come_from_other_documents(embedder):
    chunks = chunk_rows()
    target = next(c for c in chunks if c["heading_path"] == "Index types > GIN indexes")
    records = [rec("which index type suits arrays and full text search", positive=embedding_text_of(target),
                   chunk_id=target["chunk_id"], doc_id=target["doc_id"])]
    mined, count = mine_hard_negatives(records, embedder, local_searcher(embedder, chunks), k=5)
    assert count == 1
    negative_chunk = next(c for c in chunks if c["chunk_id"] == mined[0]["negative_chunk_id"])
    assert negative_chunk["doc_id"] != target["doc_id"]
    assert mined[0]["negative"] == embedding_text_of(negative_chunk)
    # nothing foreign in the top k: no negative rather than a false one
    only_own = [c for c in chunks if c["doc_id"] == target["doc_id"]]
    mined, count = mine_hard_negatives(records, embedder, local_searcher(embedder, only_own), k=5)
    assert count == 0 and mined[0]["negative"] is None
