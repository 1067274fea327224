"""images: the image supply chain. It owns the content-addressed store, fetching (mirrors,
resume, size caps, bandwidth limits), verification (size, SHA-256, minisign, sigstore,
anti-rollback, revocation), the distribution server that hands verified bytes to devices,
site mirrors and offline bundles.

It must never serve, export or store as verified any byte it has not verified itself, never
trust a device's own signature check, and never import the source or devices stages.
"""

__all__: list[str] = []
