"""Every stage and shared module declares its public names in ``__all__`` (STYLE #11).

For each module: a docstring, and an ``__all__`` without repeats that names only things the
module defines (a package ``__init__`` may also re-export from its own sub-modules) and lists
every public class and function the module defines, or any other value that names the module
as its own. Each stage package opens with a docstring saying what it owns and what it must
never do (STYLE #1).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

STAGES = (
    "model", "source", "devices", "images", "planning", "rollout", "report", "simulator",
    "proposals", "forge",
)  # fmt: skip
TOP_LEVEL = (
    "errors", "sanitize", "clock", "secrets", "logs", "statusbook", "runtime", "supervise",
)  # fmt: skip


def _module_names() -> list[str]:
    names = [f"reconciler.{name}" for name in TOP_LEVEL]
    for stage in STAGES:
        package = importlib.import_module(f"reconciler.{stage}")
        names.append(package.__name__)
        names.extend(
            f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
        )
    return names


def _bound_names(body: list[ast.stmt], package: str | None) -> set[str]:
    """Names a module binds at top level; with ``package``, also its re-exports."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.If):
            names |= _bound_names(node.body + node.orelse, package)
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            names |= _bound_names(node.body + node.orelse + node.finalbody + handlers, package)
        elif (
            package is not None
            and isinstance(node, ast.ImportFrom)
            and node.module is not None
            and node.module.startswith(f"{package}.")
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _defined_names(module: ModuleType) -> set[str]:
    assert module.__file__ is not None
    path = Path(module.__file__)
    package = module.__name__ if path.name == "__init__.py" else None
    return _bound_names(ast.parse(path.read_text(encoding="utf-8")).body, package)


MODULES = _module_names()


def test_every_stage_and_shared_module_is_covered() -> None:
    assert len(MODULES) > len(STAGES) + len(TOP_LEVEL)
    assert {"reconciler.planning.planner", "reconciler.rollout.engine"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_only_names_the_module_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    defined = _defined_names(module)
    for public in exported:
        assert hasattr(module, public), f"{name}.__all__ names missing {public!r}"
        assert public in defined, f"{name}.__all__ names {public!r}, defined elsewhere"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_made_here_is_listed(name: str) -> None:
    # Classes and functions, and anything else that records this module as its maker.
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"
    exported = set(getattr(module, "__all__", ()))
    unlisted = sorted(
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and getattr(value, "__module__", None) == name
        and attr not in exported
    )
    assert unlisted == [], f"{name} does not list {unlisted} in __all__"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_package_says_what_it_owns_and_must_never_do(stage: str) -> None:
    package = importlib.import_module(f"reconciler.{stage}")
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text(encoding="utf-8"))
    assert ast.get_docstring(tree) is not None, f"{stage}/__init__.py opens without a docstring"
    doc = " ".join(str(package.__doc__).split())
    assert re.search(r"\bowns\b", doc, re.IGNORECASE), f"{stage} does not say what it owns"
    assert "must never" in doc, f"{stage} does not say what it must never do"
