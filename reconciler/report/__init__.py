"""report: everything gitfirm writes back about what it saw and did.

It owns the status branch (deterministic files rendered from a plain
:class:`~reconciler.report.snapshot.StatusSnapshot`, committed only on a state change, pushed
with regenerate-and-retry), the rollout-outcome notes under ``refs/notes/gitfirm``, and the
read side behind ``gitfirm status``.

It must never change desired state (it writes only the status branch and notes), never
merge or rebase generated text, never import another stage's internals (the daemon fills the
snapshot with plain values), and never let a string leave without
:func:`reconciler.sanitize.redact`.
"""

__all__: list[str] = []
