"""Property: reading unverified bytes as documents either yields documents or raises a
:class:`ConfigError`; never a RecursionError, a UnicodeDecodeError or anything else."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ConfigError
from reconciler.model.documents import file_documents

_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=30,
)


def _read(path: str, data: bytes) -> None:
    """Documents, or a ConfigError that names the file; any other exception fails the test."""
    try:
        docs, problems = file_documents(path, data)
    except ConfigError as exc:
        assert str(exc).startswith(path), str(exc)
        return
    assert all(d.file == path for d in docs)
    assert all(str(p).startswith(path) for p in problems)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".yaml", ".json"]))
def test_arbitrary_bytes_are_documents_or_config_errors(data: bytes, suffix: str) -> None:
    _read(f"fleet/x{suffix}", data)


@settings(max_examples=20, deadline=None)
@given(
    digits=st.integers(min_value=1, max_value=20_000),
    prefix=st.sampled_from(["", "-", "0x", "0o", "0b", "1_", "1."]),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_long_scalars_are_documents_or_config_errors(digits: int, prefix: str, suffix: str) -> None:
    _read(f"fleet/n{suffix}", f'{{"a": {prefix}{"1" * digits}}}'.encode())


@settings(max_examples=30, deadline=None)
@given(value=_VALUES, depth=st.integers(min_value=0, max_value=3000), kind=st.booleans())
def test_nesting_at_any_depth_is_bounded(value: object, depth: int, kind: bool) -> None:
    body = "[" * depth + json.dumps(value) + "]" * depth
    head = '"kind": "AccessPolicy", ' if kind else ""
    _read("fleet/deep.json", ("{" + head + '"x": ' + body + "}").encode())
    block = "".join(" " * i + "a:\n" for i in range(min(depth, 400))) + " " * 400 + "b: 1\n"
    _read("fleet/deep.yaml", block.encode())


@settings(max_examples=8, deadline=None)
@given(width=st.integers(min_value=2, max_value=12), levels=st.integers(min_value=1, max_value=9))
def test_alias_expansion_is_bounded(width: int, levels: int) -> None:
    text = "l0: &l0 [" + ", ".join(["x"] * width) + "]\n"
    for n in range(1, levels + 1):
        text += f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]\n"
    _read("fleet/bomb.yaml", text.encode())


@settings(max_examples=100, deadline=None)
@given(
    osv_id=_VALUES,
    affected=_VALUES,
    specific=_VALUES | st.fixed_dictionaries({"severity": st.sampled_from(["HIGH", "low"])}),
)
def test_malformed_osv_records_are_documents_or_config_errors(
    osv_id: object, affected: object, specific: object
) -> None:
    record = {"id": osv_id, "affected": affected, "database_specific": specific}
    _read("advisories/x.json", json.dumps(record).encode())
