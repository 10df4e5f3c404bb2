"""A tiny causal LM for the LLM-finetuning tests, built here from the fixture corpus (no model hub).

A byte-level BPE tokenizer trained with ``tokenizers`` on tests/fixtures/corpus (with a small chat
template), a 2-layer Llama (hidden 64) with random weights from a fixed seed, and RAG-style
instruction rows (numbered passages, a question, an answer citing [n]) made from the same corpus.

Importable (``build_tiny_llm``, ``sft_rows``) and runnable alone, e.g. on a GPU machine::

    python tests/llm_tiny.py /tmp/tiny      # writes /tmp/tiny/model, /tmp/tiny/sft.jsonl, /tmp/tiny/sft_chat.jsonl
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "fixtures" / "corpus"
SPECIAL = ["<pad>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def corpus_paragraphs(corpus_dir: Path = CORPUS) -> list[str]:
    """The corpus as plain paragraphs (markup, front matter and code fences stripped), in file order."""
    paragraphs: list[str] = []
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        if path.suffix == ".json":
            text = " ".join(str(v) for v in _json_strings(json.loads(text)))
        text = re.sub(r"(?s)^---\n.*?\n---\n", "", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
        text = re.sub(r"[`*#=~^]{2,}|^#+ ", " ", text, flags=re.M)
        for block in re.split(r"\n\s*\n", text):
            block = " ".join(block.split())
            if len(block) >= 40:
                paragraphs.append(block)
    return paragraphs


def _json_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


def build_tokenizer(texts: list[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE (every string encodes, no unknown token) as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<|end|>",
                                   additional_special_tokens=SPECIAL[3:])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llm(out_dir: Path | str, *, corpus_dir: Path = CORPUS, seed: int = 0, hidden: int = 64,
                   layers: int = 2, heads: int = 4, vocab_size: int = 512) -> Path:
    """Writes a random-init tiny Llama + its tokenizer to ``out_dir`` (float32 safetensors); returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = corpus_paragraphs(corpus_dir)
    tokenizer = build_tokenizer(texts + [r["prompt"] + r["completion"] for r in sft_rows(corpus_dir)], vocab_size)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                         max_position_embeddings=1024, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def sft_rows(corpus_dir: Path = CORPUS, *, n_passages: int = 3, passage_chars: int = 120, seed: int = 0,
             conversational: bool = False) -> list[dict[str, Any]]:
    """RAG instruction rows: numbered passages, a question, and an answer that cites the right one."""
    paragraphs = corpus_paragraphs(corpus_dir)
    rng = random.Random(seed)
    rows = []
    for i, para in enumerate(paragraphs):
        others = rng.sample([p for j, p in enumerate(paragraphs) if j != i], n_passages - 1)
        position = rng.randrange(n_passages)
        passages = others[:position] + [para] + others[position:]
        context = "\n".join(f"[{n}] {p[:passage_chars]}" for n, p in enumerate(passages, 1))
        words = para.split()
        question = f"What is said about {' '.join(words[:4])}?"
        answer = f"{' '.join(words[:12])} [{position + 1}]"
        prompt = f"Passages:\n{context}\nQuestion: {question}\nAnswer:"
        if conversational:
            rows.append({"messages": [{"role": "system", "content": "Answer from the passages; cite them as [n]."},
                                      {"role": "user", "content": prompt},
                                      {"role": "assistant", "content": answer}]})
        else:
            rows.append({"prompt": prompt, "completion": " " + answer, "n_passages": n_passages})
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="build the tiny test LLM and its SFT rows")
    p.add_argument("out", help="folder: model/, sft.jsonl, sft_chat.jsonl are written there")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    args = p.parse_args(argv)
    out = Path(args.out)
    build_tiny_llm(out / "model", seed=args.seed, hidden=args.hidden, layers=args.layers,
                   heads=max(4, args.hidden // 64))
    write_jsonl(sft_rows(), out / "sft.jsonl")
    write_jsonl(sft_rows(conversational=True), out / "sft_chat.jsonl")
    sys.stdout.write(json.dumps({"model": str(out / "model"), "rows": len(sft_rows())}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
