"""Loaders: the fixture corpus, every kind of bad input (generated in tmp_path), BEIR, and real
pages of the PostgreSQL manual."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ragops.sources import (
    FILE_FORMATS,
    SOURCE_TYPES,
    LoadResult,
    SourceError,
    SourceSpec,
    load_beir_qrels,
    load_beir_queries,
    load_source,
    register_file_format,
)

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifact-dev"


def folder(path: Path, **extra) -> dict:
    return {"type": "folder", "path": str(path), "name": "t", **extra}


@pytest.fixture(scope="module")
def fixture_result() -> LoadResult:
    return load_source({"type": "folder", "path": str(FIXTURE_CORPUS), "name": "fixture"}, on_error="fail")


@pytest.fixture
def good_tree(tmp_path) -> Path:
    root = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, root)
    return root


# -- the fixture corpus ---------------------------------------------------------------------------


def test_fixture_corpus_loads_every_format_sorted_with_source_and_relative_path_ids(fixture_result):
    docs = fixture_result.documents
    ids = [d.doc_id for d in docs]
    assert ids == sorted(ids)
    paths = ["faq.txt", "guides/configuration.rst", "guides/installation.md", "operations/backup.md",
             "operations/monitoring.rst", "reference/cli.html", "reference/wal.html", "release-notes.txt"]
    assert ids == [f"fixture:{p}" for p in paths]  # the source name keeps two sources' index.md apart
    assert {d.format for d in docs} == {"markdown", "rst", "html", "text"}
    assert all(d.source == "fixture" for d in docs)
    assert all(d.metadata == {"path": d.doc_id.removeprefix("fixture:"), "format": d.format} for d in docs)
    assert fixture_result.errors == []
    # notes.json has no registered loader and matches no default pattern: ignored, not an error
    assert fixture_result.stats["files_ignored"] == 1
    assert fixture_result.stats["documents"] == 8


def test_markdown_blocks(fixture_result):
    doc = next(d for d in fixture_result.documents if d.metadata["path"] == "guides/installation.md")
    assert doc.title == "Installing Tern"
    kinds = [(b.kind, b.level) for b in doc.blocks]
    assert kinds[0] == ("heading", 1)
    assert ("heading", 2) in kinds
    assert "layout: page" not in doc.text  # YAML front matter is not content
    code = next(b for b in doc.blocks if b.kind == "code")
    assert code.text.count("\n") == 2 and code.text.startswith("curl -fsSL")
    lst = next(b for b in doc.blocks if b.kind == "list")
    assert lst.text.splitlines()[0] == "- Linux (glibc 2.31 or newer) or macOS 13+"
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.text.splitlines()[1] == "client | ternctl version --client | tern 2.4.1"
    # links keep their text, lose their target
    assert doc.blocks[-1].text == "If the server version is missing, the service is not running; see Operations."


def test_rst_sections_become_nested_headings(fixture_result):
    doc = next(d for d in fixture_result.documents if d.metadata["path"] == "guides/configuration.rst")
    assert doc.title == "Configuring Tern"
    headings = [(b.text, b.level) for b in doc.blocks if b.kind == "heading"]
    assert headings == [("Configuring Tern", 1), ("Storage settings", 2), ("Network settings", 2),
                        ("Listening addresses", 3), ("Timeouts", 3)]
    code = next(b for b in doc.blocks if b.kind == "code")  # Sphinx's code-block directive
    assert code.text == "[storage]\ndata_dir = /var/lib/tern\ncache_size = 256\nsync_mode = batch"
    assert any("no effect until the next restart" in b.text for b in doc.blocks)  # the note admonition
    table_doc = next(d for d in fixture_result.documents if d.metadata["path"] == "operations/monitoring.rst")
    table = next(b for b in table_doc.blocks if b.kind == "table")
    assert "tern_cache_hit_ratio | share of reads served from the block cache" in table.text


def test_html_drops_boilerplate_and_keeps_structure(fixture_result):
    cli = next(d for d in fixture_result.documents if d.metadata["path"] == "reference/cli.html")
    assert cli.title == "ternctl command reference"
    for leaked in ("analytics", "font-family", "Download", "Guides", "All rights reserved", "Tern docs"):
        assert leaked not in cli.text
    assert [(b.text, b.level) for b in cli.blocks if b.kind == "heading"] == [
        ("ternctl command reference", 1), ("ternctl get", 2), ("ternctl compact", 2), ("Exit codes", 3)]
    code = next(b for b in cli.blocks if b.kind == "code")
    assert code.text == 'ternctl get user:42\n  {"name": "Ada", "plan": "pro"}'  # internal newlines kept
    assert next(b for b in cli.blocks if b.kind == "table").text.splitlines()[1] == (
        "--max-segments | 8 | merge at most this many segments per pass")

    wal = next(d for d in fixture_result.documents if d.metadata["path"] == "reference/wal.html")
    assert "cookies" not in wal.text and "Home" not in wal.text and "Related" not in wal.text
    # unclosed <p> and <li> tags: lxml repairs them into separate blocks
    assert any(b.kind == "list" and b.text.count("\n") == 2 for b in wal.blocks)
    assert any(b.text.startswith("A checkpoint writes dirty cache pages") for b in wal.blocks)


def test_text_title_is_first_line(fixture_result):
    faq = next(d for d in fixture_result.documents if d.metadata["path"] == "faq.txt")
    assert faq.title == "Frequently asked questions"
    assert faq.blocks[0].kind == "heading"
    assert [b.kind for b in faq.blocks[1:]] == ["paragraph"] * 3
    assert faq.blocks[1].text.startswith("Does Tern support transactions? Yes.")  # lines joined


def test_loading_is_deterministic(fixture_result):
    again = load_source(folder(FIXTURE_CORPUS, name="fixture"))
    assert [d.content_hash for d in again.documents] == [d.content_hash for d in fixture_result.documents]
    assert [d.to_row() for d in again.documents] == [d.to_row() for d in fixture_result.documents]


def test_include_globs_and_git_dirs(good_tree):
    (good_tree / ".git").mkdir()
    (good_tree / ".git" / "README.md").write_text("# not a document\n\nthe git internals\n")
    result = load_source(folder(good_tree, include=["**/*.md"]))
    assert [d.metadata["path"] for d in result.documents] == ["guides/installation.md", "operations/backup.md"]
    result = load_source(folder(good_tree, include=["guides/*"]))
    assert [d.metadata["path"] for d in result.documents] == ["guides/configuration.rst", "guides/installation.md"]
    # a file a pattern selects but no loader reads is an error that names it
    result = load_source(folder(good_tree, include=["operations/*"]))
    assert [(e.path, e.reason) for e in result.errors] == [("operations/notes.json", "unsupported")]


def test_registering_a_new_file_format(good_tree):
    from ragops.documents import Block

    def parse_json(text, path):
        return path.stem, [Block("paragraph", json.loads(text)["this"])]

    register_file_format([".json"], "json", parse_json)
    try:
        result = load_source(folder(good_tree), on_error="fail")
        doc = next(d for d in result.documents if d.metadata["path"] == "operations/notes.json")
        assert doc.format == "json" and doc.text.startswith("file has no registered loader")
    finally:
        FILE_FORMATS.pop(".json")
    assert "folder" in SOURCE_TYPES and "beir" in SOURCE_TYPES


# -- bad inputs -----------------------------------------------------------------------------------


BAD_FILES = {
    "empty.md": (b"", "empty"),
    "blank.txt": (b"   \n\n\t\n", "empty"),
    "binary.md": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    "latin1.txt": ("Caf\u00e9 cr\u00e8me\n".encode("latin-1"), "encoding"),
    "nothing.html": (b"<html><head><title></title></head><body><div><p></div></span></body>", "no_text"),
    "scripts-only.html": (b"<html><body><script>var x = 1;</script><style>p{}</style></body></html>", "no_text"),
    "huge.txt": (b"word " * 3000, "too_large"),
}


@pytest.fixture
def bad_tree(tmp_path) -> Path:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "good.md").write_text("# Good\n\nThis one loads fine.\n")
    for name, (data, _) in BAD_FILES.items():
        (root / name).write_bytes(data)
    return root


def test_bad_inputs_are_skipped_with_errors_naming_each_file(bad_tree):
    result = load_source(folder(bad_tree), on_error="skip", max_bytes=10_000)
    assert [d.metadata["path"] for d in result.documents] == ["good.md"]
    reasons = {e.path: e.reason for e in result.errors}
    assert reasons == {name: reason for name, (_, reason) in BAD_FILES.items()}
    for error in result.errors:
        assert error.path in error.message
    assert "max_bytes=10000" in next(e.message for e in result.errors if e.path == "huge.txt")
    assert result.stats["errors"] == len(BAD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_fails_fast_naming_the_file(tmp_path, name):
    data, reason = BAD_FILES[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(SourceError) as caught:
        load_source(folder(tmp_path), on_error="fail", max_bytes=10_000)
    assert name in str(caught.value)
    assert caught.value.reason == reason and caught.value.path == name


def test_malformed_html_that_still_has_text_loads(tmp_path):
    (tmp_path / "broken.html").write_bytes(
        b"<html><title>Broken page</title><body><h2>Vacuum<p>Reclaims storage <b>occupied by <i>dead tuples."
        b"<table><tr><td>VACUUM FULL<td>rewrites the table</table><pre>VACUUM (VERBOSE) t;\n  done</div>")
    result = load_source(folder(tmp_path), on_error="fail")
    (doc,) = result.documents
    assert doc.title == "Broken page"
    assert doc.blocks[0].kind == "heading" and doc.blocks[0].text.startswith("Vacuum")
    assert "Reclaims storage occupied by dead tuples." in doc.text
    assert any(b.kind == "table" and "VACUUM FULL | rewrites the table" in b.text for b in doc.blocks)
    assert any(b.kind == "code" and b.text == "VACUUM (VERBOSE) t;\n  done" for b in doc.blocks)


def test_invalid_utf8_message_names_the_byte(tmp_path):
    (tmp_path / "notes.md").write_bytes(b"# Title\n\nbad byte here: \xff\xfe end\n")
    with pytest.raises(SourceError, match=r"notes\.md: the file is not valid UTF-8 \(byte 24: b"):
        load_source(folder(tmp_path), on_error="fail")


def test_source_path_outside_its_root_is_refused(tmp_path):
    (tmp_path / "allowed").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.md").write_text("# A\n\ntext\n")
    with pytest.raises(SourceError, match="escapes the allowed root") as caught:
        load_source(folder(tmp_path / "elsewhere", root=str(tmp_path / "allowed")))
    assert str(tmp_path / "elsewhere") in str(caught.value)
    with pytest.raises(SourceError, match="escapes the allowed root"):
        load_source(folder(tmp_path / "allowed" / ".." / "elsewhere", root=str(tmp_path / "allowed")))


def test_symlinks_leaving_the_root_are_errors(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("a file outside the source root\n\nsecret content\n")
    root = tmp_path / "src"
    root.mkdir()
    (root / "ok.txt").write_text("Inside\n\nan ordinary file\n")
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "ok.txt", root / "inner-link.txt")  # a link that stays inside is fine
    result = load_source(folder(root, include=["*"]))
    assert [d.metadata["path"] for d in result.documents] == ["inner-link.txt", "ok.txt"]
    assert sorted((e.path, e.reason) for e in result.errors) == [("link.txt", "escapes_root"),
                                                                  ("linkdir", "escapes_root")]
    assert "secret content" not in "".join(d.text for d in result.documents)
    with pytest.raises(SourceError, match=r"link\.txt: a symlink to .*outside the allowed root"):
        load_source(folder(root), on_error="fail")


def test_spec_validation_names_the_field(tmp_path):
    with pytest.raises(SourceError, match="'type'='ftp' is unknown"):
        load_source({"type": "ftp", "path": str(tmp_path)})
    with pytest.raises(SourceError, match="required field 'path'"):
        load_source({"type": "folder"})
    with pytest.raises(SourceError, match="does not exist"):
        load_source(folder(tmp_path / "missing"))
    with pytest.raises(SourceError, match="on_error"):
        load_source(folder(tmp_path), on_error="ignore")
    spec = SourceSpec.from_value(folder(tmp_path, include="*.md"))
    assert spec.include == ("*.md",) and SourceSpec.from_value(spec.as_dict()) == spec


# -- BEIR -----------------------------------------------------------------------------------------


def test_beir_corpus_queries_and_qrels(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d2", "title": "Second", "text": "beta  text"}\n'
        '{"_id": "d1", "title": "First", "text": "alpha text"}\n'
        "\n"
        '{"_id": "d3", "title": "Broken", "text": \n'
        '{"title": "no id", "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "what is alpha?"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    result = load_source({"type": "beir", "path": str(tmp_path), "name": "beir:toy"})
    assert [(d.doc_id, d.title, d.text, d.format, d.source) for d in result.documents] == [
        ("d1", "First", "alpha text", "beir", "beir:toy"), ("d2", "Second", "beta text", "beir", "beir:toy")]
    assert [(e.path, e.reason) for e in result.errors] == [("corpus.jsonl:4", "invalid_json"),
                                                           ("corpus.jsonl:5", "missing_id")]
    assert "corpus.jsonl line 4" in result.errors[0].message
    with pytest.raises(SourceError, match="corpus.jsonl line 4: invalid JSON"):
        load_source({"type": "beir", "path": str(tmp_path)}, on_error="fail")
    assert load_beir_queries(tmp_path) == {"q1": "what is alpha?"}
    assert load_beir_qrels(tmp_path, "test") == {"q1": {"d1": 1, "d2": 0}}
    with pytest.raises(SourceError, match=r"train\.tsv.*does not exist"):
        load_beir_qrels(tmp_path, "train")


def test_beir_bad_qrels_line_is_named(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(SourceError, match=r"dev\.tsv line 2"):
        load_beir_qrels(tmp_path, "dev")


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").exists(), reason="the shared SciFact copy is absent")
def test_scifact_loads():
    result = load_source({"type": "beir", "path": str(SCIFACT), "name": "beir:scifact"}, on_error="fail")
    assert len(result.documents) == result.stats["lines"] > 1000
    qrels = load_beir_qrels(SCIFACT, "train")
    queries = load_beir_queries(SCIFACT)
    assert set(qrels) <= set(queries)
    ids = {d.doc_id for d in result.documents}
    assert all(doc in ids for rel in qrels.values() for doc in rel)


# -- the real PostgreSQL manual -------------------------------------------------------------------


def _pg_docs() -> Path | None:
    from ragops.demo_corpus import DemoCorpusMissing, find_pg_docs

    try:
        return find_pg_docs()
    except DemoCorpusMissing:
        return None


PG_DOCS = _pg_docs()
needs_pg_docs = pytest.mark.skipif(PG_DOCS is None, reason="the demo corpus is absent: "
                                   "apt-get install postgresql-doc-15")
PG_PAGES = ["tutorial-select.html", "tutorial-join.html", "tutorial-agg.html", "tutorial-transactions.html",
            "sql-select.html", "sql-createindex.html", "sql-vacuum.html", "datatype-numeric.html",
            "datatype-json.html", "indexes-types.html", "indexes-partial.html", "mvcc-intro.html",
            "backup-dump.html", "functions-string.html", "app-psql.html", "runtime-config-wal.html",
            "ddl-constraints.html", "queries-with.html", "textsearch-intro.html", "tutorial-sql.html",
            "tutorial-window.html", "bookindex.html"]


@needs_pg_docs
def test_postgres_manual_pages_load_cleanly():
    result = load_source({"type": "folder", "path": str(PG_DOCS), "name": "pgdocs", "include": PG_PAGES},
                         on_error="fail")
    docs = {d.metadata["path"]: d for d in result.documents}
    # table-of-contents pages hold nothing but navigation once it is removed: skipped, not errors
    assert sorted(s.path for s in result.skipped) == ["bookindex.html", "tutorial-sql.html"]
    assert len(docs) == len(PG_PAGES) - 2
    select = docs["tutorial-select.html"]
    assert select.title == "2.5. Querying a Table"
    assert select.blocks[0] == type(select.blocks[0])("heading", "2.5. Querying a Table", 2)
    assert any(b.kind == "code" and b.text == "SELECT * FROM weather;" for b in select.blocks)
    ref = docs["sql-select.html"]
    assert ref.title == "SELECT"
    assert {"Synopsis", "Description", "Parameters", "Examples"} <= {b.text for b in ref.blocks
                                                                     if b.kind == "heading"}
    numeric = docs["datatype-numeric.html"]
    assert "8.1.1. Integer Types" in [b.text for b in numeric.blocks if b.kind == "heading" and b.level == 3]
    assert any(b.kind == "table" and b.text.startswith("Name | Storage Size | Description | Range")
               for b in numeric.blocks)
    for doc in docs.values():
        assert doc.title and not doc.title.startswith("Prev")
        headings = [b for b in doc.blocks if b.kind == "heading"]
        assert headings, f"{doc.doc_id} has no heading"
        if doc.title not in {"SELECT", "CREATE INDEX", "VACUUM", "psql"}:  # reference pages open otherwise
            assert headings[0].text == doc.title
        for block in doc.blocks:
            if block.kind == "code":
                continue
            # the DocBook navigation header/footer ("Prev Up Next", "Home") must not leak
            assert block.text not in {"Prev", "Next", "Up", "Home"}
            assert "Prev Up" not in block.text and "Up Next" not in block.text
            assert "PostgreSQL 15" not in block.text or "Documentation" not in block.text
            assert "Table of Contents" not in block.text


# -- the demo corpus spec -------------------------------------------------------------------------


def test_demo_corpus_missing_says_how_to_install(tmp_path):
    from ragops.demo_corpus import DemoCorpusMissing, demo_source_spec

    with pytest.raises(DemoCorpusMissing, match="apt-get install postgresql-doc-15"):
        demo_source_spec(subset=5, path=tmp_path)


def test_demo_subset_is_deterministic_and_prefers_core_chapters(tmp_path):
    from ragops.demo_corpus import demo_pages, demo_source_spec

    for name in ("index.html", "tutorial-join.html", "app-psql.html", "sql-select.html", "acronyms.html"):
        (tmp_path / name).write_text(f"<html><title>{name}</title><body><p>page {name}</p></body></html>")
    assert demo_pages(tmp_path, 2) == ["sql-select.html", "tutorial-join.html"]
    assert demo_pages(tmp_path, None) == sorted(p.name for p in tmp_path.glob("*.html"))
    spec = demo_source_spec(subset=3, path=tmp_path)
    assert spec["include"] == ["acronyms.html", "sql-select.html", "tutorial-join.html"]
    assert spec == demo_source_spec(subset=3, path=tmp_path)
    assert [d.metadata["path"] for d in load_source(spec).documents] == spec["include"]
    assert demo_source_spec(subset=None, path=tmp_path)["include"] == ["*.html"]
    with pytest.raises(ValueError, match="subset=0"):
        demo_pages(tmp_path, 0)


def test_suffixes_match_case_insensitively_by_default(tmp_path):
    (tmp_path / "README.MD").write_text("# Upper\n\nAn upper-case suffix still loads.\n")
    (tmp_path / "page.HTM").write_text("<h1>Old</h1><p>An old-style suffix.</p>")
    result = load_source(folder(tmp_path), on_error="fail")
    assert [(d.metadata["path"], d.format) for d in result.documents] == [("README.MD", "markdown"),
                                                                          ("page.HTM", "html")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / "locked.md"
    path.write_text("# Locked\n\ntext\n")
    path.chmod(0)
    result = load_source(folder(tmp_path))
    assert [(e.path, e.reason) for e in result.errors] == [("locked.md", "unreadable")]
