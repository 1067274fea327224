"""The secret allowlist itself (:mod:`reconciler.secrets`), and ``plan --live`` using it.

The daemon and ``gitfirm observe`` are attacked end to end in ``test_secrets.py``; these
cases pin every refusal rule on one function, plus the same flags on ``plan --live``.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.errors import ConfigError
from reconciler.model.fields import SecretRef
from reconciler.secrets import SecretPolicy, resolve_secret
from tests.support.attacker import evil_device

ENV = {
    "VYOS_API_KEY_A": "key-a",
    "GITFIRM_WEBHOOK_SECRET": "hook",
    "GIT_ASKPASS": "x",
    "OTHER": "o",
}


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "good").write_text("file-key\n")
    (d / "binary").write_bytes(b"\x80\x81")
    (d / "big").write_text("k" * 70_000)
    (d / "empty").write_text("\n")
    (d / "inner").mkdir()
    (d / "inner" / "ok").write_text("inner-key")
    (d / "link-in").symlink_to(d / "good")
    (d / "link-out").symlink_to(tmp_path / "outside")
    (tmp_path / "outside").write_text("outside-key")
    return d


def _env(name: str, policy: SecretPolicy) -> str:
    return resolve_secret(SecretRef(env=name), environ=ENV, policy=policy)


def _file(path: str, policy: SecretPolicy) -> str:
    return resolve_secret(SecretRef(file=path), environ=ENV, policy=policy)


def test_env_names_need_the_prefix_and_never_reach_our_own() -> None:
    policy = SecretPolicy()
    assert _env("VYOS_API_KEY_A", policy) == "key-a"
    with pytest.raises(ConfigError, match="does not start with 'VYOS_API_KEY_'"):
        _env("OTHER", policy)
    loose = SecretPolicy(env_prefix="G")
    for own in ("GITFIRM_WEBHOOK_SECRET", "GIT_ASKPASS"):
        with pytest.raises(ConfigError, match="gitfirm's own secrets"):
            _env(own, loose)
    denied = SecretPolicy().deny(env=["VYOS_API_KEY_A"])
    with pytest.raises(ConfigError, match="gitfirm's own secrets"):
        _env("VYOS_API_KEY_A", denied)
    with pytest.raises(ConfigError, match="must not be empty"):
        SecretPolicy(env_prefix="")


def test_files_resolve_only_inside_the_secrets_dir(secrets_dir: Path, tmp_path: Path) -> None:
    policy = SecretPolicy(secrets_dir=secrets_dir)
    assert _file(f"{secrets_dir}/good", policy) == "file-key"
    assert _file(f"{secrets_dir}/inner/ok", policy) == "inner-key"
    assert _file(f"{secrets_dir}/link-in", policy) == "file-key"
    refusals = {
        f"{secrets_dir}/link-out": "not inside --secrets-dir",
        str(tmp_path / "outside"): "not inside --secrets-dir",
        f"{secrets_dir}/inner/../good": "without '..'",
        "secrets/good": "absolute path",
        f"{secrets_dir}/binary": "not UTF-8",
        f"{secrets_dir}/big": "larger than 65536 bytes",
        f"{secrets_dir}/empty": "is empty",
        f"{secrets_dir}/inner": "not a regular file",
        f"{secrets_dir}/missing": "cannot read secret file",
    }
    for path, reason in refusals.items():
        with pytest.raises(ConfigError, match=reason):
            _file(path, policy)
    with pytest.raises(ConfigError, match="no --secrets-dir"):
        _file(f"{secrets_dir}/good", SecretPolicy())
    own = policy.deny(paths=[secrets_dir / "inner"])
    with pytest.raises(ConfigError, match="gitfirm's own secrets"):
        _file(f"{secrets_dir}/inner/ok", own)


def test_refusals_never_name_the_value(secrets_dir: Path) -> None:
    policy = SecretPolicy(secrets_dir=secrets_dir)
    for ref in (SecretRef(env="OTHER"), SecretRef(file=f"{secrets_dir}/link-out")):
        with pytest.raises(ConfigError) as caught:
            resolve_secret(ref, environ=ENV, policy=policy)
        assert "outside-key" not in str(caught.value) and "o\n" not in str(caught.value)


@contextmanager
def _recorder(host: str) -> Iterator[tuple[int, list[bytes]]]:
    """A threaded HTTP server on ``host`` recording every POST; yields (port, requests)."""
    seen: list[bytes] = []

    class Record(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen.append(str(self.headers).encode() + self.rfile.read(length))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_plan_live_uses_the_same_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITFIRM_WEBHOOK_SECRET", "hook-secret-plan-live")
    with _recorder("127.0.0.13") as (port, seen):
        docs = [
            evil_device(
                "evil", f"http://127.0.0.13:{port}", {"env": "GITFIRM_WEBHOOK_SECRET"},
                insecurePlaintext=True,
            )
        ]  # fmt: skip
        (tmp_path / "fleet").mkdir()
        (tmp_path / "fleet" / "evil.yaml").write_text(yaml.safe_dump_all(docs))
        code = main(["plan", str(tmp_path), "--live", "--secret-env-prefix", "GITFIRM_"])
    out = capsys.readouterr()
    assert seen == []
    assert "hook-secret-plan-live" not in out.out + out.err
    assert "gitfirm's own" in " ".join(out.out.split())  # the table wraps the reason
    assert code == 0
