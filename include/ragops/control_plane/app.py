"""The control plane's FastAPI app: the pages (GET) and the actions (POST), all behind Airflow's auth.

Security, since the API server does not protect a plugin's app itself:
- every route needs a signed-in user with view access to the website (Airflow's check for its
  own pages): no credentials is 401, a user without that access 403;
- an action also needs DAG-run create access on its DAG (``is_authorized_dag``, POST, RUN),
  checked here before the request is forwarded, and again by Airflow when it receives it;
- a form must carry the session's CSRF token, and a browser's ``Sec-Fetch-Site``/``Origin`` must
  say same origin;
- no ``/docs``, ``/redoc`` or ``/openapi.json``; every page is autoescaped HTML under a CSP
  that allows no script at all.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations,
# which name classes imported inside create_app (FastAPI is imported only when the app is built).
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from psycopg2 import OperationalError as RegistryUnavailable

from ragops.control_plane import actions, auth, pages
from ragops.errors import InvalidInput, SchemaBehind
from ragops.services import Services
from ragops.vocabulary import CONTROL_PLANE_PREFIX

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 4096
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # No script anywhere; inline styles only; framed only by the Airflow UI itself (same origin).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(open_services: Callable[[], Services] = auth.services_from_airflow, *,
               api_base_url: Callable[[], str] = auth.api_base_url, prefix: str = CONTROL_PLANE_PREFIX) -> Any:
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="ragops control plane", dependencies=[Depends(auth.view_dependency())],
                  docs_url=None, redoc_url=None, openapi_url=None)
    User = Annotated[Any, Depends(auth.user_dependency())]

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(SchemaBehind)
    @app.exception_handler(RegistryUnavailable)
    async def registry_unavailable(request: Request, exc: Exception) -> HTMLResponse:
        # Named, not echoed: a driver's message may carry hosts and user names.
        log.warning("control plane: the lineage registry is unavailable", exc_info=exc)
        reason = str(exc) if isinstance(exc, SchemaBehind) else f"{type(exc).__name__}; see the API server's log"
        return page(pages.message("Registry unavailable", error=f"the lineage registry cannot be read: {reason}",
                                  **ctx(request)), 503)

    def page(html: str | None, status: int = 200) -> HTMLResponse:
        if html is None:
            raise HTTPException(404, "no such page")
        return HTMLResponse(html, status_code=status)

    def ctx(request: Request) -> dict[str, Any]:
        token = auth.session_token(request)
        return {"csrf": actions.csrf_token(token) if token else "", "prefix": prefix}

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        return page(pages.overview(open_services(), **ctx(request)))

    @app.get("/collections", response_class=HTMLResponse)
    def collections(request: Request) -> HTMLResponse:
        return page(pages.collections(open_services(), **ctx(request)))

    @app.get("/collections/{alias}", response_class=HTMLResponse)
    def collection(request: Request, alias: str, compare: str | None = None) -> HTMLResponse:
        pair = None
        if compare:
            parts = compare.split(",")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise HTTPException(400, "compare takes two artifact ids: ?compare=<id>,<id>")
            pair = (int(parts[0]), int(parts[1]))
        return page(pages.collection(open_services(), alias, pair, **ctx(request)))

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request) -> HTMLResponse:
        return page(pages.models(open_services(), **ctx(request)))

    @app.get("/datasets", response_class=HTMLResponse)
    def datasets(request: Request, sample: int | None = None) -> HTMLResponse:
        return page(pages.datasets(open_services(), sample, **ctx(request)))

    @app.get("/runs", response_class=HTMLResponse)
    def runs(request: Request, dag_id: str | None = None) -> HTMLResponse:
        return page(pages.runs(open_services(), dag_id, **ctx(request)))

    @app.get("/lineage/{artifact_id}", response_class=HTMLResponse)
    def lineage(request: Request, artifact_id: int) -> HTMLResponse:
        return page(pages.lineage(open_services(), artifact_id, **ctx(request)))

    @app.get("/evaluations", response_class=HTMLResponse)
    def evaluations(request: Request) -> HTMLResponse:
        return page(pages.evaluations(open_services(), **ctx(request)))

    # -- actions ---------------------------------------------------------------------------------
    async def form_of(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=16).items()}

    def same_origin(request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return False
        origin = request.headers.get("origin")
        return origin is None or urlsplit(origin).netloc == request.headers.get("host")

    async def act(request: Request, user: Any, build: Callable[[Services, dict[str, str], str], actions.Trigger],
                  back: str) -> HTMLResponse:
        from starlette.concurrency import run_in_threadpool

        form = await form_of(request)  # the rest blocks (registry, the API call): off the event loop
        return await run_in_threadpool(act_now, request, user, form, build, back)

    def act_now(request: Request, user: Any, form: dict[str, str],
                build: Callable[[Services, dict[str, str], str], actions.Trigger], back: str) -> HTMLResponse:
        token = auth.session_token(request)
        if not token or not same_origin(request) or not actions.csrf_ok(token, form.get("csrf_token")):
            return page(pages.message("Refused", error="the form is stale or came from another site: reload the "
                                      "page and try again", back=back, **ctx(request)), 403)
        svc = open_services()
        try:
            action = build(svc, form, auth.user_name(user))
        except (InvalidInput, ValueError, KeyError) as exc:
            return page(pages.message("Not possible", error=str(exc) or "missing form field", back=back,
                                      **ctx(request)), 400)
        if not auth.may_trigger(user, action.dag_id):
            return page(pages.message("Forbidden", error=f"you may not trigger {action.dag_id}", back=back,
                                      **ctx(request)), 403)
        try:
            run = actions.trigger(api_base_url(), token, action)
        except actions.ActionRefused as exc:
            log.warning("control plane: %s refused for %s: %s", action.dag_id, auth.user_name(user), exc.message)
            return page(pages.message("Refused by Airflow", error=exc.message, back=back, **ctx(request)),
                        exc.status if 400 <= exc.status < 600 else 502)
        log.info("control plane: %s triggered %s run %s (%s)", auth.user_name(user), run.dag_id, run.run_id,
                 run.purpose)
        return page(pages.message(f"Triggered {run.dag_id}", run=run, back=back, **ctx(request)))

    @app.post("/actions/collection-rollback", response_class=HTMLResponse)
    async def collection_rollback(request: Request, user: User) -> HTMLResponse:
        return await act(request, user, lambda svc, form, _: actions.collection_rollback(svc, int(form["artifact_id"])),
                         f"{prefix}/collections")

    @app.post("/actions/model-rollback", response_class=HTMLResponse)
    async def model_rollback(request: Request, user: User) -> HTMLResponse:
        return await act(request, user, lambda svc, form, name: actions.model_rollback(svc, int(form["artifact_id"]),
                                                                                       name), f"{prefix}/models")

    @app.post("/actions/reindex", response_class=HTMLResponse)
    async def reindex(request: Request, user: User) -> HTMLResponse:
        return await act(request, user, lambda svc, form, _: actions.reindex(svc, form["alias"]),
                         f"{prefix}/collections")

    @app.post("/actions/evaluate", response_class=HTMLResponse)
    async def evaluate(request: Request, user: User) -> HTMLResponse:
        return await act(request, user, lambda svc, form, _: actions.evaluate(svc, form["alias"]),
                         f"{prefix}/evaluations")

    return app
