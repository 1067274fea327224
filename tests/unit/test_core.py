"""The shared core: error mapping, the sanitizer, the fake clock and secret references."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.clock import FakeClock
from reconciler.errors import (
    Action,
    AuthError,
    CommandError,
    ConfigError,
    DeviceServerError,
    GitfirmError,
    UpstreamTimeout,
    error_from_response,
    summarize,
)
from reconciler.model.fields import SecretRef
from reconciler.sanitize import redact
from reconciler.secrets import SecretPolicy, resolve_secret


def test_success_envelope_is_no_error() -> None:
    assert error_from_response(200, '{"success": true, "data": "x", "error": null}') is None


@pytest.mark.parametrize(
    ("status", "body", "cls", "detail"),
    [
        (401, '{"success": false, "error": "Valid API key is required", "data": null}',
         AuthError, "Valid API key is required"),
        (400, '{"success": false, "error": "&lt;b&gt; &quot;x&quot; failed", "data": null}',
         CommandError, '<b> "x" failed'),
        (504, "<html>Gateway Time-out</html>", UpstreamTimeout, "<html>Gateway Time-out</html>"),
        (503, "", DeviceServerError, "HTTP 503"),
        (200, '{"success": false, "error": "nope", "data": null}', CommandError, "nope"),
    ],
)  # fmt: skip
def test_error_mapping(status: int, body: str, cls: type[GitfirmError], detail: str) -> None:
    err = error_from_response(status, body, device="r1")
    assert isinstance(err, cls)
    assert err.detail == detail
    assert str(err).startswith("r1: ")


def test_actions_name_the_next_step() -> None:
    assert UpstreamTimeout("x").action is Action.RETRY
    assert AuthError("x").action is Action.HALT
    assert ConfigError("x").action is Action.HALT


def test_redact_strips_every_kind_of_secret() -> None:
    text = (
        "GET https://bob:hunter22@h/x?key=abc123&v=1 token: tok-999 "
        '{"key": "K-SECRET-1"} /images/AAAAAAAAAAAAAAAAAAAAAAAA/vyos.iso planted-value-42'
    )
    out = redact(text, ["planted-value-42"])
    for secret in ("hunter22", "abc123", "tok-999", "K-SECRET-1", "AAAAAAAAAAAAAAAAAAAAAAAA",
                   "planted-value-42"):  # fmt: skip
        assert secret not in out
    assert "v=1" in out


def test_summarize_sanitizes_unknown_errors() -> None:
    summary = summarize(RuntimeError("boom with key=zzz-secret"), ("never-here",))
    assert summary.reason == "internal"
    assert "zzz-secret" not in summary.message


async def test_fake_clock_wakes_sleepers_in_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 10)), asyncio.create_task(sleeper("early", 5))]
    await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.sleep(0)
    assert woke == ["early"]
    clock.advance(5)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]
    assert clock.monotonic() == 10


async def test_autojump_clock_never_waits() -> None:
    clock = FakeClock(autojump=True)
    start = clock.now()
    await clock.sleep(3600)
    assert (clock.now() - start).total_seconds() == 3600


def test_resolve_secret_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("file-secret\n")
    policy = SecretPolicy(env_prefix="K", secrets_dir=tmp_path)
    ref = SecretRef(file=str(tmp_path / "k"))
    assert resolve_secret(ref, environ={}, policy=policy) == "file-secret"
    assert resolve_secret(SecretRef(env="K"), environ={"K": "v"}, policy=policy) == "v"
    with pytest.raises(ConfigError, match="environment variable K_MISSING is not set"):
        resolve_secret(SecretRef(env="K_MISSING"), environ={}, policy=policy)


def test_tune_gc_sets_thresholds_and_freezes() -> None:
    import gc

    from reconciler.runtime import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
