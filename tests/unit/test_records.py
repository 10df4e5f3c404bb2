"""Every record that crosses a task boundary round-trips through XCom (and JSON) unchanged."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import types
import typing
from enum import Enum
from typing import Any

import pytest

import ragops
from ragops.params import ParamSpec
from ragops.records import MAX_XCOM_BYTES, Record


def _all_records() -> list[type[Record]]:
    for info in pkgutil.walk_packages(ragops.__path__, "ragops."):
        if info.name.startswith(("ragops.orchestration", "ragops.__main__")) or info.name.endswith(("train_llm", "merge_adapters",
                                                                                 "train_embeddings")):
            continue  # the Airflow side and the standalone trainers define no records
        importlib.import_module(info.name)
    seen: list[type[Record]] = []
    stack = list(Record.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls) and cls not in seen:
            seen.append(cls)
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__name__}")


def sample(hint: Any) -> Any:
    """A value of the type a record field declares (nested records, enums, optionals...)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in typing.get_args(hint) if a is not type(None)))
    if isinstance(hint, type) and issubclass(hint, ParamSpec):
        return hint()
    if isinstance(hint, type) and issubclass(hint, Record):
        return build(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return next(iter(hint))
    if origin in (list, tuple):
        args = typing.get_args(hint)
        items = [sample(args[0])] if args and args[0] is not Ellipsis else ["x"]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        return {"k": 1}
    return {bool: True, int: 7, float: 0.5, str: "x"}.get(hint, "x")


def build(cls: type[Record]) -> Record:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(cls) if f.init})  # type: ignore[arg-type]


RECORDS = _all_records()


def test_records_are_found():
    names = {c.__name__ for c in RECORDS}
    assert {"RunRef", "ModelRef", "IndexRun", "Plan", "Swap", "Promotion"} <= names, names


@pytest.mark.parametrize("cls", [c for c in RECORDS if not issubclass(c, ParamSpec)], ids=lambda c: c.__name__)
def test_record_round_trips_through_xcom_and_json(cls):
    assert cls.__dataclass_params__.frozen, f"{cls.__name__} must be frozen"
    record = build(cls)
    xcom = record.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom  # plain JSON, nothing Python-only
    again = cls.from_xcom(json.loads(json.dumps(xcom)))
    assert again == record and type(again) is cls


def test_records_refuse_data_and_non_json_values():
    from ragops.runs import RunRef

    with pytest.raises(ValueError, match="RunRef is .* bytes as XCom"):
        RunRef("k", "d", "r", fallbacks=("x" * (MAX_XCOM_BYTES + 1),)).to_xcom()
    with pytest.raises(TypeError, match=r"RunRef.run_id: bytes is not JSON-safe"):
        RunRef("k", "d", b"raw").to_xcom()  # type: ignore[arg-type]


def test_nested_records_and_enums_come_back_typed():
    from ragops.indexing.records import IndexRun, Plan, Shard
    from ragops.vocabulary import Stage

    plan = build(Plan)
    assert isinstance(plan.shards[0], Shard)
    again = Plan.from_xcom(plan.to_xcom())
    assert isinstance(again.shards, tuple) and isinstance(again.shards[0], Shard)
    run = IndexRun.from_xcom(build(IndexRun).to_xcom())
    assert run.model.model_id == "x" and run.run.run_key == "x"
    assert Stage("production") is Stage.PRODUCTION and json.dumps(Stage.PRODUCTION) == '"production"'
