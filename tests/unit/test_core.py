"""Unit tests of the small core modules: hashing, config, artifacts, notifier, index params."""

from __future__ import annotations

import pytest

from ragops.artifacts import ArtifactStore
from ragops.config import RagopsSettings, redact
from ragops.documents import Block, Chunk, Document
from ragops.errors import InvalidInput
from ragops.hashing import chunk_object_id, hash_many, hash_object
from ragops.indexing.gate import smoke_query
from ragops.indexing.params import IndexParams
from ragops.indexing.steps import collection_name
from ragops.notify import Notifier


def test_hashes_are_stable_and_order_independent_where_meant():
    assert hash_object({"a": 1, "b": [1, 2]}) == hash_object({"b": [1, 2], "a": 1})
    assert hash_many(["x", "y"]) == hash_many(["y", "x"]) != hash_many(["x"])
    assert chunk_object_id("d", 0, "h") == chunk_object_id("d", 0, "h") != chunk_object_id("d", 1, "h")


def test_document_and_chunk_identity_follow_content():
    doc = Document("a.md", "s", "T", [Block("heading", "T", 1), Block("paragraph", "x")], "markdown")
    same = Document.from_row(doc.to_row())
    assert same.content_hash == doc.content_hash
    changed = Document("a.md", "s", "T", [Block("heading", "T", 1), Block("paragraph", "y")], "markdown")
    assert changed.content_hash != doc.content_hash
    chunk = Chunk("a.md", doc.content_hash, "s", "T", "T", 0, "x")
    moved = Chunk("a.md", doc.content_hash, "s", "T", "T", 1, "x")
    assert chunk.chunk_id != moved.chunk_id and chunk.content_hash == moved.content_hash
    assert chunk.embedding_text == "T\nx"


def test_redact_masks_secret_keys_and_dsn_passwords():
    masked = redact({"api_key": "sk-1", "nested": [{"password": "p"}], "dsn": "postgresql://u:pw@h:5/db",
                     "alias": "Docs"})
    assert masked == {"api_key": "***", "nested": [{"password": "***"}], "dsn": "postgresql://u:***@h:5/db",
                      "alias": "Docs"}


def test_settings_name_every_fallback(tmp_path):
    local = RagopsSettings.from_env({"RAGOPS_LOCAL": str(tmp_path)})
    assert {f.service for f in local.fallbacks} == {"object storage", "Weaviate"}
    prod = RagopsSettings.from_env({"WEAVIATE_URL": "http://w:8080", "RAGOPS_ARTIFACT_ROOT": "s3://c@b/p"})
    assert prod.vector_backend == "weaviate" and prod.fallbacks == []
    assert "secret-key" not in repr(RagopsSettings.from_env({"WEAVIATE_API_KEY": "secret-key"}))


def test_artifact_store_is_atomic_and_confined(tmp_path):
    store = ArtifactStore(tmp_path)
    uri = store.write_json("reports/a.json", {"k": 1})
    assert store.read_json("reports/a.json") == {"k": 1} and uri.endswith("reports/a.json")
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]  # no temp leftovers
    with pytest.raises(ValueError, match="stay inside"):
        store.write_bytes("../escape", b"x")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        store.read_bytes("missing.json")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"123")
    store.upload_dir(tmp_path / "model", "models/m1")
    assert store.download_dir("models/m1", tmp_path / "copy").joinpath("w.bin").read_bytes() == b"123"


def test_notifier_logs_records_and_survives_a_broken_channel(registry):
    sent = []

    def broken(title, message):
        raise ConnectionError("slack down")

    notifier = Notifier(registry, {"slack": broken, "email": lambda t, m: sent.append((t, m))})
    run = registry.start_run("d", "r")
    reached = notifier.alert("gate failed", "bad", run_key=run, context={"token": "t0k3n"})
    assert reached == ["log", "email", "registry"]
    (alert,) = registry.alerts(run)
    assert alert["title"] == "gate failed"
    assert alert["context"] == {"token": "***", "channel_errors": {"slack": "ConnectionError: slack down"}}
    assert sent and "t0k3n" not in sent[0][1]


def test_index_params_validate_and_name_the_bad_param():
    with pytest.raises(InvalidInput, match="chunk_overlap"):
        IndexParams(sources=[{"type": "folder"}], chunk_size=16, chunk_overlap=16)
    with pytest.raises(InvalidInput, match="mode='sometimes'"):
        IndexParams(sources=[{"type": "folder"}], mode="sometimes")
    with pytest.raises(InvalidInput, match=r"unknown IndexParams params: \['chunk_sise'\]"):
        IndexParams.from_mapping({"sources": [{}], "chunk_sise": 3})
    with pytest.raises(InvalidInput, match="alias='lower'"):
        IndexParams(sources=[{"type": "folder"}], alias="lower")
    with pytest.raises(InvalidInput, match="chunk_size=8.*minimum.*batch_size=0"):
        IndexParams.from_mapping({"chunk_size": 8, "chunk_overlap": 0, "batch_size": 0})
    assert collection_name("Docs", "ab" * 32) == "Docs_abababababab"


def test_smoke_query_is_the_first_sentence():
    # A first sentence under 20 characters is too vague on its own: the query runs on to the next one.
    assert smoke_query({"text": "WAL is a log. It is written first."}) == "WAL is a log. It is written first."
    assert smoke_query({"text": "Write-ahead logging ensures integrity. More follows here."}) == \
        "Write-ahead logging ensures integrity."
    # The heading tells repeated boilerplate sentences apart.
    assert smoke_query({"title": "CREATE TABLE", "text": "This command conforms to the SQL standard. More."}) == \
        "CREATE TABLE: This command conforms to the SQL standard."
