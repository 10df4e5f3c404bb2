"""Answers on a fixed sample, checked without an LLM and, when one exists, judged by it.

The sample is seeded (the same questions every run, so runs compare). Each question goes through
the query path and ``ragops.answers.answer`` as the service answers it: the LLM with citations when
``ragops_llm`` exists, else the extractive fallback.

- **Non-LLM checks** (always): citation validity (every [n] names a passage that was retrieved),
  cited relevance (the cited passages are judged relevant by the set), and the answer's token
  overlap with the gold passages (the share of its words found there).
- **The judge** (with an LLM): faithfulness, answer relevance, context precision and citation
  correctness, from the versioned prompt ``prompts/rag_judge.v1.txt``. ragas would need its own
  LLM wrappers (LangChain) around our client and cache; one prompt file does the same four scores
  through the client we already trust.

Every LLM call (answer and judge) goes through the registry's ``llm_cache``: a call is paid once,
a re-run pays nothing. The run stops answering once its spend reaches the cost cap.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragops.hashing import hash_object
from ragops.vocabulary import EVAL_JUDGE_PROMPT

if TYPE_CHECKING:
    from ragops.answers import Answer
    from ragops.lineage import Registry
    from ragops.synthetic.llm import ChatClient, Completion, LLMSettings

log = logging.getLogger(__name__)

JUDGE_METRICS = ("faithfulness", "answer_relevance", "context_precision", "citation_correctness")
CHECK_METRICS = ("citation_validity", "cited_relevant", "gold_overlap")
_CITE = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
_WORD = re.compile(r"[a-z0-9][a-z0-9_'-]*")


@dataclass(frozen=True)
class Item:
    """One sampled question with its judged ids (documents or chunks, per ``level``)."""

    set_name: str
    qid: str
    question: str
    gold: frozenset[str]
    level: str


def sample_items(sets: Sequence[tuple[str, Any]], size: int, seed: int) -> list[Item]:
    """A fixed sample over every set's queries: ``(set name, LabelledQueries)`` in, the same
    ``size`` questions out on every run with the same sets and seed."""
    pool = [Item(name, qid, labelled.queries[qid], frozenset(i for i, r in labelled.qrels[qid].items() if r > 0),
                 labelled.level)
            for name, labelled in sorted(sets, key=lambda s: s[0]) for qid in sorted(labelled.qrels)
            if any(r > 0 for r in labelled.qrels[qid].values())]
    return random.Random(seed).sample(pool, min(size, len(pool)))


# -- the LLM, through the cache ------------------------------------------------------------------
@dataclass
class Ledger:
    """What this run's LLM use cost: calls paid, calls answered from the cache, dollars."""

    cap_usd: float
    calls: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0

    @property
    def exhausted(self) -> bool:
        return self.cost_usd >= self.cap_usd

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cache_hits": self.cache_hits, "cost_usd": round(self.cost_usd, 6),
                "cost_cap_usd": self.cap_usd}


class CachedChat:
    """``complete(messages)`` as ``ChatClient`` has it, answered from ``llm_cache`` when it can be."""

    def __init__(self, client: ChatClient, settings: LLMSettings, registry: Registry, ledger: Ledger, use: str):
        from ragops.synthetic.cache import LLMCache

        self.client, self.settings, self.ledger, self.use = client, settings, ledger, use
        self.cache = LLMCache(registry)

    def complete(self, messages: Sequence[dict[str, str]], *, seed: int | None = None) -> Completion:
        from ragops.synthetic.cache import CachedAnswer, cache_key
        from ragops.synthetic.llm import Completion

        key = cache_key(content_hash=hash_object(list(messages)), prompt_version=self.use, model=self.settings.model,
                        params={"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens,
                                "use": "rag_evaluate"}, seed=0, attempt=0)
        cached = self.cache.get_many([key]).get(key)
        if cached is not None:
            self.ledger.cache_hits += 1
            return Completion(str(cached.response.get("content", "")), cached.prompt_tokens, cached.completion_tokens,
                              str(cached.response.get("model") or self.settings.model))
        completion = self.client.complete(messages, seed=0)
        cost = self.settings.cost_usd(completion.prompt_tokens, completion.completion_tokens)
        self.cache.put(key, model=self.settings.model, prompt_version=self.use, answer=CachedAnswer(
            {"content": completion.content, "model": completion.model}, completion.prompt_tokens,
            completion.completion_tokens, cost))
        self.ledger.calls += 1
        self.ledger.cost_usd += cost
        return completion


def parse_verdict(content: str) -> dict[str, float] | None:
    """The judge's four scores, each in [0, 1]; None for anything else."""
    try:
        data = json.loads(content)
        scores = {m: float(data[m]) for m in JUDGE_METRICS}
    except (TypeError, ValueError, KeyError):
        return None
    return scores if all(0.0 <= v <= 1.0 for v in scores.values()) else None


def judge(chat: CachedChat, answer: Answer) -> dict[str, float] | None:
    from ragops.answers import number_passages
    from ragops.prompts import load_prompt

    prompt = load_prompt(*EVAL_JUDGE_PROMPT.rsplit(".", 1))
    messages = prompt.render(question=answer.question, passages=number_passages(answer.passages), answer=answer.text)
    return parse_verdict(chat.complete(messages).content)


def judge_prompt_version() -> str:
    from ragops.prompts import load_prompt

    return load_prompt(*EVAL_JUDGE_PROMPT.rsplit(".", 1)).version_id


# -- checks without an LLM -----------------------------------------------------------------------
def words(text: str) -> set[str]:
    return set(_WORD.findall(_CITE.sub(" ", text).lower()))


def answer_checks(answer: Answer, item: Item, gold_text: str) -> dict[str, float] | None:
    """Citation validity, cited relevance and gold overlap of one answer (None: it said "unknown")."""
    from ragops.answers import UNKNOWN

    if answer.kind == UNKNOWN:
        return None
    valid = bool(answer.citations) and not answer.removed_citations and all(
        1 <= c.n <= len(answer.passages) and answer.passages[c.n - 1].chunk_id == c.hit.chunk_id
        for c in answer.citations)
    key = "doc_id" if item.level == "doc" else "chunk_id"
    cited = [getattr(c.hit.citation, key) or c.hit.chunk_id for c in answer.citations]
    relevant = sum(1 for ident in cited if ident in item.gold) / len(cited) if cited else 0.0
    said, gold = words(answer.text), words(gold_text)
    overlap = len(said & gold) / len(said) if said else 0.0
    return {"citation_validity": float(valid), "cited_relevant": round(relevant, 4), "gold_overlap": round(overlap, 4)}


def mean_scores(rows: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, float]:
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in names} if rows else {}


@dataclass
class GenerationTally:
    """The sample's outcome, item by item, for the report and the metrics."""

    items: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, float]] = field(default_factory=list)
    verdicts: list[dict[str, float]] = field(default_factory=list)
    writers: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    capped: bool = False

    def add(self, item: Item, answer: Answer, checks: dict[str, float] | None,
            verdict: dict[str, float] | None) -> None:
        self.writers[answer.kind] = self.writers.get(answer.kind, 0) + 1
        if checks is not None:
            self.checks.append(checks)
        if verdict is not None:
            self.verdicts.append(verdict)
        self.items.append({"set": item.set_name, "qid": item.qid, "question": item.question, "kind": answer.kind,
                           "answer": answer.text, "cited": [c.n for c in answer.citations],
                           "removed_citations": list(answer.removed_citations), "checks": checks,
                           "verdict": verdict, "fallback": answer.fallback})

    def metrics(self, sample_size: int, ledger: Ledger | None) -> dict[str, Any]:
        out: dict[str, Any] = {"sample": sample_size, "answered": len(self.items), "answers": dict(self.writers),
                               **mean_scores(self.checks, CHECK_METRICS)}
        if ledger is not None:
            out.update(mean_scores(self.verdicts, JUDGE_METRICS))
            out.update({"judged": len(self.verdicts), "malformed_verdicts": self.malformed, "capped": self.capped,
                        "llm": ledger.as_dict()})
        return out
