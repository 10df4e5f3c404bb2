"""The LLM answer cache in the lineage Postgres (table ``llm_cache``, migration 3).

Keyed by everything that decides an answer: the chunk's content hash, the prompt version, the
model, the generation params (temperature, max tokens, questions asked) and the seed/attempt.
Each answer is written the moment it arrives, so a run killed halfway keeps what it paid for
and its retry or resume calls the model only for what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.hashing import hash_object
from ragops.vocabulary import LLM_CACHE_WRITE_PATIENCE_S

if TYPE_CHECKING:
    from ragops.lineage import Registry

log = logging.getLogger(__name__)


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
    """The cache as generation uses it; the registry owns its table and SQL."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        rows = self.registry.llm_cache_get(keys)
        return {key: CachedAnswer(r["response"], r["prompt_tokens"], r["completion_tokens"], r["cost_usd"])
                for key, r in rows.items()}

    def put(self, key: str, *, model: str, prompt_version: str, answer: CachedAnswer) -> None:
        """Stores one answer; a second write of the same key keeps the first (it was paid first).

        The answer is paid already: while the registry cannot be reached (a Postgres restart), the
        write is retried for up to ``LLM_CACHE_WRITE_PATIENCE_S`` instead of failing the task,
        whose retry would otherwise pay for the same answer again."""
        import psycopg2
        from tenacity import Retrying, before_sleep_log, retry_if_exception_type, stop_after_delay, wait_exponential

        retrying = Retrying(retry=retry_if_exception_type(psycopg2.OperationalError),
                            stop=stop_after_delay(LLM_CACHE_WRITE_PATIENCE_S), wait=wait_exponential(0.2, max=5),
                            before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)
        for attempt in retrying:
            with attempt:
                self.registry.llm_cache_put(
                    key, model=model, prompt_version=prompt_version, response=answer.response,
                    prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                    cost_usd=answer.cost_usd)

    def count(self, prompt_version: str | None = None) -> int:
        return self.registry.llm_cache_count(prompt_version)
