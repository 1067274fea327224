"""The trigger path filter, AccessPolicy globs and the source stage's public names."""

from __future__ import annotations

import importlib
import inspect

import pytest

from reconciler.source.paths import DEFAULT_PATH_FILTER, PathFilter, glob_match


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("fleet/r1.yaml", True),
        ("trust/root.pem", True),
        ("advisories/CVE-1.json", True),
        ("site/extra.yml", True),
        ("top.json", True),
        ("README.md", False),
        ("docs/guide.yaml", False),
        (".github/workflows/ci.yml", False),
        ("scripts/tool.py", False),
    ],
)
def test_default_filter(path: str, expected: bool) -> None:
    assert DEFAULT_PATH_FILTER.matches(path) is expected


def test_custom_filter_and_relevant_keeps_order() -> None:
    only = PathFilter(prefixes=("cfg/",), suffixes=(".toml",), excludes=("cfg/tmp/",))
    paths = ["z.toml", "cfg/a", "cfg/tmp/b", "a.yaml"]
    assert only.relevant(paths) == ["z.toml", "cfg/a"]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("policies/production/**", "policies/production/a.yaml", True),
        ("policies/production/**", "policies/production/x/b.yaml", True),
        ("policies/production/", "policies/production/x/b.yaml", True),
        ("policies/production", "policies/production/a.yaml", True),
        ("policies/production", "policies/production-eu/a.yaml", False),
        ("policies/*.yaml", "policies/a.yaml", True),
        ("policies/*.yaml", "policies/x/a.yaml", False),
        ("**/*.json", "advisories/a.json", True),
        ("**/*.json", "a.json", True),
        ("trust/?.yaml", "trust/a.yaml", True),
        ("trust/?.yaml", "trust/ab.yaml", False),
        ("/fleet/", "fleet/r1.yaml", True),
        ("fleet/[ab].yaml", "fleet/a.yaml", False),  # brackets are literal, not classes
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


MODULES = ["git", "paths", "policy", "poller", "verify", "watch", "webhooks"]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_declared_and_documented(name: str) -> None:
    module = importlib.import_module(f"reconciler.source.{name}")
    assert module.__doc__
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{public} has no docstring"
