"""The LLM judge: faithfulness of an answer to the passages it cites, and its relevance to the question.

Used by the evaluation only when the ``ragops_llm`` endpoint exists (else the scores are named as
skipped). Each verdict is cached in the registry's ``llm_cache`` (keyed by question, passages, answer,
judge prompt and model), so a retried evaluation asks nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragops.hashing import hash_object
from ragops.synthetic.cache import CachedAnswer, LLMCache, cache_key

if TYPE_CHECKING:
    from ragops.lineage import Registry
    from ragops.synthetic.llm import ChatClient, LLMSettings

PROMPTS = Path(__file__).resolve().parent / "prompts"
JUDGE_PROMPT = ("judge", "v1")
METRICS = ("faithfulness", "relevance")


def parse_verdict(content: str) -> dict[str, float] | None:
    try:
        data = json.loads(content)
        scores = {m: float(data[m]) for m in METRICS}
    except (TypeError, ValueError, KeyError):
        return None
    return scores if all(0.0 <= v <= 1.0 for v in scores.values()) else None


class Judge:
    def __init__(self, settings: LLMSettings, registry: Registry, *, client: ChatClient | None = None):
        from ragops.prompts import load_prompt
        from ragops.synthetic.llm import ChatClient

        self.settings = settings
        self.prompt = load_prompt(*JUDGE_PROMPT, directory=PROMPTS)
        self.cache = LLMCache(registry)
        self.client = client or ChatClient(settings)
        self.counts: Counter[str] = Counter()

    def grade(self, question: str, passages: str, answer: str) -> dict[str, float] | None:
        messages = self.prompt.render(question=question, passages=passages, answer=answer)
        key = cache_key(content_hash=hash_object(messages), prompt_version=self.prompt.version_id,
                        model=self.settings.model, params={"temperature": self.settings.temperature, "use": "judge"},
                        seed=0, attempt=0)
        cached = self.cache.get_many([key]).get(key)
        if cached is None:
            completion = self.client.complete(messages, seed=0)
            cached = CachedAnswer({"content": completion.content, "model": completion.model},
                                  completion.prompt_tokens, completion.completion_tokens,
                                  self.settings.cost_usd(completion.prompt_tokens, completion.completion_tokens))
            self.cache.put(key, model=self.settings.model, prompt_version=self.prompt.version_id, answer=cached)
            self.counts["calls"] += 1
        else:
            self.counts["cache_hits"] += 1
        verdict = parse_verdict(cached.response.get("content", ""))
        if verdict is None:
            self.counts["malformed"] += 1
        return verdict

    def score(self, items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        """Mean faithfulness and relevance over (question, passages, answer) items; malformed verdicts skipped."""
        verdicts = [v for v in (self.grade(*item) for item in items) if v is not None]
        out: dict[str, Any] = {m: (sum(v[m] for v in verdicts) / len(verdicts) if verdicts else 0.0) for m in METRICS}
        out["graded"] = len(verdicts)
        return out

    def close(self) -> None:
        self.client.close()
