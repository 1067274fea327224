"""Safe YAML reading with positions.

Documents are composed into nodes (never constructed by PyYAML), so no language-specific
tag can run, duplicate keys are caught, and every value keeps its line and column. The
result is plain data plus a map from field path to position.

The text may come from an unverified commit, so reading is bounded: at most
:data:`MAX_FILE_BYTES` bytes, :data:`MAX_DEPTH` levels of nesting, and :data:`MAX_NODES`
values per file counting every alias expansion (a "billion laughs" file stops there). Each
limit is a :class:`~reconciler.errors.ConfigError`, never a ``RecursionError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.errors import ConfigError, Location

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "Positions",
    "SourceDocument",
    "dotted",
    "read_documents",
]

MAX_FILE_BYTES = 1 << 20
MAX_DOCUMENTS = 10_000
MAX_DEPTH = 64
"""Nesting levels per document; real documents need fewer than ten."""
MAX_NODES = 250_000
"""Values per file, aliases expanded each time they are used (a 1 MiB fleet file of real
devices holds about 50,000); past it, an alias bomb is stopped within a second."""

try:  # The C composer is much faster; fall back where libyaml is missing.
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {"str", "int", "float", "bool", "null", "timestamp"}
_CONSTRUCTOR = yaml.SafeLoader("")

Path_ = tuple[str | int, ...]


@dataclass
class Positions:
    """Line and column (1-based) of each value, and of each mapping key, by field path."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def nearest(self, path: Path_) -> tuple[int, int]:
        """The position of ``path``, or of its closest ancestor that has one."""
        # A field points at its key ("maxParallel:"), as editors and linters do.
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return (1, 1)


@dataclass
class SourceDocument:
    """One document of a file: its data, where it starts, and its positions."""

    file: str
    index: int
    data: Any
    positions: Positions

    def location(self, path: Path_ = ()) -> Location:
        """The file:line:column of a field path inside this document."""
        line, column = self.positions.nearest(path)
        return Location(self.file, line, column)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


@dataclass
class _Budget:
    """What is left of :data:`MAX_NODES` for one file."""

    nodes: int = MAX_NODES


def _convert(node: yaml.Node, path: Path_, pos: Positions, file: str, budget: _Budget) -> Any:
    budget.nodes -= 1
    if budget.nodes < 0 or len(path) > MAX_DEPTH:
        line, col = _mark(node)
        what = (
            f"{MAX_NODES} values (aliases count each time they are used)"
            if budget.nodes < 0
            else f"{MAX_DEPTH} levels of nesting"
        )
        raise ConfigError(
            f"document exceeds {what}",
            location=Location(file, line, col),
        )
    pos.values[path] = _mark(node)
    tag = node.tag or ""
    if not tag.startswith(_CORE):
        line, col = _mark(node)
        raise ConfigError(
            f"tag {tag!r} is not allowed: only plain YAML is accepted",
            location=Location(file, line, col),
            field=dotted(path),
        )
    short = tag[len(_CORE) :]
    if isinstance(node, yaml.MappingNode):
        if short != "map":
            raise _tag_error(node, path, file)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _CORE + "str":
                line, col = _mark(key_node)
                raise ConfigError(
                    "mapping keys must be plain strings",
                    location=Location(file, line, col),
                    field=dotted(path),
                )
            key = str(key_node.value)
            if key in result:
                line, col = _mark(key_node)
                first = pos.keys[(*path, key)]
                raise ConfigError(
                    f"duplicate key {key!r} (first defined at line {first[0]})",
                    location=Location(file, line, col),
                    field=dotted((*path, key)),
                )
            pos.keys[(*path, key)] = _mark(key_node)
            result[key] = _convert(value_node, (*path, key), pos, file, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        if short != "seq":
            raise _tag_error(node, path, file)
        return [_convert(item, (*path, i), pos, file, budget) for i, item in enumerate(node.value)]
    if short not in _SCALAR_TAGS:
        raise _tag_error(node, path, file)
    if short in ("str", "timestamp"):
        # Dates stay text: YAML 1.1's implicit timestamps surprise more than they help.
        return node.value
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except ValueError:  # e.g. an integer longer than Python converts (4,300 digits)
        line, col = _mark(node)
        raise ConfigError(
            f"{short} value cannot be read", location=Location(file, line, col), field=dotted(path)
        ) from None


def _tag_error(node: yaml.Node, path: Path_, file: str) -> ConfigError:
    line, col = _mark(node)
    return ConfigError(
        f"tag {node.tag!r} is not allowed here",
        location=Location(file, line, col),
        field=dotted(path),
    )


def dotted(path: Path_) -> str:
    """A document path as a field name: ``spec.windows[0].duration``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read_documents(text: str, file: str) -> list[SourceDocument]:
    """Parse every document of a YAML (or JSON) text, or raise :class:`ConfigError`.

    ``file`` is the name used in error locations (relative to the repository root).
    """
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB; split it into several files",
            location=Location(file),
        )
    docs: list[SourceDocument] = []
    budget = _Budget()
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=_Loader)):
            if index >= MAX_DOCUMENTS:
                raise ConfigError(
                    f"file holds more than {MAX_DOCUMENTS} documents; split it",
                    location=Location(file, *_mark(node)),
                )
            if node is None:
                continue
            pos = Positions()
            data = _convert(node, (), pos, file, budget)
            docs.append(SourceDocument(file, index, data, pos))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = e.problem or e.context or "invalid YAML"
        raise ConfigError(
            f"YAML syntax error: {problem}", location=Location(file, line, col)
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"YAML error: {e}", location=Location(file)) from None
    except RecursionError:  # the composer nests per level; MAX_DEPTH normally stops first
        raise ConfigError("document nests too deeply", location=Location(file)) from None
    return docs
