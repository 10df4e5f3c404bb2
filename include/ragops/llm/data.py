"""rag_finetune_llm's data steps: build the instruction rows -> validate and register them.

The rows come from a version of the synthetic query dataset (reviewed versions included: they are
versions of the same dataset) and are content-addressed in the store
(``datasets/llm-instructions/<hash>/{train,test}.jsonl``, the form train_llm.py reads), so a retried
task finds its own rows, and the same inputs register as the same version.
"""

from __future__ import annotations

import logging

from ragops.errors import DataQualityError, InvalidInput
from ragops.hashing import hash_object, short
from ragops.llm.instructions import (
    ANSWER_PROMPT,
    SPLITS,
    build_instruction_rows,
    extractive_answer,
    from_jsonl,
    instructions_hash,
    to_jsonl,
)
from ragops.llm.params import LLMFinetuneParams
from ragops.llm.records import InstructionBuild, InstructionDataset
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.steps import dataset_version
from ragops.vocabulary import INSTRUCTION_DATASET_NAME, LLM_CONN_ID, AnswerWriter, ArtifactKind, Relation, Status

log = logging.getLogger(__name__)


def instructions_rel(content_hash: str) -> str:
    return f"datasets/{INSTRUCTION_DATASET_NAME}/{content_hash}"


def answer_writer(svc: Services, params: LLMFinetuneParams) -> AnswerWriter:
    """Who writes this run's answers: the LLM when asked for (or ``auto`` with an endpoint), else extractive."""
    if params.answers == AnswerWriter.LLM and svc.llm is None:
        raise InvalidInput(f"param answers='llm' needs the Airflow connection {LLM_CONN_ID!r}; use 'extractive' or "
                           "'auto' to run without it")
    if params.answers == AnswerWriter.EXTRACTIVE or svc.llm is None:
        return AnswerWriter.EXTRACTIVE
    return AnswerWriter.LLM


def build_instructions(svc: Services, params: LLMFinetuneParams, run: RunRef) -> InstructionBuild:
    """Instruction rows from the query dataset's pairs, answered by the LLM or extractively."""
    from ragops.prompts import load_prompt
    from ragops.synthetic.dataset import dataset_rows

    source = dataset_version(svc, params.dataset_version)
    splits = dataset_rows(svc.artifacts, svc.artifacts.rel_of(source.uri))
    writer = answer_writer(svc, params)
    prompt = load_prompt(*ANSWER_PROMPT.rsplit(".", 1))
    options = {"passages_per_prompt": params.passages_per_prompt, "passage_chars": params.passage_chars,
               "seed": params.seed, "max_rows": params.max_rows}
    prompt_id = llm_id = None
    if writer == AnswerWriter.LLM:
        from ragops.llm.answers import LLMAnswerWriter
        from ragops.synthetic.llm import LLMSettings

        assert svc.llm is not None
        settings = LLMSettings.from_endpoint(svc.llm, model=params.llm_model, temperature=0.0)
        prompt_id = svc.registry.record_artifact(
            ArtifactKind.PROMPT, prompt.name, prompt.content_hash, f"package://ragops/prompts/{prompt.name}."
            f"{prompt.version}.txt", params={"version": prompt.version, "version_id": prompt.version_id},
            status=Status.USABLE, run_key=run.run_key).id
        llm_id = svc.registry.record_artifact(ArtifactKind.LLM, settings.model, hash_object({"model": settings.model}),
                                              f"llm://{settings.model}", params={"model": settings.model},
                                              status=Status.USABLE, run_key=run.run_key).id
        answer = LLMAnswerWriter(settings, prompt, svc.registry, seed=params.seed)
        try:
            rows, dropped = build_instruction_rows(splits, prompt=prompt, answer=answer, source=writer, **options)
        finally:
            answer.close()
        stats = {**answer.stats(), **{f"dropped_{k}": v for k, v in dropped.items()}, "llm": settings.public()}
    else:
        rows, dropped = build_instruction_rows(splits, prompt=prompt, answer=extractive_answer, source=writer,
                                               **options)
        stats = {f"dropped_{k}": v for k, v in dropped.items()}
    content_hash = instructions_hash(rows)
    rel = instructions_rel(content_hash)
    for split in SPLITS:
        if not svc.artifacts.exists(f"{rel}/{split}.jsonl"):
            svc.artifacts.write_bytes(f"{rel}/{split}.jsonl", to_jsonl(rows[split]))
    stats |= {"prompt_version": prompt.version_id, "source_rows": {s: len(splits[s]) for s in SPLITS}}
    log.info("instruction rows from %s v%s (%s answers): %s train, %s test -> %s", source.uri, source.version,
             writer.value, len(rows["train"]), len(rows["test"]), rel)
    return InstructionBuild(run, source, svc.artifacts.uri(rel), content_hash, writer, len(rows["train"]),
                            len(rows["test"]), len({r["doc_id"] for r in rows["train"]}),
                            len({r["doc_id"] for r in rows["test"]}), stats, prompt_id, llm_id)


def read_instructions(svc: Services, uri: str) -> dict[str, list[dict]]:
    rel = svc.artifacts.rel_of(uri)
    return {split: from_jsonl(svc.artifacts.read_bytes(f"{rel}/{split}.jsonl")) for split in SPLITS}


def register_instructions(svc: Services, build: InstructionBuild) -> InstructionDataset:
    """Runs the suite (recorded with the run), then registers the version with its lineage: ``usable``;
    or ``failed_dq``, alerted, and the run stops here (nothing is trained on rows that failed)."""
    from ragops.llm.quality import SUITE_NAME, validate_instructions

    splits = read_instructions(svc, build.uri)
    result = validate_instructions(splits)
    target = f"{INSTRUCTION_DATASET_NAME}:{short(build.content_hash)}"
    svc.registry.record_dq(build.run_key, SUITE_NAME, target, result.success, result.statistics, result.failures)
    parents = [(build.source.artifact_id, Relation.DERIVED_FROM)]
    if build.prompt_id:
        parents.append((build.prompt_id, Relation.PROMPT))
    if build.llm_id:
        parents.append((build.llm_id, Relation.GENERATED_BY))
    metrics = {"rows_train": build.rows_train, "rows_test": build.rows_test, "docs_train": build.docs_train,
               "docs_test": build.docs_test, "answers": build.answers.value, "dq_success": bool(result.success),
               **{k: v for k, v in build.stats.items() if k != "llm"}}
    art = svc.registry.record_artifact(
        ArtifactKind.DATASET, INSTRUCTION_DATASET_NAME, build.content_hash, build.uri,
        params={"source_dataset": {"id": build.source.artifact_id, "version": build.source.version},
                "answers": build.answers.value, "llm": build.stats.get("llm"), "format": "chat prompt-completion jsonl"},
        metrics=metrics, status=Status.USABLE if result.success else Status.FAILED_DQ, run_key=build.run_key,
        parents=parents)
    if not result.success:
        message = "; ".join(f.get("message", str(f)) for f in result.failures)[:1500]
        svc.notifier.alert(f"instruction dataset v{art.version} failed data quality",
                           f"{INSTRUCTION_DATASET_NAME} v{art.version} is recorded as failed_dq; nothing is trained "
                           f"on it: {message}", severity="error", run_key=build.run_key,
                           context={"dataset_id": art.id})
        raise DataQualityError(f"instruction dataset v{art.version} failed its suite: {message}")
    return InstructionDataset(art.id, art.version, art.content_hash, art.uri, Status(art.status), build.rows_train,
                              build.rows_test, build.source.artifact_id, build.answers, bool(result.success))
