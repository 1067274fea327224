"""The checked-in JSON Schemas give the same verdict as the loader (``gitfirm validate``).

A third-party validator (``jsonschema``) checks every example-repository document against
``schema/document.json`` and then a corpus of mutations, each applied to one document of
a copy of the example repository; the loader must agree (valid repository <=> every
document valid under the schema). Rules JSON Schema cannot express are listed in
``PYDANTIC_ONLY``: for each, the schema accepts and the loader refuses, as documented.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from reconciler.model.loader import load_repository
from reconciler.model.schema import SCHEMA_BASE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example-repo"
SCHEMAS = ROOT / "schema"


def _validator() -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        if path.name != "index.json":
            schema = json.loads(path.read_text())
            resources.append((schema["$id"], Resource.from_contents(schema)))
    registry: Registry[Any] = Registry().with_resources(resources)
    document = registry.contents(f"{SCHEMA_BASE}document.json")
    return Draft202012Validator(document, registry=registry)


VALIDATOR = _validator()


def _documents(root: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    for path in sorted(root.rglob("*.yaml")):
        if any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict):
                yield path, index, doc


def _schema_ok(doc: Any) -> bool:
    return bool(VALIDATOR.is_valid(doc))


def test_every_example_document_is_valid_under_its_schema() -> None:
    docs = list(_documents(EXAMPLE))
    assert len(docs) > 30
    for path, index, doc in docs:
        errors = [e.message for e in VALIDATOR.iter_errors(doc)]
        assert not errors, f"{path}#{index}: {errors[:3]}"
    assert load_repository(EXAMPLE).ok


def test_schema_ids_are_absolute_and_resolve_from_anywhere() -> None:
    for path in SCHEMAS.glob("*.json"):
        if path.name != "index.json":
            assert json.loads(path.read_text())["$id"] == f"{SCHEMA_BASE}{path.name}"


def _defaults(node: Any) -> Iterator[tuple[dict[str, Any], Any]]:
    if isinstance(node, dict):
        if "default" in node:
            yield node, node["default"]
        for value in node.values():
            yield from _defaults(value)
    elif isinstance(node, list):
        for value in node:
            yield from _defaults(value)


def test_every_default_is_valid_under_its_own_schema() -> None:
    """Main's ``PT10M``-style duration defaults failed their own pattern."""
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        for node, default in _defaults(schema):
            sub = {k: v for k, v in node.items() if k != "default"}
            sub["$defs"] = schema.get("$defs", {})
            ok = Draft202012Validator(sub).is_valid(default)
            assert ok, f"{path.name}: default {default!r} fails {sub}"


# (file, document index, dotted path into the document, new value). A path ending in a
# missing key adds it; the value ``DELETE`` removes the key.
DELETE = object()
Mutation = tuple[str, int, str, Any]
RULES = "policies/rollout.yaml"
IMAGES = "images/production.yaml"
DEVICE = "fleet/dc-ams.yaml"
ADVISORY = "advisories/vyos-1.4.2-bgp.yaml"
ACCESS = "policies/access.yaml"
MUTATIONS: list[Mutation] = [
    # versions
    (IMAGES, 0, "spec.version", "1.3.x"),
    (IMAGES, 0, "spec.version", "1.3"),
    (IMAGES, 0, "spec.version", "1.3.8-beta1"),
    (IMAGES, 0, "spec.version", "1.3.8-rc2"),
    (IMAGES, 0, "spec.version", "2025.01.10-0020-rolling"),
    (IMAGES, 0, "spec.version", "1.5-rolling-202410230007"),
    (IMAGES, 0, "spec.version", "2025.1.10-0020-rolling"),
    (RULES, 0, "spec.target.version", "latest"),
    (IMAGES, 1, "spec.upgradeFrom", ">=1.3.8, <1.4 || rolling"),
    (IMAGES, 1, "spec.upgradeFrom", "1.3.*"),
    (IMAGES, 1, "spec.upgradeFrom", "1.3.x"),
    (IMAGES, 1, "spec.upgradeFrom", ">=1.3.8 ||"),
    (IMAGES, 1, "spec.upgradeFrom", "~1.3.8"),
    (ADVISORY, 0, "spec.ranges.0.introduced", "0"),
    (ADVISORY, 0, "spec.ranges.0.fixed", "1.4.x"),
    (ADVISORY, 0, "spec.ranges.0.limit", "1.4.x"),
    # digests
    (IMAGES, 0, "spec.sha256", "xyz"),
    (IMAGES, 0, "spec.sha256", "96CF53ED870C6E9896200A5E1ABF5AB7135BF41D474C2A9662BCE873C9B1B13A"),
    (IMAGES, 0, "spec.sha256", "96cf53ed870c6e9896200a5e1abf5ab7135bf41d474c2a9662bce873c9b1b13"),
    # durations
    (RULES, 0, "spec.strategy.pause", ""),
    (RULES, 0, "spec.strategy.pause", "PT10M"),
    (RULES, 0, "spec.strategy.pause", "1h30m"),
    (RULES, 0, "spec.strategy.pause", "250ms"),
    (RULES, 0, "spec.strategy.pause", "10"),
    (RULES, 0, "spec.strategy.pause", 90),
    (RULES, 0, "spec.strategy.pause", -1),
    (RULES, 0, "spec.strategy.pause", "5 minutes"),
    (RULES, 0, "spec.windows.0.duration", "0"),
    # cron
    (RULES, 0, "spec.windows.0.schedule", "61 2 * * sat"),
    (RULES, 0, "spec.windows.0.schedule", "0 24 * * *"),
    (RULES, 0, "spec.windows.0.schedule", "0 2 * *"),
    (RULES, 0, "spec.windows.0.schedule", "0 2 * * * *"),
    (RULES, 0, "spec.windows.0.schedule", "*/15 2-4 * jan-mar Mon-Fri"),
    (RULES, 0, "spec.windows.0.schedule", "0 2 32 * *"),
    (RULES, 0, "spec.windows.0.schedule", "0 2 * 13 *"),
    (RULES, 0, "spec.windows.0.schedule", "0,30 2 1,15 * 0"),
    (RULES, 0, "spec.windows.0.schedule", "0 2 * * funday"),
    (RULES, 0, "spec.windows.0.schedule", "0 0 0 * *"),
    (RULES, 0, "spec.windows.0.schedule", "0 23-1 * * 0-7"),
    # time zones
    (RULES, 0, "spec.windows.0.timeZone", "Mars/Base"),
    (RULES, 0, "spec.windows.0.timeZone", "America/Argentina/Buenos_Aires"),
    (RULES, 0, "spec.windows.0.timeZone", "UTC"),
    (RULES, 0, "spec.windows.0.timeZone", "europe/berlin"),
    (RULES, 0, "spec.windows.0.timeZone", "Etc/GMT+5"),
    (RULES, 0, "spec.windows.0.timeZone", "../../etc/passwd"),
    # names, literals, unknown and missing fields
    (DEVICE, 0, "metadata.name", "AMS_core"),
    (DEVICE, 0, "spec.platform.arch", "mips"),
    (DEVICE, 0, "spec.address", "ftp://10.20.0.1"),
    (DEVICE, 0, "spec.bogus", 1),
    (DEVICE, 0, "spec.site", DELETE),
    (RULES, 0, "spec.strategy.canary", -1),
    (RULES, 0, "spec.strategy.waves", [30, 100]),
    ("policies/compliance.yaml", 0, "spec.enforcement", "warn"),
    ("policies/compliance.yaml", 0, "spec.enforcement", "audit"),
    (ACCESS, 0, "spec.signers.0.pgpFingerprint", "XYZ"),
]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


def _verdicts(tmp_path: Path, mutation: Mutation) -> tuple[bool, bool]:
    """(schema verdict on the mutated document, loader verdict on the whole repository)."""
    repo = tmp_path / "repo"
    if not repo.exists():
        shutil.copytree(EXAMPLE, repo)
    rel, index, dotted, value = mutation
    path = repo / rel
    original = path.read_text()
    docs = list(yaml.safe_load_all(original))
    _set(docs[index], dotted, value)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    try:
        return _schema_ok(docs[index]), load_repository(repo).ok
    finally:
        path.write_text(original)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: f"{m[2]}={m[3]!r}")
def test_schema_and_loader_agree(tmp_path: Path, mutation: Mutation) -> None:
    schema_ok, loader_ok = _verdicts(tmp_path, mutation)
    assert schema_ok == loader_ok, f"schema says {schema_ok}, loader says {loader_ok}"


# Rules JSON Schema cannot express (cross-field and cross-document): the schema accepts,
# the loader refuses. Each is documented in the model (kinds.py, references.py).
PYDANTIC_ONLY: list[Mutation] = [
    # Exactly one of two alternative fields (model validators).
    (DEVICE, 0, "spec.credentials.apiKey.file", "/run/secrets/key"),
    (ADVISORY, 0, "spec.ranges.0.lastAffected", "1.4.3"),  # with fixed: one end only
    # Unique signer names and keys.
    (ACCESS, 0, "spec.signers.1.name", "alice"),
    # Cross-references between documents.
    (IMAGES, 0, "spec.signature.minisign.key", "no-such-key"),
    (RULES, 0, "spec.target.version", "1.9.9"),
    # The tz database itself: the schema checks the shape of a zone name, not the list.
    (RULES, 0, "spec.windows.0.timeZone", "Europe/Atlantis"),
]


@pytest.mark.parametrize("mutation", PYDANTIC_ONLY, ids=lambda m: f"{m[2]}={m[3]!r}")
def test_pydantic_only_rules_are_the_listed_exceptions(tmp_path: Path, mutation: Mutation) -> None:
    assert _verdicts(tmp_path, mutation) == (True, False)
