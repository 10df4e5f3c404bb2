"""Prompt templates, versioned by file name and content.

A prompt lives in ``<name>.<version>.txt`` next to this module, with a ``### system`` and a
``### user`` section; placeholders are ``$name`` (``string.Template``, so JSON braces in the
text need no escaping). The prompt version recorded in caches and lineage is
``<name>.<version>@<content hash>``: editing a file without bumping its version still changes the
recorded version, so a cached answer is never reused for a different prompt.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops.errors import InvalidInput
from ragops.hashing import sha256_text, short

PROMPT_DIR = Path(__file__).resolve().parent
_SECTION = re.compile(r"^### (system|user)\s*$", re.M)


@dataclass(frozen=True)
class Prompt:
    name: str              # e.g. "query_generation"
    version: str           # e.g. "v1" (from the file name)
    system: str
    user: str
    content_hash: str      # sha256 of the file's text
    path: str

    @property
    def version_id(self) -> str:
        """What caches and lineage record: name, file version and content hash."""
        return f"{self.name}.{self.version}@{short(self.content_hash)}"

    def render(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages with the placeholders filled; a missing value raises KeyError naming it."""
        try:
            return [{"role": "system", "content": string.Template(self.system).substitute(values)},
                    {"role": "user", "content": string.Template(self.user).substitute(values)}]
        except KeyError as exc:
            raise KeyError(f"prompt {self.path} needs the value {exc.args[0]!r}") from exc


# A prompt's name and version are plain words: no separators, no "..", nothing absolute.
_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PromptNotFound(InvalidInput, FileNotFoundError):
    """The named prompt is not a file of the prompts folder (the message lists nothing)."""


def check_prompt_name(name: str, version: str, param: str = "prompt") -> None:
    """Refuses a prompt name or version that could leave the prompts folder (absolute, '..', '/')."""
    for part in (name, version):
        if not _PART.match(part or ""):
            raise InvalidInput(f"param {param}: {f'{name}.{version}'!r} must be <name>.<version> made of letters, "
                               "digits, '_' and '-' (a file of the prompts folder; no paths)")


def load_prompt(name: str = "query_generation", version: str = "v1", directory: str | Path | None = None) -> Prompt:
    check_prompt_name(name, version)
    folder = Path(directory or PROMPT_DIR).resolve()
    path = folder / f"{name}.{version}.txt"
    if not path.resolve().is_relative_to(folder) or not path.is_file():
        # Never list the folder: an error message is no way to browse a worker's files.
        raise PromptNotFound(f"param prompt: {f'{name}.{version}'!r} is not a prompt of the prompts folder "
                             "(<name>.<version>.txt next to ragops/prompts/__init__.py)")
    text = path.read_text(encoding="utf-8")
    sections = dict(_sections(text))
    missing = {"system", "user"} - sections.keys()
    if missing:
        raise ValueError(f"prompt file {path} lacks the section(s) {sorted(missing)} ('### system', '### user')")
    return Prompt(name, version, sections["system"], sections["user"], sha256_text(text), str(path))


def _sections(text: str) -> list[tuple[str, str]]:
    marks = list(_SECTION.finditer(text))
    return [(m.group(1), text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))].strip())
            for i, m in enumerate(marks)]
