"""The RAG service: search and cited answers over live collections, as a FastAPI app.

    POST /v1/search    query, k, mode, rerank, rerank_top_n, collection, sources -> hits with citations
    POST /v1/answer    question (or query), the same options -> an answer citing passages [n]
    GET  /healthz      the process is up
    GET  /readyz       the default collection resolves and its model is loaded (503 until then)
    GET  /metrics      Prometheus: requests, errors, latency by endpoint and by stage
    GET  /openapi.json, /docs

``/v1/*`` need ``Authorization: Bearer <key>`` (``RAGOPS_SERVICE_API_KEY``): 401 without it.
A bad request gets a 4xx whose message names the field: 422 for a body that fails validation
(an empty or over-long query, k out of range, an unknown field), 404 for a collection that does
not exist. Each query runs every stage on the collection version it started on; alias swaps and
model promotions reach the service within ``refresh_s`` without a restart (``ragops.retrieval``).
"""

import hmac
import logging
import threading
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragops.answers import MIN_SIMILARITY, answer
from ragops.errors import InvalidInput
from ragops.retrieval import EncoderUnavailable, NotReady, Retriever, UnknownCollection
from ragops.retrieval.retriever import ModelPool, RerankerFor, production_reranker
from ragops.services import LLMEndpoint, Services
from ragops.serving.metrics import CONTENT_TYPE, ServiceMetrics
from ragops.serving.schemas import AnswerRequest, AnswerResponse, SearchRequest, SearchResponse
from ragops.serving.settings import ServiceSettings
from ragops.stores.base import VectorStoreError
from ragops.synthetic.llm import ChatClient

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations, and
# the auth dependency's names are local to ``create_app``.

log = logging.getLogger(__name__)

MAX_RETRIEVERS = 32   # names (aliases or versions) a service keeps a live path for
_ERRORS = {401: {"description": "Missing or invalid API key."},
           404: {"description": "The collection does not exist (the message names it)."},
           422: {"description": "A field is invalid (the message names it)."},
           503: {"description": "The collection cannot serve now (not ready)."}}


class ServiceState:
    """What the app holds: the services, a live ``Retriever`` per collection name, the LLM."""

    def __init__(self, svc: Services, settings: ServiceSettings, *, llm: ChatClient | LLMEndpoint | None = None, llm_problem: str | None = None,
                 reranker_for: RerankerFor = production_reranker):
        self.svc = svc
        self.settings = settings
        self.llm = llm
        self.llm_problem = llm_problem
        self.reranker_for = reranker_for
        self.models = ModelPool.of(svc)
        self.metrics = ServiceMetrics()
        self.min_similarity = settings.min_similarity if settings.min_similarity is not None else MIN_SIMILARITY
        self._retrievers: dict[str, Retriever] = {}
        self._lock = threading.Lock()
        self.warming = False
        self.warm_error: str | None = None

    def retriever(self, name: str | None) -> Retriever:
        name = name or self.settings.collection
        found = self._retrievers.get(name)
        if found is not None:
            return found
        retriever = Retriever(self.svc, name, refresh_s=self.settings.refresh_s, models=self.models,
                              reranker_for=self.reranker_for)
        retriever.resolve()   # an unknown name raises here, before anything is kept for it
        with self._lock:
            if len(self._retrievers) < MAX_RETRIEVERS:
                retriever = self._retrievers.setdefault(name, retriever)
        return retriever

    def warm(self) -> None:
        """Loads the default collection's model and citations, so the first query is not slow."""
        self.warming = True
        try:
            self.retriever(None).current()
            self.warm_error = None
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, retried by the next query
            self.warm_error = f"{type(exc).__name__}: {exc}"
            log.warning("warm-up of %s failed: %s", self.settings.collection, self.warm_error)
        finally:
            self.warming = False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.warming:
            return False, {"status": "warming up", "collection": self.settings.collection}
        try:
            retriever = self.retriever(None)
            path = retriever.current()
        except Exception as exc:  # noqa: BLE001 - any reason not to serve is a 503 with the reason
            return False, {"status": "not ready", "collection": self.settings.collection,
                           "reason": f"{type(exc).__name__}: {exc}"}
        body = {"status": "ready" if path.encode is not None else "degraded", "collection": self.settings.collection,
                "version": path.version.as_dict(), "fusion": path.fusion.as_dict(), "reranker": path.reranker.name,
                "answers": "llm" if self.llm is not None else f"extractive ({self.llm_problem})"}
        if retriever.last_error:
            body["not_served"] = retriever.last_error
        if path.encode is None:
            body["reason"] = path.encoder_problem
            return False, body
        return True, body


def create_app(svc: Services, settings: ServiceSettings, *, llm: ChatClient | LLMEndpoint | None = None, llm_problem: str | None = None,
               warm: bool = True, reranker_for: RerankerFor = production_reranker) -> FastAPI:
    """The app. ``llm``: a ``ChatClient`` (or an ``LLMEndpoint``) for answers; None: extractive answers."""
    state = ServiceState(svc, settings, llm=llm, llm_problem=llm_problem, reranker_for=reranker_for)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
        if warm:
            state.warming = True
            threading.Thread(target=state.warm, name="ragops-warm-up", daemon=True).start()
        yield

    app = FastAPI(title="ragops", version="1", lifespan=lifespan,
                  description="Search and cited answers over the live RAG collections.")
    app.state.ragops = state
    metrics = state.metrics
    bearer = HTTPBearer(auto_error=False, description="The service's API key (RAGOPS_SERVICE_API_KEY).")

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        key = settings.api_key
        if key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            raise HTTPException(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            metrics.requests.labels(endpoint, request.method, str(status)).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            if status >= 400:
                metrics.errors.labels(endpoint, str(status)).inc()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "field": _field(e.get("loc", ())), "msg": e.get("msg", ""),
                    "type": e.get("type", "")} for e in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['msg']}" for d in details)
        return JSONResponse({"error": message, "detail": details}, status_code=422)

    @app.exception_handler(UnknownCollection)
    async def unknown(request: Request, exc: UnknownCollection) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": "collection"}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def bad_input(request: Request, exc: InvalidInput) -> JSONResponse:
        message = str(exc)
        return JSONResponse({"error": message, "field": message.split(":", 1)[0]}, status_code=422)

    @app.exception_handler(NotReady)
    @app.exception_handler(EncoderUnavailable)
    @app.exception_handler(VectorStoreError)
    async def not_ready(request: Request, exc: Exception) -> JSONResponse:
        log.warning("not ready: %s", exc)
        return JSONResponse({"error": f"the collection cannot serve now: {exc}"}, status_code=503)

    @app.post("/v1/search", response_model=SearchResponse, dependencies=[Depends(require_key)], responses=_ERRORS,
              summary="Search a collection: passages with their citations.")
    def search(body: SearchRequest) -> dict[str, Any]:
        retriever = state.retriever(body.collection)
        result = retriever.search(body.query, k=body.k, mode=body.mode, rerank=body.rerank,
                                  rerank_top_n=max(body.rerank_top_n, body.k), sources=body.sources)
        metrics.observe_stages(result.timings)
        metrics.served(retriever.name, result.version.collection, result.version.version)
        return result.as_dict()

    @app.post("/v1/answer", response_model=AnswerResponse, dependencies=[Depends(require_key)], responses=_ERRORS,
              summary="Answer a question from the top passages, citing them as [n].")
    def answer_question(body: AnswerRequest) -> dict[str, Any]:
        retriever = state.retriever(body.collection)
        result = retriever.search(body.question, k=body.k, mode=body.mode, rerank=body.rerank,
                                  rerank_top_n=max(body.rerank_top_n, body.k), sources=body.sources)
        started = time.perf_counter()
        reply = answer(body.question, result.hits, state.llm, min_similarity=state.min_similarity,
                       max_passages=body.k, llm_problem=state.llm_problem)
        timings = {**result.timings, "answer": round(time.perf_counter() - started, 6)}
        metrics.observe_stages(timings)
        metrics.served(retriever.name, result.version.collection, result.version.version)
        return {**reply.as_dict(), "version": result.version.as_dict(), "timings": timings}

    @app.get("/healthz", summary="Liveness: the process answers.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the default collection resolves and its model is loaded.",
             responses={503: {"description": "Not ready (the body says why)."}})
    def readyz() -> JSONResponse:
        ready, body = state.readiness()
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics.", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def _field(loc: Any) -> str:
    """``("body", "sources", 0)`` -> ``sources.0``: the field, without where it was sent."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def serve(svc: Services, settings: ServiceSettings, *, llm: ChatClient | LLMEndpoint | None = None, llm_problem: str | None = None,
          log_level: str = "info") -> None:
    """Runs the app under uvicorn (one process; sync endpoints run in its thread pool)."""
    import uvicorn

    settings.check()
    if settings.torch_threads:
        import torch

        # One query is a tiny forward pass: intra-op threads only contend with the other requests'.
        torch.set_num_threads(settings.torch_threads)
    if settings.api_key is None:
        log.warning("serving WITHOUT authentication on %s (--no-auth)", settings.host)
    app = create_app(svc, settings, llm=llm, llm_problem=llm_problem)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=10)
