"""Params specs: one declaration gives the trigger form's schema, validation and the CLI's flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from ragops.errors import InvalidInput
from ragops.params import ParamSpec, add_cli_arguments, cli_values, json_schema, param


@dataclass(frozen=True)
class Demo(ParamSpec):
    size: int = param(10, "How many.", minimum=1, maximum=100)
    mode: str = param("fast", "How.", enum=["fast", "slow"])
    ratio: float = param(0.5, "A share.", minimum=0, maximum=1)
    name: str | None = param(None, "Optional name.")
    dims: list[int] = param(description="Dimensions.", factory=lambda: [384, 64], items={"type": "integer"})
    flag: bool = param(False, "A switch.")

    def check(self) -> None:
        if self.mode == "slow" and self.size > 50:
            raise InvalidInput("size must be at most 50 when mode is slow")


def test_schema_comes_from_the_annotation_and_the_bounds():
    infos = {i.name: i for i in Demo.describe()}
    assert infos["size"].schema == {"type": "integer", "minimum": 1, "maximum": 100}
    assert infos["mode"].schema == {"enum": ["fast", "slow"]}  # as the trigger form had enums
    assert infos["name"].schema == {"type": ["null", "string"]}
    assert infos["dims"].schema == {"type": "array", "items": {"type": "integer"}}
    assert infos["dims"].default == [384, 64] and infos["flag"].schema == {"type": "boolean"}
    assert json_schema(str | None, {"enum": ["a"]}) == {"type": ["null", "string"], "enum": [None, "a"]}


def test_every_problem_is_named_at_once():
    with pytest.raises(InvalidInput) as err:
        Demo.from_mapping({"size": 0, "mode": "medium", "ratio": 2})
    message = str(err.value)
    assert "size=0" in message and "mode='medium'" in message and "ratio=2" in message
    with pytest.raises(InvalidInput, match=r"unknown Demo params: \['sise'\]"):
        Demo.from_mapping({"sise": 3})
    with pytest.raises(InvalidInput, match="at most 50 when mode is slow"):
        Demo.from_mapping({"mode": "slow", "size": 60})
    assert Demo.from_mapping({"size": 5}) == Demo(size=5)


def test_a_description_is_required():
    with pytest.raises(ValueError, match="description"):
        param(1)


def test_cli_flags_share_the_defaults_and_bounds():
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser, Demo, aliases={"size": "--count"})
    args = parser.parse_args(["--count", "20", "--mode", "slow", "--dims", "256,64", "--flag"])
    assert Demo.from_mapping(cli_values(args, Demo)) == Demo(size=20, mode="slow", dims=[256, 64], flag=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])  # choices come from the enum
    assert parser.parse_args([]).size == 10
