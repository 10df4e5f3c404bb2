"""The LambdaRank reranker learns an obviously learnable ranking from first-stage features."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ragops.reranking.features import FEATURES, feature_matrix
from ragops.reranking.ltr import LTRConfig, LTRReranker, train_ltr
from ragops.retrieval.hits import Citation, Hit
from ragops.retrieval.rerank import Reranker, apply_reranker

WORDS = ["vacuum", "replication", "backup", "restore", "index", "planner", "wal", "checkpoint", "slot", "archive", "tablespace", "lock"]


def candidates(rng: random.Random, n: int = 10) -> tuple[str, list[Hit], int]:
    """A query of two terms, n hits in first-stage order; the relevant one (at a random rank) is the
    only hit whose title holds both query terms, and it is never the first stage's first."""
    a, b = rng.sample(WORDS, 2)
    relevant = rng.randrange(1, n)
    hits = []
    for i in range(n):
        title = f"{a} {b} settings" if i == relevant else f"{rng.choice(WORDS)} notes"
        dense = 0.8 - 0.03 * i + rng.uniform(-0.01, 0.01)
        hits.append(Hit(rank=i + 1, chunk_id=f"c{i}", score=dense, text=f"some text about {rng.choice(WORDS)}",
                        title=title, citation=Citation(f"c{i}", f"d{i}", "s", None, title, title),
                        scores={"dense": dense, "keyword": rng.uniform(1, 5), "fused": 1 / (60 + i)},
                        properties={"title": title, "heading_path": title, "text": "some text", "position": i}))
    return f"{a} {b}", hits, relevant


def ndcg_at_10(order: list[str], relevant: str) -> float:
    return next((1 / math.log2(r + 2) for r, c in enumerate(order[:10]) if c == relevant), 0.0)


def test_features_are_one_row_per_hit_with_missing_scores_as_nan():
    _, hits, _ = candidates(random.Random(1), 5)
    hits[2] = Hit(**{**hits[2].__dict__, "scores": {"keyword": 3.0}})
    matrix = feature_matrix("vacuum backup", hits)
    assert matrix.shape == (5, len(FEATURES)) and matrix.dtype == np.float32
    col = {name: i for i, name in enumerate(FEATURES)}
    assert math.isnan(matrix[2, col["dense"]]) and math.isnan(matrix[2, col["dense_rank"]])
    assert matrix[0, col["inv_rank"]] == 1.0 and matrix[4, col["position"]] == 4.0
    assert feature_matrix("q", []).shape == (0, len(FEATURES))


def test_lambdarank_learns_a_learnable_ranking_and_round_trips(tmp_path):
    rng = random.Random(7)
    train = [candidates(rng) for _ in range(300)]
    features = np.concatenate([feature_matrix(q, hits) for q, hits, _ in train])
    labels = [int(i == rel) for _, hits, rel in train for i in range(len(hits))]
    booster = train_ltr(features, labels, [len(h) for _, h, _ in train], LTRConfig(trees=50, min_data_in_leaf=5))
    reranker = LTRReranker(booster, "ltr-test")
    assert isinstance(reranker, Reranker)

    test = [candidates(rng) for _ in range(100)]
    first = np.mean([ndcg_at_10([h.chunk_id for h in hits], f"c{rel}") for _, hits, rel in test])
    reranked = [apply_reranker(reranker, q, hits) for q, hits, _ in test]
    learned = np.mean([ndcg_at_10([h.chunk_id for h in r], f"c{rel}") for r, (_, _, rel) in zip(reranked, test)])
    assert learned > 0.95 > first + 0.3, (first, learned)
    one = reranked[0]
    assert [h.rank for h in one] == list(range(1, 11)) and all("rerank" in h.scores for h in one)
    assert sorted(h.chunk_id for h in one) == sorted(h.chunk_id for h in test[0][1])

    folder = reranker.save(tmp_path / "model")
    again = LTRReranker.load(folder, "again")
    q, hits, _ = test[3]
    assert np.allclose(again.scores(q, hits), reranker.scores(q, hits))


def test_training_refuses_groups_that_do_not_match_the_rows():
    with pytest.raises(ValueError, match="groups sum"):
        train_ltr(np.zeros((4, len(FEATURES))), [0, 1, 0, 1], [3])
