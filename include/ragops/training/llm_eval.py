"""What the LLM gate measures: perplexity on held-out reference answers, and citation validity.

- ``completion_perplexity``: exp of the mean negative log-likelihood of the reference completions'
  tokens given their prompts (prompt tokens are context, never scored), tokenized exactly as
  ``train_llm.py`` trains (TRL's prompt-completion form: chat template for chat rows, EOS appended to
  plain completions). ``perplexity_of`` loads a model folder (optionally with an adapter) first.
- ``check_citations`` / ``citation_validity``: an answer may cite [n] only for the passages 1..N it
  was given; [0], [N+1]... are invalid (a hallucinated source).

Pure functions apart from the model calls; runs in the bundle and, copied beside train_llm.py, in the
trainer image::

    python llm_eval.py perplexity --model /models/merged --dataset heldout.jsonl [--adapter DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

try:
    from ragops.training.train_llm import load_rows, normalize_rows
except ImportError:  # beside train_llm.py in the trainer image
    from train_llm import load_rows, normalize_rows  # type: ignore[no-redef]

# [3], [1, 2], [1][2], [2-4] / [2–4]
_CITATION = re.compile(r"\[\s*(\d+(?:\s*(?:,|;|-|–)\s*\d+)*)\s*\]")


# -- citations ----------------------------------------------------------------------------------
def cited_passages(answer: str) -> list[int]:
    """The passage numbers an answer cites, in order of first appearance ([1-3] is 1, 2, 3)."""
    cited: list[int] = []
    for match in _CITATION.finditer(answer):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part)]
            numbers = range(bounds[0], bounds[1] + 1) if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] < 100 else bounds
            for n in numbers:
                if n not in cited:
                    cited.append(n)
    return cited


def check_citations(answer: str, n_passages: int) -> dict[str, Any]:
    """Whether every [n] in ``answer`` names one of the ``n_passages`` passages given (numbered 1..N)."""
    cited = cited_passages(answer)
    invalid = [n for n in cited if not 1 <= n <= n_passages]
    return {"valid": not invalid, "cited": cited, "invalid": invalid, "has_citation": bool(cited),
            "n_passages": n_passages}


def citation_validity(answers: Sequence[str], n_passages: int | Sequence[int]) -> dict[str, Any]:
    """Share of answers whose citations are all valid, share that cite anything, and the offenders."""
    counts = [n_passages] * len(answers) if isinstance(n_passages, int) else list(n_passages)
    if len(counts) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(counts)} passage counts")
    checks = [check_citations(a, n) for a, n in zip(answers, counts)]
    total = len(checks)
    return {
        "answers": total,
        "valid_rate": sum(c["valid"] for c in checks) / total if total else 1.0,
        "citation_rate": sum(c["has_citation"] for c in checks) / total if total else 0.0,
        "invalid": [{"index": i, "cited": c["cited"], "invalid": c["invalid"], "n_passages": c["n_passages"]}
                    for i, c in enumerate(checks) if not c["valid"]],
    }


# -- perplexity ---------------------------------------------------------------------------------
def _ids(tokenizer: Any, value: str | list[dict[str, Any]], **template_kwargs: Any) -> list[int]:
    if isinstance(value, list):
        return list(tokenizer.apply_chat_template(value, tokenize=True, return_dict=True, **template_kwargs)["input_ids"])
    return list(tokenizer(text=value)["input_ids"])


def encode_example(tokenizer: Any, row: dict[str, Any], max_length: int | None = None) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one row, labels -100 on the prompt: the same tokens train_llm.py trains on."""
    row = normalize_rows([row])[0]
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, list):
        prompt_ids = _ids(tokenizer, prompt, add_generation_prompt=True)
        full_ids = _ids(tokenizer, prompt + completion)
    else:
        eos = tokenizer.eos_token or ""
        prompt_ids = _ids(tokenizer, prompt)
        full_ids = _ids(tokenizer, prompt + (completion if completion.endswith(eos) else completion + eos))
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    labels = [-100] * start + full_ids[start:]
    if max_length:
        full_ids, labels = full_ids[:max_length], labels[:max_length]
    return full_ids, labels


def completion_perplexity(model: Any, tokenizer: Any, rows: Iterable[dict[str, Any]], *, max_length: int = 1024,
                          batch_size: int = 8) -> dict[str, Any]:
    """Perplexity of the reference completions given their prompts: exp(sum NLL / completion tokens)."""
    import torch

    encoded = [encode_example(tokenizer, r, max_length) for r in rows]
    encoded = [(ids, labels) for ids, labels in encoded if any(label != -100 for label in labels[1:])]
    if not encoded:
        raise ValueError("no row has a completion token to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                batch = encoded[start:start + batch_size]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
                labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
                attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch],
                                         device=device)
                logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
                shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
                loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                         shift_labels.reshape(-1), ignore_index=-100, reduction="sum")
                nll += float(loss)
                tokens += int((shift_labels != -100).sum())
    finally:
        model.train(was_training)
    mean = nll / tokens
    return {"perplexity": math.exp(mean), "mean_nll": mean, "tokens": tokens, "rows": len(encoded)}


def perplexity_of(model_dir: Path | str, rows: Iterable[dict[str, Any]] | str | Path, *,
                  adapter: Path | str | None = None, max_length: int = 1024, batch_size: int = 8,
                  device: str | None = None, dtype: str = "float32") -> dict[str, Any]:
    """Loads a model folder (plus a LoRA adapter, if given) and returns ``completion_perplexity`` on
    ``rows`` (a list of instruction rows, or a .jsonl path / dataset folder as train_llm.py reads)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(rows, str | Path):
        rows = load_rows(str(rows))[0]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype), local_files_only=True)
    tokenizer_dir = model_dir
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if (Path(adapter) / "tokenizer_config.json").exists():
            tokenizer_dir = adapter
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    model.to(device)
    return completion_perplexity(model, tokenizer, rows, max_length=max_length, batch_size=batch_size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="LLM evaluation helpers")
    sub = p.add_subparsers(dest="command", required=True)
    ppl = sub.add_parser("perplexity", help="perplexity of reference completions")
    ppl.add_argument("--model", required=True)
    ppl.add_argument("--dataset", required=True, help=".jsonl file or folder, as train_llm.py reads")
    ppl.add_argument("--adapter", default=None)
    ppl.add_argument("--max-length", type=int, default=1024)
    ppl.add_argument("--batch-size", type=int, default=8)
    ppl.add_argument("--dtype", default="float32")
    args = p.parse_args(argv)
    result = perplexity_of(args.model, args.dataset, adapter=args.adapter, max_length=args.max_length,
                           batch_size=args.batch_size, dtype=args.dtype)
    sys.stdout.write(json.dumps({"perplexity": result}, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
