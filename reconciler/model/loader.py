"""Load a config repository: every YAML document and OSV advisory below a directory.

The loader reads any layout, reports every error with ``file:line:column`` and the field
path, and never stops at the first problem. Cross-references are checked by
:mod:`reconciler.model.references` once every document has loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.errors import ConfigError, Location
from reconciler.model.documents import file_documents, is_document_file
from reconciler.model.kinds import API_VERSION, KINDS, Document
from reconciler.model.references import check_references
from reconciler.model.state import DesiredState
from reconciler.model.yamlsource import MAX_FILE_BYTES, SourceDocument, dotted

__all__ = ["LoadResult", "load_repository"]

_FIELD_OF_KIND = {
    "Device": "devices",
    "Image": "images",
    "RolloutPolicy": "rollout_policies",
    "CompliancePolicy": "compliance_policies",
    "TrustPolicy": "trust_policies",
    "AccessPolicy": "access_policies",
    "Advisory": "advisories",
    "DiscoveryPolicy": "discovery_policies",
    "ImageSource": "image_sources",
    "NotificationPolicy": "notification_policies",
}


@dataclass
class LoadResult:
    """The outcome of a load: the state when there are no errors, and every finding."""

    state: DesiredState | None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        """True when the repository is valid (warnings allowed)."""
        return not self.errors


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_document_file(path.relative_to(root).as_posix()):
                found.append(path)
    return found


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "literal_error": "{msg}",
}


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}"
    if kind == "greater_than":
        return f"must be > {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} does not match {ctx.get('pattern')}"
    return str(err["msg"])


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The part of a pydantic error location that exists in the input data.

    Pydantic adds tags for unions and validators (``function-after[...]``); walking the
    data keeps only real keys and indexes.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not part.endswith("]"):
            # A missing or unknown key: report it under its parent's position.
            path.append(part)
            break
    return tuple(path)


def _validate(doc: SourceDocument) -> tuple[Document | None, list[ConfigError]]:
    data = doc.data
    if not isinstance(data, dict):
        return None, [ConfigError("a document must be a mapping", location=doc.location())]
    api = data.get("apiVersion")
    if api != API_VERSION:
        where = doc.location(("apiVersion",)) if "apiVersion" in data else doc.location()
        return None, [
            ConfigError(f"apiVersion must be {API_VERSION!r}", location=where, field="apiVersion")
        ]
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        where = doc.location(("kind",)) if "kind" in data else doc.location()
        known = ", ".join(sorted(KINDS))
        return None, [
            ConfigError(f"unknown kind {kind!r} (one of {known})", location=where, field="kind")
        ]
    try:
        return model.model_validate(data), []
    except ValidationError as e:
        errors = []
        for err in e.errors(include_url=False):
            path = _data_path(data, tuple(err["loc"]))
            errors.append(
                ConfigError(_message(dict(err)), location=doc.location(path), field=dotted(path))
            )
        return None, errors


def load_repository(root: Path, *, revision: str = "") -> LoadResult:
    """Load and validate every document below ``root``."""
    root = Path(root)
    if not root.is_dir():
        err = ConfigError("not a directory", location=Location(str(root)))
        return LoadResult(None, [err])
    errors: list[ConfigError] = []
    warnings: list[ConfigError] = []
    buckets: dict[str, dict[str, Any]] = {f: {} for f in _FIELD_OF_KIND.values()}
    locations: dict[tuple[str, str], Location] = {}
    sources: dict[tuple[str, str], SourceDocument] = {}
    files = _files(root)
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)  # one byte more tells "too large" apart
            docs, problems = file_documents(rel, data)
        except ConfigError as e:
            errors.append(e)
            continue
        errors.extend(problems)
        for doc in docs:
            obj, problems = _validate(doc)
            errors.extend(problems)
            if obj is None:
                continue
            kind = type(obj).__name__
            bucket = buckets[_FIELD_OF_KIND[kind]]
            loc = doc.location()
            if obj.name in bucket:
                first = locations[(kind, obj.name)]
                errors.append(
                    ConfigError(
                        f"duplicate {kind} name {obj.name!r} (first defined at {first})",
                        location=doc.location(("metadata", "name")),
                        field="metadata.name",
                    )
                )
                continue
            bucket[obj.name] = obj
            locations[(kind, obj.name)] = loc
            sources[(kind, obj.name)] = doc
    state = DesiredState(**buckets, locations=locations, root=str(root), revision=revision)

    def locate(kind: str, name: str, path: tuple[str | int, ...]) -> Location:
        doc = sources.get((kind, name))
        return doc.location(path) if doc else Location(root.as_posix())

    ref_errors, ref_warnings = check_references(state, locate)
    errors.extend(ref_errors)
    warnings.extend(ref_warnings)
    return LoadResult(None if errors else state, errors, warnings, len(files))
