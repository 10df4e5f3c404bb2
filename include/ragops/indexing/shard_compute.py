"""rag_index's shards encoded outside the task: ``embed_shard.py`` in a local process or a GPU pod.

``embed_compute`` (a param) chooses: ``worker`` encodes in the task (``steps.embed_shard``, the
default); ``local`` and ``kubernetes`` run the self-contained entrypoint ``embed_shard.py`` with the
same arguments, in a child process or in a KubernetesPodOperator pod on a GPU node configured by
the ``ragops_training`` Variable (the trainers' image, placement and secret handling:
``training.compute``). The entrypoint writes the shard's vectors to a content-addressed location
(chunk set, model, plan, shard range); this task then upserts them with the chunks' properties into
the collection being built. A shard whose vectors are there already starts no process and no pod.
Storage credentials reach the child through its environment (``trainer_env``) and the pod through
Kubernetes Secret refs, never as arguments.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragops.artifacts import fsspec_uri
from ragops.errors import InvalidInput
from ragops.hashing import short
from ragops.indexing.params import IndexParams
from ragops.indexing.records import IndexRun, Shard, ShardResult
from ragops.services import Services
from ragops.training.compute import PodTrainer, trainer_env
from ragops.vocabulary import ARTIFACT_ROOT_VARIABLE, Compute, EmbedCompute

log = logging.getLogger(__name__)

ENTRYPOINT = Path(__file__).with_name("embed_shard.py")
# The trainers' image holds the same file here (docker/Dockerfile.trainer).
EMBED_SHARD_POD = PodTrainer("embed-shard", "/opt/ragops/embed_shard.py")
DONE_FILE = "done.json"             # embed_shard.py writes it last
VECTORS_FILE = "vectors.parquet"
RESULT_PREFIX = '{"embed_shard"'


def _stem(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]


def shard_location(svc: Services, run: IndexRun, shard: Shard, plan: Mapping[str, Any]) -> tuple[str, int, int]:
    """The shard's output URI, content-addressed by chunk set, model identity, plan and range."""
    start = shard.index * shard.size
    end = min(start + shard.size, len(plan["to_embed"]))
    rel = (f"embeddings/{short(_stem(plan['chunks_uri']), 16)}/{short(run.model.content_hash, 16)}/"
           f"{short(_stem(shard.plan_uri), 16)}/{start}-{end}")
    return svc.artifacts.uri(rel), start, end


def entrypoint_args(svc: Services, params: IndexParams, run: IndexRun, shard: Shard,
                    plan: Mapping[str, Any]) -> tuple[list[str], str]:
    """embed_shard.py's arguments (identical for the local process and the pod) and its output URI.
    Plain fsspec URIs: no Airflow connection names, no storage options."""
    output_uri, start, end = shard_location(svc, run, shard, plan)
    args = ["--plan-uri", fsspec_uri(shard.plan_uri), "--chunks-uri", fsspec_uri(plan["chunks_uri"]),
            "--start", str(start), "--end", str(end),
            "--model-uri", fsspec_uri(run.model.uri), "--model-hash", run.model.content_hash,
            "--output-uri", fsspec_uri(output_uri), "--batch-size", str(int(params.batch_size))]
    return args, output_uri


def local_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), *args]


def run_local(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """embed_shard.py in a child process, its output streamed to the log; its result, or an error
    with the output's tail."""
    tail: deque[str] = deque(maxlen=40)
    result: dict[str, Any] = {}
    with subprocess.Popen(local_command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            log.info("[embed_shard] %s", line)
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line)["embed_shard"]
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"embed_shard.py exited with {code}; last lines:\n" + "\n".join(tail))
    return result


def encode_shard(svc: Services, params: IndexParams, run: IndexRun, shard: Shard,
                 plan: Mapping[str, Any]) -> dict[str, Any]:
    """Runs embed_shard.py where ``embed_compute`` says, unless the shard's vectors are there already;
    returns its done.json."""
    compute = EmbedCompute(params.embed_compute)
    args, output_uri = entrypoint_args(svc, params, run, shard, plan)
    done_rel = f"{svc.artifacts.rel_of(output_uri)}/{DONE_FILE}"
    if svc.artifacts.exists(done_rel):
        log.info("%s: vectors already at %s: no process, no pod", shard.label, output_uri)
        return svc.artifacts.read_json(done_rel)
    if compute == EmbedCompute.KUBERNETES:
        if svc.artifacts.is_local:
            raise InvalidInput(f"param embed_compute='kubernetes' needs an object-storage artifact root (Variable "
                               f"{ARTIFACT_ROOT_VARIABLE}): a pod cannot read the local folder "
                               f"{svc.artifacts.root_uri}")
        if "://" not in run.model.uri:
            raise InvalidInput(f"param embed_compute='kubernetes': the model {run.model.model_id} is a local folder "
                               f"({run.model.uri}) a pod cannot read; register it (object storage) first")
        svc.run_trainer_pod(args, EMBED_SHARD_POD)
    else:
        config = svc.training_config(Compute.LOCAL)
        run_local(args, env=trainer_env(config, svc.storage_options_for(output_uri)))
    if not svc.artifacts.exists(done_rel):
        raise RuntimeError(f"embed_shard.py finished but left no {DONE_FILE} at {output_uri}")
    return svc.artifacts.read_json(done_rel)


def embed_shard_elsewhere(svc: Services, params: IndexParams, run: IndexRun, shard: Shard) -> ShardResult:
    """The shard encoded by embed_shard.py, then upserted into the collection batch by batch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ragops.stores.base import VectorObject

    plan = svc.artifacts.read_json(svc.artifacts.rel_of(shard.plan_uri))
    done = encode_shard(svc, params, run, shard, plan)
    output_uri, _, _ = shard_location(svc, run, shard, plan)
    vectors = svc.artifacts.read_table(f"{svc.artifacts.rel_of(output_uri)}/{VECTORS_FILE}")
    ids = vectors["chunk_id"].to_pylist()
    matrix = np.asarray(vectors["vector"].combine_chunks().flatten(), dtype=np.float32).reshape(len(ids), -1)
    table = svc.artifacts.read_table(svc.artifacts.rel_of(plan["chunks_uri"]))
    rows = {r["chunk_id"]: r for r in table.filter(pc.is_in(table["chunk_id"], value_set=pa.array(ids))).to_pylist()}
    started = time.perf_counter()
    written = 0
    for i in range(0, len(ids), params.batch_size):
        batch = ids[i:i + params.batch_size]
        written += svc.store.upsert(shard.collection, [VectorObject(id=cid, properties=rows[cid], vector=matrix[i + j])
                                                        for j, cid in enumerate(batch)])
    log.info("%s: %d vectors from %s (%s chunks/s on %s)", shard.label, written, output_uri,
             done.get("chunks_per_s"), done.get("device"))
    return ShardResult(shard.index, written, float(done.get("seconds") or 0.0),
                       round(time.perf_counter() - started, 3))
