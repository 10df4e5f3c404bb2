"""rag_finetune_llm's evaluate step: base, live and candidate on the same held-out rows.

Always: perplexity of the reference answers given their prompts (``llm_eval.completion_perplexity``,
the very tokens train_llm.py trains on), and citation validity of each model's own greedy answers
(every [n] names a passage the prompt gave). With the ``ragops_llm`` endpoint: the LLM judge's
faithfulness and answer relevance of those answers; without it they are named as skipped. The
held-out rows are the instruction dataset's test split (documents the adapter never saw), the first
``eval_sample_size`` of them. The report (every number, and a few answers per model) is an artifact.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ragops.hashing import short
from ragops.llm.answers import parse_answer
from ragops.llm.data import read_instructions
from ragops.llm.models import production_llm
from ragops.llm.params import LLMFinetuneParams
from ragops.llm.records import LLMEvaluation, LLMTrainingInputs, MergedModel
from ragops.models import ModelRef
from ragops.services import Services
from ragops.vocabulary import LLM_CONN_ID, LLM_MODEL_NAME

log = logging.getLogger(__name__)

SAMPLES_IN_REPORT = 5


def passages_of(row: dict[str, Any]) -> str:
    user = next((m["content"] for m in row["prompt"] if m.get("role") == "user"), "")
    return user.split("Passages:\n", 1)[1] if "Passages:\n" in user else user


def generate_answers(model: Any, tokenizer: Any, rows: list[dict[str, Any]], *, max_new_tokens: int,
                     max_length: int) -> list[str]:
    """Each row's prompt answered greedily by ``model`` (the chat template for chat rows)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    model.eval()
    with torch.no_grad():
        for row in rows:
            prompt = row["prompt"]
            if isinstance(prompt, list):
                enc = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True,
                                                    return_tensors="pt")
            else:
                enc = tokenizer(prompt, return_tensors="pt")
            ids = enc["input_ids"][:, -max(1, max_length - max_new_tokens):].to(device)
            mask = enc["attention_mask"][:, -ids.shape[1]:].to(device)
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad)
            text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
            answers.append(parse_answer(text) or text)
    return answers


def score_model(path: str, rows: list[dict[str, Any]], *, max_new_tokens: int, max_length: int) -> dict[str, Any]:
    """Perplexity of the reference answers, and the model's own answers with their citation check."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragops.training.llm_eval import citation_validity, completion_perplexity

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ppl = completion_perplexity(model, tokenizer, rows, max_length=max_length)
    answers = generate_answers(model, tokenizer, rows, max_new_tokens=max_new_tokens, max_length=max_length)
    citations = citation_validity(answers, [int(r["n_passages"]) for r in rows])
    return {"perplexity": ppl["perplexity"], "mean_nll": ppl["mean_nll"], "tokens": ppl["tokens"],
            "citations": citations, "answers": answers}


def evaluate_candidate(svc: Services, params: LLMFinetuneParams, inputs: LLMTrainingInputs,
                       merged: MergedModel) -> LLMEvaluation:
    """Scores base, live (production now, else the base) and the candidate; saves the report."""
    rows = read_instructions(svc, inputs.dataset.uri)["test"][:params.eval_sample_size]
    if not rows:
        raise RuntimeError(f"the instruction dataset {inputs.dataset.uri} has no held-out rows to evaluate on")
    models: dict[str, ModelRef] = {"base": inputs.base_model, "live": production_llm(svc) or inputs.base_model,
                                   "candidate": merged.candidate}
    scored: dict[str, dict[str, Any]] = {}   # by content hash: one model scored once
    for label, model in models.items():
        if model.content_hash not in scored:
            log.info("scoring %s (%s) on %d held-out rows", label, model.model_id, len(rows))
            scored[model.content_hash] = score_model(svc.model_path(model), rows, max_new_tokens=params.max_new_tokens,
                                                     max_length=params.max_seq_length)
    judge_scores, judge_skipped = _judge(svc, params, rows, {label: scored[m.content_hash]["answers"]
                                                            for label, m in models.items()})
    report: dict[str, Any] = {
        "rows": len(rows), "dataset": {"id": inputs.dataset.dataset_id, "version": inputs.dataset.version,
                                       "uri": inputs.dataset.uri},
        "primary_metric": "perplexity", "judge_skipped": judge_skipped,
        "models": {label: {"model_id": m.model_id, "artifact_id": m.artifact_id, "uri": m.uri, "label": label,
                           "perplexity": scored[m.content_hash]["perplexity"],
                           "mean_nll": scored[m.content_hash]["mean_nll"], "tokens": scored[m.content_hash]["tokens"],
                           "citations": scored[m.content_hash]["citations"],
                           "judge": judge_scores.get(label) if judge_scores else None,
                           "samples": [{"question": r["question"], "answer": a} for r, a in
                                       zip(rows, scored[m.content_hash]["answers"][:SAMPLES_IN_REPORT])]}
                   for label, m in models.items()},
    }
    rel = f"evaluations/{LLM_MODEL_NAME}/{short(merged.candidate.content_hash, 16)}/report.json"
    uri = svc.artifacts.write_json(rel, report)
    ppl = {label: round(report["models"][label]["perplexity"], 6) for label in models}
    valid = {label: report["models"][label]["citations"]["valid_rate"] for label in models}
    log.info("perplexity %s; citation validity %s; judge %s", ppl, valid, judge_scores or judge_skipped)
    return LLMEvaluation(uri, len(rows), {label: m.model_id for label, m in models.items()},
                         {label: m.artifact_id for label, m in models.items()}, ppl, valid, judge_scores, judge_skipped)


def _judge(svc: Services, params: LLMFinetuneParams, rows: list[dict[str, Any]],
           answers: dict[str, list[str]]) -> tuple[dict[str, Any] | None, str | None]:
    if svc.llm is None:
        return None, f"no {LLM_CONN_ID} connection: faithfulness and relevance not judged"
    from ragops.llm.judge import Judge
    from ragops.synthetic.llm import LLMSettings

    judge = Judge(LLMSettings.from_endpoint(svc.llm, model=params.llm_model, temperature=0.0), svc.registry)
    try:
        scores = {label: judge.score([(r["question"], passages_of(r), a) for r, a in zip(rows, texts)])
                  for label, texts in answers.items()}
    finally:
        judge.close()
    log.info("judge: %s", json.dumps(dict(judge.counts)))
    return scores, None
