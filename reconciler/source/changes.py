"""The documents a commit adds, changes or removes, by identity (kind and name).

Authority follows the document, not the file, so a commit is judged by what it does to
documents: a document moved to another file, or split across files, is the same document,
and one whose content changes is changed wherever it lives. Only the files the commit
touches are read, on both sides, through the loader's own reader
(:func:`~reconciler.model.documents.file_documents`), so the verifier and the daemon see the
same documents. The content is unverified, so reading is bounded: a blob larger than the
loader accepts, a symbolic link, or a file that does not parse holds no document here (the
loader refuses such a revision anyway); its documents then count as removed, or added on
the other side, which asks for more authority, never less. A TrustPolicy's pinned sigstore
root (``spec.sigstore.trustedRoot``) is part of it: a commit touching that file changes the
TrustPolicy.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.errors import ConfigError
from reconciler.model.documents import DOCUMENT_SUFFIXES, file_documents, is_document_file
from reconciler.model.yamlsource import MAX_FILE_BYTES, SourceDocument
from reconciler.source.git import Repository

__all__ = ["DocumentChange", "DocumentReader", "identity"]

Identity = tuple[str, str]


def identity(data: Any) -> Identity | None:
    """A document's (kind, name), or ``None`` for data no loader would accept as one."""
    if not isinstance(data, dict):
        return None
    kind = data.get("kind")
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(kind, str) or not isinstance(name, str):
        return None
    return kind, name


@dataclass(frozen=True)
class DocumentChange:
    """What a commit did to the document ``kind``/``name``: its versions before and after.

    ``before`` and ``after`` hold the raw data of every copy in the files the commit
    touched (usually one, none when absent); ``where`` is ``file:line`` of the first copy
    after the commit, or before it for a removal.
    """

    kind: str
    name: str
    before: tuple[dict[str, Any], ...]
    after: tuple[dict[str, Any], ...]
    where: str

    @property
    def action(self) -> Literal["add", "change", "remove"]:
        """``add``, ``change`` or ``remove``."""
        if not self.before:
            return "add"
        return "remove" if not self.after else "change"


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


class DocumentReader:
    """Reads and diffs the documents of one repository's revisions, caching by blob."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._blobs: dict[str, list[SourceDocument]] = {}
        self._roots: dict[str, list[SourceDocument]] = {}

    def documents(self, rev: str | None, paths: Iterable[str]) -> list[SourceDocument]:
        """The documents in the files ``paths`` of revision ``rev`` (none for no revision)."""
        wanted = sorted({p for p in paths if is_document_file(p)})
        if rev is None or not wanted:
            return []
        out: list[SourceDocument] = []
        for entry in self.repo.entries(rev, wanted):
            if not entry.regular or entry.size > MAX_FILE_BYTES:
                continue
            if entry.sha not in self._blobs:
                try:
                    docs, _ = file_documents(entry.path, self.repo.read_blob(entry.sha))
                except ConfigError:
                    docs = []
                self._blobs[entry.sha] = docs
            # A cached blob may sit at another path now: name the file it is at in ``rev``.
            out.extend(
                d
                if d.file == entry.path
                else SourceDocument(entry.path, d.index, d.data, d.positions)
                for d in self._blobs[entry.sha]
            )
        return out

    def changes(self, base: str | None, rev: str, files: Iterable[str]) -> list[DocumentChange]:
        """The documents that differ between ``base`` and ``rev`` within ``files``."""
        files = list(files)
        sides: dict[Identity, tuple[list[SourceDocument], list[SourceDocument]]] = defaultdict(
            lambda: ([], [])
        )
        for side, at in ((0, base), (1, rev)):
            for doc in self.documents(at, files):
                ident = identity(doc.data)
                if ident is not None:
                    sides[ident][side].append(doc)
        out: list[DocumentChange] = []
        touched_roots = self._touched_roots(base, rev, files)
        for (kind, name), (before, after) in sorted(sides.items()):
            if (kind, name) in touched_roots:
                continue  # reported below, with the rest of its trust root
            if sorted(map(_canonical, (d.data for d in before))) == sorted(
                map(_canonical, (d.data for d in after))
            ):
                continue
            first = (after or before)[0]
            out.append(
                DocumentChange(
                    kind,
                    name,
                    tuple(d.data for d in before),
                    tuple(d.data for d in after),
                    str(first.location()),
                )
            )
        for (kind, name), (before, after) in sorted(touched_roots.items()):
            old, new = sides.get((kind, name), ([], []))
            first = (new or old or after or before)[0]
            out.append(
                DocumentChange(
                    kind,
                    name,
                    tuple(d.data for d in old or before),
                    tuple(d.data for d in new or after),
                    str(first.location()),
                )
            )
        return out

    def _touched_roots(
        self, base: str | None, rev: str, files: list[str]
    ) -> dict[Identity, tuple[list[SourceDocument], list[SourceDocument]]]:
        """TrustPolicies whose ``sigstore.trustedRoot`` file (before or after) is in ``files``:
        replacing a pinned root changes the trust as surely as editing the policy."""
        changed = {posixpath.normpath(f) for f in files}
        found: dict[Identity, tuple[list[SourceDocument], list[SourceDocument]]] = {}
        if not changed:
            return found  # an empty commit touches no root: spare the two greps
        for side, at in ((0, base), (1, rev)):
            for doc in self._trust_policies(at):
                sigstore = doc.data.get("spec", {}).get("sigstore")
                root = sigstore.get("trustedRoot") if isinstance(sigstore, dict) else None
                ident = identity(doc.data)
                if isinstance(root, str) and ident and posixpath.normpath(root) in changed:
                    found.setdefault(ident, ([], []))[side].append(doc)
        return found

    def _trust_policies(self, rev: str | None) -> list[SourceDocument]:
        if rev is None:
            return []
        if rev not in self._roots:
            # A backslash may spell the key with an escape, as for the AccessPolicy.
            globs = [f"*{suffix}" for suffix in DOCUMENT_SUFFIXES]
            paths = self.repo.grep_files(rev, r"trustedRoot|\\", globs)
            self._roots[rev] = [
                d
                for d in self.documents(rev, paths)
                if isinstance(d.data, dict)
                and d.data.get("kind") == "TrustPolicy"
                and isinstance(d.data.get("spec"), dict)
            ]
        return self._roots[rev]
