"""LLM query generation: a bounded thread pool, the answer cache, a budget cap, strict parsing.

One call per sampled chunk asks for ``questions_per_chunk`` queries. An answer that is not the
JSON asked for is retried (a new call, a new cache key: attempt N) up to ``json_attempts`` times,
then the chunk is dropped and counted. Every answer, good or bad, is cached as soon as it arrives.

The budget counts every answer this generation uses, cached or new, so a resumed run stops where
an uninterrupted one would have; calls already in flight when the cap is reached still finish,
so the overshoot is at most ``concurrency`` calls.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai

from ragops.hashing import hash_object
from ragops.progress import Progress
from ragops.prompts import Prompt
from ragops.synthetic.cache import CachedAnswer, LLMCache, cache_key
from ragops.synthetic.llm import FATAL_ERRORS, ChatClient, LLMSettings, MalformedAnswer, parse_queries

if TYPE_CHECKING:
    from ragops.lineage import Registry

log = logging.getLogger(__name__)


@dataclass
class Budget:
    """Stops new calls once either cap is reached (``None`` = no cap)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allows_call(self) -> bool:
        with self._lock:
            over = ((self.max_tokens is not None and self.tokens >= self.max_tokens)
                    or (self.max_cost_usd is not None and self.cost_usd >= self.max_cost_usd))
            if over:
                self.refused += 1
            return not over

    def spend(self, tokens: int, cost_usd: float) -> None:
        with self._lock:
            self.tokens += tokens
            self.cost_usd += cost_usd


@dataclass
class GenerationStats:
    chunks: int = 0
    calls: int = 0                 # answers paid for in this run
    cache_hits: int = 0            # answers reused from the cache
    malformed_answers: int = 0     # answers that were not valid JSON (each one retried or dropped)
    dropped_malformed: int = 0     # chunks dropped after json_attempts malformed answers
    dropped_budget: int = 0        # chunks never asked because the budget was reached
    dropped_api_error: int = 0     # chunks whose call failed after all HTTP retries
    prompt_tokens: int = 0         # all answers used (cached + new)
    completion_tokens: int = 0
    cost_usd: float = 0.0
    new_prompt_tokens: int = 0     # paid in this run
    new_completion_tokens: int = 0
    new_cost_usd: float = 0.0
    http_attempts: int = 0
    http_retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        values["cost_usd"] = round(self.cost_usd, 8)
        values["new_cost_usd"] = round(self.new_cost_usd, 8)
        values["cache_hit_rate"] = round(self.cache_hits / max(1, self.cache_hits + self.calls), 4)
        return values


def _seed_for(seed: int, content_hash: str, attempt: int) -> int:
    return int(hash_object([seed, content_hash, attempt])[:8], 16)


def generate_with_llm(
    chunks: Sequence[dict[str, Any]], *, settings: LLMSettings, prompt: Prompt, registry: Registry,
    questions_per_chunk: int = 3, seed: int = 0, concurrency: int = 4, budget: Budget | None = None,
    client: ChatClient | None = None, on_answer: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], GenerationStats]:
    """Generates queries for chunk rows (chunk-set columns). Returns query records in chunk order
    (``query, chunk_id, doc_id, content_hash, kind="llm", question_index``) and the stats."""
    budget = budget or Budget()
    cache = LLMCache(registry)
    own_client = client is None
    client = client or ChatClient(settings)
    params = {"temperature": settings.temperature, "max_tokens": settings.max_tokens,
              "questions_per_chunk": questions_per_chunk}

    def key(chunk: dict[str, Any], attempt: int) -> str:
        return cache_key(content_hash=chunk["content_hash"], prompt_version=prompt.version_id,
                         model=settings.model, params=params, seed=seed, attempt=attempt)

    cached = cache.get_many(key(c, a) for c in chunks for a in range(settings.json_attempts))
    stats = GenerationStats(chunks=len(chunks))
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()

    def account(answer: CachedAnswer, new: bool) -> None:
        tokens = answer.prompt_tokens + answer.completion_tokens
        budget.spend(tokens, answer.cost_usd)
        with lock:
            stats.prompt_tokens += answer.prompt_tokens
            stats.completion_tokens += answer.completion_tokens
            stats.cost_usd += answer.cost_usd
            if new:
                stats.calls += 1
                stats.new_prompt_tokens += answer.prompt_tokens
                stats.new_completion_tokens += answer.completion_tokens
                stats.new_cost_usd += answer.cost_usd
            else:
                stats.cache_hits += 1

    def one(chunk: dict[str, Any]) -> list[str] | None:
        messages = prompt.render(n_questions=questions_per_chunk, title=chunk.get("title") or "",
                                 heading_path=chunk.get("heading_path") or "", passage=chunk["text"])
        for attempt in range(settings.json_attempts):
            k = key(chunk, attempt)
            answer = cached.get(k)
            if answer is not None:
                account(answer, new=False)
            else:
                if not budget.allows_call():
                    outcomes["budget"] += 1
                    return None
                try:
                    completion = client.complete(messages, seed=_seed_for(seed, chunk["content_hash"], attempt))
                except FATAL_ERRORS:
                    raise
                except openai.APIError as exc:  # 429/5xx after all retries, or another 4xx
                    log.warning("chunk %s dropped: LLM call failed after retries (%s)", chunk["chunk_id"],
                                type(exc).__name__)
                    outcomes["api_error"] += 1
                    return None
                answer = CachedAnswer({"content": completion.content, "model": completion.model},
                                      completion.prompt_tokens, completion.completion_tokens,
                                      settings.cost_usd(completion.prompt_tokens, completion.completion_tokens))
                cache.put(k, model=settings.model, prompt_version=prompt.version_id, answer=answer)
                account(answer, new=True)
                if on_answer is not None:
                    on_answer(k)
            try:
                return parse_queries(answer.response.get("content", ""), questions_per_chunk)
            except MalformedAnswer as exc:
                with lock:
                    stats.malformed_answers += 1
                log.info("chunk %s attempt %d: %s", chunk["chunk_id"], attempt, exc)
        outcomes["malformed"] += 1
        return None

    try:
        with (ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="llm") as pool,
              Progress("generate", total=len(chunks), unit="chunks") as progress):
            futures = [pool.submit(one, chunk) for chunk in chunks]
            try:
                for future in as_completed(futures):
                    future.result()
                    progress.update()
            except BaseException:
                for f in futures:
                    f.cancel()  # calls already running finish and are cached; the rest never start
                raise
            results = [f.result() for f in futures]
    finally:
        if own_client:
            client.close()
    stats.dropped_budget = outcomes["budget"]
    stats.dropped_api_error = outcomes["api_error"]
    stats.dropped_malformed = outcomes["malformed"]
    stats.http_attempts = client.http_attempts
    stats.http_retries = client.retries
    records: list[dict[str, Any]] = []
    for chunk, queries in zip(chunks, results):
        for index, query in enumerate(queries or []):
            records.append({"query": query, "chunk_id": chunk["chunk_id"], "doc_id": chunk["doc_id"],
                            "content_hash": chunk["content_hash"], "kind": "llm", "question_index": index})
    return records, stats
