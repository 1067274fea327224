"""planning: version ordering and upgrade paths, maintenance-window evaluation, compliance
and advisories, wave assignment, the :class:`Plan` and its renderers (text, markdown, json).

It owns the pure function ``plan(desired, facts, progress, now) -> Plan`` that the daemon
and the pull-request preview (``gitfirm plan``) share, and the window functions the rollout
engine calls.

It must never do I/O: no files, network, Git or devices, and no clock reads (``now`` is
always an argument). It imports only ``reconciler.model``, the error tree and the
sanitizer; never ``source``, ``devices``, ``images``, ``rollout``, ``report``, ``daemon``
or ``cli``. The same inputs always give the same Plan and the same rendered bytes.
"""

__all__: list[str] = []
