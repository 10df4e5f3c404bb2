"""One params spec per DAG: a frozen dataclass whose fields say everything about a param once.

A field's default, description and bounds (``minimum``, ``maximum``, ``enum``, ``pattern``...)
live in its metadata, written with ``param(...)``. From that one place come:
- the DAG's Airflow ``Param``s for the trigger form (``ragops.orchestration.params``);
- validation of a run's values, with the JSON-schema semantics Airflow's own ``Param`` uses
  (the ``jsonschema`` library), plus a spec's cross-field ``check``;
- the CLI's flags (``add_cli_arguments``).

    @dataclass(frozen=True)
    class IndexParams(ParamSpec):
        chunk_size: int = param(200, "Target chunk size in tokens.", minimum=16, maximum=512)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from enum import Enum
from typing import Any, Self, Union

from ragops.errors import InvalidInput
from ragops.records import Record

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               tuple: "array", dict: "object"}


def param(default: Any = dataclasses.MISSING, description: str = "", *, factory: Any = dataclasses.MISSING,
          cli: bool = True, **schema: Any) -> Any:
    """A params-spec field: its default (or ``factory``), description and JSON-schema bounds.

    ``schema`` takes JSON-schema keywords as Airflow's ``Param`` does (``minimum``, ``maximum``,
    ``exclusiveMinimum``, ``enum``, ``pattern``, ``items``...). ``cli=False`` keeps a param out of
    the command line (e.g. a list of source specs that has its own flags)."""
    if not description:
        raise ValueError("every param needs a description: it is the trigger form's help text")
    meta = {"description": description, "schema": schema, "cli": cli}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"param": meta})
    return dataclasses.field(default=default, metadata={"param": meta})


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    name: str
    default: Any
    description: str
    schema: dict[str, Any]
    cli: bool
    hint: Any


class ParamSpec(Record):
    """Base of each DAG's params dataclass (declare it ``@dataclass(frozen=True)``)."""

    def check(self) -> None:
        """Cross-field rules beyond one field's bounds; raise InvalidInput naming the params."""

    def __post_init__(self) -> None:
        self.validate()
        self.check()

    def validate(self) -> None:
        """Every field against its JSON schema (as Airflow validates the trigger form), all
        problems named at once."""
        import jsonschema

        problems = []
        for info in self.describe():
            value = _plain(getattr(self, info.name))
            try:
                jsonschema.validate(value, info.schema)
            except jsonschema.ValidationError as exc:
                problems.append(f"{info.name}={value!r}: {exc.message}")
        if problems:
            raise InvalidInput(f"invalid {type(self).__name__}: " + "; ".join(problems))

    @classmethod
    def describe(cls) -> list[ParamInfo]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = f.metadata.get("param")
            if meta is None:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out.append(ParamInfo(f.name, _plain(default), meta["description"],
                                 json_schema(hints[f.name], meta["schema"]), meta["cli"], hints[f.name]))
        return out

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> Self:
        """Validates a run's values (DAG params, CLI flags) and builds the spec; unknown names are
        an error, missing ones take their defaults."""
        names = {i.name for i in cls.describe()}
        unknown = sorted(set(values) - names - set(ignore))
        if unknown:
            raise InvalidInput(f"unknown {cls.__name__} params: {unknown}")
        return cls.from_xcom({k: v for k, v in values.items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        return self.to_xcom()


def json_schema(hint: Any, bounds: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one field: its type from the annotation, then its bounds.

    An ``enum`` param keeps no ``type`` of its own unless it may be null (as the trigger form
    had it before these specs), so the form shows the same drop-down."""
    nullable, base = _unwrap_optional(hint)
    schema: dict[str, Any] = {}
    json_type = _json_type(base)
    if "enum" in bounds:
        enum = [e.value if isinstance(e, Enum) else e for e in bounds["enum"]]
        if nullable:
            schema["type"] = ["null", json_type]
            enum = [None, *enum] if None not in enum else enum
        schema["enum"] = enum
        return schema | {k: v for k, v in bounds.items() if k != "enum"}
    schema["type"] = ["null", json_type] if nullable else json_type
    return schema | bounds


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(args) < len(typing.get_args(hint)), args[0]
    return False, hint


def _json_type(hint: Any) -> str:
    base = typing.get_origin(hint) or hint
    if isinstance(base, type) and issubclass(base, Enum):
        return "string"
    for py, js in _JSON_TYPES.items():
        if isinstance(base, type) and issubclass(base, py) and not (py is int and base is bool):
            return js
    raise TypeError(f"no JSON-schema type for {hint!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- the command line ----------------------------------------------------------------------------
def add_cli_arguments(parser: argparse.ArgumentParser, spec: type[ParamSpec], *,
                      only: tuple[str, ...] | None = None, defaults: dict[str, Any] | None = None,
                      aliases: dict[str, str] | None = None, required: tuple[str, ...] = ()) -> None:
    """Adds ``--name`` flags for a spec's params (all, or ``only`` these), with the spec's
    defaults, help and choices. Lists and objects are given as JSON (a bare comma list works for
    lists of numbers). ``aliases`` adds another flag for a param (``{"alias": "--collection"}``);
    ``required`` params have no default on the command line."""
    defaults, aliases = defaults or {}, aliases or {}
    for info in spec.describe():
        if not info.cli or (only is not None and info.name not in only):
            continue
        flags = [f"--{info.name.replace('_', '-')}", *([aliases[info.name]] if info.name in aliases else [])]
        extra: dict[str, Any] = {"required": True} if info.name in required else {}
        default = defaults.get(info.name, info.default)
        kind = info.schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        help_text = f"{info.description} (default: {default!r})"
        if "boolean" in kinds:
            parser.add_argument(*flags, dest=info.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text, **extra)
        elif "array" in kinds or "object" in kinds:
            parser.add_argument(*flags, dest=info.name, type=_json_or_list, default=default, help=help_text,
                                **extra)
        else:
            convert = {"integer": int, "number": float}.get(next((k for k in kinds if k != "null"), ""), str)
            choices = [c for c in info.schema.get("enum", []) if c is not None] or None
            parser.add_argument(*flags, dest=info.name, type=convert, default=default, choices=choices,
                                help=help_text, **extra)


def cli_values(args: argparse.Namespace, spec: type[ParamSpec]) -> dict[str, Any]:
    """The spec's values among parsed CLI arguments (for ``spec.from_mapping``)."""
    names = {i.name for i in spec.describe()}
    return {k: v for k, v in vars(args).items() if k in names}


def _json_or_list(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [float(x) if "." in x else int(x) for x in text.split(",") if x.strip()]
