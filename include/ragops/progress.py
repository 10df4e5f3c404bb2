"""Progress of long steps, in the form that fits where they run.

In a terminal: a tqdm bar. In an Airflow task log (or any non-terminal): a line every
``RAGOPS_PROGRESS_SECONDS`` (default 30) with the count, the rate and the ETA. Either way, a
closing line with the totals. ``RAGOPS_PROGRESS=bar|log|off`` forces a form.

    with Progress("embed", total=len(rows), unit="chunks") as bar:
        for batch in batches:
            ...
            bar.update(len(batch))
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

log = logging.getLogger("ragops.progress")
T = TypeVar("T")


def _mode() -> str:
    mode = os.environ.get("RAGOPS_PROGRESS", "auto")
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


class Progress:
    def __init__(self, what: str, total: int | None = None, unit: str = "items", *,
                 interval: float | None = None, logger: logging.Logger = log):
        self.what, self.total, self.unit, self.log = what, total, unit, logger
        self.interval = interval if interval is not None else float(os.environ.get("RAGOPS_PROGRESS_SECONDS", 30))
        self.done = 0
        self.mode = _mode()
        self.started = self._last = time.perf_counter()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit=f" {unit}", leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.mode == "log" and now - self._last >= self.interval:
            self._last = now
            self.log.info("%s: %s", self.what, self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}, {rate:.1f} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.mode != "off":
            elapsed = time.perf_counter() - self.started
            self.log.info("%s done: %d %s in %s (%.1f %s/s)", self.what, self.done, self.unit, _duration(elapsed),
                          self.done / max(elapsed, 1e-9), self.unit)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], what: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    """Iterates ``items`` with progress (one per item)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(what, total, unit) as progress:
        for item in items:
            yield item
            progress.update()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
