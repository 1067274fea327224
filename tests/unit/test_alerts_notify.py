"""Notifications without the daemon: filters, de-duplication, resolved notices, the bounded
queue, retries, and secrets kept out of everything but the URL handed to the sender."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from reconciler.alerts.center import AlertCenter
from reconciler.alerts.notify import Notifier, Route, build_routes
from reconciler.clock import FakeClock
from reconciler.model.kinds import NotificationPolicy


def _policy(name: str = "ops", **spec: Any) -> NotificationPolicy:
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "NotificationPolicy",
        "metadata": {"name": name},
        "spec": {"targets": [{"name": "hook", "url": "json://127.0.0.1:9/"}], **spec},
    }
    return NotificationPolicy.model_validate(doc)


class Recorder:
    """A sender that records what it was given and fails while told to."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.failures = failures

    def __call__(self, url: str, title: str, body: str) -> bool:
        self.calls.append((url, title, body))
        if self.failures:
            self.failures -= 1
            return False
        return True


def _wired(
    *policies: NotificationPolicy, send: Recorder, **kw: Any
) -> tuple[AlertCenter, Notifier, FakeClock]:
    clock = FakeClock(autojump=True)
    center = AlertCenter(None, clock)
    notifier = Notifier(clock, send=send, **kw)
    routes, skipped = build_routes({p.name: p for p in policies}, {})
    assert not skipped
    notifier.configure(routes)
    center.listeners.append(notifier.alert_changed)
    return center, notifier, clock


async def test_dedupe_window_and_resolved_notice() -> None:
    send = Recorder()
    center, notifier, clock = _wired(_policy(), send=send)
    for _ in range(3):
        center.raise_alert(
            "rollout-halted", "fleet", "critical", "halted: 1 failure", policy="fleet"
        )
    await notifier.drain()
    assert len(send.calls) == 1  # the same subject and message once per 5 min
    center.raise_alert("rollout-halted", "fleet", "critical", "halted: 2 failures", policy="fleet")
    clock.advance(301)
    center.raise_alert("rollout-halted", "fleet", "critical", "halted: 1 failure", policy="fleet")
    center.resolve("rollout-halted", "fleet")
    await notifier.drain()
    titles = [t for _, t, _ in send.calls]
    assert len(titles) == 4 and titles[-1] == "[gitfirm] RESOLVED: rollout-halted fleet"
    assert "halted: 2 failures" in send.calls[1][2]
    assert notifier.sent == 4


async def test_filters_by_severity_event_policy_and_site() -> None:
    send = Recorder()
    policy = _policy(
        filter={"severity": "warning", "events": ["device-failed", "device-unreachable"],
                "policies": ["core"], "sites": ["fra"]},
        sendResolved=False,
    )  # fmt: skip
    center, notifier, _ = _wired(policy, send=send)
    center.raise_alert("device-failed", "r1", "critical", "x", policy="core", site="fra")  # sent
    center.raise_alert("device-failed", "r2", "critical", "x", policy="edge", site="fra")
    center.raise_alert("device-failed", "r3", "critical", "x", policy="core", site="ams")
    center.raise_alert("image-refused", "img", "critical", "x", policy="core", site="fra")
    center.raise_alert("device-unreachable", "r4", "info", "x", policy="core", site="fra")
    center.resolve("device-failed", "r1")  # sendResolved: false
    await notifier.drain()
    assert [t for _, t, _ in send.calls] == ["[gitfirm] CRITICAL: device-failed r1"]


async def test_info_events_need_severity_info_and_have_no_resolved_notice() -> None:
    send = Recorder()
    center, notifier, _ = _wired(_policy(filter={"severity": "info"}), send=send)
    center.raise_alert("rollout-started", "fleet", "info", "started", policy="fleet")
    center.resolve("rollout-started", "fleet")
    await notifier.drain()
    assert [t for _, t, _ in send.calls] == ["[gitfirm] INFO: rollout-started fleet"]


async def test_bounded_queue_drops_the_oldest_and_counts() -> None:
    send = Recorder()
    results: list[tuple[str, str]] = []
    center, notifier, _ = _wired(
        _policy(), send=send, capacity=3, on_result=lambda e, r: results.append((e, r))
    )
    for i in range(5):  # nothing sends meanwhile: the raise never waits for the queue
        center.raise_alert("device-failed", f"r{i}", "critical", "failed")
    assert notifier.pending == 3 and notifier.dropped == 2
    await notifier.drain()
    assert [t.rsplit(" ", 1)[-1] for _, t, _ in send.calls] == ["r2", "r3", "r4"]
    assert results.count(("", "dropped")) == 2 and results.count(("device-failed", "sent")) == 3


async def test_failures_are_retried_with_backoff_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    send = Recorder(failures=10)
    results: list[tuple[str, str]] = []
    center, notifier, clock = _wired(
        _policy(), send=send, attempts=3, backoff=2.0, on_result=lambda e, r: results.append((e, r))
    )
    center.raise_alert("device-failed", "r1", "critical", "failed")
    start = clock.monotonic()
    await notifier.drain()
    assert len(send.calls) == 3 and clock.monotonic() - start == pytest.approx(6.0)
    assert notifier.failed == 1 and results == [("device-failed", "failed")]
    assert "attempt 3 of 3" in caplog.text and "ops/hook" in caplog.text
    send.failures = 1  # the next one fails once, then goes through
    center.raise_alert("device-failed", "r2", "critical", "failed")
    await notifier.drain()
    assert notifier.sent == 1


async def test_a_raising_sender_never_shows_the_url(caplog: pytest.LogCaptureFixture) -> None:
    def broken(url: str, title: str, body: str) -> bool:
        raise OSError(f"cannot reach {url}")

    clock = FakeClock(autojump=True)
    policy = NotificationPolicy.model_validate(_raw_mail())
    routes, _ = build_routes({"ops": policy}, {"NOTIFY_SECRET_SMTP": "hunter2"})
    notifier = Notifier(clock, send=broken, attempts=1, secrets=lambda: ("hunter2",))
    notifier.configure(routes)
    center = AlertCenter(None, clock)
    center.listeners.append(notifier.alert_changed)
    center.raise_alert("device-failed", "r1", "critical", "failed")
    await notifier.drain()
    assert "hunter2" not in caplog.text and "mailto" not in caplog.text
    assert "OSError" in caplog.text and notifier.failed == 1


def _raw_mail() -> dict[str, Any]:
    return {
        "apiVersion": "gitfirm.io/v1",
        "kind": "NotificationPolicy",
        "metadata": {"name": "ops"},
        "spec": {
            "targets": [{
                "name": "mail",
                "url": "mailto://gitfirm:{password}@127.0.0.1:25?to=ops@example.org",
                "secrets": {"password": {"env": "NOTIFY_SECRET_SMTP"}},
            }],
        },
    }  # fmt: skip


def test_secret_resolved_quoted_into_the_url_only() -> None:
    policy = NotificationPolicy.model_validate(_raw_mail())
    routes, skipped = build_routes({"ops": policy}, {"NOTIFY_SECRET_SMTP": "p@ss/w:rd"})
    assert not skipped
    (target,) = routes[0].targets
    assert target.url == "mailto://gitfirm:p%40ss%2Fw%3Ard@127.0.0.1:25?to=ops@example.org"
    assert "p%40ss" not in repr(target) and "p%40ss" not in repr(routes[0])
    assert "p@ss" not in yaml.safe_dump(policy.model_dump(mode="json"))
    # Unset: the target is skipped with the variable's name.
    routes, skipped = build_routes({"ops": policy}, {})
    assert routes[0].targets == () and "NOTIFY_SECRET_SMTP is not set" in skipped["ops/mail"]
    # The daemon's own secrets are never handed out, whatever their name.
    routes, skipped = build_routes(
        {"ops": policy}, {"NOTIFY_SECRET_SMTP": "x"}, ["NOTIFY_SECRET_SMTP"]
    )
    assert "gitfirm's own secrets" in skipped["ops/mail"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"url": "mailto://u:{pw}@h"}, "needs a secret"),
        ({"url": "json://h", "secrets": {"pw": {"env": "NOTIFY_SECRET_X"}}}, "unused"),
        (
            {"url": "mailto://u:{pw}@h", "secrets": {"pw": {"env": "VYOS_API_KEY_R1"}}},
            "NOTIFY_SECRET_",
        ),
        (
            {"url": "mailto://u:{pw}@h", "secrets": {"pw": {"file": "/run/secrets/x"}}},
            "NOTIFY_SECRET_",
        ),
        ({"url": "mailto://u:{pw}@h", "secrets": {"pw": "hunter2"}}, "literal secret"),
        ({"url": "not a url"}, "Apprise URL"),
    ],
)
def test_policy_validation(target: dict[str, Any], message: str) -> None:
    doc = _raw_mail()
    doc["spec"]["targets"] = [{"name": "t", **target}]
    with pytest.raises(ValidationError, match=message):
        NotificationPolicy.model_validate(doc)


def test_a_whole_url_by_reference() -> None:
    doc = _raw_mail()
    doc["spec"]["targets"] = [
        {"name": "chat", "url": "{hook}", "secrets": {"hook": {"env": "NOTIFY_SECRET_CHAT"}}}
    ]
    policy = NotificationPolicy.model_validate(doc)
    routes, _ = build_routes({"ops": policy}, {"NOTIFY_SECRET_CHAT": "slack://T1/B2/C3"})
    assert routes[0].targets[0].url == "slack://T1/B2/C3"


def test_defaults_are_five_minutes_and_warning() -> None:
    policy = _policy()
    route: Route = build_routes({"ops": policy}, {})[0][0]
    assert route.window == timedelta(minutes=5) and route.filter.severity == "warning"
    assert route.send_resolved
