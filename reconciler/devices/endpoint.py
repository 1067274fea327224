"""Where and how to reach one device: name, base URL, API key and TLS settings.

:func:`endpoint_for` builds an :class:`Endpoint` from a ``kind: Device`` model and a key
that the caller already resolved (``reconciler.secrets.resolve_secret``), so the daemon and
the CLI only wire. An API key never goes over plain ``http://`` unless the Device says
``insecurePlaintext: true`` (:func:`check_transport`, called before the key is resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.errors import ConfigError
from reconciler.model.kinds import Device

__all__ = ["Endpoint", "TlsSettings", "check_transport", "endpoint_for"]


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


def check_transport(device: Device) -> None:
    """Raise :class:`ConfigError` when the device's API key would cross the network in clear."""
    if device.spec.address.scheme == "http" and not device.spec.insecurePlaintext:
        raise ConfigError(
            "address is plain http://, so the API key is not sent; "
            "use https://, or set insecurePlaintext: true (admins only)"
        )


def endpoint_for(device: Device, api_key: str) -> Endpoint:
    """The endpoint of a ``kind: Device``, with its already-resolved API key."""
    check_transport(device)
    tls = device.spec.tls
    return Endpoint(
        name=device.name,
        base_url=str(device.spec.address).rstrip("/"),
        api_key=api_key,
        tls=TlsSettings(
            ca_bundle=tls.caBundle, fingerprint=tls.fingerprint, insecure=tls.insecureSkipVerify
        ),
    )
