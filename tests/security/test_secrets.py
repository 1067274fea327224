"""Attack 3: a Device in Git names one of the daemon's own secrets, or any secret over plain
HTTP, and points its address at an attacker. Through the real daemon (real git, the
simulator) and the real ``gitfirm observe`` process, the attacker must receive nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.secrets import SecretPolicy
from tests.support.attacker import Attacker, attacker_server, evil_device, secured_gitops
from tests.support.daemon import GitOps, wait_for
from tests.support.gitrepo import git

HOOK_SECRET = "hook-secret-a6c1f09e7d"
LAB_KEY = "lab-api-key-33b8e2"


def _own_secrets(state: Path) -> list[str]:
    return [HOOK_SECRET, (state / "backup.key").read_text().strip()]


def _own_secret_devices(attacker: Attacker, state: Path) -> dict[str, object]:
    tls = {"tls": {"insecureSkipVerify": True}}  # TLS to the attacker: only policy stops it
    return {
        "evil-env": evil_device("evil-env", attacker.url, {"env": "GITFIRM_WEBHOOK_SECRET"}, **tls),
        "evil-file": evil_device(
            "evil-file", attacker.url, {"file": str(state / "backup.key")}, **tls
        ),
        "evil-token": evil_device(
            "evil-token", attacker.url, {"file": str(state / "token.key")}, **tls
        ),
    }


def _refused(ops: GitOps, name: str) -> str:
    facts = ops.daemon.state.facts[name]
    assert not facts.reachable
    assert facts.error is not None and facts.error.startswith("credentials:")
    return facts.error


async def _written(ops: GitOps) -> None:
    """One more pass, its status written to the remote now."""
    await ops.daemon.reconcile(None)
    await ops.daemon.writer.flush()


async def _assert_nothing_leaked(ops: GitOps, secrets: list[str]) -> None:
    await _written(ops)
    texts = [
        git(ops.remote, "log", "-p", "status"),
        ops.logs.getvalue(),
        json.dumps(ops.daemon.book.summary(ops.daemon.state.desired, ())),
    ]
    for secret in secrets:
        assert all(secret not in text for text in texts)


async def test_daemon_never_sends_its_own_secrets_even_when_the_allowlist_would(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    # An operator allowlist as loose as it gets: GITFIRM_* names and the whole tmp tree.
    loose = SecretPolicy(env_prefix="GITFIRM_", secrets_dir=tmp_path)
    async with (
        attacker_server(tls_dir=tmp_path / "tls") as attacker,
        secured_gitops(
            tmp_path,
            devices=_own_secret_devices(attacker, state),
            environ={"GITFIRM_WEBHOOK_SECRET": HOOK_SECRET},
            settings={"secrets": loose},
        ) as ops,
    ):
        await _written(ops)  # a second pass: nothing changes either
        secrets = _own_secrets(state)
        assert not any(attacker.received(s) for s in secrets)
        assert attacker.requests == []
        for name in ("evil-env", "evil-file", "evil-token"):
            assert "gitfirm's own secrets" in _refused(ops, name)
        observed = git(ops.remote, "show", "status:devices/evil-file.yaml")
        assert "credentials: secret file" in observed
        await _assert_nothing_leaked(ops, secrets)


async def test_daemon_default_allowlist_refuses_other_env_and_any_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with attacker_server(tls_dir=tmp_path / "tls") as attacker:
        devices = _own_secret_devices(attacker, state)
        devices["evil-home"] = evil_device(
            "evil-home", attacker.url, {"env": "HOME"}, tls={"insecureSkipVerify": True}
        )
        async with secured_gitops(
            tmp_path, devices=devices, environ={"GITFIRM_WEBHOOK_SECRET": HOOK_SECRET, "HOME": "/x"}
        ) as ops:
            assert not any(attacker.received(s) for s in [*_own_secrets(state), "/x"])
            assert attacker.requests == []
            assert "does not start with 'VYOS_API_KEY_'" in _refused(ops, "evil-home")
            assert "no --secrets-dir" in _refused(ops, "evil-file")
            assert all(ops.daemon.state.facts[n].reachable for n in ops.fleet.names)
            await _assert_nothing_leaked(ops, _own_secrets(state))


async def test_daemon_sends_no_key_over_plain_http(tmp_path: Path) -> None:
    async with attacker_server("127.0.0.10") as attacker:
        assert attacker.url.startswith("http://")
        async with secured_gitops(
            tmp_path,
            devices={"lab": evil_device("lab", attacker.url, {"env": "VYOS_API_KEY_LAB"})},
            environ={"VYOS_API_KEY_LAB": LAB_KEY},
        ) as ops:
            assert not attacker.received(LAB_KEY)
            assert attacker.requests == []
            assert "plain http://" in _refused(ops, "lab")
            await _assert_nothing_leaked(ops, [LAB_KEY])


async def test_insecure_plaintext_is_an_explicit_visible_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with attacker_server("127.0.0.11") as lab:
        device = evil_device("lab", lab.url, {"env": "VYOS_API_KEY_LAB"}, insecurePlaintext=True)
        async with secured_gitops(
            tmp_path, devices={"lab": device}, environ={"VYOS_API_KEY_LAB": LAB_KEY}
        ) as ops:
            await wait_for(lambda: bool(lab.requests), 30, "the lab device contacted")
            assert lab.received(LAB_KEY)  # the operator asked for exactly this
            await _written(ops)
            status = git(ops.remote, "show", "status:devices/lab.yaml")
            assert "plaintext: true" in status
            assert "PLAINTEXT" in git(ops.remote, "show", "status:README.md")
            git(ops.work, "pull", "--quiet")
    capsys.readouterr()
    assert main(["validate", str(ops.work)]) == 0
    assert "insecurePlaintext: true: the API key crosses the network" in capsys.readouterr().err
    assert main(["validate", "--strict", str(ops.work)]) == 1


async def test_bad_secret_files_are_per_device_refusals(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "binary").write_bytes(b"\xff\xfe\x00key")
    (secrets_dir / "huge").write_text("k" * 100_000)
    (secrets_dir / "subdir").mkdir()
    (secrets_dir / "escape").symlink_to(tmp_path / "state" / "token.key")
    async with attacker_server(tls_dir=tmp_path / "tls") as attacker:
        tls = {"tls": {"insecureSkipVerify": True}}
        refs = {
            "binary": str(secrets_dir / "binary"),
            "huge": str(secrets_dir / "huge"),
            "subdir": str(secrets_dir / "subdir"),
            "escape": str(secrets_dir / "escape"),
            "dotdot": f"{secrets_dir}/../state/backup.key",
            "relative": "secrets/binary",
        }
        devices = {n: evil_device(n, attacker.url, {"file": f}, **tls) for n, f in refs.items()}
        async with secured_gitops(
            tmp_path, devices=devices, settings={"secrets": SecretPolicy(secrets_dir=secrets_dir)}
        ) as ops:
            outcome = await ops.daemon.reconcile(None)
            assert outcome.error is None
            assert "not UTF-8" in _refused(ops, "binary")
            assert "larger than" in _refused(ops, "huge")
            assert "not a regular file" in _refused(ops, "subdir")
            assert "not inside --secrets-dir" in _refused(ops, "escape")
            assert "without '..'" in _refused(ops, "dotdot")
            assert "absolute path" in _refused(ops, "relative")
            assert all(ops.daemon.state.facts[n].reachable for n in ops.fleet.names)
            assert attacker.requests == []
            assert "Traceback" not in ops.logs.getvalue()


async def _observe(repo: Path, env: dict[str, str], *flags: str) -> dict[str, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.cli", "observe", str(repo), "--format", "json", *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    # Every device here has an unusable key: observe prints them, says so and exits 1.
    assert proc.returncode == 1, err.decode()
    assert err.decode().startswith("error: ") and "no usable API key" in err.decode()
    assert b"Traceback" not in err
    return {d["name"]: d for d in json.loads(out)["devices"]}


async def test_observe_process_sends_no_daemon_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    backup_key = "daemon-backup-key-58d2c1"
    (state / "backup.key").write_text(backup_key + "\n")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "planted").symlink_to(state / "backup.key")
    env = {"GITFIRM_WEBHOOK_SECRET": HOOK_SECRET, "VYOS_API_KEY_LAB": LAB_KEY}
    async with attacker_server(tls_dir=tmp_path / "tls") as attacker:
        devices = _own_secret_devices(attacker, state)
        devices["evil-planted"] = evil_device(
            "evil-planted",
            attacker.url,
            {"file": str(secrets_dir / "planted")},
            tls={"insecureSkipVerify": True},
        )
        async with attacker_server("127.0.0.12") as plain:
            devices["plain"] = evil_device("plain", plain.url, {"env": "VYOS_API_KEY_LAB"})
            repo = tmp_path / "repo" / "fleet"
            repo.mkdir(parents=True)
            (repo / "extra.yaml").write_text(yaml.safe_dump_all(list(devices.values())))
            default = await _observe(tmp_path / "repo", env)
            for secret in (HOOK_SECRET, backup_key, LAB_KEY):
                assert not attacker.received(secret) and not plain.received(secret)
            with_dir = await _observe(tmp_path / "repo", env, "--secrets-dir", str(secrets_dir))
            assert plain.requests == []
    for seen in (default, with_dir):
        for name, device in seen.items():
            assert not device["reachable"], name
            assert str(device["error"]).startswith("credentials:")
    assert "not inside --secrets-dir" in str(with_dir["evil-planted"]["error"])
    assert "plain http://" in str(default["plain"]["error"])
    assert attacker.requests == []
    for secret in (HOOK_SECRET, backup_key, LAB_KEY):
        assert not attacker.received(secret)
        assert secret not in json.dumps([default, with_dir])
