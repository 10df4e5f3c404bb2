"""Token-aware chunking: documents (blocks) -> chunks the embedding model sees whole.

Tokens are counted with the embedding model's own tokenizer. The hard guarantee: a chunk's
``embedding_text`` (heading path + text) plus the model's special tokens never exceeds
``max_tokens`` (the model's max_seq_length), because sentence-transformers would otherwise
truncate it silently and the tail of the chunk would never be searchable.

Strategies:
- "structure": a heading starts a new chunk; small consecutive blocks are packed up to
  ``chunk_size``; paragraphs and code blocks stay whole when they fit; an oversized block is
  split at sentence (prose) or line (code) boundaries, then at token boundaries as a last
  resort; consecutive chunks of one section share ``chunk_overlap`` tokens.
- "fixed": sliding token windows of ``chunk_size`` over the whole text with ``chunk_overlap``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ragops.documents import Block, Chunk, Document

STRATEGIES = ("structure", "fixed")
HEADING_SEPARATOR = " > "
# The heading path may take at most this share of the token budget; the text gets the rest.
HEADING_SHARE = 0.25
# A guard against tokens that swallow huge strings (WordPiece maps a >100-char "word" to one [UNK]).
MAX_CHARS_PER_TOKEN = 16
BLOCK_JOINER = "\n\n"
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")


class ChunkingError(ValueError):
    """A bad chunking parameter (named in the message) or an input that cannot be chunked."""


@dataclass(frozen=True)
class ChunkingConfig:
    """``chunk_size``/``chunk_overlap`` are tokens of chunk text; ``max_tokens`` is the model's limit.

    The heading path takes at most a quarter of ``max_tokens`` (its most specific end is kept), and
    the text budget of a section is what is left, capped at ``chunk_size``; the overlap is capped
    at half that budget. ``Chunk.token_count`` is what the model sees: the embedding text's tokens
    plus the special tokens ([CLS]/[SEP]), always <= ``max_tokens``.
    """

    strategy: str = "structure"
    chunk_size: int = 192
    chunk_overlap: int = 32
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ChunkingError(f"chunking param strategy={self.strategy!r} must be one of {STRATEGIES}")
        for name in ("chunk_size", "chunk_overlap", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ChunkingError(f"chunking param {name}={value!r} must be an integer")
        if self.max_tokens < 16:
            raise ChunkingError(f"chunking param max_tokens={self.max_tokens} must be at least 16")
        if not 8 <= self.chunk_size <= self.max_tokens:
            raise ChunkingError(f"chunking param chunk_size={self.chunk_size} must be between 8 and "
                                f"max_tokens={self.max_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ChunkingError(f"chunking param chunk_overlap={self.chunk_overlap} must be >= 0 and less than "
                                f"chunk_size={self.chunk_size}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ChunkingConfig:
        known = {"strategy", "chunk_size", "chunk_overlap", "max_tokens"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ChunkingError(f"unknown chunking params {unknown}; known: {sorted(known)}")
        return cls(**params)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenCounter:
    """Counts and locates tokens with a Hugging Face fast tokenizer, in batches."""

    def __init__(self, tokenizer: Any):
        if not getattr(tokenizer, "is_fast", False):
            raise ChunkingError("token-aware chunking needs a fast tokenizer (offset mappings)")
        self.tokenizer = tokenizer
        self.n_special = int(tokenizer.num_special_tokens_to_add(pair=False))

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [(int(s), int(e)) for s, e in enc["offset_mapping"]]


def _as_counter(tokenizer: Any) -> TokenCounter:
    return tokenizer if isinstance(tokenizer, TokenCounter) else TokenCounter(tokenizer)


def chunk_documents(docs: Iterable[Document], config: ChunkingConfig, tokenizer: Any) -> list[Chunk]:
    counter = _as_counter(tokenizer)
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk_document(doc, config, counter))
    return chunks


def chunk_document(doc: Document, config: ChunkingConfig, tokenizer: Any) -> list[Chunk]:
    counter = _as_counter(tokenizer)
    usable = config.max_tokens - counter.n_special
    if config.strategy == "fixed":
        heading = _fit_heading(doc.title, usable, counter)
        budget = _text_budget(heading, config, usable, counter)
        text = "\n\n".join(b.text for b in doc.blocks)
        overlap = min(config.chunk_overlap, budget // 2)  # the heading may shrink the window below chunk_size
        drafts = [(doc.title, heading, piece) for piece in _token_windows(text, budget, overlap, counter)]
    else:
        drafts = _structure_drafts(doc, config, usable, counter)
    return _finalize(doc, drafts, usable, counter)


# --- structure strategy -------------------------------------------------------------------------


def _sections(doc: Document) -> list[tuple[str, str, list[Block]]]:
    """(nearest heading, heading path, body blocks) per heading; a heading-only doc keeps its headings."""
    blocks = doc.blocks
    if blocks and all(b.kind == "heading" for b in blocks):
        blocks = [Block("paragraph", b.text) for b in blocks]
    sections: list[tuple[str, str, list[Block]]] = []
    stack: list[tuple[int, str]] = []
    current: list[Block] = []
    title, path = doc.title, _heading_path(doc.title, [])
    for block in blocks:
        if block.kind == "heading":
            if current:
                sections.append((title, path, current))
            current = []
            while stack and stack[-1][0] >= max(block.level, 1):
                stack.pop()
            stack.append((max(block.level, 1), block.text))
            title, path = block.text, _heading_path(doc.title, [h for _, h in stack])
        else:
            current.append(block)
    if current:
        sections.append((title, path, current))
    return sections


def _heading_path(doc_title: str, headings: list[str]) -> str:
    parts: list[str] = []
    for part in [doc_title, *headings]:
        part = " ".join(part.split())
        if part and (not parts or parts[-1].casefold() != part.casefold()):
            parts.append(part)
    return HEADING_SEPARATOR.join(parts)


def _fit_heading(heading: str, usable: int, counter: TokenCounter, tokens: int | None = None) -> str:
    """The heading path, cut to its most specific tail when it would crowd out the text."""
    limit = max(1, int(usable * HEADING_SHARE))
    if not heading:
        return ""
    if tokens is None:
        tokens = counter.count([heading])[0]
    if tokens <= limit and len(heading) <= limit * MAX_CHARS_PER_TOKEN:
        return heading
    offsets = counter.offsets(heading)
    start = offsets[len(offsets) - limit][0] if len(offsets) > limit else 0
    return heading[start:][-limit * MAX_CHARS_PER_TOKEN:].strip()


def _text_budget(heading: str, config: ChunkingConfig, usable: int, counter: TokenCounter) -> int:
    heading_tokens = counter.count([heading])[0] if heading else 0
    return max(1, min(config.chunk_size, usable - heading_tokens - 1))


def _structure_drafts(doc: Document, config: ChunkingConfig, usable: int,
                      counter: TokenCounter) -> list[tuple[str, str, str]]:
    sections = _sections(doc)
    if not sections:
        return []
    paths = [path for _, path, _ in sections]
    headings = [_fit_heading(path, usable, counter, n) for path, n in zip(paths, counter.count(paths))]
    heading_counts = counter.count(headings)
    block_counts = iter(counter.count([b.text for _, _, blocks in sections for b in blocks]))
    drafts: list[tuple[str, str, str]] = []
    for (title, _, blocks), heading, heading_tokens in zip(sections, headings, heading_counts):
        budget = max(1, min(config.chunk_size, usable - heading_tokens - 1))
        overlap = min(config.chunk_overlap, budget // 2)  # a long heading may shrink the budget
        units: list[tuple[str, int, str]] = []
        for block in blocks:
            tokens = next(block_counts)
            if tokens <= budget and len(block.text) <= budget * MAX_CHARS_PER_TOKEN:
                units.append((block.text, tokens, BLOCK_JOINER))
            else:
                units.extend(_split_block(block, budget - overlap, counter))
        for text in _pack(units, budget, overlap, counter):
            drafts.append((title, heading, text))
    return drafts


def _split_block(block: Block, budget: int, counter: TokenCounter) -> list[tuple[str, int, str]]:
    """An oversized block as pieces of at most ``budget`` tokens: sentences or lines, then tokens.

    Each piece carries the joiner that glues it to an overlap taken from the piece before it."""
    if block.kind in ("code", "table", "list"):
        parts, joiner = [line for line in block.text.split("\n") if line.strip()], "\n"
    else:
        parts, joiner = _SENTENCE_END.split(block.text), " "
    pieces: list[tuple[str, int]] = []
    current: list[str] = []
    current_tokens = 0
    for part, tokens in zip(parts, counter.count(parts)):
        if tokens > budget or len(part) > budget * MAX_CHARS_PER_TOKEN:
            if current:
                pieces.append((joiner.join(current), current_tokens))
                current, current_tokens = [], 0
            pieces.extend((w, -1) for w in _token_windows(part, budget, 0, counter))
            continue
        if current and current_tokens + tokens > budget:
            pieces.append((joiner.join(current), current_tokens))
            current, current_tokens = [], 0
        current.append(part)
        current_tokens += tokens
    if current:
        pieces.append((joiner.join(current), current_tokens))
    unknown = [i for i, (_, t) in enumerate(pieces) if t < 0]
    for i, tokens in zip(unknown, counter.count([pieces[i][0] for i in unknown])):
        pieces[i] = (pieces[i][0], tokens)
    return [(text, tokens, BLOCK_JOINER if i == 0 else joiner) for i, (text, tokens) in enumerate(pieces)]


def _pack(units: list[tuple[str, int, str]], budget: int, overlap: int, counter: TokenCounter) -> list[str]:
    """Greedy packing of units into chunks; each later chunk starts with the previous one's tail."""
    chunks: list[str] = []
    current: list[str] = []
    current_tokens = 0
    max_chars = budget * MAX_CHARS_PER_TOKEN
    for text, tokens, joiner in units:
        if current and (current_tokens + tokens > budget or sum(map(len, current)) + len(text) > max_chars):
            chunks.append("\n\n".join(current))
            current, current_tokens = [], 0
        if not current and chunks and overlap:
            tail, tail_tokens = _tail(chunks[-1], min(overlap, budget - tokens), counter)
            if tail and len(tail) + len(text) <= max_chars:
                text, tokens = f"{tail}{joiner}{text}", tokens + tail_tokens
        current.append(text)
        current_tokens += tokens
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _tail(text: str, n_tokens: int, counter: TokenCounter) -> tuple[str, int]:
    """The last ``n_tokens`` tokens of ``text``, starting on a word boundary."""
    if n_tokens <= 0:
        return "", 0
    offsets = counter.offsets(text)
    if len(offsets) <= n_tokens:
        return "", 0  # the whole previous chunk would repeat: no useful overlap
    first = len(offsets) - n_tokens
    start = offsets[first][0]
    while first < len(offsets) and start > 0 and not text[start - 1].isspace():
        first += 1  # skip word-piece continuations so the overlap starts with a whole word
        if first < len(offsets):
            start = offsets[first][0]
    if first >= len(offsets):
        return "", 0
    sentence = _SENTENCE_END.search(text, start)
    if sentence and sentence.end() < len(text):  # prefer starting at a sentence when one begins in the tail
        later = next((k for k in range(first, len(offsets)) if offsets[k][0] >= sentence.end()), None)
        if later is not None and len(offsets) - later >= n_tokens // 2:
            first, start = later, offsets[later][0]
    return text[start:].strip(), len(offsets) - first


# --- shared -------------------------------------------------------------------------------------


def _token_windows(text: str, budget: int, overlap: int, counter: TokenCounter) -> list[str]:
    """Windows of at most ``budget`` tokens (and budget*MAX_CHARS_PER_TOKEN chars), ``overlap`` apart."""
    if not text.strip():
        return []
    offsets = [o for o in counter.offsets(text) if o[1] > o[0]]
    max_chars = budget * MAX_CHARS_PER_TOKEN
    if not offsets:
        return [text[i:i + max_chars] for i in range(0, len(text), max_chars)]

    def starts_word(k: int) -> bool:
        return k == 0 or offsets[k][0] != offsets[k - 1][1]

    windows: list[str] = []
    i = 0
    while i < len(offsets):
        j = min(i + budget, len(offsets))
        while j > i + 1 and offsets[j - 1][1] - offsets[i][0] > max_chars:
            j -= 1
        # end on a word boundary when one is near, so words are not cut into word pieces
        k = j
        while k < len(offsets) and k > i + budget // 2 and not starts_word(k):
            k -= 1
        if k < len(offsets) and k > i + budget // 2:
            j = k
        start, end = offsets[i][0], offsets[j - 1][1]
        if end - start > max_chars:  # one token spanning a huge string: cut it by characters
            windows.extend(text[k:min(k + max_chars, end)] for k in range(start, end, max_chars))
        else:
            windows.append(text[start:end])
        if j >= len(offsets):
            break
        nxt = max(j - overlap, i + 1)
        while nxt < j and not starts_word(nxt):
            nxt += 1
        i = nxt
    return [w.strip() for w in windows if w.strip()]


def _finalize(doc: Document, drafts: list[tuple[str, str, str]], usable: int,
              counter: TokenCounter) -> list[Chunk]:
    """Checks every embedding text against the limit (re-splitting any that a tokenizer's
    non-additivity pushed over), then numbers the chunks."""
    doc_hash = doc.content_hash
    drafts = [d for d in drafts if d[2].strip()]
    for _ in range(8):
        texts = [f"{heading}\n{text}" if heading else text for _, heading, text in drafts]
        counts = counter.count(texts)
        over = [i for i, c in enumerate(counts) if c > usable]
        if not over:
            break
        fixed: list[tuple[str, str, str]] = []
        for i, draft in enumerate(drafts):
            if i in over:
                title, heading, text = draft
                text_tokens = counter.count([text])[0]
                budget = max(1, text_tokens - (counts[i] - usable) - 1)
                fixed.extend((title, heading, w) for w in _token_windows(text, budget, 0, counter))
            else:
                fixed.append(draft)
        drafts = fixed
    else:
        raise ChunkingError(f"document {doc.doc_id!r}: cannot fit its chunks into {usable} tokens")
    return [Chunk(doc_id=doc.doc_id, doc_hash=doc_hash, source=doc.source, title=title, heading_path=heading,
                  position=position, text=text, token_count=count + counter.n_special)
            for position, ((title, heading, text), count) in enumerate(zip(drafts, counts))]


def model_input_tokens(chunk: Chunk, tokenizer: Any) -> int:
    """What the model will see for this chunk, special tokens included (for checks and tests)."""
    counter = _as_counter(tokenizer)
    return counter.count([chunk.embedding_text])[0] + counter.n_special
