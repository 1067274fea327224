"""JSON Schema export: one schema per kind plus an index, checked in under ``schema/``."""

from __future__ import annotations

import json
from typing import Any

from reconciler.model.kinds import API_VERSION, KINDS

__all__ = ["SCHEMA_DIALECT", "render_schemas"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> text for every schema file. Same code, same bytes."""
    files: dict[str, str] = {}
    index: dict[str, Any] = {"apiVersion": API_VERSION, "kinds": {}}
    any_of = []
    for kind, model in sorted(KINDS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = SCHEMA_DIALECT
        schema["$id"] = f"{kind.lower()}.json"
        name = f"{kind.lower()}.json"
        files[name] = _dump(schema)
        index["kinds"][kind] = name
        any_of.append({"$ref": name})
    files["document.json"] = _dump(
        {
            "$schema": SCHEMA_DIALECT,
            "$id": "document.json",
            "title": "Any gitfirm.io/v1 document",
            "anyOf": any_of,
        }
    )
    files["index.json"] = _dump(index)
    return files
