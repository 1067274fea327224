"""Validation findings in the formats CI systems read: GitHub workflow commands and SARIF.

- ``github``: one ``::error file=F,line=L,col=C,title=gitfirm validate::message`` line per
  error (``::warning`` per warning), which GitHub Actions (and Gitea/Forgejo Actions, which
  read the same commands) show on the pull request's diff.
- ``sarif``: a SARIF 2.1.0 log (one run, one result per finding), which GitHub code scanning
  and GitLab's SAST reports take.

File paths are given relative to where the command runs (the checkout root in CI), so a
config directory below the root still points at the right file. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError

__all__ = ["SARIF_SCHEMA", "github_annotations", "sarif_log"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI = "https://gitfirm.io/docs/troubleshooting"


def _path(error: ConfigError, root: Path) -> str | None:
    if error.location is None or not error.location.file:
        return None
    return (root / error.location.file).as_posix()


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping for the message part.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _message(error: ConfigError) -> str:
    field = f"{error.field}: " if error.field else ""
    return f"{field}{error.detail}"


def github_annotations(
    errors: Sequence[ConfigError], warnings: Sequence[ConfigError], root: Path
) -> list[str]:
    """One workflow command per finding; ``root`` is the config directory as given."""
    lines = []
    for level, findings in (("error", errors), ("warning", warnings)):
        for e in findings:
            props = []
            path = _path(e, root)
            if path is not None:
                props.append(f"file={_escape_property(path)}")
                if e.location is not None and e.location.line:
                    props.append(f"line={e.location.line}")
                    if e.location.column:
                        props.append(f"col={e.location.column}")
            props.append(f"title={_escape_property('gitfirm validate')}")
            lines.append(f"::{level} {','.join(props)}::{_escape_data(_message(e))}")
    return lines


def sarif_log(
    errors: Sequence[ConfigError],
    warnings: Sequence[ConfigError],
    root: Path,
    *,
    version: str,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of the findings, with one rule per reason code."""
    results = []
    rules: dict[str, dict[str, Any]] = {}
    for level, findings in (("error", errors), ("warning", warnings)):
        for e in findings:
            rule = f"{e.reason}" if level == "error" else f"{e.reason}-warning"
            rules.setdefault(
                rule,
                {
                    "id": rule,
                    "name": "".join(part.title() for part in rule.split("-")),
                    "shortDescription": {"text": f"gitfirm validate: {rule}"},
                    "helpUri": _INFO_URI,
                    "defaultConfiguration": {"level": level},
                },
            )
            result: dict[str, Any] = {
                "ruleId": rule,
                "level": level,
                "message": {"text": _message(e)},
            }
            path = _path(e, root)
            if path is not None:
                physical: dict[str, Any] = {
                    "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"}
                }
                if e.location is not None and e.location.line:
                    region = {"startLine": e.location.line}
                    if e.location.column:
                        region["startColumn"] = e.location.column
                    physical["region"] = region
                result["locations"] = [{"physicalLocation": physical}]
            results.append(result)
    ordered = sorted(rules)
    for result in results:
        result["ruleIndex"] = ordered.index(result["ruleId"])
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gitfirm",
                        "version": version,
                        "informationUri": _INFO_URI,
                        "rules": [rules[r] for r in ordered],
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
