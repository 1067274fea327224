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


# The JSON Schema twins of the validators below: the schema refuses what they refuse
# (tests/unit/test_schema_agreement.py holds both to the same verdicts).
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(?=\d)(\d+h)?(\d+m(?!s))?(\d+s)?(\d+ms)?\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "e.g. 90s, 10m, 4h, 1h30m, 250ms, or a number of seconds",
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]


def _either_case(word: str) -> str:
    # JSON Schema patterns have no case-insensitive flag.
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


def _cron_field(values: str) -> str:
    element = rf"(?:\*|(?:{values})(?:-(?:{values}))?)(?:/[1-9]\d*)?"
    return rf"{element}(?:,{element})*"


_MONTHS = "|".join(
    _either_case(m)
    for m in ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
)
_DAYS = "|".join(_either_case(d) for d in ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
_CRON_PATTERN = (
    r"^\s*"
    + r"\s+".join(
        _cron_field(v)
        for v in (
            r"[0-5]?\d",
            r"[01]?\d|2[0-3]",
            r"0?[1-9]|[12]\d|3[01]",
            rf"0?[1-9]|1[0-2]|{_MONTHS}",
            rf"0?[0-7]|{_DAYS}",
        )
    )
    + r"\s*$"
)
_CRON = re.compile(_CRON_PATTERN)


def _check_cron(value: str) -> str:
    if not _CRON.match(value) or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a 5-field cron schedule (e.g. '0 2 * * sat')")
    return value


Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    WithJsonSchema({"type": "string", "pattern": _CRON_PATTERN, "description": "5-field cron"}),
]


# IANA names: an area and a location (Europe/Berlin, America/Argentina/Buenos_Aires,
# Etc/GMT+5, legacy US/Eastern), or one word (UTC, Japan, EST5EDT). The schema carries the
# shape, not the list: a list would tie the checked-in schema to the tzdata of the machine
# that exported it. The validator also asks the tz database (Europe/Atlantis is refused).
_ZONE_AREAS = (
    "Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc"
    "|US|Canada|Brazil|Chile|Mexico"
)
_ZONE_PATTERN = rf"^(?:(?:{_ZONE_AREAS})(?:/[A-Za-z0-9_+-]+){{1,2}}|[A-Z][A-Za-z0-9_+-]*)$"
_ZONE = re.compile(_ZONE_PATTERN)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
        known = bool(_ZONE.match(value))
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_check_zone),
    WithJsonSchema({"type": "string", "pattern": _ZONE_PATTERN, "description": "IANA time zone"}),
]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Sha256 = Annotated[
    str,
    BeforeValidator(_lower),
    Field(pattern=r"^[0-9a-f]{64}$"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9a-fA-F]{64}$", "description": "hex SHA-256"}
    ),
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


_VERSION = (
    r"\d+\.\d+\.\d+(?:-(?:rc|epa)\d+)?|\d+\.\d+-rolling-\d{12}"
    r"|\d{4}\.\d{2}\.\d{2}-\d{4}-(?:rolling|integration)"
)
_VERSION_PATTERN = rf"^\s*(?:{_VERSION})\s*$"
_CLAUSE = rf"(?:>=|<=|==|!=|>|<|=)?\s*(?:{_VERSION}|\d+\.\d+\.\*|rolling|integration)"
_ALTERNATIVE = rf"[\s,]*{_CLAUSE}(?:\s*,[\s,]*{_CLAUSE})*[\s,]*"
_CONSTRAINT_PATTERN = rf"^{_ALTERNATIVE}(?:\|\|{_ALTERNATIVE})*$"

VersionText = Annotated[
    str,
    AfterValidator(_parses(parse_version)),
    WithJsonSchema({"type": "string", "pattern": _VERSION_PATTERN, "description": "VyOS version"}),
]
VersionConstraint = Annotated[
    str,
    AfterValidator(_parses(parse_constraint)),
    WithJsonSchema(
        {"type": "string", "pattern": _CONSTRAINT_PATTERN, "description": "e.g. >=1.3.8, <1.4"}
    ),
]

HttpUrl = Annotated[
    AnyUrl,
    UrlConstraints(allowed_schemes=["http", "https"]),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "uri",
            "pattern": "^" + _either_case("http") + "[sS]?://[^\\s/?#]+",
        }
    ),
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
