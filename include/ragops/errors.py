"""What can go wrong, by what should happen next.

The task runtime turns these into Airflow outcomes in one place (``ragops.orchestration.runtime``),
and the CLI into exit codes: a step only says *what* happened.

- ``InvalidInput``, ``DataQualityError``, ``GateFailed``, ``SchemaBehind``, ``AliasMoved``: deterministic, so the
  task fails at once (retrying cannot fix the params, the data or the schema).
- ``NothingNew``: the step found nothing to do; the task is skipped and emits no asset event.
- anything else (a dropped connection, a killed worker, a 503): retried by Airflow.
"""

from __future__ import annotations


class RagopsError(Exception):
    """Base of the errors ragops raises on purpose."""


class InvalidInput(RagopsError, ValueError):
    """A param, a source or a file is unusable as given; the message names it."""


class DataQualityError(RagopsError):
    """Data-quality checks failed: the run stops before anything goes live."""


class GateFailed(RagopsError):
    """A gate refused a collection or a model: what is live stays live."""


class SchemaBehind(RagopsError):
    """The lineage schema is older than this code: run `python -m ragops migrate`."""


class AliasMoved(RagopsError):
    """An alias moved between a run's plan and its swap (a rollback meanwhile): nothing changed."""


class NothingNew(RagopsError):
    """The step found nothing new to make; downstream work and asset events are skipped."""


# Raised by a task: fail without retry.
DETERMINISTIC: tuple[type[Exception], ...] = (InvalidInput, DataQualityError, GateFailed, SchemaBehind, AliasMoved)
