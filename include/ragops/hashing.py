"""Content hashes and deterministic ids: the keys that make every task idempotent."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any

# A fixed namespace so that ids are stable across machines, runs and stores.
RAGOPS_NAMESPACE = uuid.UUID("6f1d2c1e-5b8a-4f0e-9d3c-2a7b9e4f1c0d")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utf8(text: str) -> bytes:
    """UTF-8 bytes of any Python string. Lone surrogates (how os.walk hands over a file name that is
    not valid UTF-8) pass through instead of raising, so hashing never fails on a name."""
    return text.encode("utf-8", "surrogatepass")


def sha256_text(text: str) -> str:
    return sha256_bytes(utf8(text))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal objects hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_object(obj: Any) -> str:
    return sha256_text(canonical_json(obj))


def hash_many(hashes: Iterable[str]) -> str:
    """Order-independent hash of a set of content hashes (a snapshot's identity)."""
    digest = hashlib.sha256()
    for item in sorted(hashes):
        # UTF-8, not ASCII: ids are file names and BEIR _ids in any script. Escaping the separator
        # keeps a member holding "\n" from reading as two members; ids without "\\" or "\n" hash
        # exactly as before, so existing snapshots keep their hashes.
        digest.update(utf8(item.replace("\\", "\\\\").replace("\n", "\\n")))
        digest.update(b"\n")
    return digest.hexdigest()


def deterministic_uuid(*parts: Any) -> str:
    """A UUIDv5 from the parts: the same inputs give the same object id in every store.

    The same value as ``uuid.uuid5`` (RFC 4122), computed here so that any string, lone surrogates
    included, makes an id instead of raising."""
    name = utf8("\x1f".join(str(p) for p in parts))
    return str(uuid.UUID(bytes=hashlib.sha1(RAGOPS_NAMESPACE.bytes + name, usedforsecurity=False).digest()[:16],
                         version=5))


def chunk_object_id(doc_id: str, position: int, content_hash: str) -> str:
    return deterministic_uuid("chunk", doc_id, position, content_hash)


def short(digest: str, length: int = 12) -> str:
    return digest[:length]
