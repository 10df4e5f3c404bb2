"""A small BEIR folder cut from a big one: for smoke runs of the benchmarks, never for results.

Keeps ``--train-queries`` queries of the train split and ``--eval-queries`` of the eval split
(first ones in qrels order), every document they judge, and random distractors up to ``--docs``::

    python bench/beir_subset.py --path ../shared/data/scifact-dev --out /tmp/scifact-mini --docs 300

The output has corpus.jsonl, queries.jsonl and qrels/<split>.tsv for both splits.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def read_qrels(path: Path) -> list[list[str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r[0] != "query-id"]


def first_queries(rows: list[list[str]], n: int) -> list[list[str]]:
    kept: list[str] = []
    for qid, *_ in rows:
        if qid not in kept:
            kept.append(qid)
        if len(kept) >= n:
            break
    return [r for r in rows if r[0] in kept]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="the BEIR folder to cut from")
    parser.add_argument("--out", required=True)
    parser.add_argument("--docs", type=int, default=300, help="documents in all (judged ones first)")
    parser.add_argument("--train-split", default="dev-train")
    parser.add_argument("--eval-split", default="dev-eval")
    parser.add_argument("--train-queries", type=int, default=80)
    parser.add_argument("--eval-queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    src, out = Path(args.path), Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    splits = {args.train_split: args.train_queries, args.eval_split: args.eval_queries}
    judged: set[str] = set()
    wanted_queries: set[str] = set()
    for split, n in splits.items():
        rows = first_queries(read_qrels(src / "qrels" / f"{split}.tsv"), n)
        judged |= {r[1] for r in rows}
        wanted_queries |= {r[0] for r in rows}
        lines = ["query-id\tcorpus-id\tscore", *("\t".join(r) for r in rows)]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").read_text().splitlines() if line.strip()]
    others = [d for d in corpus if str(d["_id"]) not in judged]
    random.Random(args.seed).shuffle(others)
    kept = [d for d in corpus if str(d["_id"]) in judged] + others[:max(args.docs - len(judged), 0)]
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept))
    queries = [line for line in (src / "queries.jsonl").read_text().splitlines()
               if line.strip() and str(json.loads(line)["_id"]) in wanted_queries]
    (out / "queries.jsonl").write_text("\n".join(queries) + "\n")
    print(f"{out}: {len(kept)} documents ({len(judged)} judged), {len(queries)} queries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
