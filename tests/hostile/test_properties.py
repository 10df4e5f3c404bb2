"""Property tests: hashing, ids, loaders and chunking over arbitrary Unicode names and contents.

Every string Python can hold must hash and make an id; every file name a filesystem can hold
must load or be named in the errors with a reason; chunking never loses text or raises.
"""

from __future__ import annotations

import codecs
import os
import tempfile
import unicodedata
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragops.documents import Block, Document
from ragops.hashing import chunk_object_id, deterministic_uuid, hash_many, sha256_text
from ragops.sources import load_source
from ragops.sources.core import printable

# Any code point, surrogates included: os.walk hands undecodable names over as lone surrogates.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
# RAGOPS_HYPOTHESIS_EXAMPLES=1000 for a deeper search than the CI default.
EXAMPLES = int(os.environ.get("RAGOPS_HYPOTHESIS_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(ANY_TEXT, max_size=8))
def test_hash_many_takes_any_string_in_any_order(items):
    digest = hash_many(items)
    assert len(digest) == 64 and digest == hash_many(list(reversed(items)))


@FAST
@given(ANY_TEXT, ANY_TEXT)
def test_distinct_members_give_distinct_snapshots(a, b):
    if a != b:
        assert hash_many([a]) != hash_many([b])


@FAST
@given(st.lists(ANY_TEXT, max_size=4), st.lists(ANY_TEXT, max_size=4))
def test_snapshots_of_different_sets_differ(a, b):
    # A member holding the separator ("a\nb") must not read as two members ("a", "b").
    if sorted(a) != sorted(b):
        assert hash_many(a) != hash_many(b)


def test_ascii_snapshots_keep_their_old_hashes():
    import hashlib

    assert hash_many(["b:2", "a:1"]) == hashlib.sha256(b"a:1\nb:2\n").hexdigest()


@FAST
@given(ANY_TEXT)
def test_uuid_matches_rfc_4122_uuid5(name):
    from ragops.hashing import RAGOPS_NAMESPACE

    try:
        expected = str(uuid.uuid5(RAGOPS_NAMESPACE, name))
    except UnicodeEncodeError:  # the standard library refuses lone surrogates; we must not
        expected = None
    got = deterministic_uuid(name)
    assert uuid.UUID(got).version == 5 and (expected is None or got == expected)


@FAST
@given(ANY_TEXT, st.integers(min_value=0, max_value=10**6), ANY_TEXT)
def test_object_ids_are_stable_uuids_for_any_id(doc_id, position, text):
    first = chunk_object_id(doc_id, position, sha256_text(text))
    assert uuid.UUID(first).version == 5
    assert first == chunk_object_id(doc_id, position, sha256_text(text))
    assert deterministic_uuid(doc_id) == deterministic_uuid(doc_id)


def test_the_first_failure_of_issue_9_a_german_file_name():
    assert len(hash_many(["über-uns.md:0f3a", "index.md:77"])) == 64


# -- loaders ----------------------------------------------------------------------------------------

def _fits(name: str) -> bool:
    data = name.encode("utf-8", "surrogateescape")
    return name not in (".", "..") and len(data) <= 240


# Names as a filesystem holds them: any characters but "/" and NUL, or raw bytes that are not UTF-8.
TEXT_NAMES = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=30)
BYTE_NAMES = st.binary(min_size=1, max_size=30).filter(lambda b: b"/" not in b and b"\x00" not in b).map(os.fsdecode)
NAMES = st.one_of(TEXT_NAMES, BYTE_NAMES).filter(_fits)
TEXTS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=300)
CONTENTS = st.one_of(
    TEXTS.map(lambda t: ("utf-8", t, t.encode())),
    TEXTS.map(lambda t: ("utf-16", t, codecs.BOM_UTF16_LE + t.encode("utf-16-le"))),
    TEXTS.map(lambda t: ("utf-8-sig", t, codecs.BOM_UTF8 + t.replace("\n", "\r\n").encode())),
    st.binary(max_size=200).map(lambda b: ("bytes", None, b)),
)


@FAST
@given(NAMES, st.sampled_from([".md", ".txt", ".rst", ".html", ".htm"]), CONTENTS)
def test_any_file_loads_or_is_named_with_a_reason(name, suffix, content):
    _, text, data = content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}{suffix}"
        path.write_bytes(data)
        result = load_source({"type": "folder", "path": tmp, "name": "p"}, on_error="skip")
    rel = printable(f"{name}{suffix}")
    named = [e for e in result.errors + result.skipped if e.path == rel]
    assert len(result.documents) + len(named) == 1, (result.documents, result.errors, result.skipped)
    for error in named:
        assert rel in error.message and error.reason
    for doc in result.documents:
        assert doc.doc_id == "p:" + unicodedata.normalize("NFC", rel)
        assert "\r" not in doc.text
        pa.Table.from_pylist([doc.to_row()])  # valid UTF-8 throughout: Arrow, JSON and Postgres take it
        assert len(hash_many([f"{doc.doc_id}:{doc.content_hash}"])) == 64
    if suffix == ".txt" and text is not None and text.strip():
        # Plain text is never lost: every word of the file is in the document.
        (doc,) = result.documents
        assert doc.text.split() == text.split()


# -- chunking ---------------------------------------------------------------------------------------

BLOCKS = st.lists(st.builds(lambda kind, text, level: Block(kind, text, level if kind == "heading" else 0),
                            st.sampled_from(["heading", "paragraph", "code", "list", "table"]),
                            st.text(min_size=1, max_size=400), st.integers(1, 6)),
                  min_size=1, max_size=6)


@pytest.fixture(scope="module")
def tokenizer(base_model_path):
    from ragops.embedding import load_tokenizer

    return load_tokenizer(base_model_path)


@settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(NAMES, st.text(max_size=80), BLOCKS, st.sampled_from(["structure", "fixed"]))
def test_chunking_any_unicode_document(tokenizer, doc_id, title, blocks, strategy):
    from ragops.chunking import ChunkingConfig, chunk_document

    doc = Document(doc_id=printable(doc_id), source="p", title=title, blocks=blocks, format="markdown")
    config = ChunkingConfig(strategy=strategy, chunk_size=48, chunk_overlap=8, max_tokens=64)
    chunks = chunk_document(doc, config, tokenizer)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert [c.chunk_id for c in chunk_document(doc, config, tokenizer)] == [c.chunk_id for c in chunks]
    for chunk in chunks:
        assert chunk.text.strip() and chunk.token_count <= config.max_tokens
    # Nothing the model can see is dropped: every character of the body that makes a token is in
    # some chunk (chunks may split words, never lose them; control characters make no token).
    body = {ch for b in blocks if b.kind != "heading" for ch in b.text if not ch.isspace()}
    seen = {ch for ch in body if tokenizer(ch, add_special_tokens=False)["input_ids"]}
    kept = {ch for c in chunks for ch in c.text + c.heading_path}
    assert seen <= kept
