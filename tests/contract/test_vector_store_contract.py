"""The VectorStore contract, run against every store (tests/contract/conftest.py picks them).

Small random unit vectors (dimension 8, fixed seeds) stand in for embeddings: the contract is about
ids, vectors, aliases and ranking rules, not about a model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragops.stores import (
    CHUNK_PROPERTIES,
    CollectionNotFound,
    VectorObject,
    VectorStore,
    VectorStoreError,
)

DIM = 8
INCLUDE = Path(__file__).resolve().parents[2] / "include"


def make_objects(n: int, *, seed: int = 0, start: int = 0, dim: int = DIM,
                 texts: dict[int, str] | None = None) -> list[VectorObject]:
    """``n`` chunk objects with random unit vectors from a fixed seed; ``texts`` overrides texts by offset."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    objects = []
    for offset in range(n):
        i = start + offset
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ragops-contract-{i}"))
        text = (texts or {}).get(offset, f"common filler words about retrieval systems number {i}")
        props: dict[str, Any] = {
            "chunk_id": object_id, "doc_id": f"doc-{i // 3}", "doc_hash": f"dh{i // 3}",
            "source": f"docs/doc-{i // 3}.md", "title": f"Document {i // 3}", "heading_path": "Intro > Part",
            "position": i % 3, "text": text, "content_hash": f"ch{i}", "token_count": len(text.split()),
        }
        objects.append(VectorObject(id=object_id, properties=props, vector=vectors[offset].tolist()))
    return objects


def filled(store: VectorStore, name: str, n: int = 12, **kwargs: Any) -> list[VectorObject]:
    store.create_collection(name, DIM, {"snapshot": "s1"})
    objects = make_objects(n, **kwargs)
    assert store.upsert(name, objects) == n
    return objects


def assert_vectors_equal(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float32), np.asarray(expected, dtype=np.float32),
                               rtol=1e-6, atol=1e-6)


# collections -----------------------------------------------------------------------------
def test_store_implements_the_protocol(store):
    assert isinstance(store, VectorStore)
    assert store.backend in {"lancedb", "weaviate"}


def test_create_is_idempotent_and_keeps_metadata(store, prefix):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM, {"model": "minilm", "snapshot": "abc"})
    store.create_collection(name, DIM, {"model": "minilm", "snapshot": "abc"})
    assert store.collection_exists(name)
    assert store.list_collections(prefix=prefix) == [name]
    assert store.collection_metadata(name) == {"model": "minilm", "snapshot": "abc", "dimension": DIM}
    assert store.count(name) == 0


def test_create_with_another_dimension_is_refused(store, prefix):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    with pytest.raises(VectorStoreError, match=rf"{name}.*dimension {DIM}.*16"):
        store.create_collection(name, 16)


def test_metadata_survives_reopening(store, prefix, open_store_again):
    name = f"{prefix}Docs_v1"
    filled(store, name, 5)
    store.set_alias(f"{prefix}Live", name)
    again = open_store_again()
    assert again.collection_metadata(name) == {"snapshot": "s1", "dimension": DIM}
    assert again.get_alias(f"{prefix}Live") == name
    assert again.count(f"{prefix}Live") == 5


def test_list_and_delete_versions_by_prefix(store, prefix):
    for version in ("v1", "v2", "v3"):
        store.create_collection(f"{prefix}Docs_{version}", DIM)
    store.create_collection(f"{prefix}Other_v1", DIM)
    versions = store.list_collections(prefix=f"{prefix}Docs_")
    assert versions == [f"{prefix}Docs_v1", f"{prefix}Docs_v2", f"{prefix}Docs_v3"]
    for name in versions[:-1]:
        store.delete_collection(name)
    assert store.list_collections(prefix=f"{prefix}Docs_") == [f"{prefix}Docs_v3"]
    assert store.list_collections(prefix=prefix) == [f"{prefix}Docs_v3", f"{prefix}Other_v1"]
    store.delete_collection(f"{prefix}Docs_v1")  # already gone: a no-op, as in Weaviate
    assert not store.collection_exists(f"{prefix}Docs_v1")


@pytest.mark.parametrize("bad", ["lowercase", "Has-Dash", "1Digit", "", "Space Name", "Ünicode"])
def test_invalid_names_are_rejected_by_name(store, bad):
    for call in (lambda: store.create_collection(bad, DIM), lambda: store.count(bad),
                 lambda: store.set_alias(bad, "Anything"), lambda: store.vector_search(bad, [0.0] * DIM)):
        with pytest.raises(VectorStoreError, match=f"{bad!r} is invalid"):
            call()


def test_missing_collection_error_names_it(store, prefix):
    name = f"{prefix}Missing"
    calls = {
        "count": lambda: store.count(name),
        "fetch": lambda: store.fetch(name, ["x"]),
        "upsert": lambda: store.upsert(name, make_objects(1)),
        "vector_search": lambda: store.vector_search(name, [1.0] + [0.0] * (DIM - 1)),
        "keyword_search": lambda: store.keyword_search(name, "anything"),
        "hybrid_search": lambda: store.hybrid_search(name, "anything", [1.0] + [0.0] * (DIM - 1)),
        "collection_metadata": lambda: store.collection_metadata(name),
        "set_alias": lambda: store.set_alias(f"{prefix}Live", name),
    }
    for call_name, call in calls.items():
        with pytest.raises(CollectionNotFound, match=f"collection '{name}'") as info:
            call()
        assert name in str(info.value), call_name


# objects ---------------------------------------------------------------------------------
def test_upsert_twice_leaves_no_duplicates_and_the_last_write_wins(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 12)
    assert store.upsert(name, objects) == 12
    assert store.count(name) == 12
    changed = VectorObject(id=objects[0].id, properties={**objects[0].properties, "text": "rewritten text"},
                           vector=objects[1].vector)
    store.upsert(name, [changed])
    assert store.count(name) == 12
    [fetched] = store.fetch(name, [objects[0].id])
    assert fetched.properties["text"] == "rewritten text"
    assert_vectors_equal(fetched.vector, objects[1].vector)


def test_upsert_refuses_bad_objects_naming_the_collection(store, prefix):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    [good] = make_objects(1)
    for bad in (VectorObject(good.id, good.properties, vector=None),
                VectorObject(good.id, good.properties, vector=[0.1] * (DIM + 1)),
                VectorObject(good.id, {**good.properties, "not_a_property": 1}, vector=good.vector)):
        with pytest.raises(VectorStoreError, match=name):
            store.upsert(name, [bad])
    assert store.count(name) == 0


def test_fetch_returns_properties_and_vectors_in_the_order_asked(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 6)
    wanted = [objects[4].id, "00000000-0000-0000-0000-000000000000", objects[1].id]
    fetched = store.fetch(name, wanted)
    assert [o.id for o in fetched] == [objects[4].id, objects[1].id]
    for got, expected in zip(fetched, (objects[4], objects[1])):
        assert got.properties == expected.properties
        assert set(got.properties) == set(CHUNK_PROPERTIES)
        assert_vectors_equal(got.vector, expected.vector)
    assert all(o.vector is None for o in store.fetch(name, wanted, include_vectors=False))


def test_iter_objects_yields_every_object_once(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 25)
    seen = list(store.iter_objects(name, include_vectors=True, batch_size=7))
    assert sorted(o.id for o in seen) == sorted(o.id for o in objects)
    by_id = {o.id: o for o in objects}
    for got in seen:
        assert got.properties == by_id[got.id].properties
        assert_vectors_equal(got.vector, by_id[got.id].vector)
    assert all(o.vector is None for o in store.iter_objects(name))


def test_copy_objects_between_versions_preserves_vectors(store, prefix):
    old, new = f"{prefix}Docs_v1", f"{prefix}Docs_v2"
    objects = filled(store, old, 10)
    store.create_collection(new, DIM)
    carried = [o.id for o in objects[:6]]
    assert store.copy_objects(old, new, carried) == 6
    assert store.copy_objects(old, new, carried) == 6  # idempotent: still 6 objects
    assert store.count(new) == 6
    for got in store.fetch(new, carried):
        expected = next(o for o in objects if o.id == got.id)
        assert got.properties == expected.properties
        assert_vectors_equal(got.vector, expected.vector)
    assert store.count(old) == 10


def test_copy_objects_refuses_another_dimension(store, prefix):
    objects = filled(store, f"{prefix}Docs_v1", 2)
    store.create_collection(f"{prefix}Wide_v1", DIM * 2)
    with pytest.raises(VectorStoreError, match="dimension"):
        store.copy_objects(f"{prefix}Docs_v1", f"{prefix}Wide_v1", [objects[0].id])


def test_delete_objects(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 10)
    gone = [o.id for o in objects[:3]]
    assert store.delete_objects(name, [*gone, "00000000-0000-0000-0000-000000000000"]) == 3
    assert store.count(name) == 7
    assert store.fetch(name, gone) == []
    assert store.delete_objects(name, gone) == 0
    assert all(hit.id not in gone for hit in store.vector_search(name, objects[0].vector, k=10))


# queries ---------------------------------------------------------------------------------
def test_vector_search_ranks_the_exact_vector_first(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 30, seed=7)
    for target in (objects[0], objects[17], objects[29]):
        hits = store.vector_search(name, target.vector, k=5)
        assert len(hits) == 5
        assert hits[0].id == target.id
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].properties == target.properties
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_keyword_search_finds_a_rare_word_and_stays_fresh_after_writes(store, prefix):
    name = f"{prefix}Docs_v1"
    objects = filled(store, name, 20, texts={5: "the zymurgy of ancient breweries", 11: "nothing rare here"})
    hits = store.keyword_search(name, "zymurgy", k=5)
    assert [h.id for h in hits] == [objects[5].id]
    assert hits[0].score > 0
    # written after the first keyword query: the index must take the new rows in
    later = make_objects(3, start=100, seed=3, texts={0: "quokka sightings on rottnest", 2: "zymurgy twice: zymurgy"})
    store.upsert(name, later)
    assert [h.id for h in store.keyword_search(name, "quokka", k=5)] == [later[0].id]
    assert {h.id for h in store.keyword_search(name, "zymurgy", k=5)} == {objects[5].id, later[2].id}
    # a rewritten text leaves the old words behind
    store.upsert(name, [VectorObject(later[0].id, {**later[0].properties, "text": "wallaby"}, later[0].vector)])
    assert store.keyword_search(name, "quokka", k=5) == []
    assert store.keyword_search(name, "xylophonist", k=5) == []


def test_keyword_search_also_matches_the_title(store, prefix):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    [obj] = make_objects(1)
    store.upsert(name, [VectorObject(obj.id, {**obj.properties, "title": "Kubernetes operators"}, obj.vector)])
    assert [h.id for h in store.keyword_search(name, "kubernetes", k=3)] == [obj.id]


def test_hybrid_returns_the_union_ranked_by_fusion(store, prefix):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    objects = make_objects(30, seed=11, texts={3: "pangolin migration patterns", 8: "pangolin scales and pangolin diet"})
    query_vector = objects[20].vector
    # object 3 matches the keyword and is also the nearest vector: both lists rank it high
    objects[3] = VectorObject(objects[3].id, objects[3].properties, vector=query_vector)
    store.upsert(name, objects)
    both, keyword_only, vector_only = objects[3].id, objects[8].id, objects[20].id

    hits = store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=0.5)
    ids = [h.id for h in hits]
    assert ids[0] == both
    assert {keyword_only, vector_only} <= set(ids)  # the union: each list contributes its own hits
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    # alpha=1: pure vector ranking; alpha=0: pure keyword ranking
    pure_vector = [h.id for h in store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=1.0)]
    assert pure_vector == [h.id for h in store.vector_search(name, query_vector, k=5)]
    pure_keyword = [h.id for h in store.hybrid_search(name, "pangolin", query_vector, k=5, alpha=0.0)]
    assert set(pure_keyword[:2]) == {both, keyword_only}
    assert vector_only not in pure_keyword[:2]
    # leaning on the vector side puts the vector-only hit above the keyword-only hit, and vice versa
    leaning_vector = [h.id for h in store.hybrid_search(name, "pangolin", query_vector, k=30, alpha=0.9)]
    assert leaning_vector.index(vector_only) < leaning_vector.index(keyword_only)
    leaning_keyword = [h.id for h in store.hybrid_search(name, "pangolin", query_vector, k=30, alpha=0.1)]
    assert leaning_keyword.index(keyword_only) < leaning_keyword.index(vector_only)


def test_hybrid_refuses_alpha_outside_0_1(store, prefix):
    name = f"{prefix}Docs_v1"
    filled(store, name, 3)
    with pytest.raises(VectorStoreError, match="alpha"):
        store.hybrid_search(name, "words", [1.0] + [0.0] * (DIM - 1), alpha=1.5)


# aliases ---------------------------------------------------------------------------------
def test_queries_through_an_alias(store, prefix):
    name, alias = f"{prefix}Docs_v1", f"{prefix}Live"
    objects = filled(store, name, 15, texts={4: "okapi habitat"})
    assert store.set_alias(alias, name) is None
    assert store.count(alias) == 15
    assert store.vector_search(alias, objects[9].vector, k=1)[0].id == objects[9].id
    assert [h.id for h in store.keyword_search(alias, "okapi", k=3)] == [objects[4].id]
    assert store.hybrid_search(alias, "okapi", objects[4].vector, k=3)[0].id == objects[4].id
    assert [o.id for o in store.fetch(alias, [objects[2].id])] == [objects[2].id]
    assert store.collection_metadata(alias)["dimension"] == DIM


def test_alias_swap_repoints_readers_and_returns_the_previous_target(store, prefix, open_store_again):
    blue, green, alias = f"{prefix}Docs_v1", f"{prefix}Docs_v2", f"{prefix}Live"
    filled(store, blue, 4, texts={0: "blue marker"})
    filled(store, green, 9, seed=5, start=50, texts={0: "green marker"})
    reader = open_store_again()  # another process reading through the alias all along
    assert store.set_alias(alias, blue) is None
    assert reader.count(alias) == 4
    assert store.set_alias(alias, green) == blue
    assert store.get_alias(alias) == green
    assert reader.get_alias(alias) == green
    assert reader.count(alias) == 9
    assert reader.keyword_search(alias, "green marker", k=1)[0].properties["text"] == "green marker"
    assert reader.keyword_search(alias, "blue", k=5) == []
    assert store.set_alias(alias, green) == green  # repointing to the same target is a no-op
    assert {a: t for a, t in store.list_aliases().items() if a.startswith(prefix)} == {alias: green}
    store.delete_alias(alias)
    assert store.get_alias(alias) is None
    store.delete_alias(alias)  # already gone: a no-op
    with pytest.raises(CollectionNotFound, match=alias):
        reader.count(alias)


def test_delete_is_refused_while_an_alias_points_at_the_collection(store, prefix):
    name, alias = f"{prefix}Docs_v1", f"{prefix}Live"
    filled(store, name, 3)
    store.set_alias(alias, name)
    with pytest.raises(VectorStoreError, match=rf"'{name}'.*{alias}"):
        store.delete_collection(name)
    assert store.count(name) == 3
    store.delete_alias(alias)
    store.delete_collection(name)
    assert not store.collection_exists(name)


def test_aliases_and_collections_share_one_namespace(store, prefix):
    name, alias = f"{prefix}Docs_v1", f"{prefix}Live"
    store.create_collection(name, DIM)
    store.create_collection(f"{prefix}Docs_v2", DIM)
    with pytest.raises(VectorStoreError, match=name):
        store.set_alias(name, f"{prefix}Docs_v2")
    store.set_alias(alias, name)
    with pytest.raises(VectorStoreError, match=alias):
        store.create_collection(alias, DIM)


# concurrency -----------------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import json, sys
    from ragops.stores import VectorObject
    sys.path.insert(0, sys.argv[3])
    from conftest import StoreSpec
    spec = StoreSpec(**json.loads(sys.argv[1]))
    shard = json.load(open(sys.argv[2]))
    store = spec.open()
    objects = [VectorObject(o["id"], o["properties"], o["vector"]) for o in shard["objects"]]
    for start in range(0, len(objects), shard["batch"]):  # many small commits: many chances to collide
        store.upsert(shard["collection"], objects[start:start + shard["batch"]])
    getattr(store, "close", lambda: None)()
""")


def test_concurrent_writer_processes_lose_nothing(store, store_spec, prefix, tmp_path):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    objects = make_objects(90, seed=21)
    shards = [objects[i::3] for i in range(3)]  # disjoint id sets, as mapped tasks write them
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(INCLUDE), os.environ.get("PYTHONPATH", "")])}
    workers = []
    for number, shard in enumerate(shards):
        path = tmp_path / f"shard{number}.json"
        path.write_text(json.dumps({"collection": name, "batch": 5,
                                    "objects": [asdict(o) for o in shard]}))
        workers.append(subprocess.Popen(
            [sys.executable, "-c", _WRITER, json.dumps(asdict(store_spec)), str(path), str(Path(__file__).parent)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output
    assert store.count(name) == 90
    by_id = {o.id: o for o in objects}
    fetched = store.fetch(name, list(by_id))
    assert len(fetched) == 90
    for got in fetched:
        assert_vectors_equal(got.vector, by_id[got.id].vector)


def test_concurrent_writer_threads_lose_nothing(store, prefix, open_store_again):
    name = f"{prefix}Docs_v1"
    store.create_collection(name, DIM)
    objects = make_objects(60, seed=22)

    def write(shard: list[VectorObject]) -> None:
        handle = open_store_again()
        for start in range(0, len(shard), 4):
            handle.upsert(name, shard[start:start + 4])

    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(write, objects[i::3]) for i in range(3)]:
            future.result()  # re-raises a writer's exception here
    assert store.count(name) == 60
    assert sorted(o.id for o in store.iter_objects(name)) == sorted(o.id for o in objects)
