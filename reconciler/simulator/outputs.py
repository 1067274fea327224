"""Plain-text outputs of ``show`` commands, per release family, as VyOS prints them.

``show system image`` is a numbered list on 1.3 and a table on 1.4 and later;
``show version`` gains a ``Release flavor:`` line on 1.4. Health outputs (uptime, memory,
BGP summary) follow the 1.4+ op-mode scripts on 1.4+ and the classic tools on 1.3.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.simulator.device import VirtualDevice

__all__ = [
    "ARCH_NAMES",
    "bgp_summary",
    "config_raw",
    "image_list",
    "memory",
    "parse_raw",
    "show_version",
    "uptime",
]

# Debian architecture -> the kernel name `show version` prints.
ARCH_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}
_TRAINS = {"1.3": "equuleus", "1.4": "sagitta", "1.5": "current"}


def show_version(dev: VirtualDevice) -> str:
    """``show version``."""
    family = dev.family
    lines = [
        f"Version:          VyOS {dev.release}",
        f"Release train:    {_TRAINS.get(family, 'current')}",
    ]
    if family != "1.3":
        lines.append(f"Release flavor:   {dev.flavor}")
    lines += [
        "",
        "Built by:         autobuild@vyos.net",
        "Built on:         Mon 01 Jan 2024 00:00 UTC",
        "Build UUID:       00000000-0000-4000-8000-000000000000",
        "Build commit ID:  0000000000000a",
        "",
        f"Architecture:     {ARCH_NAMES.get(dev.arch, dev.arch)}",
        "Boot via:         installed image",
        "System type:      KVM guest",
        "",
        "Hardware vendor:  QEMU",
        "Hardware model:   Standard PC (Q35 + ICH9, 2009)",
        "",
        "Copyright:        VyOS maintainers and contributors",
    ]
    return "\n".join(lines) + "\n"


def image_list(dev: VirtualDevice) -> str:
    """``show system image``: newest first, a list on 1.3 and a table on 1.4+."""
    names = list(reversed(dev.images))
    if dev.family == "1.3":
        out = ["The system currently has the following image(s) installed:", ""]
        for i, name in enumerate(names, 1):
            flags = (" (default boot)" if name == dev.default else "") + (
                " (running image)" if name == dev.running else ""
            )
            out.append(f"   {i}: {name}{flags}")
        return "\n".join(out) + "\n\n"
    # tabulate's "simple" format: a column is as wide as its longest cell and at least its
    # header plus 2; a column of numbers only (digit-only names) is right-aligned.
    width = max([len("Name") + 2, *(len(n) for n in names)])
    align = ">" if names and all(n.isdigit() for n in names) else "<"
    out = [
        f"{'Name':{align}{width}}  {'Default boot':<14}  Running",
        f"{'-' * width}  {'-' * 14}  {'-' * 9}",
    ]
    for name in names:
        default = "Yes" if name == dev.default else ""
        running = "Yes" if name == dev.running else ""
        out.append(f"{name:{align}{width}}  {default:<14}  {running}".rstrip())
    return "\n".join(out) + "\n"


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86_400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m"]
    return " ".join(p for p in parts if p) + f" {s}s"


def uptime(dev: VirtualDevice, seconds: float) -> str:
    """``show system uptime`` (1.4+ op-mode text; the classic ``uptime`` line on 1.3)."""
    if dev.family == "1.3":
        days, rest = divmod(int(seconds), 86_400)
        hours, minutes = divmod(rest // 60, 60)
        load = f"{dev.load1:.2f}, {dev.load1:.2f}, {dev.load1:.2f}"
        return (
            f" 12:00:00 up {days} days, {hours:2d}:{minutes:02d},  1 user,  load average: {load}\n"
        )
    pct = f"{dev.load1 * 100:.1f}%"
    return (
        f"Uptime: {_duration(seconds)}\n\nLoad averages:\n"
        f"1  minute:   {pct}\n5  minutes:  {pct}\n15 minutes:  {pct}\n"
    )


def memory(dev: VirtualDevice) -> str:
    """``show system memory``: MB on 1.3, GB with two decimals on 1.4+."""
    total, used = dev.memory_total_mb, dev.memory_used_mb
    if dev.family == "1.3":
        return f"Total: {total}\nFree:  {total - used}\nUsed:  {used}\n"
    return (
        f"Total: {total / 1024:.2f} GB\nFree:  {(total - used) / 1024:.2f} GB\n"
        f"Used:  {used / 1024:.2f} GB\n"
    )


def bgp_summary(dev: VirtualDevice) -> str:
    """``show ip bgp summary`` in FRR's format; peers are Active when BGP is degraded."""
    if not dev.bgp_peers:
        return "% No BGP neighbors found in VRF default\n"
    out = [
        "",
        "IPv4 Unicast Summary (VRF default):",
        "BGP router identifier 10.255.0.1, local AS number 65000 vrf-id 0",
        "BGP table version 12",
        "RIB entries 23, using 4416 bytes of memory",
        f"Peers {len(dev.bgp_peers)}, using 1449 KiB of memory",
        "",
        "Neighbor        V         AS   MsgRcvd   MsgSent   TblVer  InQ OutQ  Up/Down "
        "State/PfxRcd   PfxSnt Desc",
    ]
    for address, asn in dev.bgp_peers:
        if dev.bgp_down:
            updown, state, sent = "never", "Active", "0"
        else:
            updown, state, sent = "01:02:03", "5", "6"
        out.append(
            f"{address:<15} 4 {asn:>10}      1234      1230        0    0    0 "
            f"{updown:>8} {state:>12} {sent:>8} N/A"
        )
    out += ["", f"Total number of neighbors {len(dev.bgp_peers)}", ""]
    return "\n".join(out)


def _raw(node: Any, indent: int) -> list[str]:
    pad = "    " * indent
    lines: list[str] = []
    for key, value in node.items():
        if isinstance(value, dict):
            if value:
                lines += [f"{pad}{key} {{", *_raw(value, indent + 1), f"{pad}}}"]
            else:
                lines.append(f"{pad}{key}")
        elif isinstance(value, list):
            lines += [f"{pad}{key} {json.dumps(v)}" for v in value]
        else:
            lines.append(f"{pad}{key} {json.dumps(value)}")
    return lines


def config_raw(node: dict[str, Any]) -> str:
    """A config tree in VyOS's curly-brace text format."""
    return "\n".join(_raw(node, 0)) + "\n"


def parse_raw(text: str) -> dict[str, Any]:
    """The config tree of :func:`config_raw`'s text (``/config-file load`` of a string)."""
    root: dict[str, Any] = {}
    stack = [root]
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("//"):
            continue
        if line == "}":
            stack.pop()
            continue
        key, _, rest = line.partition(" ")
        node = stack[-1]
        if rest == "{":
            stack.append(node.setdefault(key, {}))
        elif not rest:
            node.setdefault(key, {})
        else:
            value = json.loads(rest)
            old = node.get(key)
            node[key] = (
                value if old is None else [*(old if isinstance(old, list) else [old]), value]
            )
    return root
