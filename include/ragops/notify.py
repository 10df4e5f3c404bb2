"""Alerts: always logged and recorded in the lineage registry; posted wherever channels exist.

Channels are plain callables ``(title, message) -> None``. The DAG glue adds Airflow's Slack and
SMTP notifiers when the connections ``ragops_slack`` / ``ragops_smtp`` exist; without them the
alert is still logged and recorded, so a quiet deployment never loses one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ragops.config import redact

log = logging.getLogger("ragops.alerts")

Channel = Callable[[str, str], None]


@dataclass
class Notifier:
    registry: Any | None = None          # ragops.lineage.Registry, or None outside a run
    channels: dict[str, Channel] = field(default_factory=dict)

    def alert(self, title: str, message: str, *, severity: str = "error", run_key: str | None = None,
              context: dict[str, Any] | None = None) -> list[str]:
        """Sends an alert; returns the channels it reached. A failing channel never hides the alert."""
        context = redact(context or {})
        log.error("ALERT [%s] %s: %s | %s", severity, title, message, context)
        reached = ["log"]
        for name, send in self.channels.items():
            try:
                send(title, f"{message}\n{context}" if context else message)
                reached.append(name)
            except Exception:  # a broken channel must not swallow the alert
                log.exception("alert channel %s failed for %r", name, title)
        if self.registry is not None:
            self.registry.record_alert(run_key, severity, title, message, context, reached)
            reached.append("registry")
        return reached
