"""Attack 5: anonymous requests starving webhooks. A flood of bad signatures from one source
address, against the real daemon, must not turn a correctly signed delivery from another
source into a 429: the delivery is accepted and wakes the poller, which applies the commit."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx

from tests.support.attacker import secured_gitops
from tests.support.daemon import wait_for

SECRET = "hook-secret-9e41b7c2"


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


async def test_bad_signature_flood_does_not_block_a_signed_delivery(tmp_path: Path) -> None:
    # Polling once an hour: only the webhook can make the daemon see the new commit.
    settings = {"poll_interval": 3600.0}
    async with secured_gitops(
        tmp_path, environ={"GITFIRM_WEBHOOK_SECRET": SECRET}, settings=settings
    ) as ops:
        url = f"http://127.0.0.1:{ops.port}"
        flood = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=flood, base_url=url) as attacker:
            codes: set[int] = set()
            for i in range(60):
                forged = {"X-Hub-Signature-256": "sha256=" + f"{i:064x}"}
                for forge, header in (("github", forged), ("gitea", {"X-Gitea-Signature": "0"})):
                    response = await attacker.post(
                        f"/webhooks/{forge}", content=b"{}", headers=header
                    )
                    codes.add(response.status_code)
            assert codes == {401, 429}  # the flooding source itself is limited

        sha = ops.merge({"fleet/note.yaml": "# a change only a webhook announces\n"}, "note")
        body = b'{"ref": "refs/heads/main"}'
        async with httpx.AsyncClient(base_url=url) as sender:
            delivery = await sender.post("/webhooks/github", content=body, headers=_signed(body))
        assert delivery.status_code == 202
        await wait_for(lambda: ops.daemon.state.verified == sha, 30, "the announced commit")
        assert SECRET not in ops.logs.getvalue()
        assert "127.0.0.2" in ops.logs.getvalue()  # the refusals name the source
