"""Reference answers written by the LLM endpoint (``ragops_llm``), through the answer cache.

The teacher is asked the very prompt the instruction rows hold (the serving path's answer prompt),
at temperature 0. Each answer is cached in the lineage registry (``llm_cache``) the moment it
arrives, keyed by the prompt's messages, the prompt version, the model and the settings, so a
retried task pays for nothing twice. An answer that is not ``{"answer": "..."}``, answers null, or
cites a passage that was not given is dropped and counted: the row would teach the wrong thing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragops.hashing import hash_object
from ragops.llm.instructions import number_passages
from ragops.synthetic.cache import CachedAnswer, LLMCache, cache_key

if TYPE_CHECKING:
    from ragops.lineage import Registry
    from ragops.prompts import Prompt
    from ragops.synthetic.llm import ChatClient, LLMSettings

log = logging.getLogger(__name__)


class LLMAnswerWriter:
    """An ``AnswerFn`` backed by the LLM endpoint and the registry's answer cache; counts what it did."""

    def __init__(self, settings: LLMSettings, prompt: Prompt, registry: Registry, *, seed: int = 0,
                 client: ChatClient | None = None):
        from ragops.synthetic.llm import ChatClient

        self.settings, self.prompt, self.seed = settings, prompt, seed
        self.cache = LLMCache(registry)
        self.client = client or ChatClient(settings)
        self.counts: Counter[str] = Counter()

    def __call__(self, question: str, passages: Sequence[tuple[str, str]], positive: int) -> str | None:
        from ragops.training.llm_eval import check_citations

        messages = self.prompt.render(question=question, passages=number_passages(passages))
        key = cache_key(content_hash=hash_object(messages), prompt_version=self.prompt.version_id,
                        model=self.settings.model, params={"temperature": self.settings.temperature,
                                                           "max_tokens": self.settings.max_tokens, "use": "sft"},
                        seed=self.seed, attempt=0)
        cached = self.cache.get_many([key]).get(key)
        if cached is None:
            completion = self.client.complete(messages, seed=self.seed)
            cached = CachedAnswer({"content": completion.content, "model": completion.model},
                                  completion.prompt_tokens, completion.completion_tokens,
                                  self.settings.cost_usd(completion.prompt_tokens, completion.completion_tokens))
            self.cache.put(key, model=self.settings.model, prompt_version=self.prompt.version_id, answer=cached)
            self.counts["calls"] += 1
        else:
            self.counts["cache_hits"] += 1
        self.counts["prompt_tokens"] += cached.prompt_tokens
        self.counts["completion_tokens"] += cached.completion_tokens
        answer = parse_answer(cached.response.get("content", ""))
        if answer is None:
            self.counts["dropped_malformed_or_null"] += 1
            return None
        if not check_citations(answer, len(passages))["valid"]:
            self.counts["dropped_invalid_citation"] += 1
            return None
        if positive not in check_citations(answer, len(passages))["cited"]:
            self.counts["dropped_positive_not_cited"] += 1
            return None
        return answer

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)

    def close(self) -> None:
        self.client.close()


def parse_answer(content: str) -> str | None:
    """The ``answer`` of ``{"answer": "..."}``; None when it is null, blank or not that JSON."""
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        return None
    value = data.get("answer") if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None
