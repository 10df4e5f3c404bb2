"""Instruction rows for the generator LLM, built from the query dataset: pure functions, no services.

A row is one (question, positive passage) pair of the synthetic query dataset, asked the way the
serving path asks its LLM (the answer prompt, ``prompts/answer.v1.txt``: numbered passages, cite
them as [n], JSON ``{"answer": ...}``), so the finetuned model learns exactly the request it will
serve. The prompt holds ``passages_per_prompt`` numbered passages: the positive at a seeded position
among distractors (the pair's hard negative when it has one, then other documents' positives);
the reference answer cites the positive's number. The answer is written by an LLM
(``ragops.llm.data``), or extractively: the positive passage's sentences that best match the
question, each cited (the named fallback without an LLM endpoint).

Rows keep the query dataset's split, which is by document: no document has rows on both sides.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from ragops.hashing import hash_object
from ragops.prompts import Prompt
from ragops.vocabulary import AnswerWriter

SPLITS = ("train", "test")
ANSWER_PROMPT = "answer.v1"          # the serving path's answer prompt (ragops/prompts/answer.v1.txt)
EXTRACTIVE_SENTENCES = 2

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]+")
_STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "who", "why", "with", "you", "your", "about", "into", "there", "their", "they", "was", "were", "will"])

# (question, passages [(heading, text)], the positive's number) -> the answer text, or None to drop the row
AnswerFn = Callable[[str, Sequence[tuple[str, str]], int], str | None]


def clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def number_passages(passages: Sequence[tuple[str, str]]) -> str:
    """``[n] heading`` then the text, blank lines between: as the serving path shows passages."""
    return "\n\n".join(f"[{n}] {heading}\n{text}" for n, (heading, text) in enumerate(passages, start=1))


def pick_passages(row: dict[str, Any], pool: Sequence[dict[str, Any]], *, k: int, seed: int,
                  passage_chars: int) -> tuple[list[tuple[str, str]], int]:
    """The row's positive among ``k - 1`` distractors from other documents (its hard negative first),
    in a seeded order; returns the passages and the positive's number (1-based)."""
    rng = random.Random(hash_object(["passages", seed, row["query_id"]]))
    distractors: list[tuple[str, str]] = []
    if row.get("negative"):
        distractors.append(("", row["negative"]))
    others = [r for r in pool if r["doc_id"] != row["doc_id"]]
    seen = {row["positive"], row.get("negative")}
    for other in rng.sample(others, min(len(others), 4 * k)):
        if len(distractors) >= k - 1:
            break
        if other["positive"] not in seen:
            seen.add(other["positive"])
            distractors.append((other["doc_id"], other["positive"]))
    distractors = distractors[:k - 1]
    position = rng.randrange(len(distractors) + 1)
    passages = [*distractors[:position], (row["doc_id"], row["positive"]), *distractors[position:]]
    return [(heading or "passage", clip(text, passage_chars)) for heading, text in passages], position + 1


def split_sentences(text: str) -> list[str]:
    return [s for s in (" ".join(p.split()) for p in _SENTENCE.split(text)) if len(s) > 2]


def _terms(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def extractive_answer(question: str, passages: Sequence[tuple[str, str]], positive: int, *,
                      sentences: int = EXTRACTIVE_SENTENCES) -> str:
    """The positive passage's sentences that best match the question (in reading order), each cited."""
    text = passages[positive - 1][1].removesuffix(" ...")
    candidates = split_sentences(text) or [text]
    terms = _terms(question)
    scored = sorted(range(len(candidates)), key=lambda i: (
        -len(terms & _terms(candidates[i])) / math.sqrt(max(4, len(_terms(candidates[i])))), i))
    picked = sorted(scored[:sentences])
    return " ".join(f"{candidates[i].rstrip()} [{positive}]" for i in picked)


def instruction_row(row: dict[str, Any], split: str, prompt: Prompt, passages: Sequence[tuple[str, str]],
                    positive: int, answer: str, source: AnswerWriter) -> dict[str, Any]:
    """One training row in train_llm.py's chat prompt-completion form, with its provenance."""
    messages = prompt.render(question=row["query"], passages=number_passages(passages))
    return {
        "query_id": row["query_id"], "doc_id": row["doc_id"], "chunk_id": row["chunk_id"], "split": split,
        "question": row["query"], "n_passages": len(passages), "positive_index": positive,
        "answer_source": source.value,
        "prompt": messages,
        "completion": [{"role": "assistant", "content": json.dumps({"answer": answer}, ensure_ascii=False)}],
    }


def build_instruction_rows(splits: dict[str, Sequence[dict[str, Any]]], *, prompt: Prompt, answer: AnswerFn,
                           source: AnswerWriter, passages_per_prompt: int = 3, passage_chars: int = 1200,
                           seed: int = 0, max_rows: int = 0) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Instruction rows per split (the query dataset's split, by document) and counts of rows dropped.

    ``max_rows`` caps the training rows (the first ones in the dataset's canonical order); distractors
    are drawn from the same split, so no test document's text appears in a training prompt."""
    out: dict[str, list[dict[str, Any]]] = {}
    dropped = {"no_answer": 0}
    for split in SPLITS:
        pool = list(splits.get(split, []))
        chosen = pool[:max_rows] if max_rows and split == "train" else pool
        rows = []
        for row in chosen:
            passages, positive = pick_passages(row, pool, k=passages_per_prompt, seed=seed,
                                               passage_chars=passage_chars)
            text = answer(row["query"], passages, positive)
            if not text:
                dropped["no_answer"] += 1
                continue
            rows.append(instruction_row(row, split, prompt, passages, positive, text, source))
        out[split] = rows
    return out, dropped


def instructions_hash(splits: dict[str, Sequence[dict[str, Any]]]) -> str:
    """The instruction dataset's identity: its rows, prompt and completion included."""
    return hash_object({name: [[r["query_id"], r["prompt"], r["completion"]] for r in splits[name]]
                        for name in SPLITS})


def to_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()


def from_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def answer_text(row: dict[str, Any]) -> str:
    """The reference answer of a row (the JSON completion's ``answer``)."""
    content = row["completion"][0]["content"]
    try:
        value = json.loads(content).get("answer")
    except (ValueError, AttributeError):
        return content
    return value if isinstance(value, str) else ""
