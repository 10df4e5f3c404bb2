"""Weaviate's own hybrid query (``hybrid_search(..., fusion="server")``) on a real server.

The contract suite checks the default, client-side fusion on every store. Here: what the server's
fusion does, pinned down on the same data as the contract's hybrid test. "ranked" is weighted
reciprocal rank fusion with Weaviate's constant (weight / (60 + 0-based rank), i.e.
``ragops.stores.fusion`` with rrf_k=59), "relative_score" fuses min-max normalised scores.
"""

from __future__ import annotations

import pytest
from test_vector_store_contract import DIM, make_objects

from ragops.stores import CollectionNotFound, VectorObject, VectorStoreError
from ragops.stores.fusion import reciprocal_rank_fusion

pytestmark = pytest.mark.weaviate

WEAVIATE_RANKED_K = 59  # Weaviate adds 60 to a 0-based rank; fusion.py adds rrf_k to a 1-based one


@pytest.fixture
def pangolins(weaviate_store, prefix):
    """The contract's hybrid data: one object matching both lists, one keyword-only, one vector-only."""
    name = f"{prefix}Docs_v1"
    weaviate_store.create_collection(name, DIM)
    objects = make_objects(30, seed=11, texts={3: "pangolin migration patterns", 8: "pangolin scales and pangolin diet"})
    query_vector = objects[20].vector
    objects[3] = VectorObject(objects[3].id, objects[3].properties, vector=query_vector)
    weaviate_store.upsert(name, objects)
    return name, query_vector, objects[3].id, objects[8].id, objects[20].id


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_server_ranked_fusion_is_weighted_reciprocal_rank_fusion(weaviate_store, pangolins, alpha):
    name, query_vector, both, _, _ = pangolins
    server = weaviate_store.hybrid_search(name, "pangolin", query_vector, k=10, alpha=alpha,
                                          fusion="server", fusion_type="ranked")
    expected = reciprocal_rank_fusion(weaviate_store.vector_search(name, query_vector, k=30),
                                      weaviate_store.keyword_search(name, "pangolin", k=30),
                                      alpha=alpha, k=10, rrf_k=WEAVIATE_RANKED_K)
    assert [h.id for h in server] == [h.id for h in expected]
    assert [h.score for h in server] == pytest.approx([h.score for h in expected], rel=1e-4)
    assert server[0].id == both
    client = weaviate_store.hybrid_search(name, "pangolin", query_vector, k=10, alpha=alpha)
    assert [h.id for h in client] == [h.id for h in server]  # the constants differ, the ranking does not here
    assert server[0].properties["text"] == "pangolin migration patterns"


def test_server_relative_score_fusion(weaviate_store, pangolins):
    name, query_vector, both, keyword_only, vector_only = pangolins
    hits = weaviate_store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=0.5,
                                        fusion="server", fusion_type="relative_score")
    ids = [h.id for h in hits]
    assert {both, keyword_only, vector_only} <= set(ids)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(0.0 <= h.score <= 1.0 + 1e-6 for h in hits)
    pure_keyword = weaviate_store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=0.0,
                                                fusion="server", fusion_type="relative_score")
    assert [h.id for h in pure_keyword] == [h.id for h in weaviate_store.keyword_search(name, "pangolin", k=5)]
    pure_vector = weaviate_store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=1.0,
                                               fusion="server", fusion_type="relative_score")
    # objects 3 and 20 carry the same vector: both score 1.0, in either order
    assert {h.id for h in pure_vector[:2]} == {both, vector_only}
    assert pure_vector[0].score == pytest.approx(1.0)


def test_server_hybrid_through_an_alias_and_on_a_missing_collection(weaviate_store, pangolins, prefix):
    name, query_vector, both, _, _ = pangolins
    weaviate_store.set_alias(f"{prefix}Live", name)
    hits = weaviate_store.hybrid_search(f"{prefix}Live", "pangolin", query_vector, k=3, fusion="server")
    assert hits[0].id == both
    with pytest.raises(CollectionNotFound, match=f"collection '{prefix}Missing'"):
        weaviate_store.hybrid_search(f"{prefix}Missing", "pangolin", query_vector, fusion="server")


def test_unknown_fusion_settings_are_refused_by_name(weaviate_store, pangolins):
    name, query_vector, _, _, _ = pangolins
    with pytest.raises(VectorStoreError, match="fusion 'rrf'"):
        weaviate_store.hybrid_search(name, "pangolin", query_vector, fusion="rrf")
    with pytest.raises(VectorStoreError, match="fusion_type 'dbsf'"):
        weaviate_store.hybrid_search(name, "pangolin", query_vector, fusion="server", fusion_type="dbsf")
    with pytest.raises(VectorStoreError, match="alpha"):
        weaviate_store.hybrid_search(name, "pangolin", query_vector, alpha=-0.1, fusion="server")
