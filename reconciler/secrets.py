"""Resolving secret references (``{env: NAME}`` or ``{file: PATH}``) to their values.

The value is read at the last moment and never stored in models, logs or status.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.model.fields import SecretRef

__all__ = ["resolve_secret"]


def resolve_secret(ref: SecretRef, *, environ: Mapping[str, str], base: Path) -> str:
    """Return the secret ``ref`` points at. A relative file path is taken from ``base``.

    Raises :class:`ConfigError` naming the variable or file, never the value.
    """
    if ref.env is not None:
        value = environ.get(ref.env)
        if not value:
            raise ConfigError(f"environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    path = Path(ref.file)
    if not path.is_absolute():
        path = base / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read secret file {path}: {e.strerror}") from None
    if not value:
        raise ConfigError(f"secret file {path} is empty")
    return value
