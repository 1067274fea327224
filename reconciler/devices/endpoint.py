"""Where and how to reach one device: name, base URL, API key and TLS settings.

:func:`endpoint_for` builds an :class:`Endpoint` from a ``kind: Device`` model and a key
that the caller already resolved (``reconciler.secrets.resolve_secret``), so the daemon and
the CLI only wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.kinds import Device

__all__ = ["Endpoint", "TlsSettings", "endpoint_for"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How the device's certificate is checked: system roots by default, else one of a CA
    bundle, a SHA-256 fingerprint of the leaf certificate, or explicitly nothing."""

    ca_bundle: str | None = None
    fingerprint: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One device's API. ``api_key`` is kept out of ``repr``."""

    name: str
    base_url: str
    api_key: str = field(repr=False)
    tls: TlsSettings = field(default_factory=TlsSettings)

    def url(self, path: str) -> str:
        """The URL of an endpoint path such as ``/show`` (keeps a base path prefix)."""
        return self.base_url.rstrip("/") + path


def endpoint_for(device: Device, api_key: str) -> Endpoint:
    """The endpoint of a ``kind: Device``, with its already-resolved API key."""
    tls = device.spec.tls
    return Endpoint(
        name=device.name,
        base_url=str(device.spec.address).rstrip("/"),
        api_key=api_key,
        tls=TlsSettings(
            ca_bundle=tls.caBundle, fingerprint=tls.fingerprint, insecure=tls.insecureSkipVerify
        ),
    )
