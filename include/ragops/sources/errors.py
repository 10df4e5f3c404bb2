"""What goes wrong while loading a source: a per-file record, and the exception for on_error="fail"."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class SourceError(Exception):
    """A source (or one of its files) cannot be loaded; the message names the file and the reason."""

    def __init__(self, message: str, *, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path = path
        self.reason = reason


class FileRejected(Exception):
    """Raised by a file parser for a bad input; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class LoadError:
    """One file (or line) that could not become a document."""

    path: str       # the path relative to the source root (or the file, for BEIR lines)
    reason: str     # empty | binary | encoding | too_large | no_text | escapes_root | parse | invalid_json | ...
    message: str    # a human sentence that names the file

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_exception(self) -> SourceError:
        return SourceError(self.message, path=self.path, reason=self.reason)
