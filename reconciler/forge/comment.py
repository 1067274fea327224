"""One plan comment per pull request, updated in place (as Atlantis does).

Each part of the comment starts with a hidden marker, ``<!-- gitfirm:plan key=K part=I/N -->``,
so the next run finds its own comments among everyone else's: it edits the ones whose text
changed, adds parts when the plan grew, and deletes the parts it no longer needs. A plan
longer than the forge takes in one comment is split at line ends; a table or code block cut
in two is reopened (its header repeated, its fence re-opened) in the next part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.forge.protocol import Comment, Forge

__all__ = ["MAX_PARTS", "CommentResult", "marker", "split_comment", "upsert_comment"]

MAX_PARTS = 10
"""A plan is never spread over more comments than this; the renderer keeps it shorter."""
_MARKER = re.compile(r"<!-- gitfirm:plan key=(?P<key>[\w.-]+) part=(?P<part>\d+)/(?P<of>\d+) -->")
# Room for the marker and a "(part i of n)" line around each part.
_OVERHEAD = 200


@dataclass(frozen=True, slots=True)
class CommentResult:
    """What one upsert did on the forge."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    parts: int = 0


def marker(key: str, part: int, parts: int) -> str:
    """The hidden first line of part ``part`` (1-based) of ``parts``."""
    return f"<!-- gitfirm:plan key={key} part={part}/{parts} -->"


def split_comment(body: str, limit: int, *, key: str = "plan") -> list[str]:
    """``body`` as comment parts of at most ``limit`` characters, each with its marker."""
    room = limit - _OVERHEAD
    if room < 100:
        raise ValueError(f"a comment limit of {limit} characters leaves no room for a plan")
    chunks: list[list[str]] = [[]]
    size = 0
    fence: str | None = None  # the open ``` line, reopened in the next part
    table: list[str] = []  # the open table's header and separator, repeated in the next part
    for line in body.rstrip("\n").split("\n"):
        for piece in _wrap(line, room // 2):
            if size + len(piece) + 1 > room and chunks[-1]:
                carry = ([fence] if fence else []) + table
                if fence:
                    chunks[-1].append("```")
                chunks.append(list(carry))
                size = sum(len(c) + 1 for c in carry)
            chunks[-1].append(piece)
            size += len(piece) + 1
            fence, table = _context(piece, fence, table)
    total = len(chunks)
    out = []
    for i, chunk in enumerate(chunks, 1):
        head = [marker(key, i, total)]
        if total > 1:
            head.append(f"_gitfirm plan, part {i} of {total}_\n")
        out.append("\n".join(head + chunk) + "\n")
    return out


def _wrap(line: str, width: int) -> list[str]:
    """A line longer than a part can hold, cut in pieces (never happens with the renderer)."""
    return [line[i : i + width] for i in range(0, len(line), width)] or [""]


def _context(line: str, fence: str | None, table: list[str]) -> tuple[str | None, list[str]]:
    """The fence and table open after ``line``."""
    stripped = line.strip()
    if stripped.startswith("```"):
        return (None if fence else stripped), []
    if fence:
        return fence, []
    if stripped.startswith("|"):
        if not table:
            return None, [line]
        if len(table) == 1:
            return None, [*table, line] if set(stripped) <= set("|-: ") else []
        return None, table
    return None, []


async def upsert_comment(
    forge: Forge, number: int, body: str, *, key: str = "plan", limit: int | None = None
) -> CommentResult:
    """Make the gitfirm comment(s) with ``key`` on pull request ``number`` say ``body``."""
    parts = split_comment(body, limit or forge.max_comment, key=key)
    if len(parts) > MAX_PARTS:
        raise ValueError(f"the plan needs {len(parts)} comments; at most {MAX_PARTS} are posted")
    mine = _ours(await forge.list_comments(number), key)
    created = updated = unchanged = deleted = 0
    for i, text in enumerate(parts):
        if i < len(mine):
            if mine[i].body.strip() == text.strip():
                unchanged += 1
            else:
                await forge.update_comment(number, mine[i].id, text)
                updated += 1
        else:
            await forge.create_comment(number, text)
            created += 1
    for stale in mine[len(parts) :]:
        await forge.delete_comment(number, stale.id)
        deleted += 1
    return CommentResult(created, updated, unchanged, deleted, len(parts))


def _ours(comments: list[Comment], key: str) -> list[Comment]:
    """Our comments for ``key``, in part order (a duplicate part after its first copy)."""
    found: list[tuple[int, int, Comment]] = []
    for c in comments:
        match = _MARKER.search(c.body[:200])
        if match and match.group("key") == key:
            found.append((int(match.group("part")), c.id, c))
    return [c for _, _, c in sorted(found, key=lambda t: (t[0], t[1]))]
