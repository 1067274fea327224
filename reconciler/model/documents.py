"""Which files of a config repository hold documents, and the documents of one file.

The loader and commit verification both read documents through these two functions, so a
commit's signer answers for exactly the documents the daemon will load: YAML files, and
JSON files that are OSV advisories (other JSON, such as a pinned sigstore root, holds no
document). Files and directories whose name starts with a dot are never read.
"""

from __future__ import annotations

from reconciler.errors import ConfigError, Location
from reconciler.model.osv import is_osv, osv_to_advisory
from reconciler.model.yamlsource import MAX_FILE_BYTES, SourceDocument, read_documents

__all__ = ["DOCUMENT_SUFFIXES", "file_documents", "is_document_file"]

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")


def is_document_file(path: str) -> bool:
    """Whether the repository-relative ``path`` is a file the loader reads."""
    parts = path.split("/")
    return not any(p.startswith(".") for p in parts) and parts[-1].endswith(DOCUMENT_SUFFIXES)


def file_documents(path: str, data: bytes) -> tuple[list[SourceDocument], list[ConfigError]]:
    """The documents of the file ``path`` holding ``data``, and OSV conversion errors.

    Raises :class:`ConfigError` for a file that is too large, not UTF-8 or not YAML; the
    bounds of :func:`~reconciler.model.yamlsource.read_documents` apply.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_FILE_BYTES // 1024} KiB; split it into several files",
            location=Location(path),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", location=Location(path)) from None
    docs = read_documents(text, path)
    if not path.endswith(".json"):
        return docs, []
    out: list[SourceDocument] = []
    errors: list[ConfigError] = []
    for doc in docs:
        if not is_osv(doc.data):
            continue  # other JSON, such as a pinned sigstore trusted root
        converted, problems = osv_to_advisory(doc)
        errors.extend(problems)
        if converted is not None:
            out.append(converted)
    return out, errors
