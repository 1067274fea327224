"""The mirror and exports against real git remotes (local path and file:// URLs)."""

from __future__ import annotations

from pathlib import Path

import pytest

import reconciler.source as source_pkg
from reconciler.errors import SourceError
from reconciler.source.git import Mirror, Repository, normalize_url
from tests.support.gitrepo import commit_files, git, push, rev_parse


@pytest.mark.parametrize("scheme", ["path", "file"])
def test_fetch_head_and_changed_files(
    tmp_path: Path, source_remote: tuple[Path, Path], scheme: str
) -> None:
    bare, work = source_remote
    url = str(bare) if scheme == "path" else bare.as_uri()
    mirror = Mirror(url, tmp_path / "state")
    first = mirror.sync()
    assert first == rev_parse(work, "HEAD")
    second = commit_files(work, {"fleet/r1.yaml": "a: 2\n", "images/i.yaml": "i\n"}, "two")
    push(work)
    assert mirror.sync() == second == mirror.head()
    assert mirror.changed_files(first, second) == ["fleet/r1.yaml", "images/i.yaml"]
    assert mirror.changed_files(None, first) == ["README.md", "fleet/r1.yaml"]
    assert mirror.repo.is_ancestor(first, second)
    assert not mirror.repo.is_ancestor(second, first)


def test_relative_local_path_is_made_absolute(
    tmp_path: Path, source_remote: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_url("remote.git") == str(tmp_path / "remote.git")
    assert normalize_url("git@example.net:org/fleet.git") == "git@example.net:org/fleet.git"
    assert Mirror("remote.git", tmp_path / "state").sync()


def test_export_is_one_revision_byte_for_byte(
    tmp_path: Path, source_remote: tuple[Path, Path]
) -> None:
    bare, work = source_remote
    mirror = Mirror(str(bare), tmp_path / "state")
    old = mirror.sync()
    (work / "link").symlink_to("/etc/passwd")
    (work / ".gitattributes").write_text("*.yaml export-ignore\n")
    git(work, "add", "link", ".gitattributes")
    new = commit_files(work, {"fleet/r2.yaml": "b: \xe9\r\n"}, "two")
    push(work)
    mirror.sync()
    tree = mirror.checkout(new)
    assert tree == tmp_path / "state" / "trees" / new
    assert (tree / "fleet" / "r2.yaml").read_bytes() == "b: \xe9\r\n".encode()
    assert (tree / "fleet" / "r1.yaml").exists()  # export-ignore does not hide files
    assert not (tree / "link").exists() and not (tree / "link").is_symlink()
    older = mirror.checkout(old, keep=[new])
    assert not (older / "fleet" / "r2.yaml").exists()
    assert tree.exists()
    mirror.checkout(new)
    assert not older.exists()  # trees not kept are dropped
    assert not any(p.name.startswith(".export-") for p in (tmp_path / "state" / "trees").iterdir())


def test_errors_are_source_errors(tmp_path: Path, source_remote: tuple[Path, Path]) -> None:
    bare, _ = source_remote
    with pytest.raises(SourceError):
        Mirror(str(bare), tmp_path / "s1", branch="nope").sync()
    with pytest.raises(SourceError):
        Mirror(str(tmp_path / "missing.git"), tmp_path / "s2").sync()
    with pytest.raises(SourceError):
        Repository(tmp_path / "nowhere")
    mirror = Mirror(str(bare), tmp_path / "s3")
    mirror.sync()
    with pytest.raises(SourceError):
        mirror.repo.resolve("0" * 40)
    with pytest.raises(SourceError):
        mirror.repo.export("0" * 40, tmp_path / "out")


def test_url_credentials_never_leak(tmp_path: Path) -> None:
    url = "https://robot:ghp_s3cretT0ken0451@127.0.0.1:1/org/fleet.git"
    mirror = Mirror(url, tmp_path / "state", timeout=20)
    with pytest.raises(SourceError) as info:
        mirror.sync()
    text = str(info.value) + repr(info.value)
    assert "ghp_s3cretT0ken0451" not in text
    assert info.value.__cause__ is None
    stored = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert stored and not any(b"s3cretT0ken" in p.read_bytes() for p in stored)


def test_stage_package_docstring_says_what_it_must_never_do() -> None:
    assert source_pkg.__doc__ is not None and "must never" in source_pkg.__doc__
