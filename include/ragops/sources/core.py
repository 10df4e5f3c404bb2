"""Source specs, the loader registries and the folder loader.

A source is a folder of files (a git checkout is a folder too) or a BEIR corpus. Each file
suffix maps to a parser that turns text into blocks; each source type maps to a loader.
Both registries are plain dicts with a register function, so a new format is one call.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragops.documents import Block, Document
from ragops.sources.errors import FileRejected, LoadError, SourceError

log = logging.getLogger(__name__)

OnError = Literal["skip", "fail"]
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
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
    max_bytes: int = DEFAULT_MAX_BYTES


SourceLoader = Callable[[SourceSpec, LoadOptions], LoadResult]
SOURCE_TYPES: dict[str, SourceLoader] = {}


def register_source_type(name: str, loader: SourceLoader) -> None:
    SOURCE_TYPES[name] = loader


def load_source(spec: SourceSpec | dict[str, Any], *, on_error: OnError = "skip",
                max_bytes: int = DEFAULT_MAX_BYTES) -> LoadResult:
    """Loads every document of a source, sorted by doc_id.

    on_error="skip" records each bad file in ``errors`` and goes on; "fail" raises a
    ``SourceError`` naming the first bad file and why.
    """
    if on_error not in ("skip", "fail"):
        raise SourceError(f"on_error={on_error!r} must be 'skip' or 'fail'")
    if max_bytes <= 0:
        raise SourceError(f"max_bytes={max_bytes} must be positive")
    source = SourceSpec.from_value(spec)
    result = SOURCE_TYPES[source.type](source, LoadOptions(on_error=on_error, max_bytes=max_bytes))
    result.documents.sort(key=lambda d: d.doc_id)
    log.info("source %s: %d documents, %d errors", source.name, len(result.documents), len(result.errors))
    return result


class ErrorSink:
    """Collects errors, or raises the first one when on_error='fail'."""

    def __init__(self, on_error: OnError):
        self.on_error = on_error
        self.errors: list[LoadError] = []

    def add(self, path: str, reason: str, message: str) -> None:
        error = LoadError(path=path, reason=reason, message=message)
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


def _walk_files(folder: Path) -> Iterator[tuple[Path, bool]]:
    """Every file under ``folder`` in sorted order, and whether it is a symlink; VCS dirs skipped.

    Symlinked directories are yielded as entries (is_link=True) rather than followed, so a link
    cycle cannot loop and a link leaving the root is reported.
    """
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        linked_dirs = sorted(d for d in dirnames if (base / d).is_symlink())
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d not in linked_dirs)
        for name in sorted(filenames):
            yield base / name, (base / name).is_symlink()
        for name in linked_dirs:
            yield base / name, True


def read_text_file(path: Path, rel: str, max_bytes: int) -> str:
    """The file as text, or FileRejected for empty, oversized, binary or non-UTF-8 files."""
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("empty", f"{rel}: the file is empty")
    if size > max_bytes:
        raise FileRejected("too_large", f"{rel}: the file has {size} bytes, above max_bytes={max_bytes}")
    data = path.read_bytes()
    if b"\x00" in data:
        raise FileRejected("binary", f"{rel}: the file is binary (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected("encoding", f"{rel}: the file is not valid UTF-8 (byte {exc.start}: "
                                       f"{data[exc.start:exc.start + 1]!r})") from None
    if not text.strip():
        raise FileRejected("empty", f"{rel}: the file holds only whitespace")
    return text


def load_folder(spec: SourceSpec, options: LoadOptions) -> LoadResult:
    folder, root = resolve_within_root(spec)
    if not folder.is_dir():
        raise SourceError(f"source {spec.name!r}: path {spec.path!r} is not a folder", path=spec.path,
                          reason="not_a_folder")
    selected = _selector(spec.include)
    sink = ErrorSink(options.on_error)
    documents: list[Document] = []
    skipped: list[LoadError] = []
    stats = {"files_seen": 0, "files_ignored": 0, "documents": 0, "errors": 0, "bytes": 0}
    for path, is_link in _walk_files(folder):
        rel = path.relative_to(folder).as_posix()
        stats["files_seen"] += 1
        if not selected(rel):
            stats["files_ignored"] += 1
            continue
        if is_link and not path.resolve().is_relative_to(root):
            sink.add(rel, "escapes_root", f"{rel}: a symlink to {str(path.resolve())!r}, outside the "
                                          f"allowed root {str(root)!r}")
            continue
        if path.is_dir():
            stats["files_ignored"] += 1
            continue
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            sink.add(rel, "unsupported", f"{rel}: no loader for suffix {path.suffix!r}; "
                                         f"known: {sorted(FILE_FORMATS)}")
            continue
        try:
            text = read_text_file(path, rel, options.max_bytes)
            title, blocks = fmt.parse(text, path)
            if not blocks:
                raise FileRejected("no_text", f"{rel}: the {fmt.name} file yields no text after cleaning")
            if all(b.kind == "heading" for b in blocks):
                # A table-of-contents page: its links were navigation and were removed.
                raise FileRejected("navigation_only", f"{rel}: only headings remain after removing navigation")
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
        stats["bytes"] += path.stat().st_size
        documents.append(Document(doc_id=rel, source=spec.name, title=title, blocks=blocks, format=fmt.name,
                                  metadata={"path": rel, "format": fmt.name}))
    stats["documents"] = len(documents)
    stats["errors"] = len(sink.errors)
    stats["skipped"] = len(skipped)
    return LoadResult(documents=documents, errors=sink.errors, stats=stats, skipped=skipped)
