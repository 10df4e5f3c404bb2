"""Commands that query live collections: search, ask, serve, tune-fusion.

    python -m ragops search "how do I restore a backup" --collection RagDocs --k 5 --mode hybrid
    python -m ragops ask "how do I restore a backup"
    python -m ragops serve --port 8000            # RAGOPS_SERVICE_API_KEY (or _FILE) holds the key
    python -m ragops tune-fusion --collection RagDocs --golden golden.jsonl
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ragops.cli.common import services
from ragops.vocabulary import DEFAULT_ALIAS, SearchMode

MODES = [m.value for m in SearchMode]


def add_commands(sub: Any) -> None:
    def query_args(p: argparse.ArgumentParser, k: int) -> None:
        p.add_argument("--collection", default=DEFAULT_ALIAS, help="alias (or collection version) to query")
        p.add_argument("--k", type=int, default=k, help=f"passages (default {k})")
        p.add_argument("--mode", choices=MODES, default=SearchMode.HYBRID.value)
        p.add_argument("--rerank", action="store_true", help="rerank the first stage's top --rerank-top-n")
        p.add_argument("--rerank-top-n", type=int, default=20)
        p.add_argument("--source", action="append", dest="sources", help="only this source (repeatable)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    search = sub.add_parser("search", help="search a live collection: passages with their citations")
    search.add_argument("query")
    query_args(search, 5)
    search.set_defaults(run=run_search)
    ask = sub.add_parser("ask", help="answer a question from a live collection, citing passages [n]")
    ask.add_argument("question")
    query_args(ask, 5)
    ask.add_argument("--min-similarity", type=float, default=None,
                     help="below this, the answer says it does not know (default: ragops.answers.MIN_SIMILARITY)")
    ask.set_defaults(run=run_ask)
    serve = sub.add_parser("serve", help="the search and answer service (FastAPI under uvicorn)")
    serve.add_argument("--host", default=None, help="bind address (default RAGOPS_SERVICE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="default RAGOPS_SERVICE_PORT or 8000")
    serve.add_argument("--collection", default=None, help="the default alias (default RAGOPS_SERVICE_COLLECTION)")
    serve.add_argument("--no-auth", action="store_true", help="serve without an API key (loopback only)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=run_serve)
    tune = sub.add_parser("tune-fusion", help="choose a collection's hybrid fusion on labelled queries, record it")
    tune.add_argument("--collection", default=DEFAULT_ALIAS)
    labels = tune.add_mutually_exclusive_group(required=True)
    labels.add_argument("--golden", help="JSONL of {query, doc_id|chunk_id}")
    labels.add_argument("--path", help="a BEIR folder (with --split)")
    tune.add_argument("--split", default="dev", help="qrels split of --path")
    tune.add_argument("--min-gain", type=float, default=0.0, help="keep the default unless beaten by more")
    tune.add_argument("--dry-run", action="store_true", help="measure only; record nothing")
    tune.set_defaults(run=run_tune)


def _search(args: argparse.Namespace, text: str) -> Any:
    from ragops.retrieval import Retriever

    svc = services()
    retriever = Retriever(svc, args.collection)
    return svc, retriever.search(text, k=args.k, mode=args.mode, rerank=args.rerank,
                                 rerank_top_n=max(args.rerank_top_n, args.k), sources=args.sources)


def run_search(args: argparse.Namespace) -> None:
    _, result = _search(args, args.query)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    print(header(result))
    if not result.hits:
        print("no passages found")
    for hit in result.hits:
        print(format_hit(hit))


def run_ask(args: argparse.Namespace) -> None:
    from ragops.answers import MIN_SIMILARITY, answer, chat_client
    from ragops.errors import InvalidInput
    from ragops.serving.settings import llm_endpoint_from_env

    _, result = _search(args, args.question)
    endpoint, problem, client = llm_endpoint_from_env(), None, None
    if endpoint is None:
        problem = "no ragops_llm endpoint is configured (RAGOPS_LLM_URL or AIRFLOW_CONN_RAGOPS_LLM)"
    else:
        try:
            client = chat_client(endpoint)
        except InvalidInput as exc:
            problem = str(exc)
    reply = answer(args.question, result.hits, client, max_passages=args.k, llm_problem=problem,
                   min_similarity=MIN_SIMILARITY if args.min_similarity is None else args.min_similarity)
    if args.json:
        print(json.dumps({**reply.as_dict(), "version": result.version.as_dict()}, indent=2))
        return
    print(format_answer(reply, result))


def header(result: Any) -> str:
    v = result.version
    where = v.collection if v.name == v.collection else f"{v.name} -> {v.collection}"
    how = result.mode + (f" {result.fusion.label}" if result.fusion else "")
    if result.reranker:
        how += f", reranked by {result.reranker}"
    ms = result.timings.get("total", 0.0) * 1000
    return f"## {len(result.hits)} passages for {result.query!r} from {where} (v{v.version}), {how}, {ms:.0f} ms"


def format_hit(hit: Any) -> str:
    """``rank. title > section`` / location, span, source, scores / the passage's opening."""
    c = hit.citation
    title = c.title or hit.title
    section = c.heading_path.removeprefix(title).removeprefix(" > ") if c.heading_path else ""
    score = f"score {hit.score:.4f}" + (f", similarity {hit.similarity:.2f}" if hit.similarity is not None else "")
    span = f" [chars {c.char_start}-{c.char_end}]" if c.char_start is not None else ""
    snippet = " ".join(hit.text.split())
    snippet = snippet if len(snippet) <= 200 else snippet[:200].rsplit(" ", 1)[0] + " ..."
    return (f"{hit.rank:>2}. {title}" + (f" > {section}" if section else "") +
            f"\n    {c.location or c.doc_id}{span}\n    source {c.source}; {score}\n    {snippet}")


def format_answer(reply: Any, result: Any) -> str:
    lines = [reply.text, ""]
    if reply.kind == "extractive":
        lines.append(f"(extractive answer, the named fallback: {reply.fallback['reason']})")
    elif reply.kind == "unknown":
        lines.append("(no answer: the collection does not seem to cover this question)")
    else:
        lines.append(f"(generated by {reply.model}, prompt {reply.prompt_version})")
    if reply.removed_citations:
        lines.append(f"(removed citations of passages that were not given: {reply.removed_citations})")
    if reply.citations:
        lines += ["", "Sources:"]
        for cited in reply.citations:
            c = cited.hit.citation
            span = f" [chars {c.char_start}-{c.char_end}]" if c.char_start is not None else ""
            lines.append(f"  [{cited.n}] {c.heading_path or c.title} - {c.location or c.doc_id}{span}")
    v = result.version
    lines += ["", f"({v.name} -> {v.collection} v{v.version}, {result.mode})"]
    return "\n".join(lines)


def run_serve(args: argparse.Namespace) -> None:
    from ragops.answers import chat_client
    from ragops.config import RagopsSettings
    from ragops.errors import InvalidInput
    from ragops.services import Services
    from ragops.serving import ServiceSettings, llm_endpoint_from_env, serve

    settings = ServiceSettings.from_env(host=args.host, port=args.port, collection=args.collection,
                                        no_auth=args.no_auth or None)
    settings.check()
    svc = Services(RagopsSettings.from_env())   # checks the lineage schema; never migrates it
    endpoint, problem, client = llm_endpoint_from_env(), None, None
    if endpoint is None:
        problem = "no ragops_llm endpoint is configured (RAGOPS_LLM_URL or AIRFLOW_CONN_RAGOPS_LLM)"
    else:
        try:
            client = chat_client(endpoint)
        except InvalidInput as exc:
            problem = str(exc)
    if problem:
        print(f"ragops serve: answers are extractive (fallback): {problem}")
    serve(svc, settings, llm=client, llm_problem=problem, log_level=args.log_level)


def run_tune(args: argparse.Namespace) -> None:
    from ragops.retrieval import tune_fusion_report
    from ragops.retrieval_eval import beir_labelled, load_golden_queries

    svc = services()
    if args.golden:
        labelled, labels = load_golden_queries(args.golden), "golden"
    else:
        labelled, labels = beir_labelled(args.path, args.split), f"beir:{args.split}"
    tuning = tune_fusion_report(svc, args.collection, labelled, min_gain=args.min_gain, record=not args.dry_run,
                                labels=labels)
    print(f"## fusion of {args.collection} on {tuning.queries} {labels} queries ({tuning.metric})")
    for row in sorted(tuning.scores, key=lambda r: -r[tuning.metric]):
        mark = "  <- chosen" if row["fusion"] == tuning.chosen else ""
        print(f"  {row['label']:<28} {row[tuning.metric]:.4f}{mark}")
    print("(not recorded: --dry-run)" if args.dry_run else "recorded in the collection's lineage params")
