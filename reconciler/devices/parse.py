"""Parsers for VyOS ``show`` output: images, version, health and BGP.

Pure functions on text. Each accepts every release family's format (VYOS-API.md):
``show system image`` is a numbered list on 1.3 and a table on 1.4+; ``show version`` has
``Release flavor:`` from 1.4 on; uptime and memory differ between 1.3 and 1.4+.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from reconciler.model.facts import Health, InstalledImage

__all__ = [
    "BgpPeer",
    "ParseError",
    "VersionInfo",
    "parse_bgp_summary",
    "parse_health",
    "parse_image_list",
    "parse_memory",
    "parse_uptime",
    "parse_version_output",
]

# The kernel's architecture name -> the Debian name gitfirm's models use.
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ParseError(ValueError):
    """The text is not the expected ``show`` output."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ``show version`` (or ``GET /info``) says."""

    version: str
    architecture: str | None = None
    flavor: str | None = None
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class BgpPeer:
    """One neighbor of ``show ip bgp summary``."""

    address: str
    remote_as: int
    state: str
    established: bool


_LIST_LINE = re.compile(r"^\s*\d+:\s+(\S+)(.*)$")


# Devices with the same images print the same table, and a fleet runs few image sets:
# remember recent answers (the result is immutable).
@functools.lru_cache(maxsize=256)
def parse_image_list(text: str) -> tuple[InstalledImage, ...]:
    """Parse ``show system image`` (1.3 list or 1.4+ table), in the device's order."""
    lines = [line.rstrip() for line in text.splitlines()]
    if "The system currently has" in text:
        images = []
        for line in lines:
            if m := _LIST_LINE.match(line):
                flags = m.group(2)
                images.append(
                    InstalledImage(
                        name=m.group(1),
                        default="(default boot)" in flags,
                        running="(running image)" in flags,
                    )
                )
        return tuple(images)
    # tabulate right-aligns a column of numbers: with digit-only image names the header
    # reads "  Name", so look past leading blanks.
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("Name")), None)
    if header is None or header + 1 >= len(lines) or not lines[header + 1].startswith("---"):
        raise ParseError("not a 'show system image' output")
    # Column starts come from the dashes line: "-----  -----  -----".
    starts = [m.start() for m in re.finditer(r"-+", lines[header + 1])]
    if len(starts) < 3:
        raise ParseError("'show system image' table has fewer than 3 columns")
    images = []
    for line in lines[header + 2 :]:
        if not line.strip():
            continue
        name = line[: starts[1]].strip()
        default = line[starts[1] : starts[2]].strip()
        running = line[starts[2] :].strip()
        images.append(InstalledImage(name=name, default=default == "Yes", running=running == "Yes"))
    return tuple(images)


@functools.lru_cache(maxsize=16)
def _field_pattern(label: str) -> re.Pattern[str]:
    # Compiled once per label.
    return re.compile(rf"^{re.escape(label)}:\s*(.*?)\s*$", re.MULTILINE)


def _field(text: str, label: str) -> str | None:
    m = _field_pattern(label).search(text)
    return m.group(1) if m and m.group(1) else None


def _line_value(text: str, label: str) -> str | None:
    """The value of the first ``label:`` line, found without scanning line by line (every
    observation parses ``show version``)."""
    key = label + ":"
    start = 0 if text.startswith(key) else text.find("\n" + key) + 1
    if start == 0 and not text.startswith(key):
        return None
    end = text.find("\n", start)
    value = text[start + len(key) : end if end >= 0 else len(text)].strip()
    return value or None


def parse_version_output(text: str) -> VersionInfo:
    """Parse ``show version``: version, architecture (Debian name) and flavor (1.4+)."""
    raw = _line_value(text, "Version")
    if raw is None:
        raise ParseError("no 'Version:' line in 'show version' output")
    arch = _line_value(text, "Architecture")
    return VersionInfo(
        version=raw.removeprefix("VyOS").strip(),
        architecture=_ARCH.get(arch, arch) if arch else None,
        flavor=_line_value(text, "Release flavor"),
    )


_UNIT = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
_CLASSIC_UP = re.compile(r"up\s+(?:(\d+)\s+days?,\s*)?(?:(\d+):(\d+)|(\d+)\s+min)", re.IGNORECASE)


def parse_uptime(text: str) -> tuple[float | None, float | None]:
    """``show system uptime`` -> (seconds, 1-minute load). 1.4+ prints the load in percent."""
    if m := re.search(r"^Uptime:\s*(.+)$", text, re.MULTILINE):
        seconds = sum(int(n) * _UNIT[u] for n, u in re.findall(r"(\d+)([dhms])", m.group(1)))
        load = re.search(r"^1\s+minute:\s*([\d.]+)%", text, re.MULTILINE)
        return float(seconds), (float(load.group(1)) / 100 if load else None)
    up = _CLASSIC_UP.search(text)
    load_m = re.search(r"load average:\s*([\d.]+)", text)
    seconds_c: float | None = None
    if up:
        days, hours, minutes, only_min = up.groups()
        seconds_c = float(
            int(days or 0) * 86_400 + int(hours or 0) * 3600 + int(minutes or only_min or 0) * 60
        )
    return seconds_c, (float(load_m.group(1)) if load_m else None)


def _megabytes(value: str) -> float:
    m = re.match(r"([\d.]+)\s*([KMGT]?B?)", value.strip(), re.IGNORECASE)
    if not m:
        raise ParseError(f"bad memory figure {value!r}")
    scale = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return float(m.group(1)) * scale[m.group(2).upper().rstrip("B")]


def parse_memory(text: str) -> float | None:
    """``show system memory`` -> percent used (bare MB on 1.3, ``GB`` units on 1.4+)."""
    total, used = _field(text, "Total"), _field(text, "Used")
    if total is None or used is None:
        return None
    total_mb = _megabytes(total)
    return round(100 * _megabytes(used) / total_mb, 1) if total_mb else None


def parse_health(uptime_text: str, memory_text: str) -> Health:
    """Health facts from the outputs of ``show system uptime`` and ``show system memory``."""
    seconds, load = parse_uptime(uptime_text)
    return Health(uptime_seconds=seconds, load1=load, memory_used_percent=parse_memory(memory_text))


_PEER = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]+:[0-9a-fA-F:]*)\s+4\s+(\d+)\s+(.*)$")


def parse_bgp_summary(text: str) -> tuple[BgpPeer, ...]:
    """``show ip bgp summary`` (FRR) -> neighbors; a numeric State/PfxRcd means Established."""
    peers = []
    for line in text.splitlines():
        m = _PEER.match(line.strip())
        if not m:
            continue
        cols = m.group(3).split()
        # MsgRcvd MsgSent TblVer InQ OutQ Up/Down State/PfxRcd ...
        if len(cols) < 7:
            continue
        state = cols[6]
        established = state.isdigit()
        peers.append(
            BgpPeer(
                m.group(1), int(m.group(2)), "Established" if established else state, established
            )
        )
    return tuple(peers)
