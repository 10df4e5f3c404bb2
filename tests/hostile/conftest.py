"""The hostile-folder fixture: a docs tree, generated in a tmp dir, holding every input class that
broke (or could break) loading, with what the loader must make of each.

``expected_docs`` are the files that are readable, so they must become documents; ``expected_errors``
are the files that cannot, each with the reason the loader must name. A folder ``outside/`` next to
the sources holds a planted secret that no loader may read.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SECRET = "OUTSIDE-THE-ROOT-7f3c9e"
MAX_BYTES = 128 * 1024
DEEP_DIRS = 1100       # deeper than Python's recursion limit: a recursive walk dies here
DEEP_HTML = 5000       # nested elements; a recursive HTML walk dies here too


@dataclass
class HostileTree:
    base: Path                      # tmp dir: sources and outside/ live here
    root: Path                      # the allowed root (both sources are inside it)
    main: Path                      # source "main": every hostile name and content
    twin: Path                      # source "twin": the same relative names as "main"
    outside: Path                   # holds SECRET; nothing may read it
    expected_docs: dict[str, str] = field(default_factory=dict)     # rel path -> text the doc must contain
    expected_errors: dict[str, str] = field(default_factory=dict)   # rel path (as named) -> reason
    expected_skipped: dict[str, str] = field(default_factory=dict)  # rel path -> reason


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _deep_dirs(top: Path, depth: int) -> Path:
    """``depth`` nested one-letter folders, made with dir fds: os.makedirs itself recurses too deep."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("deep.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"# Deep\n\nA page at the bottom of a very deep folder tree.\n")
        os.close(out)
    finally:
        os.close(fd)
    return Path(*(["d"] * depth), "deep.md")


def _remove_deep_dirs(top: Path) -> None:
    """Removes a ``_deep_dirs`` tree bottom-up: shutil.rmtree (and so pytest's tmp cleanup) recurses."""
    fds = [os.open(top, os.O_RDONLY)]
    try:
        while "d" in os.listdir(fds[-1]):
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        for fd in os.listdir(fds[-1]):
            os.unlink(fd, dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture
def hostile():
    # Not pytest's tmp_path: pytest cleans old tmp dirs with shutil.rmtree, which recurses and dies
    # on the deep tree if a run is killed before this fixture removes it.
    tmp_path = Path(tempfile.mkdtemp(prefix="ragops-hostile-"))
    root = tmp_path / "allowed"
    tree = HostileTree(base=tmp_path, root=root, main=root / "main", twin=root / "twin", outside=tmp_path / "outside")
    _write(tree.outside / "secret.md", f"# Secret\n\n{SECRET}\n")
    _write(tree.outside / "secret.txt", f"{SECRET}\n")
    docs, errors, skipped = tree.expected_docs, tree.expected_errors, tree.expected_skipped

    def doc(rel: str, data: str | bytes, must_contain: str) -> None:
        _write(tree.main / rel, data)
        docs[rel] = must_contain

    def bad(rel: str, data: str | bytes, reason: str) -> None:
        _write(tree.main / rel, data)
        errors[rel] = reason

    # -- names ---------------------------------------------------------------------------------
    doc("über-uns.md", "# Über uns\n\nWir schreiben Datenbanken.\n", "Wir schreiben Datenbanken")
    nfd = unicodedata.normalize("NFD", "café-nfd.md")
    doc(nfd, "# Café\n\nA name in NFD, as macOS writes it.\n", "as macOS writes it")
    doc("🚀 launch notes.md", "# Launch 🚀\n\nLift-off at dawn.\n", "Lift-off at dawn")
    doc("with  spaces .txt", "Spaces in the name\n\nand a paragraph.\n", "and a paragraph")
    doc("it's \"quoted\".md", "# Quotes\n\nSingle and double quotes in the name.\n", "double quotes in the name")
    doc("line\nbreak.md", "# Newline\n\nA newline inside the file name.\n", "newline inside the file name")
    doc("back\\slash.txt", "A backslash in the name.\n", "backslash in the name")
    doc("-rf.md", "# Dash\n\nA leading dash.\n", "leading dash")
    doc("日本語/ドキュメント.rst", "見出し\n======\n\n日本語の本文です。\n", "日本語の本文です")
    doc("עברית.html", "<html><body><h1>כותרת</h1><p>טקסט בעברית</p></body></html>", "טקסט בעברית")
    # A name that is not UTF-8 at all (Latin-1 bytes): still a readable file, so still a document.
    latin1_name = os.fsdecode(b"r\xe9sum\xe9.txt")
    _write(tree.main / latin1_name, "A Latin-1 file name.\n")
    docs["r\\xe9sum\\xe9.txt"] = "Latin-1 file name"

    # -- encodings and line endings --------------------------------------------------------------
    doc("bom.md", codecs.BOM_UTF8 + b"# BOM\n\nA UTF-8 byte order mark.\n", "UTF-8 byte order mark")
    doc("crlf.txt", b"Windows lines\r\n\r\nParagraph two\r\nstill two.\r\n", "Paragraph two still two")
    doc("cr-only.md", b"# Old Mac\r\rCarriage returns only.\r", "Carriage returns only")
    doc("utf16le.txt", codecs.BOM_UTF16_LE + "UTF-16 little endian, ß and 漢字.\n".encode("utf-16-le"),
        "UTF-16 little endian, ß and 漢字")
    doc("utf16be.md", codecs.BOM_UTF16_BE + "# Big\n\nUTF-16 big endian.\n".encode("utf-16-be"), "UTF-16 big endian")
    bad("latin1.txt", "Caf\xe9 cr\xe8me\n".encode("latin-1"), "encoding")
    bad("nul.md", b"# Binary\n\x00\x01\x02\x00", "binary")

    # -- sizes ---------------------------------------------------------------------------------
    bad("empty.md", b"", "empty")
    bad("blank.txt", " \n\t\r\n  \n", "empty")
    bad("over-size.txt", "x " * MAX_BYTES, "too_large")
    doc("one-huge-line.txt", ("word " * 12000).strip() + " END", "word word word")
    doc("huge-line.md", "# One line\n\n" + "token" * 10000 + " tail-marker\n", "tail-marker")

    # -- depth ---------------------------------------------------------------------------------
    doc("deep.html", "<html><body>" + "<div>" * DEEP_HTML + "<p>bottom of the nesting</p>"
        + "</div>" * DEEP_HTML + "</body></html>", "bottom of the nesting")
    doc("deep-inline.html", "<html><body><p>" + "<span>" * DEEP_HTML + "inline depth" + "</span>" * DEEP_HTML
        + "</p></body></html>", "inline depth")
    (tree.main / "nest").mkdir()
    docs[f"nest/{_deep_dirs(tree.main / 'nest', DEEP_DIRS).as_posix()}"] = "bottom of a very deep folder tree"

    # -- symlinks --------------------------------------------------------------------------------
    (tree.main / "escape.md").symlink_to(tree.outside / "secret.md")
    errors["escape.md"] = "escapes_root"
    (tree.main / "escape-dir").symlink_to(tree.outside, target_is_directory=True)
    errors["escape-dir"] = "escapes_root"
    (tree.main / "escape-relative.txt").symlink_to(Path("..", "..", "outside", "secret.txt"))
    errors["escape-relative.txt"] = "escapes_root"
    (tree.main / "loop-a.md").symlink_to("loop-b.md")
    (tree.main / "loop-b.md").symlink_to("loop-a.md")
    errors["loop-a.md"] = errors["loop-b.md"] = "symlink_loop"
    (tree.main / "self-loop-dir").symlink_to(".", target_is_directory=True)
    skipped["self-loop-dir"] = "symlinked_dir"
    (tree.main / "dangling.md").symlink_to("does-not-exist.md")
    errors["dangling.md"] = "broken_symlink"
    (tree.main / "inside-link.md").symlink_to("über-uns.md")
    docs["inside-link.md"] = "Wir schreiben Datenbanken"

    # -- markup that tries to read files ------------------------------------------------------------
    doc("directives.rst", "Directives\n==========\n\nSafe body text.\n\n"
        f".. include:: {tree.outside / 'secret.txt'}\n\n"
        ".. include:: ../../outside/secret.txt\n\n"
        f".. raw:: html\n   :file: {tree.outside / 'secret.txt'}\n\n"
        ".. raw:: html\n\n   <p>raw html</p>\n\n"
        f".. csv-table:: T\n   :file: {tree.outside / 'secret.txt'}\n\n"
        f".. literalinclude:: {tree.outside / 'secret.txt'}\n", "Safe body text")
    entity = f'<!DOCTYPE html [<!ENTITY s SYSTEM "file://{tree.outside}/secret.txt">]>'
    doc("entity.xhtml", f'<?xml version="1.0"?>\n{entity}\n<html><body><h1>Entity</h1><p>before &s; after</p></body></html>',
        "before")
    doc("image.md", f"# Image\n\n![alt text]({tree.outside / 'secret.txt'}) and [a link](../../outside/secret.md).\n",
        "alt text")

    # -- special files -----------------------------------------------------------------------------
    if hasattr(os, "mkfifo"):
        os.mkfifo(tree.main / "pipe.md")  # opening it for reading would block forever
        errors["pipe.md"] = "not_a_file"

    # -- the same relative names in a second source ----------------------------------------------------
    _write(tree.twin / "über-uns.md", "# Über uns\n\nDer Zwilling.\n")
    _write(tree.twin / "bom.md", "# Twin\n\nThe twin's bom.md.\n")
    try:
        yield tree
    finally:
        _remove_deep_dirs(tree.main / "nest")
        shutil.rmtree(tmp_path)


@dataclass
class HostileBeir:
    folder: Path
    expected_docs: dict[str, str]     # doc id -> text it must contain
    expected_errors: dict[int, str]   # line number -> reason


@pytest.fixture
def hostile_beir(tmp_path: Path) -> HostileBeir:
    rows: list[bytes] = []
    docs: dict[str, str] = {}
    errors: dict[int, str] = {}

    def line(obj: object | bytes, *, doc: tuple[str, str] | None = None, error: str | None = None) -> None:
        rows.append(obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode())
        if doc:
            docs[doc[0]] = doc[1]
        if error:
            errors[len(rows)] = error

    line({"_id": "plain", "title": "Plain", "text": "An ordinary row."}, doc=("plain", "ordinary row"))
    line({"_id": "plain", "title": "Again", "text": "A duplicate id."}, error="duplicate_id")
    line({"_id": 42, "title": "", "text": "An integer id."}, doc=("42", "integer id"))
    line({"_id": "42", "text": "The same id as a string."}, error="duplicate_id")
    line({"_id": "", "text": "An empty id."}, error="missing_id")
    line({"_id": "   ", "text": "A blank id."}, error="missing_id")
    line({"title": "No id", "text": "No _id at all."}, error="missing_id")
    line({"_id": None, "text": "A null id."}, error="missing_id")
    line({"_id": {"nested": 1}, "text": "An object id."}, error="invalid_id")
    line({"_id": "title-only", "title": "Only a title"}, doc=("title-only", "Only a title"))
    line({"_id": "no-text"}, error="no_text")
    line({"_id": "null-text", "title": None, "text": None}, error="no_text")
    line({"_id": "list-text", "text": ["not", "a", "string"]}, error="invalid_field")
    line({"_id": "number-text", "text": 3.5}, doc=("number-text", "3.5"))
    line([1, 2, 3], error="invalid_json")
    line(b'{"_id": "broken", "text": ', error="invalid_json")
    line(b"[" * 30_000 + b"]" * 30_000, error="invalid_json")  # nesting deeper than the recursion limit
    line(b'{"_id": "latin1", "text": "caf\xe9"}', error="encoding")
    line({"_id": "huge", "text": "x" * (MAX_BYTES + 10)}, error="too_large")
    line({"_id": unicodedata.normalize("NFD", "café"), "text": "An NFD id."}, doc=("café", "An NFD id"))
    line({"_id": "🚀", "text": "An emoji id."}, doc=("🚀", "emoji id"))
    line({"_id": "über", "text": "Ein Umlaut."}, doc=("über", "Umlaut"))
    line({"_id": "crlf", "text": "A CRLF line."}, doc=("crlf", "CRLF line"))
    line({"_id": "tail", "text": "The last row, without a newline."}, doc=("tail", "last row"))
    body = b"\n".join(rows[:-2]) + b"\n" + rows[-2] + b"\r\n\n   \n" + rows[-1]
    # The blank lines do not count as rows, but they do count as lines: renumber the last one.
    docs_last_line = body.count(b"\n") + 1
    assert docs_last_line == len(rows) + 2
    folder = tmp_path / "beir"
    _write(folder / "corpus.jsonl", codecs.BOM_UTF8 + body)
    _write(folder / "queries.jsonl", json.dumps({"_id": "q1", "text": "ordinary"}) + "\n")
    _write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\tplain\t1\nq1\t" +
           unicodedata.normalize("NFD", "café") + "\t1\n")
    return HostileBeir(folder, docs, errors)


@pytest.fixture
def no_reads_outside(hostile):
    """Records every file Python opens while a test runs; fails if one lies outside the root."""
    opened: list[str] = []
    active = [True]

    def hook(event: str, args: tuple) -> None:
        if active[0] and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed: the flag turns this one off
    yield opened
    active[0] = False
    outside = str(hostile.outside)
    assert not [p for p in opened if p.startswith(outside)], "a loader opened a file outside the root"
