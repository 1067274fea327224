"""From ``kind: Device`` documents to endpoints and a printable view of facts.

:func:`endpoints_for` resolves each device's API key (``reconciler.secrets``, under the
operator's :class:`~reconciler.secrets.SecretPolicy`) at the last moment; a device whose key
cannot be resolved or may not be sent gets facts saying so instead of an endpoint, so one
refused reference never stops a pass. :func:`facts_table` renders facts for a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from rich.table import Table

from reconciler.devices.endpoint import Endpoint, check_transport, endpoint_for
from reconciler.errors import ConfigError
from reconciler.model.facts import DeviceFacts
from reconciler.model.kinds import Device
from reconciler.secrets import SecretPolicy, resolve_secret

__all__ = ["device_endpoint", "endpoints_for", "facts_table"]


def device_endpoint(
    device: Device, *, environ: Mapping[str, str], policy: SecretPolicy
) -> Endpoint:
    """The device's endpoint with its API key; :class:`ConfigError` (never naming the value)
    when the key may not be sent to its address or the policy refuses the reference."""
    check_transport(device)  # before resolving: a refused key is not even read
    key = resolve_secret(device.spec.credentials.apiKey, environ=environ, policy=policy)
    return endpoint_for(device, key)


def endpoints_for(
    devices: Iterable[Device],
    *,
    environ: Mapping[str, str],
    policy: SecretPolicy,
    now: datetime,
) -> tuple[list[Endpoint], dict[str, DeviceFacts]]:
    """Endpoints for the devices whose key resolves, and facts for those whose key does not."""
    endpoints: list[Endpoint] = []
    failed: dict[str, DeviceFacts] = {}
    for device in devices:
        try:
            endpoints.append(device_endpoint(device, environ=environ, policy=policy))
        except ConfigError as e:
            failed[device.name] = DeviceFacts(
                name=device.name, reachable=False, observed_at=now, error=f"credentials: {e}"
            )
    return endpoints, failed


def facts_table(facts: Mapping[str, DeviceFacts]) -> Table:
    """A rich table: one row per device, sorted by name."""
    table = Table(title=f"{len(facts)} devices")
    for column in ("device", "reachable", "version", "arch", "default", "running", "rtt ms"):
        table.add_column(column)
    for name in sorted(facts):
        f = facts[name]
        table.add_row(
            name,
            "yes" if f.reachable else f"no: {f.error or ''}",
            f.version or "-",
            f.architecture or "-",
            f.default_image or "-",
            f.running_image or "-",
            f"{f.rtt_ms:.0f}" if f.rtt_ms is not None else "-",
        )
    return table
