"""Reading ``/metrics`` exposition text and the example monitoring files in deploy/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "gitfirm-alerts.yaml"
DASHBOARD = MONITORING / "gitfirm-dashboard.json"
_NAME = re.compile(r"\b(?:gitfirm|process)_[a-zA-Z0-9_]*")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def families(text: str) -> dict[str, Metric]:
    """The metric families of an exposition text, by family name."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Metric], name: str, **labels: str) -> float:
    """The value of the one sample called ``name`` whose labels include ``labels``."""
    found = [
        s.value
        for f in fams.values()
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def exported_names(fams: dict[str, Metric]) -> set[str]:
    """Every series name a scrape can hold, including those with no sample yet."""
    return {f.name + s for f in fams.values() for s in _SUFFIXES.get(f.type, ("",))}


def rule_exprs() -> list[str]:
    """The ``expr`` of every alert rule in the example rules file."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """The query of every target of every panel in the example Grafana dashboard."""
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in _panels(doc["panels"]) for t in panel.get("targets", [])]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def metric_names(expr: str) -> set[str]:
    """The gitfirm and process metric names a PromQL expression reads."""
    return set(_NAME.findall(expr))


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool (the caller skips when it is not on PATH)."""
    exe = shutil.which("promtool")
    assert exe is not None
    return subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
