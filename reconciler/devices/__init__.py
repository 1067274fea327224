"""devices: talking to VyOS routers over their HTTP API and turning answers into facts.

Owns the async API client (:mod:`client`), its transport and TLS handling (:mod:`transport`),
per-device endpoints (:mod:`endpoint`), parsers of ``show`` output (:mod:`parse`) and
fleet observation (:mod:`observe`).

It must never import ``source`` or ``images``, never decide what to do with a device (that
is planning and rollout), and never let an API key reach a log, repr, exception or fact.
"""

__all__: list[str] = []
