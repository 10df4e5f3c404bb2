"""Answers with citations: the top passages, numbered, sent to the LLM; each [n] maps to a hit.

``answer(question, hits, llm)``:

1. The best passage's similarity to the question (``Hit.similarity``, cosine under the
   collection's model) below ``min_similarity``: the answer says it does not know (kind
   ``unknown``) instead of guessing. No LLM call is made.
2. With an LLM (the ``ragops_llm`` endpoint, through ``ChatClient``): the passages go out numbered
   [1]..[n] with the versioned prompt ``prompts/answer.v1.txt``; the answer cites them as [n].
   A cited number that is not one of the passages given is removed from the text and reported in
   ``removed_citations``; ``citations`` lists each cited passage once with its hit's citation.
   A model that finds no answer (``{"answer": null}``) gives kind ``unknown``.
3. Without an LLM, or when the call fails: an extractive answer, a named fallback (kind
   ``extractive``, ``fallback`` says why): the passages' sentences that share most words with
   the question, each followed by its passage's [n].
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.retrieval.hits import Hit

if TYPE_CHECKING:
    from ragops.services import LLMEndpoint
    from ragops.synthetic.llm import ChatClient

log = logging.getLogger(__name__)

PROMPT_NAME, PROMPT_VERSION = "answer", "v1"
# Below this cosine similarity (all-MiniLM-L6-v2 scale) the best passage is not about the question.
MIN_SIMILARITY = 0.3
MAX_PASSAGES = 5
MAX_PASSAGE_CHARS = 1500
EXTRACTIVE_SENTENCES = 3
GENERATED, EXTRACTIVE, UNKNOWN = "generated", "extractive", "unknown"

_CITE = re.compile(r"\[\s*(?:passages?\s*)?(\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.I)
# Sentence ends, blank lines, and line breaks before a list item ("- Stop the server.").
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[ \t]*(?:[-*\u2022]|\d+[.)])\s)")
_WORD = re.compile(r"[a-z0-9][a-z0-9_'-]*")
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has", "have", "how", "i",
    "if", "in", "into", "is", "it", "its", "of", "on", "or", "that", "the", "their", "then", "there", "these",
    "this", "to", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with", "you", "your",
    "about", "after", "before", "should", "could", "would", "my", "me", "we", "our", "not", "no", "yes", "than",
    "so", "such", "also", "any", "all"
})


@dataclass(frozen=True)
class AnswerCitation:
    """Passage ``n`` of an answer and where it comes from."""

    n: int
    hit: Hit

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "score": self.hit.score, "similarity": self.hit.similarity,
                **self.hit.citation.as_dict()}


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    kind: str                                  # generated | extractive | unknown
    passages: list[Hit]                        # passage n is passages[n - 1]
    citations: list[AnswerCitation]            # the passages the text cites, by number
    removed_citations: list[int] = field(default_factory=list)   # cited numbers that were not passages
    fallback: dict[str, str] | None = None     # set when the LLM was not used (and why)
    model: str | None = None
    prompt_version: str | None = None
    best_similarity: float | None = None
    usage: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.text, "kind": self.kind,
                "citations": [c.as_dict() for c in self.citations], "removed_citations": list(self.removed_citations),
                "fallback": self.fallback, "model": self.model, "prompt_version": self.prompt_version,
                "best_similarity": self.best_similarity, "usage": dict(self.usage),
                "passages": [{"n": i, **h.as_dict()} for i, h in enumerate(self.passages, start=1)]}


def chat_client(endpoint: LLMEndpoint, **overrides: Any) -> ChatClient:
    """A chat client for answers from the ``ragops_llm`` endpoint (its extra names the model)."""
    from ragops.synthetic.llm import ChatClient, LLMSettings

    values = {"temperature": 0.0, "max_tokens": 512, "max_attempts": 3, "max_wait_s": 10.0, "timeout_s": 30.0}
    return ChatClient(LLMSettings.from_endpoint(endpoint, **(values | overrides)))


def answer(question: str, hits: Sequence[Hit], llm: ChatClient | LLMEndpoint | None = None, *,
           min_similarity: float = MIN_SIMILARITY, max_passages: int = MAX_PASSAGES,
           llm_problem: str | None = None) -> Answer:
    """An answer to ``question`` from ``hits`` (best first). ``llm``: a chat client or the endpoint;
    None gives the extractive fallback (``llm_problem`` says why, if known)."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput("question: must be a non-empty string")
    passages = list(hits)[:max_passages]
    similarities = [h.similarity for h in passages if h.similarity is not None]
    best = round(max(similarities), 4) if similarities else None
    if not passages or (best is not None and best < min_similarity):
        why = ("no passage was found" if not passages else
               f"the best passage found has similarity {best:.2f}, below the threshold {min_similarity:.2f}")
        return Answer(question, f"I don't know: {why}, so the collection does not seem to answer this question.",
                      UNKNOWN, passages, [], best_similarity=best)
    if llm is None:
        reason = llm_problem or "no ragops_llm endpoint is configured"
        return extractive_answer(question, passages, reason=reason, best_similarity=best)
    client = llm if hasattr(llm, "complete") else chat_client(llm)   # type: ignore[arg-type]
    return _generated(question, passages, client, best)


def _generated(question: str, passages: list[Hit], client: ChatClient, best: float | None) -> Answer:
    from ragops.prompts import load_prompt

    prompt = load_prompt(PROMPT_NAME, PROMPT_VERSION)
    messages = prompt.render(question=question.strip(), passages=number_passages(passages))
    try:
        completion = client.complete(messages)
        text = _parse(completion.content)
    except Exception as exc:  # noqa: BLE001 - any failure of the LLM path is a named fallback, not a 500
        reason = f"the LLM call failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        log.warning("answer: %s; answering extractively", reason)
        return extractive_answer(question, passages, reason=reason, best_similarity=best,
                                 prompt_version=prompt.version_id)
    usage = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    if text is None or not text.strip():
        return Answer(question, "I don't know: the passages found do not answer this question.", UNKNOWN, passages,
                      [], model=completion.model, prompt_version=prompt.version_id, best_similarity=best, usage=usage)
    text, cited, removed = check_citations(text, len(passages))
    if removed:
        log.warning("answer cited passages %s, which were not given (%d passages): removed", removed, len(passages))
    return Answer(question, text, GENERATED, passages, [AnswerCitation(n, passages[n - 1]) for n in cited],
                  removed, model=completion.model, prompt_version=prompt.version_id, best_similarity=best, usage=usage)


def _parse(content: str) -> str | None:
    data = json.loads(content)
    if not isinstance(data, dict) or "answer" not in data:
        raise ValueError('the answer is not {"answer": ...}')
    value = data["answer"]
    if value is not None and not isinstance(value, str):
        raise ValueError(f"the answer is a JSON {type(value).__name__}, not a string or null")
    return value


def number_passages(passages: Sequence[Hit], max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """The passages as the prompt shows them: ``[n] title > headings`` then the text."""
    blocks = []
    for i, hit in enumerate(passages, start=1):
        heading = hit.citation.heading_path or hit.citation.title or hit.title
        text = " ".join(hit.text.split())
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " ..."
        blocks.append(f"[{i}] {heading}\n{text}")
    return "\n\n".join(blocks)


def check_citations(text: str, n_passages: int) -> tuple[str, list[int], list[int]]:
    """The text with citations of passages that were not given removed, the numbers it cites (in
    order of first citation) and the removed ones."""
    cited: list[int] = []
    removed: list[int] = []

    def keep(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", match.group(1))]
        good = [n for n in numbers if 1 <= n <= n_passages]
        removed.extend(n for n in numbers if n not in good and n not in removed)
        cited.extend(n for n in good if n not in cited)
        return "".join(f"[{n}]" for n in good)

    cleaned = _CITE.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    return cleaned, cited, removed


def extractive_answer(question: str, passages: Sequence[Hit], *, reason: str, best_similarity: float | None = None,
                      sentences: int = EXTRACTIVE_SENTENCES, prompt_version: str | None = None) -> Answer:
    """The passages' sentences that best match the question, each cited: the named fallback."""
    passages = list(passages)
    terms = _terms(question)
    docs = [{_stem(w) for w in _WORD.findall(h.text.lower())} for h in passages]
    idf = {t: math.log(1 + len(docs) / (1 + sum(t in d for d in docs))) + 1.0 for t in terms}
    scored: list[tuple[float, int, int, str]] = []
    for n, hit in enumerate(passages, start=1):
        for j, sentence in enumerate(split_sentences(hit.text)):
            words = {_stem(w) for w in _WORD.findall(sentence.lower())}
            overlap = sum(idf[t] for t in terms if t in words)
            if overlap > 0:
                # a small preference for better-ranked passages and for earlier sentences
                scored.append((overlap / math.sqrt(max(len(words), 4)) + 0.05 / n, n, j, sentence))
    picked = sorted(scored, key=lambda s: -s[0])[:sentences]
    if not picked and passages:
        first = split_sentences(passages[0].text)
        picked = [(0.0, 1, 0, first[0] if first else passages[0].text[:300])]
    picked.sort(key=lambda s: (s[1], s[2]))   # read in passage order
    text = " ".join(f"{_clip(sentence)} [{n}]" for _, n, _, sentence in picked)
    cited = list(dict.fromkeys(n for _, n, _, _ in picked))
    return Answer(question, text, EXTRACTIVE, passages, [AnswerCitation(n, passages[n - 1]) for n in cited],
                  fallback={"service": "LLM", "using": "extractive answer", "reason": reason},
                  prompt_version=prompt_version, best_similarity=best_similarity)


def split_sentences(text: str) -> list[str]:
    return [s for s in (" ".join(p.split()) for p in _SENTENCE.split(text)) if len(s) > 2]


def _clip(sentence: str, limit: int = 400) -> str:
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + " ..."


def _terms(text: str) -> list[str]:
    return list(dict.fromkeys(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1))


def _stem(word: str) -> str:
    """A crude suffix stripper: "restoring", "restored", "restores" and "restore" meet at "restor"."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word
