"""Three ``gitfirm run --shard`` processes, one config repository, one status branch.

A simulated fleet of six routers in three sites (two each, with a redundancy pair in ams
and lon). The config repository is strict: an AccessPolicy pinned at start, every commit
SSH-signed by its admin. One process per site (``--shard 'site in (<site>)'``) watches the
same bare remote and writes to the same ``status`` branch. A signed commit rolls every
site to 1.4.4; each process must act only on its own routers, and the status branch must
end with every router done under its shard's folder, the index naming all three shards,
and no merge commit (the writers regenerate after each lost race). A later commit whose
rollout policy spans two shards is refused by both shards it touches, and nothing moves.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon import Daemon
from reconciler.model.kinds import AccessPolicy
from reconciler.source.policy import policy_fingerprint
from tests.e2e.test_daemon_process import DaemonProcess, _ready, gitfirm_run
from tests.support.daemon import (
    ALWAYS_OPEN,
    config_files,
    free_port,
    make_daemon,
    policy_yaml,
    wait_for,
)
from tests.support.gitrepo import (
    access_policy,
    commit_files,
    git,
    git_env,
    push,
    seeded_remote,
    ssh_key,
)
from tests.support.simulator import KEY_ENV, running_simulator

SITES = ("ams", "fra", "lon")


def _policy(site: str, target: str) -> str:
    doc = yaml.safe_load(policy_yaml(target, window=ALWAYS_OPEN))
    doc["metadata"]["name"] = f"roll-{site}"
    doc["spec"]["selector"] = {"matchLabels": {"gitfirm.io/site": site}}
    return yaml.safe_dump(doc, sort_keys=False)


def _policies(target: str) -> dict[str, str]:
    return {f"policies/{site}.yaml": _policy(site, target) for site in SITES}


def _status(remote: Path, path: str) -> Any:
    try:
        return yaml.safe_load(git(remote, "show", f"status:{path}"))
    except RuntimeError:  # no status branch or no such file yet
        return None


def _phase(remote: Path, site: str, device: str) -> str | None:
    doc = _status(remote, f"shards/{site}/devices/{device}.yaml")
    return doc.get("phase") if isinstance(doc, dict) else None


def _refused(remote: Path, site: str, sha: str) -> bool:
    doc = _status(remote, f"shards/{site}/source.yaml")
    return isinstance(doc, dict) and any(r["revision"] == sha for r in doc.get("refused") or [])


def _acted_on(child: DaemonProcess) -> set[str]:
    return {e["device"] for e in child.events() if e.get("event") == "transition"}


async def test_three_shards_share_one_repository_and_one_status_branch(tmp_path: Path) -> None:
    admin = ssh_key(tmp_path / "keys", "admin")
    policy_text = access_policy([(admin, ["admin"])])
    pin = policy_fingerprint(AccessPolicy.model_validate(yaml.safe_load(policy_text)))
    assert pin is not None
    async with running_simulator(6, releases=["1.4"]) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, ["1.4.3", "1.4.4"])
        docs = list(yaml.safe_load_all(files["fleet/devices.yaml"]))
        site_of = {d["metadata"]["name"]: d["spec"]["site"] for d in docs}
        assert sorted(set(site_of.values())) == list(SITES)
        files |= {"trust/access.yaml": policy_text, **_policies("1.4.3")}
        remote, work = seeded_remote(tmp_path / "git", files)
        git(work, "-c", "gpg.format=ssh", "-c", f"user.signingkey={admin.private}",
            "commit", "--amend", "--quiet", "--no-edit", "-S")  # fmt: skip
        push(work, force=True)
        env = git_env(tmp_path, {KEY_ENV: fleet.api_key, "PYTHONUNBUFFERED": "1"})
        ports = {site: free_port() for site in SITES}

        def args(site: str) -> list[str]:
            return [
                "--repo", str(remote), "--state-dir", str(tmp_path / f"state-{site}"),
                "--listen", f"127.0.0.1:{ports[site]}", "--poll-interval", "0.3",
                "--observe-interval", "3600", "--status-coalesce", "0",
                "--access-pin", pin, "--rollout-timings", json.dumps({"boot_poll": 0.05,
                "stage_poll": 0.05, "window_poll": 0.1}),
                "--shard", f"site in ({site})", "--shard-name", site,
            ]  # fmt: skip

        async with (
            gitfirm_run(args("ams"), env) as ams,
            gitfirm_run(args("fra"), env) as fra,
            gitfirm_run(args("lon"), env) as lon,
        ):
            children = {"ams": ams, "fra": fra, "lon": lon}
            for site in SITES:
                await _ready(ports[site])
            sha = commit_files(work, _policies("1.4.4"), "Roll every site to 1.4.4", key=admin)
            push(work)
            await wait_for(
                lambda: all(fleet.device(n).running == "1.4.4" for n in fleet.names),
                240,
                "every site's rollout",
            )
            await wait_for(
                lambda: all(_phase(remote, site_of[n], n) == "done" for n in fleet.names),
                120,
                "every device done on the status branch",
            )

            # One rollout policy over ams and fra: both shards refuse it, lon applies it.
            across = yaml.safe_load(_policy("ams", "1.4.4"))
            across["spec"]["selector"] = {
                "matchExpressions": [
                    {"key": "gitfirm.io/site", "operator": "In", "values": ["ams", "fra"]}
                ]
            }
            bad = commit_files(
                work,
                {"policies/ams.yaml": yaml.safe_dump(across), "policies/fra.yaml": None},
                "One policy for ams and fra",
                key=admin,
            )
            push(work)
            await wait_for(
                lambda: (
                    _refused(remote, "ams", bad)
                    and _refused(remote, "fra", bad)
                    and (_status(remote, "shards/lon/source.yaml") or {}).get("applied") == bad
                ),
                120,
                "ams and fra refusing the spanning policy, lon applying it",
            )
            for site in SITES:
                assert await children[site].terminate() == 0

    # Each process acted on its own site's routers and no other.
    for site, child in children.items():
        acted = _acted_on(child)
        assert acted == {n for n, s in site_of.items() if s == site}, (site, acted)
        errors = [e for e in child.events() if e.get("event") == "invalid-config"]
        if site in ("ams", "fra"):
            assert any("spans shards" in e["msg"] for e in errors), (site, errors)
    # One upgrade per router, by its own shard; the refused revision moved nothing.
    for name in fleet.names:
        assert fleet.device(name).running == "1.4.4"
        adds = [e for e in fleet.device(name).log if e["event"] == "image-add"]
        assert len(adds) == 1, (name, fleet.device(name).log)
    # The status branch: every device in its shard's folder, an index of all three, no merge.
    tree = git(remote, "ls-tree", "-r", "--name-only", "status").split()
    for name, site in site_of.items():
        assert f"shards/{site}/devices/{name}.yaml" in tree
    assert not [p for p in tree if not p.startswith("shards/") and p != "README.md"], tree
    readme = git(remote, "show", "status:README.md")
    assert "Shards: 3 · devices: 6" in readme
    for site in SITES:
        assert f"| [{site}](shards/{site}/README.md) | 2 |" in readme
    assert git(remote, "rev-list", "--merges", "status").strip() == ""
    # Every transition each process logged reached its own rollout file: none was lost.
    for site in SITES:
        rollout = _status(remote, f"shards/{site}/rollouts/roll-{site}.yaml")
        assert isinstance(rollout, dict), site
        assert rollout["target"]["version"] == "1.4.4"
        assert rollout["revision"] == sha or site == "lon"  # lon applied the later commit
        assert set(rollout["devices"]) == {n for n, s in site_of.items() if s == site}
        assert set(rollout["devices"].values()) == {"done"}


async def test_shards_fetch_once_from_a_peer_site_and_serve_under_their_caps(
    tmp_path: Path,
) -> None:
    """Two shard daemons share the image-token key: ams fetches 1.4.4 from the upstream and
    serves its routers under its serve cap; then the upstream disappears, and fra pulls the
    image from ams's image server, verifies it again, and rolls out its own routers."""
    async with running_simulator(4, releases=["1.4"]) as fleet:
        files, names = config_files(tmp_path / "upstream", fleet, ["1.4.3", "1.4.4"])
        image = names["1.4.4"]
        files |= {f"policies/{site}.yaml": _policy(site, "1.4.4") for site in ("ams", "fra")}
        remote, _ = seeded_remote(tmp_path / "git", files)
        site_of = {d.name: d.spec.site for d in fleet.device_docs()}
        env = {KEY_ENV: fleet.api_key, "GITFIRM_IMAGE_TOKEN_KEY": "shared-site-key-" * 2}
        ports = {"ams": free_port(), "fra": free_port()}
        caps = {"serve_bps": 4_000_000, "fetch_bps": 4_000_000, "fetch_concurrency": 1}

        def shard(site: str, **images: Any) -> Daemon:
            return make_daemon(
                remote, tmp_path / f"state-{site}", ports[site], env, io.StringIO(),
                shard=f"site in ({site})", shard_name=site, images=images,
                poll_interval=0.2, status_coalesce=0,
            )  # fmt: skip

        def upgraded(site: str) -> bool:
            mine = [n for n, s in site_of.items() if s == site]
            return all(fleet.device(n).running == "1.4.4" for n in mine)

        ams = shard("ams", **caps)
        stop_ams = asyncio.Event()
        ams_task = asyncio.create_task(ams.run(stop_ams))
        try:
            await wait_for(lambda: upgraded("ams"), 120, "ams's rollout")
            size = ams.state.desired.images[image].spec.size  # type: ignore[union-attr]
            assert ams.site_images.fetch_throttle is not None
            assert ams.site_images.fetch_throttle.consumed == size  # once, for two routers
            served = ams.distribution.counters.bytes_served
            assert served >= 2 * size
            assert ams.distribution.global_throttle is not None
            assert ams.distribution.global_throttle.consumed == served
            assert not upgraded("fra")  # ams never touched fra's routers

            for iso in (tmp_path / "upstream").glob("*1.4.4*"):
                iso.unlink()  # from now on only ams's image server has 1.4.4
            peer = f"http://127.0.0.1:{ports['ams']}"
            fra = shard("fra", peers=[peer], **caps)
            stop_fra = asyncio.Event()
            fra_task = asyncio.create_task(fra.run(stop_fra))
            try:
                await wait_for(lambda: upgraded("fra"), 120, "fra's rollout from ams's image")
                assert fra.site_images.from_peer == {image: peer}
                assert fra.site_images.fetch_throttle is not None
                assert fra.site_images.fetch_throttle.consumed == size
                stored = fra.store.get(fra.state.desired.images[image].spec.sha256)  # type: ignore[union-attr]
                assert stored is not None
            finally:
                stop_fra.set()
                await asyncio.wait_for(fra_task, 60)
        finally:
            stop_ams.set()
            await asyncio.wait_for(ams_task, 60)
    for name in fleet.names:
        adds = [e for e in fleet.device(name).log if e["event"] == "image-add"]
        assert len(adds) == 1, (name, fleet.device(name).log)


async def test_a_shard_refuses_the_spanning_revision_it_would_restore_at_start(
    tmp_path: Path,
) -> None:
    """A state dir whose verified revision has one policy over every site (fine unsharded)
    is started as shard ams: the restored revision is refused like a new one, nothing is in
    force, and the refusal is in the shard's status."""
    async with running_simulator(4, releases=["1.4"]) as fleet:
        files, _ = config_files(tmp_path / "upstream", fleet, ["1.4.3", "1.4.4"])
        files["policies/fleet.yaml"] = policy_yaml("1.4.3", window=ALWAYS_OPEN)
        remote, _ = seeded_remote(tmp_path / "git", files)
        env = {KEY_ENV: fleet.api_key}
        state = tmp_path / "state"

        async def run(daemon: Daemon, until: Any, what: str) -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(daemon.run(stop))
            try:
                await wait_for(lambda: until() or task.done(), 60, what)
            finally:
                stop.set()
                await asyncio.wait_for(task, 60)

        whole = make_daemon(remote, state, free_port(), env, io.StringIO(), poll_interval=0.2)
        await run(whole, lambda: whole.state.desired is not None, "the unsharded start")
        verified = whole.state.verified
        assert verified is not None

        ams = make_daemon(
            remote, state, free_port(), env, io.StringIO(), poll_interval=0.2,
            status_coalesce=0, shard="site in (ams)", shard_name="ams",
        )  # fmt: skip
        await run(
            ams,
            lambda: _refused(remote, "ams", verified),
            "the shard refusing its restored revision",
        )
        assert ams.state.desired is None
        assert any("spans shards" in r.reason for r in ams.book.refusals)
        acted = [p for n in fleet.names for p in fleet.device(n).calls if p.startswith("/image")]
        assert acted == []
