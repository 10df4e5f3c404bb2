"""Document sources: folders of Markdown/reST/HTML/text files and BEIR corpora, as Documents.

``load_source(spec)`` dispatches on the spec's ``type`` (see SOURCE_TYPES); folder files are
parsed by suffix (see FILE_FORMATS). ``register_file_format`` / ``register_source_type`` extend both.
"""

from __future__ import annotations

from ragops.sources.beir import load_beir, load_beir_qrels, load_beir_queries
from ragops.sources.core import (
    DEFAULT_MAX_BYTES,
    FILE_FORMATS,
    SOURCE_TYPES,
    LoadResult,
    SourceSpec,
    load_folder,
    load_source,
    read_text_file,
    register_file_format,
    register_source_type,
)
from ragops.sources.errors import FileRejected, LoadError, SourceError
from ragops.sources.html import parse_html
from ragops.sources.markdown import parse_markdown
from ragops.sources.rst import parse_rst
from ragops.sources.text import parse_text

register_file_format([".md", ".markdown"], "markdown", parse_markdown)
register_file_format([".rst", ".rest"], "rst", parse_rst)
register_file_format([".html", ".htm", ".xhtml"], "html", parse_html)
register_file_format([".txt", ".text"], "text", parse_text)
register_source_type("folder", load_folder)
register_source_type("beir", load_beir)

__all__ = [
    "DEFAULT_MAX_BYTES", "FILE_FORMATS", "SOURCE_TYPES", "FileRejected", "LoadError", "LoadResult", "SourceError",
    "SourceSpec", "load_beir", "load_beir_qrels", "load_beir_queries", "load_folder", "load_source",
    "parse_html", "parse_markdown", "parse_rst", "parse_text", "read_text_file", "register_file_format",
    "register_source_type",
]
