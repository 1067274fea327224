"""The docs that are generated or promised stay true: docs/reference.md is what the models
render today, every reason code the code can emit is explained in docs/troubleshooting.md,
and every file the docs cite lives in the repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.images.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
# README.md joins this list once it cites nothing outside the repository (see the report).
CITING = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("deploy/**/*.md")])


def test_reference_is_fresh(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "reference", "--check", "--out", str(REFERENCE)]) == 0, (
        "docs/reference.md is stale: run gitfirm schema reference"
    )
    assert capsys.readouterr().err == ""


def test_reference_check_fails_on_a_stale_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "reference.md"
    shutil.copy(REFERENCE, stale)
    stale.write_text(stale.read_text().replace("`spec.adminRole`", "`spec.admin`"))
    assert main(["schema", "reference", "--check", "--out", str(stale)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "stale" in line
    assert main(["schema", "reference", "--out", str(stale)]) == 0
    assert stale.read_text() == REFERENCE.read_text()


def test_reference_names_every_field_and_setting() -> None:
    text = REFERENCE.read_text()
    for field in ("`spec.strategy.canary`", "`spec.tls.fingerprint`", "`access_pin`",
                  "`secrets.secrets_dir`", "`spec.signers[].sshKey`"):  # fmt: skip
        assert field in text, field


def _reason_codes() -> set[str]:
    codes: set[str] = {r.value for r in Reason}
    for source in (ROOT / "reconciler").rglob("*.py"):
        if "simulator" in source.parts:
            continue
        text = source.read_text("utf-8")
        codes |= set(re.findall(r'\breason ?= ?"([a-z][a-z0-9-]*)"', text))
        codes |= set(re.findall(r'_refuse\(\s*"([a-z][a-z0-9-]*)"', text))
        codes |= set(re.findall(r'else "([a-z]+(?:-[a-z]+)+)"', text))
    return codes


def test_troubleshooting_explains_every_reason_code() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text("utf-8")
    codes = _reason_codes()
    assert {"no-repo", "policy-not-pinned", "kind-not-allowed", "sha256-mismatch"} <= codes
    missing = sorted(c for c in codes if f"| `{c}` |" not in text)
    assert not missing, f"docs/troubleshooting.md lacks: {missing}"


def _cited(text: str) -> set[str]:
    links = re.findall(r"\]\(([^)#\s]+)", text)
    paths = re.findall(
        r"`((?:\.\./|docs/|deploy/|tests/|bench/|schema/|example-repo/)[^`\s]*)`", text
    )
    paths += re.findall(r"(?<![\w/.`-])((?:docs|deploy)/[\w./-]*\w)", text)
    found = {p.split("::")[0] for p in [*links, *paths]}
    return {p for p in found if "://" not in p and not p.startswith("mailto:")}


@pytest.mark.parametrize("doc", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_file_is_in_the_repository(doc: Path) -> None:
    outside, absent = [], []
    for cited in sorted(_cited(doc.read_text("utf-8"))):
        target = (doc.parent / cited) if cited.startswith(".") else ROOT / cited
        if not target.resolve().is_relative_to(ROOT):
            outside.append(cited)
        elif not (any(ROOT.glob(cited)) if "*" in cited else target.exists()):
            absent.append(cited)
    assert not outside, f"{doc.name} cites files outside the repository: {outside}"
    assert not absent, f"{doc.name} cites missing files: {absent}"
