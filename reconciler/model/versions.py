"""VyOS version strings: parsing, trains, ordering and ``upgradeFrom`` constraints.

Formats (VYOS-API.md):

- LTS: ``1.3.8``, ``1.4.0``, ``1.4.0-rc3``, ``1.4.0-epa1``; train ``1.3``, ``1.4`` ...
- Older rolling: ``1.5-rolling-YYYYMMDDHHMM`` (UTC); train ``rolling``. The same form from
  older branches, ``1.3-rolling-*`` and ``1.4-rolling-*``, is its own train (``1.3-rolling``,
  ``1.4-rolling``) in the family of its branch, not 1.5.
- Rolling from 2025: ``YYYY.MM.DD-HHMM-rolling``; train ``rolling``; and
  ``YYYY.MM.DD-HHMM-integration``; train ``integration``.
- VyOS Stream: ``1.5-stream-2025-Q1``; train ``1.5-stream``, ordered by year and quarter.

Versions order only within a train. Rolling builds order by timestamp, and every date-named
build is newer than every ``1.5-rolling-*`` one. LTS and rolling are never ordered against
each other: changing train is an explicit choice in an Image.

:attr:`Version.built` is the build date that a rolling or stream version names; API features
came with build dates, not with families (:mod:`reconciler.model.features`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

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
_STREAM = re.compile(r"^(\d+)\.(\d+)-stream-(\d{4})-Q([1-4])$")
_DATED = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})-(\d{4})-(rolling|integration)$")
# Pre-release order: release candidates, then early production access, then the release.
_PRE_RANK = {"rc": 0, "epa": 1, None: 2}
# Trains of current's builds, in generation order, after every numbered branch.
_LATE_TRAINS = {"rolling": 0, "integration": 1}
# Train suffixes of a numbered branch (``1.5-stream``, ``1.4-rolling``) after its LTS.
_BRANCH_TRAINS = {"stream": 1, "rolling": 2}
# ``1.5-rolling-*`` and later are current's rolling train; older branches' have their own.
_CURRENT = (1, 5)


def _branch(major: str, minor: str) -> str:
    return f"{int(major)}.{int(minor)}"


def _rolling_train(major: str, minor: str) -> tuple[str, str]:
    """(train, family) of an ``X.Y-rolling-*`` build."""
    if (int(major), int(minor)) >= _CURRENT:
        return "rolling", "1.5"
    branch = _branch(major, minor)
    return f"{branch}-rolling", branch


def _stamp_date(stamp: str) -> date:
    try:
        return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
    except ValueError:
        raise VersionError(f"{stamp!r} is not a build date") from None


class VersionError(ValueError):
    """A string is not a VyOS version or constraint."""


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed VyOS version. Compare only versions of one ``train``."""

    text: str
    train: str
    key: tuple[int, ...] = field(compare=False)
    family: str = field(compare=False)
    """The branch whose API the build has: ``1.3``, ``1.4`` or ``1.5`` (current)."""
    built: date | None = field(compare=False, default=None)
    """The build date a rolling or stream version names; None for numbered releases."""

    @property
    def is_lts(self) -> bool:
        """True for numbered LTS releases, including their rc and epa builds."""
        return self.built is None

    @property
    def generation(self) -> tuple[int, int, int, int]:
        """Orders trains by age: numbered branches by number (LTS, then stream, then older
        rolling builds of that branch), then ``rolling``, then ``integration``."""
        if self.train in _LATE_TRAINS:
            return (1, _LATE_TRAINS[self.train], 0, 0)
        major, minor = (int(n) for n in self.family.split("."))
        return (0, major, minor, _BRANCH_TRAINS.get(self.train.partition("-")[2], 0))

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
        branch = _branch(major, minor)
        return Version(text, branch, key, branch)
    if m := _OLD_ROLLING.match(text):
        major, minor, stamp = m.groups()
        train, family = _rolling_train(major, minor)
        # Generation 0: older than every date-named build.
        return Version(text, train, (0, int(stamp)), family, _stamp_date(stamp))
    if m := _DATED.match(text):
        year, month, day, hhmm, kind = m.groups()
        built = _stamp_date(year + month + day)
        return Version(text, kind, (1, int(f"{year}{month}{day}{hhmm}")), "1.5", built)
    if m := _STREAM.match(text):
        major, minor, year, quarter = m.groups()
        branch = _branch(major, minor)
        # A quarter's release is built within it; its first day is the safe lower bound.
        built = date(int(year), 3 * int(quarter) - 2, 1)
        return Version(text, f"{branch}-stream", (int(year), int(quarter)), branch, built)
    raise VersionError(
        f"{text!r} is not a VyOS version (expected e.g. 1.4.3, 1.4.0-rc3, "
        "1.5-rolling-202410230007, 2025.01.10-0020-rolling or 1.5-stream-2025-Q1)"
    )


def newness(version: Version) -> tuple[int, ...]:
    """A sort key that orders versions across trains by :attr:`Version.generation` (numbered
    branches by number, with their stream and rolling trains, then ``rolling``, then
    ``integration``), then within a train.

    It is the order of the OSV ``VyOS`` ecosystem, and the way to choose among images that
    are already allowed (the newest reachable image of a channel); it never allows
    crossing a train by itself."""
    return (*version.generation, *version.key)


_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<|=)?\s*(\S+)$")
_BRANCH_WILDCARD = re.compile(r"^(\d+)\.(\d+)-(rolling|stream)$")


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

    A clause is ``OP VERSION`` or a bare train wildcard (``1.3.*``, ``rolling``,
    ``1.4-rolling``, ``1.5-stream``). A clause only matches versions of its own train, so
    naming another train's version is how an Image explicitly allows crossing trains.
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
    if target in _LATE_TRAINS:
        return _Clause("*", None, target)
    if m := _BRANCH_WILDCARD.match(target):
        major, minor, kind = m.groups()
        train = _rolling_train(major, minor)[0] if kind == "rolling" else None
        return _Clause("*", None, train or f"{_branch(major, minor)}-stream")
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
