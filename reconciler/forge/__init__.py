"""Forge clients: GitHub, GitLab and Gitea/Forgejo over their REST APIs.

This package owns every call to a forge (commit statuses, pull-request comments, pull
requests) and the token those calls carry. It must never read Git, devices or the status
branch, and must never log or raise the token: callers hand it plain values (a SHA, a
rendered comment) and get plain values back; the token lives only in request headers.
"""

from reconciler.forge.config import FORGE_KINDS, ForgeConfig, make_forge, read_token
from reconciler.forge.http import FORGE_RESULTS, HttpSettings
from reconciler.forge.protocol import Comment, CommitState, Forge, PullRequest, PullRequests

__all__ = [
    "FORGE_KINDS",
    "FORGE_RESULTS",
    "Comment",
    "CommitState",
    "Forge",
    "ForgeConfig",
    "HttpSettings",
    "PullRequest",
    "PullRequests",
    "make_forge",
    "read_token",
]
