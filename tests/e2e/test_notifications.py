"""Notifications through the real daemon, simulator, git and Apprise.

A halted rollout sends a real email (Apprise ``mailto://`` with a password given by
reference, to a local aiosmtpd server that requires it) and a real JSON POST (``json://`` to
a local HTTP receiver); resuming sends the resolved notices. A target that refuses every
connection is retried and counted, and the rollout never waits for it. The password reaches
the SMTP server and nothing else: not the status branch, the logs, the state dir's alert
record, the metrics nor the dashboard summary.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from email import message_from_string
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from prometheus_client.parser import text_string_to_metric_families

from reconciler.alerts.center import AlertCenter
from reconciler.alerts.notify import Notifier, build_routes
from reconciler.clock import FakeClock
from reconciler.model.kinds import NotificationPolicy
from tests.support.daemon import free_port, policy_yaml, running_gitops, wait_for
from tests.support.gitrepo import git

PASSWORD = "smtp-pa55/w:rd"  # quoted into the URL: '/' and ':' must survive
OPERATOR_TOKEN = "operator-token-5b1f"


class Mailbox:
    """An SMTP server on 127.0.0.1 that requires AUTH with :data:`PASSWORD`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.logins: list[tuple[bytes, bool]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        text = content.decode() if isinstance(content, bytes) else str(content)
        self.messages.append(message_from_string(text))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
        self.logins.append((data.login if isinstance(data, LoginPassword) else b"", ok))
        return AuthResult(success=ok)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_required=True,
        auth_require_tls=False,  # loopback only; the test checks the password arrives
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@contextlib.contextmanager
def json_receiver() -> Iterator[tuple[list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _policy(smtp: int, hook: int, closed: int) -> str:
    doc = {
        "apiVersion": "gitfirm.io/v1",
        "kind": "NotificationPolicy",
        "metadata": {"name": "oncall"},
        "spec": {
            "filter": {"severity": "critical", "events": ["rollout-halted"]},
            "targets": [
                {
                    "name": "mail",
                    "url": f"mailto://gitfirm:{{password}}@127.0.0.1:{smtp}"
                    "?to=ops@example.org&from=gitfirm@example.org&mode=insecure",
                    "secrets": {"password": {"env": "NOTIFY_SECRET_SMTP"}},
                },
                {"name": "hook", "url": f"json://127.0.0.1:{hook}/alerts"},
                {"name": "broken", "url": f"json://127.0.0.1:{closed}/nobody"},
            ],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _samples(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels.get("event", "")] = s.value
    return out


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_halt_mails_and_posts_resolves_and_a_dead_target_never_blocks(
    tmp_path: Path,
) -> None:
    env = {"NOTIFY_SECRET_SMTP": PASSWORD, "GITFIRM_OPERATOR_TOKEN": OPERATOR_TOKEN}
    with smtp_server() as (box, smtp), json_receiver() as (posts, hook):
        files = {"notify/oncall.yaml": _policy(smtp, hook, free_port())}
        async with running_gitops(tmp_path, devices=3, environ=env, extra_files=files) as ops:
            for name in ops.fleet.names:
                ops.fleet.device(name).faults.disk_full = True
            ops.merge({"policies/fleet.yaml": policy_yaml("1.4.4")}, "Roll the fleet to 1.4.4")
            halted = "[gitfirm] CRITICAL: rollout-halted fleet"
            await wait_for(lambda: halted in box.subjects(), 120, "the halt by email")
            mail = box.messages[box.subjects().index(halted)]
            assert mail["To"] == "ops@example.org"
            body = mail.get_payload(0).get_payload(decode=True).decode()  # type: ignore[union-attr]
            assert "rollout fleet halted" in body and "policy: fleet" in body
            assert box.logins and all(ok for _, ok in box.logins)  # the password arrived
            await wait_for(lambda: any(p.get("title") == halted for p in posts), 30, "the POST")
            assert {p["type"] for p in posts} <= {"failure", "info", "warning", "success"}

            # The dead target is still being retried (4 attempts, backoff 1+2+4 s): resume now;
            # the rollout goes on without waiting for it.
            for name in ops.fleet.names:
                ops.fleet.device(name).faults.disk_full = False
            retry = policy_yaml("1.4.4").replace("selector:", "retryToken: '1'\n  selector:")
            ops.merge({"policies/fleet.yaml": retry}, "Resume the fleet rollout")
            await wait_for(lambda: set(ops.versions().values()) == {"1.4.4"}, 120, "resume")
            resolved = "[gitfirm] RESOLVED: rollout-halted fleet"
            await wait_for(lambda: resolved in box.subjects(), 120, "the resolved email")
            assert box.subjects().count(halted) == 1  # one notice per halt, no repeats
            await wait_for(lambda: any(p.get("title") == resolved for p in posts), 30, "POST")
            await wait_for(lambda: ops.daemon.notifier.failed >= 2, 60, "both given up")
            retries = ops.logs.getvalue().count("notification to oncall/broken failed")
            assert retries == 2 * 4, retries  # every attempt logged, halt and resolved

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops.port}") as http:
                auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
                metrics = (await http.get("/metrics", headers=auth)).text
                summary = (await http.get("/", headers=auth)).text
            assert _samples(metrics, "gitfirm_notifications_failed_total")["rollout-halted"] == 2
            sent = _samples(metrics, "gitfirm_notifications_sent_total")
            assert sent["rollout-halted"] == 4 and sent["device-failed"] == 0  # 2 x (mail, hook)
            assert _samples(metrics, "gitfirm_notifications_dropped_total") == {"": 0}

            await ops.daemon.writer.flush()
            tree = git(ops.remote, "ls-tree", "-r", "--name-only", "status").split()
            texts = [git(ops.remote, "show", f"status:{f}") for f in tree]
            texts += [ops.status_log("--format=%B"), ops.logs.getvalue(), metrics, summary]
            texts.append((tmp_path / "state" / "alerts.json").read_text())
            for text in texts:
                assert PASSWORD not in text
                assert "pa55%2Fw" not in text  # nor as quoted into the URL
            assert "alerts.yaml" in tree


async def test_the_same_alert_is_posted_once_per_window_then_resolved(tmp_path: Path) -> None:
    """De-duplication and the resolved notice over real Apprise (``json://``) to a local
    receiver: the alert centre raises one alert three times within the 5-minute window, once
    more with a new message, and once after the window; then it clears."""
    with json_receiver() as (posts, hook):
        clock = FakeClock(autojump=True)
        center = AlertCenter(tmp_path / "alerts.json", clock)
        notifier = Notifier(clock)
        doc = {
            "apiVersion": "gitfirm.io/v1",
            "kind": "NotificationPolicy",
            "metadata": {"name": "oncall"},
            "spec": {"targets": [{"name": "hook", "url": f"json://127.0.0.1:{hook}/alerts"}]},
        }
        routes, skipped = build_routes({"oncall": NotificationPolicy.model_validate(doc)}, {})
        assert not skipped
        notifier.configure(routes)
        center.listeners.append(notifier.alert_changed)

        def halt(message: str) -> None:
            center.raise_alert("rollout-halted", "fleet", "critical", message, policy="fleet")

        for _ in range(3):
            halt("rollout fleet halted: 1 failure")
        await notifier.drain()
        halt("rollout fleet halted: 2 failures")  # a new message is news
        clock.advance(301)
        halt("rollout fleet halted: 1 failure")  # the window has passed
        center.resolve("rollout-halted", "fleet")
        await notifier.drain()
    titles = [p.get("title") for p in posts]
    halted, resolved = (
        "[gitfirm] CRITICAL: rollout-halted fleet",
        "[gitfirm] RESOLVED: rollout-halted fleet",
    )
    assert titles == [halted, halted, halted, resolved], posts
    assert "2 failures" in posts[1]["message"]
    assert notifier.sent == 4 and notifier.failed == 0
