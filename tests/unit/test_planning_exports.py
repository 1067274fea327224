"""The planning package declares its public names and stays pure."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import reconciler.planning as planning

FORBIDDEN = ("source", "devices", "images", "rollout", "report", "simulator", "daemon", "cli")


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(planning.__path__))


def test_package_docstring_says_it_is_pure() -> None:
    assert planning.__doc__ is not None
    assert "never do I/O" in planning.__doc__ and "no clock reads" in planning.__doc__


def test_every_module_declares_existing_public_names() -> None:
    assert {"paths", "planner", "plan", "progress", "render", "waves", "windows"} <= set(_modules())
    for name in _modules():
        module = importlib.import_module(f"reconciler.planning.{name}")
        assert module.__doc__, name
        exported = module.__all__
        assert len(set(exported)) == len(exported), name
        for public in exported:
            assert hasattr(module, public), f"{name}.{public}"


def test_no_module_imports_an_io_stage_or_reads_the_clock() -> None:
    for name in _modules():
        tree = ast.parse(Path(planning.__path__[0], f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                assert not (parts[0] == "reconciler" and parts[1] in FORBIDDEN), node.module
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                raise AssertionError(f"{name} reads the clock: .{node.attr}")
