"""The one exception tree of gitfirm.

Every error names the next action a caller should take (``Action``), so one summarizer can
turn any failure into a log line, a status entry or a notification::

    GitfirmError                      root; .action, .reason
    ├── ConfigError                   desired state is invalid (halt: a human must fix Git)
    │   └── ConfigErrors              several ConfigErrors from one load
    ├── SourceError                   fetching or reading the config repository (retry)
    │   └── CommitRefused             signature or path rule refused a revision (halt)
    ├── DeviceError                   talking to one router
    │   ├── Unreachable               connect failed or timed out (transient)
    │   ├── AuthError                 401: the API key was refused (halt)
    │   ├── CommandError              400: the device ran the command and it failed (halt)
    │   ├── Unsupported               the release lacks the endpoint (halt)
    │   ├── UpstreamTimeout           504 from nginx; work may go on on the device (retry)
    │   └── DeviceServerError         other 5xx (transient)
    ├── ImageRefused                  an image failed verification; .reason is a stable code
    ├── ImageError                    fetch or store failed for a reason other than trust
    ├── RolloutError                  the engine could not carry on (halt)
    ├── ForgeError                    a GitHub, GitLab or Gitea API call failed (retry)
    │   └── ForgeAuthError            401/403: the token was refused or lacks a scope (halt)
    ├── ReportError                   writing status to Git failed (retry)
    │   └── PushRejected              the status push lost every race (retry)
    └── ProposalError                 a proposal branch or pull request failed (retry)

Messages pass through :func:`reconciler.sanitize.redact` before they leave the process.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Action",
    "AuthError",
    "CommandError",
    "CommitRefused",
    "ConfigError",
    "ConfigErrors",
    "DeviceError",
    "DeviceServerError",
    "ErrorSummary",
    "ForgeAuthError",
    "ForgeError",
    "GitfirmError",
    "ImageError",
    "ImageRefused",
    "Location",
    "ProposalError",
    "PushRejected",
    "ReportError",
    "RolloutError",
    "SourceError",
    "Unreachable",
    "Unsupported",
    "UpstreamTimeout",
    "error_from_response",
    "summarize",
]


class Action(enum.StrEnum):
    """What the caller should do next."""

    HALT = "halt"  # stop and wait for a human (usually a commit in Git)
    RETRY = "retry"  # try again after a delay
    TRANSIENT = "transient"  # likely to pass by itself; retry soon


class GitfirmError(Exception):
    """Root of every error gitfirm raises on purpose."""

    action: Action = Action.HALT
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the config repository something was found (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class ConfigError(GitfirmError):
    """One problem in desired state, with its location and field path."""

    reason = "invalid-config"

    def __init__(self, message: str, *, location: Location | None = None, field: str = "") -> None:
        self.location = location
        self.field = field
        prefix = f"{location}: " if location else ""
        path = f"{field}: " if field else ""
        super().__init__(f"{prefix}{path}{message}")
        self.detail = message

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        loc = self.location
        return {
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "field": self.field,
            "message": self.detail,
        }


class ConfigErrors(ConfigError):
    """All the errors of one load, so a user fixes them in one go."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        GitfirmError.__init__(self, "\n".join(str(e) for e in errors))
        self.location = None
        self.field = ""
        self.detail = self.message


class SourceError(GitfirmError):
    """The config repository could not be fetched or read."""

    action = Action.RETRY
    reason = "source-unavailable"


class CommitRefused(SourceError):
    """A revision failed commit verification; the last good revision stays in force."""

    action = Action.HALT
    reason = "commit-refused"

    def __init__(self, message: str, *, commit: str, reason: str = "commit-refused") -> None:
        super().__init__(message, reason=reason)
        self.commit = commit


class DeviceError(GitfirmError):
    """A call to one device failed."""

    reason = "device-error"

    def __init__(self, message: str, *, device: str = "", status: int | None = None) -> None:
        super().__init__(f"{device}: {message}" if device else message)
        self.device = device
        self.status = status
        self.detail = message


class Unreachable(DeviceError):
    """The device did not answer (connect error, TLS failure or timeout)."""

    action = Action.TRANSIENT
    reason = "unreachable"


class AuthError(DeviceError):
    """HTTP 401: the device refused the API key."""

    reason = "auth"


class CommandError(DeviceError):
    """HTTP 400: the device ran the request and it failed; ``detail`` is the device's text."""

    reason = "command-failed"


class Unsupported(DeviceError):
    """The device's release does not offer this operation over the API."""

    reason = "unsupported"


class UpstreamTimeout(DeviceError):
    """HTTP 504 from nginx: the call ran past 600 s, and the work may still go on."""

    action = Action.RETRY
    reason = "upstream-timeout"


class DeviceServerError(DeviceError):
    """Another 5xx answer (500 internal error, 503 API not configured)."""

    action = Action.TRANSIENT
    reason = "server-error"


class ImageRefused(GitfirmError):
    """An image failed verification. ``reason`` is a stable code such as ``sha256-mismatch``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}", reason=reason)
        self.detail = message


class ImageError(GitfirmError):
    """Fetching or storing an image failed for a reason other than trust."""

    action = Action.RETRY
    reason = "image-error"


class RolloutError(GitfirmError):
    """The rollout engine cannot go on without a human."""

    reason = "rollout-error"


class ForgeError(GitfirmError):
    """A forge API call failed; ``status`` is the HTTP status (None: no answer)."""

    action = Action.RETRY
    reason = "forge-error"

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message, reason=reason)
        self.status = status


class ForgeAuthError(ForgeError):
    """The forge refused the token (401), or the token may not do this (403)."""

    action = Action.HALT
    reason = "forge-auth"


class ReportError(GitfirmError):
    """Writing the status branch or notes failed (git failed, remote unreachable)."""

    action = Action.RETRY
    reason = "report-failed"


class PushRejected(ReportError):
    """The status branch moved under us; regenerate and push again."""

    action = Action.RETRY
    reason = "push-rejected"


class ProposalError(GitfirmError):
    """A proposal could not be committed, pushed or opened as a pull request."""

    action = Action.RETRY
    reason = "proposal-failed"


_ESCAPES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'", "&amp;": "&"}


def _unescape(text: str) -> str:
    # Rolling releases HTML-escape error text; undo only the entities they emit.
    for entity, char in _ESCAPES.items():
        text = text.replace(entity, char)
    return text


def error_from_response(status: int, body: str, *, device: str = "") -> DeviceError | None:
    """Map a VyOS API answer to an error, or ``None`` when it is a success.

    The envelope is ``{"success", "data", "error"}`` served as text/html, so the body is
    parsed whatever the content type. ``None`` means status 200 with ``success: true``.
    """
    envelope: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            envelope = parsed
    except ValueError:
        envelope = {}
    text = envelope.get("error")
    detail = _unescape(str(text)) if text else body.strip()[:500] or f"HTTP {status}"
    if status == 200:
        if envelope.get("success", False) is True:
            return None
        return CommandError(detail, device=device, status=status)
    if status == 401:
        return AuthError(detail, device=device, status=status)
    if status in (400, 422):
        return CommandError(detail, device=device, status=status)
    if status == 504:
        return UpstreamTimeout(detail, device=device, status=status)
    if status >= 500:
        return DeviceServerError(detail, device=device, status=status)
    return CommandError(detail, device=device, status=status)


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """What logs, status files and notifications say about one error."""

    reason: str
    action: Action
    message: str


def summarize(error: BaseException, secrets: tuple[str, ...] = ()) -> ErrorSummary:
    """Turn any exception into a sanitized summary; unknown exceptions are transient."""
    from reconciler.sanitize import redact

    if isinstance(error, GitfirmError):
        return ErrorSummary(error.reason, error.action, redact(str(error), secrets))
    text = f"{type(error).__name__}: {error}"
    return ErrorSummary("internal", Action.TRANSIENT, redact(text, secrets))
