"""The demo corpus: the PostgreSQL 15 manual as shipped by Debian's postgresql-doc-15 package.

Real technical documentation (about 1,170 HTML pages) that needs no network at run time. The
demo indexes a deterministic subset by default to stay quick; ``subset=None`` takes it all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PG_DOCS_PACKAGE = "postgresql-doc-15"
PG_DOCS_DIR = Path("/usr/share/doc/postgresql-doc-15/html")
DEMO_SOURCE_NAME = "pgdocs"
# Chapters a first-time reader asks about, taken first (in sorted order) when a subset is asked for:
# the tutorial, SQL basics, data types, indexes, concurrency, backup and the main SQL commands.
DEMO_PAGE_PREFIXES = ("tutorial", "queries", "ddl", "dml", "datatype", "indexes", "mvcc", "backup",
                      "sql-select", "sql-insert", "sql-update", "sql-delete", "sql-createtable",
                      "sql-createindex", "sql-altertable", "sql-vacuum", "sql-explain", "textsearch")


class DemoCorpusMissing(FileNotFoundError):
    pass


def find_pg_docs(path: str | os.PathLike[str] | None = None) -> Path:
    """The manual's HTML folder (RAGOPS_PG_DOCS overrides it), or a clear error saying how to get it."""
    folder = Path(path or os.environ.get("RAGOPS_PG_DOCS") or PG_DOCS_DIR)
    if not (folder / "index.html").is_file():
        raise DemoCorpusMissing(
            f"the demo corpus (the PostgreSQL manual) is not at {str(folder)!r}; install it with "
            f"'apt-get install {PG_DOCS_PACKAGE}' (Debian/Ubuntu) or set RAGOPS_PG_DOCS to a folder "
            "holding its HTML pages")
    return folder


def demo_pages(folder: Path, subset: int | None) -> list[str]:
    """A deterministic page list: the preferred chapters first, then the rest, each sorted."""
    pages = sorted(p.name for p in folder.glob("*.html"))
    if subset is None:
        return pages
    if subset <= 0:
        raise ValueError(f"demo subset={subset} must be a positive number of pages (or None for all)")
    preferred = [p for p in pages if p.startswith(DEMO_PAGE_PREFIXES)]
    rest = [p for p in pages if not p.startswith(DEMO_PAGE_PREFIXES)]
    return sorted((preferred + rest)[:subset])


def demo_source_spec(subset: int | None = 120, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A folder source spec for the manual; ``subset`` pages (see ``demo_pages``) or all with None."""
    folder = find_pg_docs(path)
    include = ["*.html"] if subset is None else demo_pages(folder, subset)
    return {"type": "folder", "path": str(folder), "name": DEMO_SOURCE_NAME, "root": str(folder),
            "include": include}
