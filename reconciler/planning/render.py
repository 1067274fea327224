"""Renderers for a :class:`~reconciler.planning.plan.Plan`: ``text``, ``markdown``, ``json``.

Every renderer is deterministic: the same Plan gives the same bytes.

JSON schema (``schemaVersion`` 1; keys sorted, two-space indent, trailing newline)::

    {
      "schemaVersion": 1,
      "revision": str, "now": ISO-8601, "observed": bool,
      "summary": {"devices": int, "changes": int, "nonCompliant": int, "cveExposed": int,
                  "actions": {<action>: int, ... every action}},
      "errors": [str], "warnings": [str],
      "policies": [{"name", "target", "devices": int, "suspended", "halted", "haltReason",
                    "window": {"allowed", "closesAt", "nextOpen", "reason"},
                    "waves": [{"index": int, "label", "devices": [str]}]}],
      "devices": [{"name", "site", "policy", "redundancyGroup", "platform",
                   "currentVersion", "targetVersion", "targetImage",
                   "path": [{"image", "version", "channel"}],
                   "action", "reason", "wave", "order", "notes": [str],
                   "complianceEvaluated": bool, "compliance": [str],
                   "advisories": [{"name", "severity", "aliases": [str]}]}]
    }

Absent values are ``null``; lists are always present. ``wave`` 0 is the canary wave.
Fields are only ever added within a schema version; a removal or change of meaning bumps it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from reconciler.planning.plan import (
    CHANGE_ACTIONS,
    PLAN_SCHEMA_VERSION,
    Action,
    Plan,
    PlannedDevice,
)

__all__ = [
    "FORMATS",
    "MARKDOWN_LIMIT",
    "Format",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
    "summary",
]

Format = Literal["text", "markdown", "json"]
FORMATS: tuple[Format, ...] = ("text", "markdown", "json")
# GitHub refuses comments over 65,536 characters; stay well below it.
MARKDOWN_LIMIT = 60_000
# Room kept for the truncation note and the footer.
_RESERVE = 600


def summary(plan: Plan) -> dict[str, Any]:
    """Counts for the whole plan: devices, changes, non-compliant, CVE-exposed, per action."""
    return {
        "devices": len(plan.devices),
        "changes": sum(1 for d in plan.devices if d.action in CHANGE_ACTIONS),
        "nonCompliant": sum(1 for d in plan.devices if d.compliance),
        "cveExposed": sum(1 for d in plan.devices if d.advisories),
        "actions": plan.counts(),
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camelize(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): _camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    return value


def render_json(plan: Plan) -> str:
    """The plan as JSON in the documented schema."""
    body = _camelize(plan.model_dump(mode="json"))
    body["schemaVersion"] = PLAN_SCHEMA_VERSION
    body["summary"] = summary(plan)
    return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _path_text(device: PlannedDevice) -> str:
    return " → ".join(h.version for h in device.path) or "-"


def _detail(device: PlannedDevice) -> str:
    parts = [device.reason] if device.reason else []
    parts += device.notes
    if device.compliance:
        parts.append(f"non-compliant: {len(device.compliance)} reason(s)")
    return "; ".join(parts)


def render_text(plan: Plan, *, width: int = 160) -> str:
    """The plan as a terminal table (no colour codes), with a one-line summary."""
    table = Table(title=f"gitfirm plan {plan.revision or '(working tree)'}", show_lines=False)
    for column in ("device", "policy", "current", "target", "path", "action", "wave", "#"):
        table.add_column(column, no_wrap=column in ("device", "action"))
    table.add_column("reason / notes")
    for d in plan.devices:
        table.add_row(
            d.name,
            d.policy or "-",
            d.current_version or "-",
            d.target_version or "-",
            _path_text(d),
            d.action.value,
            "-" if d.wave is None else ("canary" if d.wave == 0 else str(d.wave)),
            "-" if d.order is None else str(d.order),
            _detail(d),
        )
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False)
    console.print(table)
    counts = ", ".join(f"{n} {a}" for a, n in plan.counts().items() if n)
    console.print(f"{len(plan.devices)} devices: {counts or 'none'}")
    for error in plan.errors:
        console.print(f"error: {error}", markup=False)
    for warning in plan.warnings:
        console.print(f"warning: {warning}", markup=False)
    return out.getvalue()


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ") or "-"


class _Budget:
    """Markdown lines under a character budget; rows past it are counted, not written."""

    def __init__(self, limit: int) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.limit = limit
        self.dropped = 0

    def add(self, line: str, *, droppable: bool = True) -> bool:
        cost = len(line) + 1
        if droppable and (self.dropped or self.size + cost > self.limit - _RESERVE):
            self.dropped += 1
            return False
        self.lines.append(line)
        self.size += cost
        return True

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        if not rows or not self.add("") or not self.add("| " + " | ".join(header) + " |"):
            self.dropped += len(rows)
            return
        self.add("|" + "---|" * len(header), droppable=False)
        for row in rows:
            self.add("| " + " | ".join(_cell(c) for c in row) + " |")


def render_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    """The plan as a pull-request comment: summary, errors and warnings, one table per
    wave of each policy, then devices outside the waves, kept under ``limit`` characters
    with a truncation note when rows had to be left out."""
    out = _Budget(limit)
    s = summary(plan)
    out.add(f"### gitfirm plan for `{plan.revision or 'working tree'}`", droppable=False)
    out.add("", droppable=False)
    counts = " · ".join(f"{n} {a}" for a, n in s["actions"].items() if n) or "nothing"
    out.add(f"**{s['devices']} devices**: {counts}", droppable=False)
    out.add("", droppable=False)
    out.add(
        f"Changes: **{s['changes']}** · non-compliant: **{s['nonCompliant']}** · "
        f"CVE-exposed: **{s['cveExposed']}**"
        + ("" if plan.observed else " · _no observations given: devices not observed_"),
        droppable=False,
    )
    for title, items in (("Errors", plan.errors), ("Warnings", plan.warnings)):
        if items:
            out.add("")
            out.add(f"#### {title}")
            for item in items:
                out.add(f"- {_cell(item)}")
    by_name = {d.name: d for d in plan.devices}
    for policy in plan.policies:
        out.add("")
        out.add(f"#### Policy `{policy.name}`: {policy.target}")
        state = "halted: " + (policy.halt_reason or "") if policy.halted else ""
        state = state or ("suspended" if policy.suspended else "")
        window = policy.window
        when = (
            f"open until {window.closes_at.isoformat() if window.closes_at else 'further notice'}"
            if window.allowed
            else f"closed ({window.reason}), next opens "
            f"{window.next_open.isoformat() if window.next_open else 'never'}"
        )
        out.add(f"{policy.devices} devices · window {when}" + (f" · **{state}**" if state else ""))
        for wave in policy.waves:
            out.add("")
            out.add(f"##### {wave.label} ({len(wave.devices)})")
            rows = [_wave_row(by_name[n]) for n in wave.devices]
            out.table(["#", "device", "site", "group", "current", "path", "action", "notes"], rows)
    _rest(out, plan)
    if out.dropped:
        out.lines.append("")
        out.lines.append(
            f"_Truncated: {out.dropped} more lines not shown to stay under {limit:,} "
            "characters. Run `gitfirm plan --format json` for the full plan._"
        )
    return "\n".join(out.lines) + "\n"


def _wave_row(d: PlannedDevice) -> list[str]:
    return [
        str(d.order),
        d.name,
        d.site,
        d.redundancy_group or "-",
        d.current_version or "-",
        _path_text(d),
        d.action.value,
        _detail(d),
    ]


def _rest(out: _Budget, plan: Plan) -> None:
    """Devices outside every wave that need attention, then the non-compliant ones."""
    quiet = (Action.NONE,)
    others = [d for d in plan.devices if d.wave is None and d.action not in quiet]
    if others:
        out.add("")
        out.add(f"#### Not in a wave ({len(others)})")
        out.table(
            ["device", "policy", "current", "target", "action", "reason"],
            [
                [
                    d.name,
                    d.policy or "-",
                    d.current_version or "-",
                    d.target_version or "-",
                    d.action.value,
                    _detail(d),
                ]
                for d in others
            ],
        )
    flagged = [d for d in plan.devices if d.compliance]
    if flagged:
        out.add("")
        out.add(f"#### Compliance ({len(flagged)} non-compliant)")
        out.table(
            ["device", "current", "action", "reasons"],
            [
                [d.name, d.current_version or "-", d.action.value, "; ".join(d.compliance)]
                for d in flagged
            ],
        )


_RENDERERS: dict[str, Callable[[Plan], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
}


def render(plan: Plan, fmt: Format) -> str:
    """Render the plan in one of :data:`FORMATS`."""
    return _RENDERERS[fmt](plan)
