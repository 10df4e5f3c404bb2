"""Hostile input at the loader level: every readable file becomes a document, every unreadable one is
named with its reason, nothing outside the root is read, and nothing raises but a SourceError."""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest

from ragops.documents import Document
from ragops.hashing import hash_many
from ragops.sources import SourceError, load_source
from tests.hostile.conftest import MAX_BYTES, SECRET


def folder(path, name, root, **extra):
    return {"type": "folder", "path": str(path), "name": name, "root": str(root), **extra}


def doc_id(source: str, rel: str) -> str:
    return f"{source}:{unicodedata.normalize('NFC', rel)}"


def assert_indexable(docs: list[Document]) -> None:
    """What indexing does with documents: a snapshot hash, a Parquet-able table, chunk ids."""
    rows = [d.to_row() for d in docs]
    assert len(hash_many(f"{r['doc_id']}:{r['content_hash']}" for r in rows)) == 64
    pa.Table.from_pylist(rows)  # Arrow refuses strings that are not valid UTF-8


def test_every_readable_file_loads_and_every_other_is_named(hostile, no_reads_outside):
    result = load_source(folder(hostile.main, "main", hostile.root), on_error="skip", max_bytes=MAX_BYTES)

    docs = {d.doc_id: d for d in result.documents}
    assert sorted(docs) == sorted(doc_id("main", rel) for rel in hostile.expected_docs)
    for rel, must_contain in hostile.expected_docs.items():
        text = " ".join(docs[doc_id("main", rel)].text.split())
        assert must_contain in text, rel
        assert "\r" not in docs[doc_id("main", rel)].text

    assert {e.path: e.reason for e in result.errors} == hostile.expected_errors
    for error in result.errors:
        assert error.path in error.message and "Traceback" not in error.message
    assert {s.path: s.reason for s in result.skipped} == hostile.expected_skipped

    assert not any(SECRET in d.text or SECRET in d.title for d in result.documents)
    assert_indexable(result.documents)


def test_the_same_relative_names_in_two_sources_do_not_collide(hostile):
    main = load_source(folder(hostile.main, "main", hostile.root), max_bytes=MAX_BYTES).documents
    twin = load_source(folder(hostile.twin, "twin", hostile.root), max_bytes=MAX_BYTES).documents
    assert {d.doc_id for d in twin} == {"twin:über-uns.md", "twin:bom.md"}
    assert not {d.doc_id for d in main} & {d.doc_id for d in twin}
    assert {d.metadata["path"] for d in twin} == {"über-uns.md", "bom.md"}


def test_names_equal_after_normalization_are_one_id_and_the_second_is_named(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "señor.md"), unicodedata.normalize("NFD", "señor.md")
    (tmp_path / nfc).write_text("# A\n\nComposed.\n")
    (tmp_path / nfd).write_text("# B\n\nDecomposed.\n")
    result = load_source(folder(tmp_path, "n", tmp_path))
    assert [d.doc_id for d in result.documents] == ["n:señor.md"]
    assert [(e.reason, e.path) for e in result.errors] == [("duplicate_id", nfc)]


def test_on_error_fail_raises_a_source_error_naming_the_file(hostile):
    with pytest.raises(SourceError) as info:
        load_source(folder(hostile.main, "main", hostile.root), on_error="fail", max_bytes=MAX_BYTES)
    assert info.value.path in hostile.expected_errors
    assert info.value.reason == hostile.expected_errors[info.value.path]


def test_file_count_and_total_size_limits_stop_the_source_with_a_clear_error(tmp_path):
    for i in range(5):
        (tmp_path / f"page{i}.md").write_text(f"# Page {i}\n\n" + "text " * 200)
    spec = folder(tmp_path, "limits", tmp_path)
    assert len(load_source(spec, max_files=5).documents) == 5
    with pytest.raises(SourceError, match=r"more than max_files=4") as info:
        load_source(spec, max_files=4)
    assert info.value.reason == "too_many_files"
    with pytest.raises(SourceError, match=r"max_total_bytes=3000") as info:
        load_source(spec, max_total_bytes=3000)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(("kwargs", "named"), [({"max_files": 0}, "max_files"),
                                               ({"max_total_bytes": -1}, "max_total_bytes"),
                                               ({"max_bytes": 10**12}, "max_bytes")])
def test_limits_are_validated(tmp_path, kwargs, named):
    with pytest.raises(SourceError, match=named):
        load_source(folder(tmp_path, "x", tmp_path), **kwargs)


def test_hostile_beir_rows(hostile_beir):
    result = load_source({"type": "beir", "path": str(hostile_beir.folder), "name": "beir:hostile"},
                         on_error="skip", max_bytes=MAX_BYTES)
    docs = {d.doc_id: d for d in result.documents}
    assert sorted(docs) == sorted(hostile_beir.expected_docs)
    for ident, must_contain in hostile_beir.expected_docs.items():
        assert must_contain in docs[ident].text, ident
    assert {int(e.path.rsplit(":", 1)[1]): e.reason for e in result.errors} == hostile_beir.expected_errors
    for error in result.errors:
        assert error.path in error.message or f"line {error.path.rsplit(':', 1)[1]}" in error.message
    assert_indexable(result.documents)


def test_beir_corpus_total_size_is_bounded(hostile_beir):
    with pytest.raises(SourceError, match="max_total_bytes") as info:
        load_source({"type": "beir", "path": str(hostile_beir.folder)}, max_bytes=MAX_BYTES, max_total_bytes=1000)
    assert info.value.reason == "too_large"


def test_beir_streams_the_corpus_and_never_holds_an_oversized_line(hostile_beir, monkeypatch):
    """The oversized row is skipped without being read whole: no single read exceeds max_bytes + 1."""
    import builtins

    from ragops.sources import beir

    biggest = [0]

    class Watched:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def readline(self, size=-1):
            line = self.handle.readline(size)
            biggest[0] = max(biggest[0], len(line))
            return line

    monkeypatch.setattr(beir, "open", lambda *a, **k: Watched(builtins.open(*a, **k)), raising=False)  # noqa: SIM115
    load_source({"type": "beir", "path": str(hostile_beir.folder)}, max_bytes=MAX_BYTES)
    assert 0 < biggest[0] <= MAX_BYTES + 1


def test_beir_qrels_ids_are_normalized_like_corpus_ids(hostile_beir):
    from ragops.sources import load_beir_qrels

    assert load_beir_qrels(hostile_beir.folder, "test") == {"q1": {"plain": 1, "café": 1}}
