"""The LLM answer cache in the lineage Postgres (table ``llm_cache``, migration 3).

Keyed by everything that decides an answer: the chunk's content hash, the prompt version, the
model, the generation params (temperature, max tokens, questions asked) and the seed/attempt.
Each answer is written the moment it arrives, so a run killed halfway keeps what it paid for
and its retry or resume calls the model only for what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ragops.hashing import hash_object


def cache_key(*, content_hash: str, prompt_version: str, model: str, params: dict[str, Any],
              seed: int, attempt: int) -> str:
    return hash_object({"content_hash": content_hash, "prompt_version": prompt_version, "model": model,
                        "params": params, "seed": seed, "attempt": attempt})


@dataclass
class CachedAnswer:
    response: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class LLMCache:
    def __init__(self, registry: Any):
        self.registry = registry

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        with self.registry.transaction() as cur:
            cur.execute("SELECT cache_key, response, prompt_tokens, completion_tokens, cost_usd FROM llm_cache"
                        " WHERE cache_key = ANY(%s)", (keys,))
            return {row[0]: CachedAnswer(row[1], row[2], row[3], row[4]) for row in cur.fetchall()}

    def put(self, key: str, *, model: str, prompt_version: str, response: dict[str, Any],
            prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """Stores one answer; a second write of the same key keeps the first (it was paid first)."""
        with self.registry.transaction() as cur:
            cur.execute("INSERT INTO llm_cache (cache_key, model, prompt_version, response, prompt_tokens,"
                        " completion_tokens, cost_usd) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s)"
                        " ON CONFLICT (cache_key) DO NOTHING",
                        (key, model, prompt_version, json.dumps(response), prompt_tokens, completion_tokens,
                         cost_usd))

    def count(self, prompt_version: str | None = None) -> int:
        with self.registry.transaction() as cur:
            if prompt_version is None:
                cur.execute("SELECT count(*) FROM llm_cache")
            else:
                cur.execute("SELECT count(*) FROM llm_cache WHERE prompt_version = %s", (prompt_version,))
            return int(cur.fetchone()[0])
