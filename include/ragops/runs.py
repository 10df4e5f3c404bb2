"""One run lifecycle for every DAG and every CLI command: open, then close with the truth.

A run is opened once (the first task of a DAG, or the start of a CLI command) and closed once
(the DAG's last task, which runs whatever happened upstream, or the end of the command):
- ``success``: every step did its work;
- ``noop``: the steps found nothing new to make (the summary says ``noop``);
- ``failed``: a step failed; the failed tasks (or the error) are recorded with the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ragops.config import redact
from ragops.records import Record
from ragops.services import Services
from ragops.vocabulary import RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRef(Record):
    """A run of a DAG (or CLI command) as the lineage registry knows it."""

    run_key: str
    dag_id: str
    run_id: str
    fallbacks: tuple[str, ...] = ()   # "service -> replacement", as recorded


def open_run(svc: Services, dag_id: str, run_id: str, params: dict[str, Any],
             extra_fallbacks: list[dict[str, str]] | None = None) -> RunRef:
    """Records the run as running (a retry re-opens the same run) and logs its fallbacks once."""
    fallbacks = svc.fallbacks + list(extra_fallbacks or [])
    for fb in fallbacks:
        log.warning("fallback: %s -> %s (%s)", fb["service"], fb["using"], fb["reason"])
    key = svc.registry.start_run(dag_id, run_id, redact(params), fallbacks)
    return RunRef(key, dag_id, run_id, tuple(f"{f['service']} -> {f['using']}" for f in fallbacks))


def close_run(svc: Services, run: RunRef, summary: dict[str, Any], *, failed_tasks: list[str] | None = None,
              error: str | None = None) -> RunStatus:
    """Records the run's outcome with its summary; returns the status recorded."""
    if failed_tasks or error:
        status = RunStatus.FAILED
        summary = {**summary, **({"failed_tasks": failed_tasks} if failed_tasks else {}),
                   **({"error": error[:2000]} if error else {})}
    else:
        status = RunStatus.NOOP if summary.get("noop") else RunStatus.SUCCESS
    svc.registry.finish_run(run.run_key, status, {"fallbacks": list(run.fallbacks), **summary})
    return status


@dataclass
class RecordedRun:
    """What a CLI command fills in while its run is open."""

    ref: RunRef
    summary: dict[str, Any] = field(default_factory=dict)


@contextmanager
def recorded_run(svc: Services, dag_id: str, run_id: str, params: dict[str, Any],
                 extra_fallbacks: list[dict[str, str]] | None = None) -> Generator[RecordedRun, None, None]:
    """The CLI's form of the lifecycle: the run is closed as failed if the body raises."""
    handle = RecordedRun(open_run(svc, dag_id, run_id, params, extra_fallbacks))
    try:
        yield handle
    except BaseException as exc:
        close_run(svc, handle.ref, handle.summary, error=f"{type(exc).__name__}: {exc}")
        raise
    close_run(svc, handle.ref, handle.summary)
