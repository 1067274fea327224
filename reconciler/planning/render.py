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
                   "advisories": [{"name", "severity", "aliases": [str]}],
                   "recommendation": null | {"version", "image", "why",
                                             "path": [{"image", "version", "channel"}]}}]
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
from rich.text import Text

from reconciler.planning.plan import (
    CHANGE_ACTIONS,
    PLAN_SCHEMA_VERSION,
    Action,
    Plan,
    PlannedDevice,
    PlannedPolicy,
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
    if device.recommendation:
        parts.append(f"recommended: {device.recommendation.version}")
    return "; ".join(parts)


def render_text(plan: Plan, *, width: int = 160) -> str:
    """The plan as a terminal table (no colour codes), with a one-line summary."""
    table = Table(title=f"gitfirm plan {plan.revision or '(working tree)'}", show_lines=False)
    for column in ("device", "policy", "current", "target", "path", "action", "wave", "#"):
        table.add_column(column, no_wrap=column in ("device", "action"))
    table.add_column("reason / notes")
    for d in plan.devices:
        cells = (
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
        # Text cells: no markup parsing (names and reasons are data, and it is faster).
        table.add_row(*(Text(c) for c in cells))
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False)
    console.print(table)
    counts = ", ".join(f"{n} {a}" for a, n in plan.counts().items() if n)
    console.print(f"{len(plan.devices)} devices: {counts or 'none'}")
    for d in plan.devices:
        if d.recommendation:
            r = d.recommendation
            console.print(
                f"recommended for {d.name}: {r.version} ({r.image}): {r.why}", markup=False
            )
    for error in plan.errors:
        console.print(f"error: {error}", markup=False)
    for warning in plan.warnings:
        console.print(f"warning: {warning}", markup=False)
    return out.getvalue()


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ") or "-"


class _Budget:
    """Markdown lines under a character budget. Once a line does not fit, it and every
    later droppable line are counted instead of written."""

    def __init__(self, limit: int) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.limit = limit
        self.dropped = 0  # lines left out to stay under the limit
        self.hidden = 0  # table rows and list items left out by the per-table caps

    def add(self, line: str, *, droppable: bool = True) -> None:
        cost = len(line) + 1
        if droppable and (self.dropped or self.size + cost > self.limit - _RESERVE):
            self.dropped += 1
            return
        self.lines.append(line)
        self.size += cost

    def table(self, header: list[str], rows: list[list[str]], *, cap: int) -> None:
        """A table of at most ``cap`` rows, then a line saying how many were left out."""
        self.add("")
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "---|" * len(header))
        for row in rows[:cap]:
            self.add("| " + " | ".join(_cell(c) for c in row) + " |")
        if len(rows) > cap:
            self.hidden += len(rows) - cap
            self.add("")
            self.add(f"_… and {len(rows) - cap} more (see `--format json`)_")

    def bullets(self, title: str, items: tuple[str, ...], *, cap: int) -> None:
        if items:
            self.add("")
            self.add(f"#### {title} ({len(items)})")
            for item in items[:cap]:
                self.add(f"- {_cell(item)}")
            if len(items) > cap:
                self.hidden += len(items) - cap
                self.add(f"- _… and {len(items) - cap} more_")


# Rows per table in the markdown comment: enough to review, small enough that every
# section of a 10,000-device plan fits in one comment.
_ROWS_ATTENTION = 200
_ROWS_WAVE = 50
_ROWS_LIST = 50


def render_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    """The plan as a pull-request comment: summary counts, errors and warnings, devices
    that need attention, each policy's window and one table per wave, then compliance.
    Long tables are cut to a few rows with a count of the rest, and the whole comment
    stays under ``limit`` characters, ending with a truncation note if anything had to go."""
    out = _Budget(limit)
    s = summary(plan)
    counts = " · ".join(f"{n} {a}" for a, n in s["actions"].items() if n) or "nothing"
    for line in (
        f"### gitfirm plan for `{plan.revision or 'working tree'}`",
        "",
        f"**{s['devices']} devices**: {counts}",
        "",
        f"Changes: **{s['changes']}** · non-compliant: **{s['nonCompliant']}** · "
        f"CVE-exposed: **{s['cveExposed']}**"
        + ("" if plan.observed else " · _no observations given: devices not observed_"),
    ):
        out.add(line, droppable=False)
    out.bullets("Errors", plan.errors, cap=_ROWS_LIST)
    out.bullets("Warnings", plan.warnings, cap=_ROWS_LIST)
    attention = [d for d in plan.devices if d.action in _ATTENTION]
    if attention:
        out.add("")
        out.add(f"#### Needs attention ({len(attention)})")
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
                for d in attention
            ],
            cap=_ROWS_ATTENTION,
        )
    by_name = {d.name: d for d in plan.devices}
    for policy in plan.policies:
        _policy_section(out, policy, by_name)
    _recommendations(out, plan)
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
            cap=_ROWS_LIST,
        )
    if out.dropped or out.hidden:
        out.lines.append("")
        out.lines.append(
            f"_Truncated to stay under {limit:,} characters: {out.hidden} rows and "
            f"{out.dropped} lines not shown. Run `gitfirm plan --format json` for the "
            "full plan._"
        )
    return "\n".join(out.lines) + "\n"


# Actions a reviewer must look at: nothing happens to these devices without a fix.
_ATTENTION = frozenset({Action.BLOCKED, Action.INCOMPATIBLE, Action.UNREACHABLE, Action.SUSPENDED})


def _recommendations(out: _Budget, plan: Plan) -> None:
    advised = [d for d in plan.devices if d.recommendation]
    if advised:
        out.add("")
        out.add(f"#### Recommended targets ({len(advised)})")
        out.table(
            ["device", "current", "recommended", "why"],
            [
                [d.name, d.current_version or "-", r.version, r.why]
                for d in advised
                if (r := d.recommendation)
            ],
            cap=_ROWS_LIST,
        )


def _policy_section(out: _Budget, policy: PlannedPolicy, by_name: dict[str, PlannedDevice]) -> None:
    out.add("")
    out.add(f"#### Policy `{policy.name}`: {policy.target}")
    state = f"halted: {policy.halt_reason or 'no reason recorded'}" if policy.halted else ""
    state = state or ("suspended" if policy.suspended else "")
    window = policy.window
    if window.allowed:
        until = window.closes_at.isoformat() if window.closes_at else "further notice"
        when = f"open until {until}"
    else:
        opens = window.next_open.isoformat() if window.next_open else "never"
        when = f"closed ({window.reason}), next opens {opens}"
    out.add("")
    out.add(f"{policy.devices} devices · window {when}" + (f" · **{state}**" if state else ""))
    for wave in policy.waves:
        out.add("")
        out.add(f"##### {wave.label} ({len(wave.devices)})")
        out.table(
            ["#", "device", "site", "group", "current", "path", "action", "notes"],
            [_wave_row(by_name[n]) for n in wave.devices],
            cap=_ROWS_WAVE,
        )


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


_RENDERERS: dict[str, Callable[[Plan], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
}


def render(plan: Plan, fmt: Format) -> str:
    """Render the plan in one of :data:`FORMATS`."""
    return _RENDERERS[fmt](plan)
