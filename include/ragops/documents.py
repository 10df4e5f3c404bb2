"""The data contracts between loaders, chunker, stores and datasets: documents and chunks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ragops.hashing import chunk_object_id, sha256_text

BLOCK_KINDS = ("heading", "paragraph", "code", "list", "table")


@dataclass
class Block:
    """One structural unit of a document. Headings carry their level (1 = top)."""

    kind: str
    text: str
    level: int = 0


@dataclass
class Document:
    doc_id: str            # stable id: "<source name>:<path in the source>" (NFC), or the BEIR _id
    source: str            # the source it came from (a name such as "pgdocs" or "beir:scifact")
    title: str
    blocks: list[Block]
    format: str            # markdown | rst | html | text | beir
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)

    @property
    def content_hash(self) -> str:
        """What decides "unchanged" for incremental runs: the title and the structured text."""
        return sha256_text(json.dumps([self.title, [[b.kind, b.level, b.text] for b in self.blocks]]))

    def to_row(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id, "source": self.source, "title": self.title, "format": self.format,
            "text": self.text, "blocks": json.dumps([asdict(b) for b in self.blocks], ensure_ascii=False),
            "content_hash": self.content_hash, "n_chars": len(self.text),
            "metadata": json.dumps(self.metadata, ensure_ascii=False, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        return cls(doc_id=row["doc_id"], source=row["source"], title=row["title"],
                   blocks=[Block(**b) for b in json.loads(row["blocks"])], format=row["format"],
                   metadata=json.loads(row.get("metadata") or "{}"))


@dataclass
class Chunk:
    doc_id: str
    doc_hash: str
    source: str
    title: str
    heading_path: str
    position: int
    text: str
    token_count: int = 0

    @property
    def content_hash(self) -> str:
        return sha256_text(f"{self.heading_path}\x1f{self.text}")

    @property
    def chunk_id(self) -> str:
        return chunk_object_id(self.doc_id, self.position, self.content_hash)

    @property
    def embedding_text(self) -> str:
        """What the model embeds: the heading path gives a chunk its context."""
        return f"{self.heading_path}\n{self.text}" if self.heading_path else self.text

    def to_row(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "doc_id": self.doc_id, "doc_hash": self.doc_hash,
                "source": self.source, "title": self.title, "heading_path": self.heading_path,
                "position": self.position, "text": self.text, "content_hash": self.content_hash,
                "token_count": self.token_count}


def embedding_text_of(row: dict[str, Any]) -> str:
    """``Chunk.embedding_text`` for a chunk row (a dict from a chunk-set table or a store)."""
    return f"{row['heading_path']}\n{row['text']}" if row.get("heading_path") else row["text"]
