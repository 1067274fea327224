"""``gitfirm report`` output: text for a terminal, Markdown for a forge page, HTML for a
browser or a mail, JSON for tools, CSV for a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import jinja2

from reconciler.history.stats import HistoryReport, Rate, StoreForecast
from reconciler.sanitize import redact

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "markdown", "html", "json", "csv")

# One self-contained page (no script, no outside resource); autoescape: device names and
# error details come from routers and Git.
_HTML = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gitfirm report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;margin:1rem;max-width:60rem}table{border-collapse:collapse;
margin-bottom:1rem}th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left}</style>
</head><body><h1>gitfirm report</h1><p>{{ summary }}</p>
{% for title, header, rows in tables %}<h2>{{ title }}</h2>
{% if rows %}<table><thead><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% else %}<p>None.</p>{% endif %}
{% endfor %}</body></html>
"""
)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def document(report: HistoryReport) -> dict[str, Any]:
    """The report as JSON-ready data."""

    def rates(rows: list[Rate]) -> list[dict[str, Any]]:
        return [{"name": r.key, "done": r.done, "failed": r.failed, "rate": r.rate} for r in rows]

    return {
        "since": _iso(report.since),
        "first": _iso(report.first),
        "last": _iso(report.last),
        "events": report.events,
        "done": report.done,
        "failed": report.failed,
        "successRate": {dim: rates(rows) for dim, rows in report.rates.items()},
        "phaseSeconds": [
            {"phase": p.phase, "count": p.count, "median": p.median, "p95": p.p95}
            for p in report.phases
        ],
        "rollbacks": [
            {
                "at": _iso(s.at),
                "device": s.device,
                "policy": s.policy,
                "target": s.target,
                "detail": s.detail,
            }
            for s in report.rollbacks
        ],
        "halted": report.halted,
        "store": None if report.store is None else _store_doc(report.store),
        "exposure": [
            {
                "day": p.day,
                "exposedDevices": p.exposed,
                "advisories": p.advisories,
                "noncompliant": p.noncompliant,
            }
            for p in report.exposure
        ],
    }


def _store_doc(store: StoreForecast) -> dict[str, Any]:
    return {
        "usedBytes": store.used,
        "freeBytes": store.free,
        "bytesPerDay": round(store.per_day),
        "daysUntilFull": store.days_left,
        "windowDays": store.window_days,
    }


def _rows(report: HistoryReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table, shared by text and Markdown."""
    tables: list[tuple[str, list[str], list[list[str]]]] = []
    for dim, rows in report.rates.items():
        body = [[r.key, str(r.done), str(r.failed), _pct(r.rate)] for r in rows]
        tables.append((f"Success rate per {dim}", [dim, "done", "failed", "rate"], body))
    phases = [[p.phase, str(p.count), f"{p.median:.1f}", f"{p.p95:.1f}"] for p in report.phases]
    tables.append(("Time per phase (seconds)", ["phase", "count", "median", "p95"], phases))
    backs = [
        [_iso(s.at) or "", s.device, s.policy, s.target, " ".join(s.detail.split())]
        for s in report.rollbacks
    ]
    tables.append(("Rollbacks", ["at", "device", "policy", "target", "detail"], backs))
    halts = [[policy, " ".join(reason.split())] for policy, reason in report.halted.items()]
    tables.append(("Halted rollouts (status branch)", ["policy", "reason"], halts))
    exposure = [
        [p.day, str(p.exposed), str(p.advisories), str(p.noncompliant)] for p in report.exposure
    ]
    header = ["day", "exposed devices", "advisories", "non-compliant"]
    tables.append(("CVE exposure over time (status branch)", header, exposure))
    if report.store is not None:
        st, mib = report.store, 2**20
        left = "-" if st.days_left is None else str(st.days_left)
        row = [f"{st.used / mib:.0f}", f"{st.free / mib:.0f}", f"{st.per_day / mib:.1f}", left]
        header = ["used MiB", "free MiB", f"MiB/day ({st.window_days} d)", "days until full"]
        tables.append(("Image store", header, [row]))
    return tables


def _summary(report: HistoryReport) -> str:
    total = report.done + report.failed
    overall = _pct(report.done / total if total else None)
    window = f"{_iso(report.first) or '-'} .. {_iso(report.last) or '-'}"
    since = f" since {_iso(report.since)}" if report.since else ""
    return (
        f"{report.events} transitions{since} ({window}); {report.done} upgrades done, "
        f"{report.failed} failed, success {overall}; {len(report.rollbacks)} rollbacks"
    )


def _text(report: HistoryReport) -> str:
    lines = ["gitfirm report", _summary(report), ""]
    for title, header, rows in _rows(report):
        lines.append(title)
        if not rows:
            lines += ["  (none)", ""]
            continue
        widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return (text or "-").replace("|", "\\|")


def _markdown(report: HistoryReport) -> str:
    lines = ["# gitfirm report", "", _summary(report), ""]
    for title, header, rows in _rows(report):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _csv(report: HistoryReport) -> str:
    # One sheet: each row names its table, then that table's columns (a spreadsheet filters).
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for title, header, rows in _rows(report):
        writer.writerow(["table", *header])
        writer.writerows([title, *row] for row in rows)
    return out.getvalue()


def render(report: HistoryReport, fmt: str, secrets: tuple[str, ...] = ()) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`), every string sanitized."""
    if fmt == "json":
        text = json.dumps(document(report), indent=2, sort_keys=True) + "\n"
    elif fmt == "markdown":
        text = _markdown(report)
    elif fmt == "csv":
        text = _csv(report)
    elif fmt == "html":
        text = _HTML.render(summary=_summary(report), tables=_rows(report))
    else:
        text = _text(report)
    return redact(text, secrets)
