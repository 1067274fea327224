"""VyOS version strings: parsing, trains, ordering and ``upgradeFrom`` constraints.

Formats (VYOS-API.md):

- LTS: ``1.3.8``, ``1.4.0``, ``1.4.0-rc3``, ``1.4.0-epa1``; train ``1.3``, ``1.4`` ...
- Older rolling: ``1.5-rolling-YYYYMMDDHHMM`` (UTC); train ``rolling``.
- Rolling from 2025: ``YYYY.MM.DD-HHMM-rolling``; train ``rolling``; and
  ``YYYY.MM.DD-HHMM-integration``; train ``integration``.

Versions order only within a train. Rolling builds order by timestamp, and every date-named
build is newer than every ``1.5-rolling-*`` one. LTS and rolling are never ordered against
each other: changing train is an explicit choice in an Image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "Constraint",
    "Version",
    "VersionError",
    "newness",
    "parse_constraint",
    "parse_version",
]

_LTS = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(rc|epa)(\d+))?$")
_OLD_ROLLING = re.compile(r"^(\d+)\.(\d+)-rolling-(\d{12})$")
_DATED = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})-(\d{4})-(rolling|integration)$")
# Pre-release order: release candidates, then early production access, then the release.
_PRE_RANK = {"rc": 0, "epa": 1, None: 2}


class VersionError(ValueError):
    """A string is not a VyOS version or constraint."""


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed VyOS version. Compare only versions of one ``train``."""

    text: str
    train: str
    key: tuple[int, ...] = field(compare=False)

    @property
    def family(self) -> str:
        """The API family: ``1.3``, ``1.4`` or ``1.5`` (1.5 and every rolling build)."""
        if self.train in ("rolling", "integration"):
            return "1.5"
        return self.train

    @property
    def is_lts(self) -> bool:
        """True for numbered LTS releases, including their rc and epa builds."""
        return self.train not in ("rolling", "integration")

    def comparable(self, other: Version) -> bool:
        """Whether the two versions are on one train and so can be ordered."""
        return self.train == other.train

    def _check(self, other: Version) -> None:
        if not self.comparable(other):
            raise VersionError(
                f"cannot order {self.text!r} (train {self.train}) against "
                f"{other.text!r} (train {other.train})"
            )

    def __lt__(self, other: Version) -> bool:
        self._check(other)
        return self.key < other.key

    def __le__(self, other: Version) -> bool:
        self._check(other)
        return self.key <= other.key

    def __gt__(self, other: Version) -> bool:
        self._check(other)
        return self.key > other.key

    def __ge__(self, other: Version) -> bool:
        self._check(other)
        return self.key >= other.key

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    """Parse a VyOS version string, or raise :class:`VersionError`."""
    text = text.strip()
    if m := _LTS.match(text):
        major, minor, patch, pre, pre_n = m.groups()
        key = (int(major), int(minor), int(patch), _PRE_RANK[pre], int(pre_n or 0))
        return Version(text, f"{int(major)}.{int(minor)}", key)
    if m := _OLD_ROLLING.match(text):
        stamp = m.group(3)
        # Generation 0: older than every date-named build.
        return Version(text, "rolling", (0, int(stamp)))
    if m := _DATED.match(text):
        year, month, day, hhmm, kind = m.groups()
        return Version(text, kind, (1, int(f"{year}{month}{day}{hhmm}")))
    raise VersionError(
        f"{text!r} is not a VyOS version (expected e.g. 1.4.3, 1.4.0-rc3, "
        "1.5-rolling-202410230007 or 2025.01.10-0020-rolling)"
    )


# Trains after every numbered LTS, in generation order.
_LATE_TRAINS = {"rolling": 0, "integration": 1}


def newness(version: Version) -> tuple[int, ...]:
    """A sort key that orders versions across trains by generation, then within a train:
    numbered LTS trains by number, then ``rolling``, then ``integration``.

    It is the order of the OSV ``VyOS`` ecosystem, and the way to choose among images that
    are already allowed (the newest reachable image of a channel); it never allows
    crossing a train by itself."""
    if version.train in _LATE_TRAINS:
        train: tuple[int, ...] = (1, _LATE_TRAINS[version.train], 0)
    else:
        major, minor = version.train.split(".")
        train = (0, int(major), int(minor))
    return (*train, *version.key)


_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*(\S+)$")


@dataclass(frozen=True, slots=True)
class _Clause:
    op: str
    version: Version | None  # None with a train wildcard
    train: str

    def matches(self, v: Version) -> bool:
        if v.train != self.train:
            return False
        if self.version is None:
            return True
        ops = {
            ">=": v >= self.version,
            "<=": v <= self.version,
            ">": v > self.version,
            "<": v < self.version,
            "==": v.key == self.version.key,
            "!=": v.key != self.version.key,
        }
        return ops[self.op]


@dataclass(frozen=True, slots=True)
class Constraint:
    """An ``upgradeFrom`` constraint: alternatives separated by ``||``, each a comma-joined
    set of clauses that must all hold, e.g. ``>=1.3.8, <1.4 || rolling``.

    A clause is ``OP VERSION`` or a bare train wildcard (``1.3.*``, ``rolling``). A clause
    only matches versions of its own train, so naming another train's version is how an
    Image explicitly allows crossing trains.
    """

    text: str
    alternatives: tuple[tuple[_Clause, ...], ...]

    def matches(self, version: Version) -> bool:
        """Whether ``version`` satisfies the constraint."""
        return any(all(c.matches(version) for c in alt) for alt in self.alternatives)

    @property
    def trains(self) -> frozenset[str]:
        """Every train that the constraint names."""
        return frozenset(c.train for alt in self.alternatives for c in alt)


def _parse_clause(raw: str) -> _Clause:
    m = _CLAUSE.match(raw.strip())
    if not m:
        raise VersionError(f"bad constraint clause {raw!r}")
    op, target = m.group(1) or "==", m.group(2)
    if target in ("rolling", "integration"):
        return _Clause("*", None, target)
    if target.endswith(".*"):
        train = target[:-2]
        if not re.fullmatch(r"\d+\.\d+", train):
            raise VersionError(f"bad train wildcard {target!r} (expected e.g. 1.3.*)")
        return _Clause("*", None, train)
    version = parse_version(target)
    return _Clause("==" if op == "=" else op, version, version.train)


def parse_constraint(text: str) -> Constraint:
    """Parse an ``upgradeFrom`` constraint, or raise :class:`VersionError`."""
    alternatives = []
    for alt in text.split("||"):
        clauses = tuple(_parse_clause(c) for c in alt.split(",") if c.strip())
        if not clauses:
            raise VersionError(f"empty alternative in constraint {text!r}")
        alternatives.append(clauses)
    return Constraint(text, tuple(alternatives))
