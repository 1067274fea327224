"""The source stage: fetch the config repository, notice new revisions, verify commits.

It owns the local mirror of the watched branch and read-only exports of single revisions
(``git``), the poll loop and its wake-ups (``poller``, ``webhooks``, ``watch``), the filter
of which paths are desired state (``paths``), and commit verification against the
AccessPolicy (``policy``, ``verify``): signatures, the documents each commit adds, changes or
removes and the roles their kind and channel need (``changes``, ``authority``), path rules.

It reads unverified documents only through the model's bounded reader, only to judge
who may change them, and it must never build desired state, talk to devices or images,
trust a webhook payload, or write to the watched branch or the user's git
configuration.
"""

from __future__ import annotations

__all__: list[str] = []
