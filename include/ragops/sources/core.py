"""Source specs, the loader registries and the folder loader.

A source is a folder of files (a git checkout is a folder too) or a BEIR corpus. Each file
suffix maps to a parser that turns text into blocks; each source type maps to a loader.
Both registries are plain dicts with a register function, so a new format is one call.
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import logging
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragops.documents import Block, Document
from ragops.sources.errors import FileRejected, LoadError, SourceError

log = logging.getLogger(__name__)

OnError = Literal["skip", "fail"]
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# Caps a user must raise on purpose: they bound memory, time and what one run may read.
MAX_FILE_BYTES_LIMIT = 256 * 1024 * 1024
DEFAULT_MAX_FILES = 50_000
DEFAULT_MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})

Parser = Callable[[str, Path], tuple[str, list[Block]]]


@dataclass(frozen=True)
class FileFormat:
    name: str        # the Document.format value
    parse: Parser    # (text, path) -> (title, blocks)


FILE_FORMATS: dict[str, FileFormat] = {}


def register_file_format(suffixes: list[str] | tuple[str, ...], name: str, parse: Parser) -> None:
    """Makes files with these suffixes (".md", case-insensitive) load through ``parse``."""
    for suffix in suffixes:
        FILE_FORMATS[suffix.lower()] = FileFormat(name, parse)


@dataclass(frozen=True)
class SourceSpec:
    """Where documents come from. ``root`` bounds every path the source may read."""

    type: str
    path: str
    name: str = ""
    root: str | None = None
    include: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_value(cls, value: SourceSpec | dict[str, Any]) -> SourceSpec:
        if isinstance(value, SourceSpec):
            return value
        if not isinstance(value, dict):
            raise SourceError(f"a source spec must be a dict or SourceSpec, got {type(value).__name__}")
        data = dict(value)
        for required in ("type", "path"):
            if not data.get(required):
                raise SourceError(f"source spec {value!r} lacks the required field {required!r}")
        if data["type"] not in SOURCE_TYPES:
            raise SourceError(f"source spec field 'type'={data['type']!r} is unknown; "
                              f"known types: {sorted(SOURCE_TYPES)}")
        include = data.pop("include", None) or ()
        if isinstance(include, str):
            include = (include,)
        known = {"type", "path", "name", "root"}
        options = {k: v for k, v in data.items() if k not in known}
        path = str(data["path"])
        return cls(type=data["type"], path=path, name=str(data.get("name") or Path(path).name),
                   root=str(data["root"]) if data.get("root") else None,
                   include=tuple(str(p) for p in include), options=options)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "path": self.path, "name": self.name}
        if self.root:
            out["root"] = self.root
        if self.include:
            out["include"] = list(self.include)
        return {**out, **self.options}


@dataclass
class LoadResult:
    """``errors``: bad inputs. ``skipped``: files deliberately not made documents (navigation-only pages)."""

    documents: list[Document]
    errors: list[LoadError]
    stats: dict[str, int]
    skipped: list[LoadError] = field(default_factory=list)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise self.errors[0].to_exception()


@dataclass(frozen=True)
class LoadOptions:
    on_error: OnError = "skip"
    max_bytes: int = DEFAULT_MAX_BYTES              # one file (folders) or one row (BEIR)
    max_files: int = DEFAULT_MAX_FILES              # files a folder source may read
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES  # bytes a source may read in all

    def validate(self) -> None:
        if self.on_error not in ("skip", "fail"):
            raise SourceError(f"on_error={self.on_error!r} must be 'skip' or 'fail'")
        if not 0 < self.max_bytes <= MAX_FILE_BYTES_LIMIT:
            raise SourceError(f"max_bytes={self.max_bytes} must be positive and at most {MAX_FILE_BYTES_LIMIT}")
        if self.max_files <= 0:
            raise SourceError(f"max_files={self.max_files} must be positive")
        if self.max_total_bytes <= 0:
            raise SourceError(f"max_total_bytes={self.max_total_bytes} must be positive")


SourceLoader = Callable[[SourceSpec, LoadOptions], LoadResult]
SOURCE_TYPES: dict[str, SourceLoader] = {}


def register_source_type(name: str, loader: SourceLoader) -> None:
    SOURCE_TYPES[name] = loader


def load_source(spec: SourceSpec | dict[str, Any], *, on_error: OnError = "skip",
                max_bytes: int = DEFAULT_MAX_BYTES, max_files: int = DEFAULT_MAX_FILES,
                max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> LoadResult:
    """Loads every document of a source, sorted by doc_id.

    on_error="skip" records each bad file in ``errors`` and goes on; "fail" raises a
    ``SourceError`` naming the first bad file and why. Past ``max_files`` or ``max_total_bytes``
    the whole source fails whatever ``on_error`` says: a corpus cut short would read as deletions.
    """
    options = LoadOptions(on_error=on_error, max_bytes=max_bytes, max_files=max_files,
                          max_total_bytes=max_total_bytes)
    options.validate()
    source = SourceSpec.from_value(spec)
    result = SOURCE_TYPES[source.type](source, options)
    result.documents.sort(key=lambda d: d.doc_id)
    log.info("source %s: %d documents, %d errors", source.name, len(result.documents), len(result.errors))
    return result


def printable(name: str) -> str:
    """A file name as valid UTF-8 text. Linux names are bytes: one that is not UTF-8 reaches Python
    with lone surrogates, which Arrow, JSON and Postgres refuse; its bytes show as \\xNN instead."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def normalized_id(name: str) -> str:
    """NFC: the same name typed on macOS (NFD on disk) and on Linux (usually NFC) is one id."""
    return unicodedata.normalize("NFC", name)


class Budget:
    """The file-count and byte limits of one source; past either, the whole source fails."""

    def __init__(self, source: str, options: LoadOptions):
        self.source, self.options = source, options
        self.files = self.bytes = 0

    def take(self, rel: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files > self.options.max_files:
            raise SourceError(f"source {self.source!r} has more than max_files={self.options.max_files} files to "
                              f"read (stopped at {rel!r}); raise max_files on purpose or narrow 'include'",
                              path=rel, reason="too_many_files")
        if self.bytes > self.options.max_total_bytes:
            raise SourceError(f"source {self.source!r} holds more than max_total_bytes={self.options.max_total_bytes}"
                              f" bytes (stopped at {rel!r}); raise max_total_bytes on purpose or narrow 'include'",
                              path=rel, reason="too_large")


class ErrorSink:
    """Collects errors, or raises the first one when on_error='fail'."""

    def __init__(self, on_error: OnError):
        self.on_error = on_error
        self.errors: list[LoadError] = []

    def add(self, path: str, reason: str, message: str) -> None:
        error = LoadError(path=printable(path), reason=reason, message=printable(message))
        if self.on_error == "fail":
            raise error.to_exception()
        log.warning("skipping %s", message)
        self.errors.append(error)


def resolve_within_root(spec: SourceSpec) -> tuple[Path, Path]:
    """The source path and its root, both resolved; the path must lie inside the root."""
    path = Path(spec.path).expanduser()
    root = Path(spec.root).expanduser().resolve() if spec.root else path.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise SourceError(f"source {spec.name!r}: path {spec.path!r} escapes the allowed root {str(root)!r}",
                          path=spec.path, reason="escapes_root")
    if not resolved.exists():
        raise SourceError(f"source {spec.name!r}: path {spec.path!r} does not exist", path=spec.path,
                          reason="missing")
    return resolved, root


_GLOB_CHARS = frozenset("*?[")


def _selector(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Which relative paths a source includes: by registered suffix when no patterns are given,
    else by glob; literal names (a curated page list) are looked up in a set."""
    if not patterns:
        return lambda rel: Path(rel).suffix.lower() in FILE_FORMATS
    literal = {p for p in patterns if not _GLOB_CHARS & set(p)}
    globs = tuple(p for p in patterns if p not in literal)
    return lambda rel: rel in literal or _matches(rel, globs)


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern):
            return True
        # "**/*.md" should match top-level files too; fnmatch's "*" already crosses "/".
        if pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:]):
            return True
    return False


def _walk_files(folder: Path) -> Iterator[tuple[Path, bool, OSError | None]]:
    """(path, is_symlink, listing error) for every entry under ``folder`` but directories, sorted.

    Iterative, not recursive, so a tree deeper than Python's recursion limit still loads. Symlinks
    (to files or folders) are yielded as entries, never descended into: a link cycle cannot loop
    and a link leaving the root is reported. A folder that cannot be listed is yielded with its error.
    """
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield current, False, exc
            continue
        subdirs = []
        for entry in entries:
            is_link = entry.is_symlink()
            if not is_link and entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS:
                    subdirs.append(Path(entry.path))
                continue
            yield Path(entry.path), is_link, None
        stack.extend(reversed(subdirs))


def decode_text(data: bytes, rel: str) -> str:
    """Bytes to text: UTF-8 (BOM or not), or UTF-16/32 with a BOM; line endings become "\\n"."""
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # UTF-32 LE starts like UTF-16 LE
    encoding = next((enc for bom, enc in boms if data.startswith(bom)), None)
    if encoding is None and b"\x00" in data:
        raise FileRejected("binary", f"{rel}: the file is binary (it contains NUL bytes and no UTF-16/32 byte "
                                     "order mark), not text")
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding is None else encoding.upper()
        raise FileRejected("encoding", f"{rel}: the file is not valid {name} (byte {exc.start}: "
                                       f"{data[exc.start:exc.start + 1]!r})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise FileRejected("empty", f"{rel}: the file holds only whitespace")
    return text


def read_text_file(path: Path, rel: str, max_bytes: int) -> str:
    """The file as text, or FileRejected for non-regular, empty, oversized, binary or undecodable files."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        # A FIFO would block the reader forever; devices and sockets are not documents either.
        raise FileRejected("not_a_file", f"{rel}: not a regular file (a pipe, socket or device); not read")
    if info.st_size == 0:
        raise FileRejected("empty", f"{rel}: the file is empty")
    if info.st_size > max_bytes:
        raise FileRejected("too_large", f"{rel}: the file has {info.st_size} bytes, above max_bytes={max_bytes}")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)  # bounded even if the file grew since stat()
    if len(data) > max_bytes:
        raise FileRejected("too_large", f"{rel}: the file has more than max_bytes={max_bytes} bytes")
    return decode_text(data, rel)


def _symlink_problem(path: Path, rel: str, root: Path, wanted: bool) -> tuple[str, str] | None:
    """Why a symlink is not read, as (reason, message), or None when it is an ordinary in-root file.

    Resolving needs no open(), so nothing outside the root is read to decide. Links to folders are
    never followed (listed in ``skipped``); problems with links that are not wanted (not selected)
    are ignored, except links that leave the root, which are always named.
    """
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return ("broken_symlink", f"{rel}: a symlink to a path that does not exist") if wanted else None
    except RuntimeError:  # Python 3.11's way of saying ELOOP
        return ("symlink_loop", f"{rel}: a symlink loop") if wanted else None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ("symlink_loop", f"{rel}: a symlink loop") if wanted else None
        return ("unreadable", f"{rel}: a symlink that cannot be followed ({exc.strerror or exc})") if wanted else None
    if not target.is_relative_to(root):
        if wanted or target.is_dir():
            return "escapes_root", f"{rel}: a symlink to {str(target)!r}, outside the allowed root {str(root)!r}"
        return None
    if target.is_dir():
        return "symlinked_dir", f"{rel}: a symlink to a folder; not followed (point the source at it instead)"
    return None


def _parse_file(path: Path, rel: str, fmt: FileFormat, max_bytes: int) -> tuple[str, list[Block]]:
    text = read_text_file(path, rel, max_bytes)
    title, blocks = fmt.parse(text, path)
    if not blocks:
        raise FileRejected("no_text", f"{rel}: the {fmt.name} file yields no text after cleaning")
    if all(b.kind == "heading" for b in blocks):
        # A table-of-contents page: its links were navigation and were removed.
        raise FileRejected("navigation_only", f"{rel}: only headings remain after removing navigation")
    return title, blocks


def load_folder(spec: SourceSpec, options: LoadOptions) -> LoadResult:
    """Every selected file under the folder as a Document with id ``<source name>:<path>``.

    The source name is part of the id so that two sources holding the same relative path (two
    ``index.md``) stay two documents; the path is NFC-normalized and printable (see ``printable``).
    """
    folder, root = resolve_within_root(spec)
    if not folder.is_dir():
        raise SourceError(f"source {spec.name!r}: path {spec.path!r} is not a folder", path=spec.path,
                          reason="not_a_folder")
    selected = _selector(spec.include)
    sink = ErrorSink(options.on_error)
    budget = Budget(spec.name, options)
    documents: list[Document] = []
    skipped: list[LoadError] = []
    owners: dict[str, str] = {}
    stats = {"files_seen": 0, "files_ignored": 0, "documents": 0, "errors": 0, "bytes": 0}
    for path, is_link, walk_error in _walk_files(folder):
        rel = printable(path.relative_to(folder).as_posix())
        if walk_error is not None:
            sink.add(rel, "unreadable", f"{rel}: the folder cannot be listed ({walk_error.strerror or walk_error})")
            continue
        stats["files_seen"] += 1
        wanted = selected(rel)
        if is_link:
            problem = _symlink_problem(path, rel, root, wanted)
            if problem and problem[0] == "symlinked_dir":
                skipped.append(LoadError(rel, *problem))
                continue
            if problem:
                sink.add(rel, *problem)
                continue
        if not wanted:
            stats["files_ignored"] += 1
            continue
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            sink.add(rel, "unsupported", f"{rel}: no loader for suffix {path.suffix!r}; known: {sorted(FILE_FORMATS)}")
            continue
        doc_id = f"{spec.name}:{normalized_id(rel)}"
        if doc_id in owners:
            sink.add(rel, "duplicate_id", f"{rel}: its id {doc_id!r} is taken by {owners[doc_id]!r} (the names "
                                          "differ only in Unicode normalization)")
            continue
        try:
            size = path.stat().st_size
            if size <= options.max_bytes:
                budget.take(rel, size)
            title, blocks = _parse_file(path, rel, fmt, options.max_bytes)
        except FileRejected as exc:
            if exc.reason == "navigation_only":
                skipped.append(LoadError(rel, exc.reason, f"{rel}: skipped, {exc.detail.split(': ', 1)[-1]}"))
                continue
            sink.add(rel, exc.reason, exc.detail)
            continue
        except SourceError:
            raise
        except OSError as exc:
            sink.add(rel, "unreadable", f"{rel}: the file cannot be read ({exc.strerror or exc})")
            continue
        except Exception as exc:  # noqa: BLE001 - a parser crash on one file must name the file, not stop the rest
            sink.add(rel, "parse", f"{rel}: the {fmt.name} parser failed: {type(exc).__name__}: {exc}")
            continue
        owners[doc_id] = rel
        stats["bytes"] += size
        # Parsers fall back to the file name for a title: printable() keeps it valid UTF-8.
        documents.append(Document(doc_id=doc_id, source=spec.name, title=printable(title), blocks=blocks,
                                  format=fmt.name, metadata={"path": rel, "format": fmt.name}))
    stats["documents"] = len(documents)
    stats["errors"] = len(sink.errors)
    stats["skipped"] = len(skipped)
    return LoadResult(documents=documents, errors=sink.errors, stats=stats, skipped=skipped)
