"""JSON Schema export: one schema per kind plus an index, checked in under ``schema/``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from reconciler.model.fields import format_duration
from reconciler.model.kinds import API_VERSION, KINDS

__all__ = ["SCHEMA_BASE", "SCHEMA_DIALECT", "render_schemas"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://gitfirm.io/schema/v1/"
"""Absolute ``$id`` prefix: ``document.json``'s relative ``$ref``s resolve from anywhere."""


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # A default must read as the user would write it (10m), not ISO 8601 (PT10M).
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> text for every schema file. Same code, same bytes."""
    files: dict[str, str] = {}
    index: dict[str, Any] = {"apiVersion": API_VERSION, "kinds": {}}
    any_of = []
    for kind, model in sorted(KINDS.items()):
        schema = model.model_json_schema(mode="validation", schema_generator=_Generator)
        schema["$schema"] = SCHEMA_DIALECT
        schema["$id"] = f"{SCHEMA_BASE}{kind.lower()}.json"
        name = f"{kind.lower()}.json"
        files[name] = _dump(schema)
        index["kinds"][kind] = name
        any_of.append({"$ref": name})
    files["document.json"] = _dump(
        {
            "$schema": SCHEMA_DIALECT,
            "$id": f"{SCHEMA_BASE}document.json",
            "title": "Any gitfirm.io/v1 document",
            "anyOf": any_of,
        }
    )
    files["index.json"] = _dump(index)
    return files
