"""Concurrent clients against the search service (``python -m ragops serve``) on loopback.

    python bench/bench_service_load.py --collection SciFact --duration 30
    python bench/bench_service_load.py --url http://127.0.0.1:8000 --api-key-file key.txt --duration 30

Without ``--url`` the script starts the service itself as a subprocess (on a free loopback port,
with a freshly generated API key, over the collection ``--collection`` of the environment's
settings), waits for ``/readyz``, and stops it at the end. Then, for each level of concurrent
clients (``--levels``, default 1, 8, 32: asyncio tasks over one httpx client, each sending its
next request when the last one answered) and each request shape (hybrid with rerank off and on;
the service's production reranker, the identity reranker when none is promoted), it sends
``/v1/search`` requests with SciFact claims for ``--duration`` seconds (or ``--requests`` each)
and reports throughput (answered 2xx per second), p50/p95/max latency, non-2xx answers by status,
connection errors and timeouts, and whether the service still answers ``/healthz`` afterwards.
The load generator shares the machine with the service: on 2 cores it takes its share.

Writes ``bench/out/service_load.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_queries(folder: str, limit: int) -> list[str]:
    lines = (Path(folder) / "queries.jsonl").read_text().splitlines()
    return [str(json.loads(line)["text"]) for line in lines if line.strip()][:limit]


def start_service(collection: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``python -m ragops serve`` on a free loopback port with a generated key; (process, url, key)."""
    port, key = free_port(), secrets.token_urlsafe(32)
    env = {**os.environ, "RAGOPS_SERVICE_API_KEY": key,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "include"), os.environ.get("PYTHONPATH")]))}
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ragops", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--collection", collection, "--log-level", "warning"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return process, f"http://127.0.0.1:{port}", key


def wait_ready(url: str, process: subprocess.Popen[bytes] | None) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < READY_TIMEOUT_S:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return round(time.monotonic() - t0, 1)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url}/readyz did not answer 200 within {READY_TIMEOUT_S:.0f} s")


async def level(url: str, key: str, queries: list[str], body: dict[str, Any], clients: int, *,
                duration: float, requests: int | None) -> dict[str, Any]:
    """``clients`` concurrent clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    server_ms: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    rerankers: Counter[str] = Counter()
    sent = 0
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while (requests is None and time.monotonic() < deadline) or (requests is not None and sent < requests):
            query = queries[sent % len(queries)]
            sent += 1
            t0 = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/search", json={**body, "query": query})
            except httpx.TimeoutException as exc:
                errors[f"timeout ({type(exc).__name__})"] += 1
                continue
            except httpx.TransportError as exc:
                errors[f"connection ({type(exc).__name__})"] += 1
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            statuses[str(response.status_code)] += 1
            if response.is_success:
                latencies.append(elapsed)
                data = response.json()
                server_ms.append(float(data["timings"].get("total", 0.0)) * 1000)
                if data.get("reranker"):
                    rerankers[str(data["reranker"])] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=REQUEST_TIMEOUT_S) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - started
    ok = len(latencies)
    return {"clients": clients, "wall_s": round(wall, 2), "sent": sent, "ok": ok,
            "throughput_rps": round(ok / wall, 2) if wall else 0.0,
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if ok else None,
            "p95_ms": round(float(np.percentile(latencies, 95)), 1) if ok else None,
            "max_ms": round(max(latencies), 1) if ok else None,
            "server_total_p50_ms": round(float(np.percentile(server_ms, 50)), 1) if ok else None,
            "non_2xx": {s: n for s, n in statuses.items() if not s.startswith("2")},
            "connection_errors": dict(errors), "reranker": dict(rerankers)}


def alive(url: str, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None and process.poll() is not None:
        return False
    try:
        return httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running service (else one is started)")
    parser.add_argument("--api-key-file", default=None, help="with --url: a file holding its bearer key")
    parser.add_argument("--collection", default="SciFact", help="the alias the started service serves")
    parser.add_argument("--queries-from", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per level and request shape")
    parser.add_argument("--requests", type=int, default=None, help="a fixed count per level instead of a duration")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rerank-top-n", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "service_load.json"))
    args = parser.parse_args()

    queries = load_queries(args.queries_from, 1000)
    process = None
    if args.url:
        url = args.url.rstrip("/")
        key = Path(args.api_key_file).read_text().strip() if args.api_key_file else os.environ["RAGOPS_SERVICE_API_KEY"]
    else:
        log_path = Path(args.out).with_suffix(".service.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process, url, key = start_service(args.collection, log_path)
    out: dict[str, Any] = {"url": url, "started_here": process is not None, "levels": [],
                           "duration_s": None if args.requests else args.duration, "requests": args.requests}
    try:
        out["ready_after_s"] = wait_ready(url, process)
        shapes = {"hybrid, rerank off": {"mode": "hybrid", "k": args.k, "rerank": False},
                  f"hybrid, rerank top {args.rerank_top_n}": {"mode": "hybrid", "k": args.k, "rerank": True,
                                                               "rerank_top_n": args.rerank_top_n}}
        for shape, body in shapes.items():
            asyncio.run(level(url, key, queries, body, 1, duration=0, requests=args.warmup))
            for clients in (int(c) for c in args.levels.split(",")):
                row = asyncio.run(level(url, key, queries, body, clients, duration=args.duration,
                                        requests=args.requests))
                row["shape"] = shape
                row["alive_after"] = alive(url, process)
                out["levels"].append(row)
                print(f"  {shape}, {clients} clients: {row['throughput_rps']} req/s, p50 {row['p50_ms']} ms, "
                      f"p95 {row['p95_ms']} ms, non-2xx {row['non_2xx']}, errors {row['connection_errors']}",
                      flush=True)
    finally:
        if process is not None:
            process.terminate()
            try:
                out["service_exit"] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                out["service_exit"] = process.wait()
    out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\n### /v1/search on loopback ({url}), k={args.k}, "
          + (f"{args.requests} requests" if args.requests else f"{args.duration:g} s") + " per level")
    print("| request | clients | req/s | p50 ms | p95 ms | max ms | server p50 ms | non-2xx | connection errors |"
          " up after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in out["levels"]:
        print(f"| {r['shape']} ({'/'.join(r['reranker']) or '-'}) | {r['clients']} | {r['throughput_rps']} | "
              f"{r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | {r['server_total_p50_ms']} | "
              f"{sum(r['non_2xx'].values())} | {sum(r['connection_errors'].values())} | {r['alive_after']} |")
    failed = [r for r in out["levels"] if not r["alive_after"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
