"""Proposals: changes gitfirm suggests to the config repository, for a person to merge.

Owns one mechanism: a proposal's files are committed to a branch
``gitfirm/proposals/<kind>/<id>`` of the config repository (signed with the daemon's key
where one is set) and, when a forge is configured, a pull request is opened or updated for
it. The id is derived from what the proposal is about, so the same proposal is never
opened twice; a ledger in the work directory remembers every proposal made, so one that a
person closed and deleted does not come back.

It must never push to the desired branch (or any branch outside ``gitfirm/proposals/``),
check out or follow anything from the repository (commits are built with plumbing), or
talk to a device.
"""

from reconciler.proposals.documents import image_proposal
from reconciler.proposals.model import Proposal, ProposalOutcome, ProposalResult, proposal_id
from reconciler.proposals.publish import Proposer, ProposerSettings

__all__ = [
    "Proposal",
    "ProposalOutcome",
    "ProposalResult",
    "Proposer",
    "ProposerSettings",
    "image_proposal",
    "proposal_id",
]
