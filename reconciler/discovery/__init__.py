"""Discovery: finding the VyOS routers on a network, for a person to declare.

Owns scanning addresses and ports for the VyOS HTTP API (concurrently, at a bounded rate,
each probe under a timeout), reading what each router says about itself (version, platform,
flavor, TLS certificate), matching the finds against the Devices already declared, and
turning the rest into ``kind: Device`` documents and proposals.

It must never change a router (every call it makes is a read), declare a Device by itself
(what it finds goes into a proposal a person merges), or send an API key to a server whose
certificate differs from the one it pinned at the first connection.
"""

from reconciler.discovery.documents import DEFAULT_KEY_ENV, device_documents, discovery_proposals
from reconciler.discovery.probe import Found, ProbeSettings, probe
from reconciler.discovery.scan import mark_declared, scan
from reconciler.discovery.targets import MAX_TARGETS, expand_targets, parse_ports

__all__ = [
    "DEFAULT_KEY_ENV",
    "MAX_TARGETS",
    "Found",
    "ProbeSettings",
    "device_documents",
    "discovery_proposals",
    "expand_targets",
    "mark_declared",
    "parse_ports",
    "probe",
    "scan",
]
