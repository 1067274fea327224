"""images: the image supply chain. It owns the content-addressed store, fetching (mirrors,
resume, size caps, bandwidth limits), verification (size, SHA-256, minisign, sigstore,
revocation) against the one TrustPolicy of each channel, the check of stored images
against the trust in force at every use, the distribution server that hands verified
bytes to devices on short-lived per-device grants, site mirrors and offline bundles.

It must never serve, export or store as verified any byte it has not verified itself, never
trust a device's own signature check or a bundle's own TrustPolicies, never merge the keys
of several TrustPolicies, and never import the source or devices stages. Anti-rollback is
not its job: planning decides it from the marks of completed upgrades.
"""

__all__: list[str] = []
