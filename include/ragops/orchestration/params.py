"""A params spec (``ragops.params``) as the Airflow ``Param``s of a DAG's trigger form."""

from __future__ import annotations

from typing import Any

from ragops.params import ParamSpec


def airflow_params(spec: type[ParamSpec], **overrides: Any) -> dict[str, Any]:
    """One ``Param`` per spec field: its default, description and JSON schema. ``overrides``
    replaces a default for this DAG (e.g. a demo subset) without changing the spec."""
    from airflow.sdk import Param

    return {info.name: Param(overrides.get(info.name, info.default), description=info.description, **info.schema)
            for info in spec.describe()}
