"""Reusable field types: durations, cron schedules, time zones, digests, secret references,
label selectors. Each validates at the boundary and is plain data afterwards."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    UrlConstraints,
    WithJsonSchema,
    model_validator,
)

from reconciler.model.versions import VersionError, parse_constraint, parse_version

__all__ = [
    "Cron",
    "Duration",
    "HttpUrl",
    "LabelSelector",
    "Name",
    "SecretRef",
    "SelectorRequirement",
    "Sha256",
    "Strict",
    "TimeZone",
    "VersionConstraint",
    "VersionText",
    "format_duration",
    "parse_duration",
]


class Strict(BaseModel):
    """Base for every model: unknown fields are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def _require_one_of(self, first: str, second: str) -> None:
        # The rule for a field with two alternative forms, and its message, in one place.
        if (getattr(self, first) is None) == (getattr(self, second) is None):
            raise ValueError(f"give exactly one of {first!r} or {second!r}")


_NAME = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"
Name = Annotated[
    str,
    Field(pattern=_NAME, description="A DNS-style name: lower case, digits, '-' and '.'"),
]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(value: Any) -> timedelta:
    """Parse ``90s``, ``10m``, ``4h``, ``1h30m`` or ``250ms`` (also a bare number of seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string such as 90s, 10m or 4h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as 90s, 10m or 4h")
    m = _DURATION.match(value.strip())
    if not value.strip() or not m or not any(m.groups()):
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 10m, 4h, 1h30m)")
    h, mi, s, ms = (int(g or 0) for g in m.groups())
    return timedelta(hours=h, minutes=mi, seconds=s, milliseconds=ms)


def format_duration(value: timedelta) -> str:
    """The shortest ``1h30m``-style text for a duration."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    h, rest = divmod(total_ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    parts.append(f"{ms}ms" if ms else "")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"}),
]


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value) or len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a 5-field cron schedule (e.g. '0 2 * * sat')")
    return value


Cron = Annotated[str, AfterValidator(_check_cron)]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_check_zone)]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Sha256 = Annotated[
    str, BeforeValidator(_lower), Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256")
]


def _parses(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A validator that keeps text ``parse`` accepts and reports its :class:`VersionError`."""

    def check(value: str) -> str:
        try:
            parse(value)
        except VersionError as e:
            raise ValueError(str(e)) from None
        return value

    return check


VersionText = Annotated[str, AfterValidator(_parses(parse_version))]
VersionConstraint = Annotated[str, AfterValidator(_parses(parse_constraint))]

HttpUrl = Annotated[
    AnyUrl,
    UrlConstraints(allowed_schemes=["http", "https"]),
    PlainSerializer(str, return_type=str),
]


class SecretRef(Strict):
    """Where a secret lives: an environment variable or a file. Never the secret itself."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(
                "a literal secret is not allowed in Git; reference it instead, "
                "e.g. {env: VYOS_API_KEY} or {file: /run/secrets/vyos-key}"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        self._require_one_of("env", "file")
        return self


class SelectorRequirement(Strict):
    """One ``matchExpressions`` entry, as in Kubernetes."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit(self) -> SelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels satisfy this requirement."""
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = labels.get(self.key) in self.values
        return inside if self.operator == "In" else (self.key not in labels or not inside)


class LabelSelector(Strict):
    """A Kubernetes-style label selector. An empty selector matches every device.

    Besides its own labels, a device carries ``gitfirm.io/site``, ``gitfirm.io/arch`` and
    ``gitfirm.io/name``, so a policy can select by site without repeating it as a label.
    """

    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: list[SelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels satisfy every part of the selector."""
        if any(labels.get(k) != v for k, v in self.matchLabels.items()):
            return False
        return all(req.matches(labels) for req in self.matchExpressions)
