"""The source stage: fetch the config repository, notice new revisions, verify commits.

It owns the local mirror of the watched branch and read-only exports of single revisions
(``git``), the poll loop and its wake-ups (``poller``, ``webhooks``, ``watch``), the filter
of which paths are desired state (``paths``), and commit-signature and path-rule verification
against the AccessPolicy (``policy``, ``verify``).

It must never parse desired state beyond the AccessPolicy, never talk to devices or images,
never trust a webhook payload, and never write to the watched branch or the user's git
configuration.
"""

from __future__ import annotations

__all__: list[str] = []
