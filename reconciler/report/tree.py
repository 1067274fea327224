"""The status branch's generated files, kept in memory between commits.

Rendering, parsing and comparing every file of a 10,000-device branch on each commit costs
seconds, while a transition changes one device file, one rollout file and the README.
:class:`StatusTree` keeps the files as last written (bytes and parsed documents) and the
snapshot entry each one was rendered from. An entry that is the very object rendered last
time (the daemon's StatusBook reuses unchanged entries; they are frozen) is not rendered
again, nor is a device entry that differs from it only in what the file leaves out or
keeps from before (a new observation of an unchanged device). The bytes are those
:func:`~reconciler.report.render.render_files` makes of the snapshot over the same
checkout; only the work differs.

Many documents at once (the first commit of a large fleet, or the first after a restart)
are rendered in a child process: in the writer's thread, seconds of YAML dumping held the
GIL against the event loop, whose every journal write and log line then waited for it
(the daemon's longest loop blocks at 10,000 devices).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from reconciler.model.facts import DeviceFacts
from reconciler.report.readme import ReadmeCache, render_readme
from reconciler.report.render import (
    VOLATILE_FACTS,
    alerts_document,
    compliance_document,
    device_path,
    dump_yaml,
    entry_document,
    load_documents,
    rollout_path,
    source_document,
    stabilize_one,
)
from reconciler.report.snapshot import (
    ComplianceVerdict,
    DeviceStatus,
    RolloutStatus,
    StatusSnapshot,
)
from reconciler.sanitize import redact

__all__ = ["OFFLOAD_AT", "StatusTree", "TreeChange"]

OFFLOAD_AT = 1000
"""Documents to render in one change from which a child process renders them."""
_CHUNK = 250
"""Documents per task sent to the child: each result is unpickled in a few milliseconds."""
_NICE = 10
"""How much lower the child's scheduling priority is than the daemon's."""

# Files every snapshot writes; device and rollout files come and go with their entries.
_FIXED = frozenset({"README.md", "compliance.yaml", "source.yaml", "alerts.yaml"})
_UNSTABLE_FACTS = VOLATILE_FACTS | {"observed_at"}


@dataclass(frozen=True, slots=True)
class TreeChange:
    """What one snapshot changes: new bytes per path (None deletes the file), the parsed
    documents before and after for the commit message, and what each was rendered from."""

    files: dict[str, bytes | None]
    before: dict[str, Any]
    after: dict[str, Any]
    sources: dict[str, object]


def _stable_facts(facts: DeviceFacts) -> dict[str, Any]:
    return {k: v for k, v in vars(facts).items() if k not in _UNSTABLE_FACTS}


def _renders_alike(old: object, new: DeviceStatus | RolloutStatus) -> bool:
    """True when ``new`` is a device entry whose file would be the one ``old`` wrote.

    Every observation makes new entries with a new ``observed_at`` and new live numbers;
    the file keeps the first ``observed_at`` of facts that did not change
    (:func:`~reconciler.report.render.stabilize_one`) and leaves the live numbers out. So
    an entry equal to the last one but for those is not rendered again: after an
    observation of 10,000 unchanged devices a commit compares 10,000 entries instead of
    dumping 10,000 YAML documents.
    """
    if not (isinstance(old, DeviceStatus) and isinstance(new, DeviceStatus)):
        return False
    if old.facts is None or new.facts is None:
        return old == new
    if replace(old, facts=None) != replace(new, facts=None):
        return False
    return _stable_facts(old.facts) == _stable_facts(new.facts)


_Job = tuple[str, DeviceStatus | RolloutStatus | tuple[ComplianceVerdict, ...], Any]
"""A document to render: its path, what it is rendered from, the document written before."""


def _render(jobs: Sequence[_Job], secrets: tuple[str, ...]) -> list[tuple[Any, bytes]]:
    """The document and bytes of each job (in a child process for many of them)."""
    out = []
    for _, source, old in jobs:
        if isinstance(source, tuple):
            doc: Any = compliance_document(source, secrets)
        else:
            doc = stabilize_one(entry_document(source, secrets), old)
        out.append((doc, dump_yaml(doc)))
    return out


def _render_elsewhere(jobs: Sequence[_Job], secrets: tuple[str, ...]) -> list[tuple[Any, bytes]]:
    """:func:`_render` in a child process, in chunks; this thread only waits (GIL free).
    Spawned, not forked: the daemon has threads and an event loop a fork would copy. The
    child runs at a lower priority: on a busy machine its core goes to the event loop first.
    """
    if not jobs:
        return []
    chunks = [jobs[i : i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, context, initializer=os.nice, initargs=(_NICE,))
    with pool:
        parts = pool.map(_render, chunks, [secrets] * len(chunks))
        return [item for part in parts for item in part]


class StatusTree:
    """The generated files of one checkout, as last written."""

    def __init__(self, secrets: Iterable[str] = (), *, offload_at: int = OFFLOAD_AT) -> None:
        self._secrets = tuple(secrets)
        self._offload_at = offload_at
        """Render in a child process from this many documents in one change."""
        self.files: dict[str, bytes] = {}
        self.docs: dict[str, Any] = {}
        self._sources: dict[str, object] = {}
        self._readme: ReadmeCache = {}

    def load(self, files: Mapping[str, bytes]) -> None:
        """Start again from the files of a checkout (after a clone, a reset, a failure)."""
        self.files = dict(files)
        self.docs = load_documents(self.files)
        self._sources = {}
        self._readme = {}

    def change(self, snapshot: StatusSnapshot) -> TreeChange:
        """The files ``snapshot`` changes; nothing is applied until :meth:`apply`."""
        known = self._secrets
        jobs: list[_Job] = []
        paths: set[str] = set(_FIXED)
        entries: list[tuple[str, DeviceStatus | RolloutStatus]]
        entries = [(device_path(d.name), d) for d in snapshot.devices]
        entries += [(rollout_path(r.policy), r) for r in snapshot.rollouts]
        kept: dict[str, object] = {}
        for path, entry in entries:
            paths.add(path)
            old = self._sources.get(path)
            if old is entry:
                continue
            if path in self.files and _renders_alike(old, entry):
                kept[path] = entry  # same file: only observed_at or live numbers moved
                continue
            jobs.append((path, entry, self.docs.get(path)))
        if self._sources.get("compliance.yaml") is not snapshot.compliance:
            jobs.append(("compliance.yaml", snapshot.compliance, None))
        # Rollout entries (a few, holding mapping proxies that do not pickle) stay here.
        offload = len(jobs) >= self._offload_at
        far = [j for j in jobs if offload and not isinstance(j[1], RolloutStatus)]
        near = [j for j in jobs if not (offload and not isinstance(j[1], RolloutStatus))]
        done = [
            *zip(near, _render(near, known), strict=True),
            *zip(far, _render_elsewhere(far, known), strict=True),
        ]
        rendered: dict[str, tuple[object, Any, bytes]] = {
            path: (source, doc, data) for (path, source, _), (doc, data) in done
        }
        doc = source_document(snapshot, known)
        rendered["source.yaml"] = (None, doc, dump_yaml(doc))
        if self._sources.get("alerts.yaml") is not snapshot.alerts:
            doc = alerts_document(snapshot.alerts, known)
            rendered["alerts.yaml"] = (snapshot.alerts, doc, dump_yaml(doc))

        files: dict[str, bytes | None] = {}
        sources: dict[str, object] = kept
        for path, (source, _, data) in rendered.items():
            if self.files.get(path) != data:
                files[path] = data
            if source is not None:
                sources[path] = source
        files |= {p: None for p in self.files if p not in paths}
        # The documents as rendered, not parsed back: YAML's Python constructor would cost
        # as much as the rendering (render_files builds the README from them too).
        after = {p: doc for p, (_, doc, _) in rendered.items() if files.get(p) is not None}
        docs = {p: d for p, d in {**self.docs, **after}.items() if files.get(p, b"") is not None}
        text = render_readme(snapshot.desired_revision, docs, self._readme)
        readme = redact(text, known).encode("utf-8")
        if self.files.get("README.md") != readme:
            files["README.md"] = readme
        before = {p: self.docs[p] for p in files if p in self.docs}
        return TreeChange(files, before, after, sources)

    def apply(self, change: TreeChange) -> None:
        """Record that ``change`` is now in the work tree."""
        for path, data in change.files.items():
            if data is None:
                self.files.pop(path, None)
                self.docs.pop(path, None)
                self._sources.pop(path, None)
            else:
                self.files[path] = data
        self.docs |= change.after
        self._sources |= change.sources
