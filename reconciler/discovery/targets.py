"""What to scan: CIDRs times ports, bounded."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["MAX_TARGETS", "expand_targets", "parse_ports"]

MAX_TARGETS = 1 << 18
"""Most (address, port) pairs one scan probes: a /16 on four ports."""


def parse_ports(text: str) -> tuple[int, ...]:
    """``443,8443`` or ``8440-8450`` (or both, comma-separated) as sorted unique ports."""
    ports: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"{part!r} is not a port or a range such as 8440-8450") from None
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"{part!r} is not within 1-65535, low to high")
        ports.update(range(first, last + 1))
    if not ports:
        raise ValueError("no port given")
    return tuple(sorted(ports))


def expand_targets(cidrs: Sequence[str], ports: Sequence[int]) -> list[tuple[str, int]]:
    """Every (host address, port) to probe: a network's usable hosts (a /32 or /31 is every
    address), each on every port. Raises ValueError past :data:`MAX_TARGETS`."""
    hosts: list[str] = []
    total = 0
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError as e:
            raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/24: {e}") from None
        total += network.num_addresses * len(ports)
        if total > MAX_TARGETS:
            raise ValueError(f"more than {MAX_TARGETS} address and port pairs; narrow the scan")
        many = network.num_addresses > 2
        hosts.extend(str(a) for a in (network.hosts() if many else network))
    unique = list(dict.fromkeys(hosts))
    return [(host, port) for host in unique for port in ports]
