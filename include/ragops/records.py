"""Typed records: what flows between tasks, as frozen dataclasses with an explicit XCom form.

A record holds ids, URIs, counts and small metrics, never data or a worker's local path, so any
worker on any host can pick it up. ``to_xcom`` gives plain JSON (enums as their values, nested
records as dicts) and refuses anything larger than ``MAX_XCOM_BYTES``; ``from_xcom`` rebuilds the
record, nested records and enums included, from its type hints.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Self, TypeVar, Union

# XCom lives in Airflow's metadata DB: a record is a pointer, not a payload.
MAX_XCOM_BYTES = 64_000


R = TypeVar("R", bound="Record")


class Record:
    """Mixin for ``@dataclass(frozen=True)`` classes that cross task boundaries."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_xcom(self) -> dict[str, Any]:
        data = {f.name: _encode(getattr(self, f.name), f"{type(self).__name__}.{f.name}")
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        size = len(json.dumps(data))
        if size > MAX_XCOM_BYTES:
            raise ValueError(f"{type(self).__name__} is {size} bytes as XCom (limit {MAX_XCOM_BYTES}): "
                             "records carry ids and URIs; put data in the artifact store")
        return data

    @classmethod
    def from_xcom(cls, data: dict[str, Any] | Self) -> Self:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_xcom needs a dict, got {type(data).__name__}")
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _decode(hints[k], v) for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Record):
        return value.to_xcom()
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v, where) for k, v in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-safe for XCom")


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_xcom(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_decode(item, v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        args = typing.get_args(hint)
        return {k: _decode(args[1], v) for k, v in value.items()} if args else dict(value)
    return value


def to_xcom(value: Any) -> Any:
    """A task's return value as XCom: records by their form, lists of records element-wise."""
    return _encode(value, "return value")


def result_of(results: dict[str, Any], task_id: str, record: type[R]) -> R | None:
    """A task's record among a run's results (XCom dicts in a DAG, records in the CLI), or None
    when the task made none (it failed, or was skipped before returning)."""
    value = results.get(task_id)
    return None if value is None else record.from_xcom(value)
