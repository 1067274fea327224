"""The daemon: wires one reconcile pass together and runs it forever.

One pass is an ordered list of small steps (Flux's reconciler shape)::

    fetch -> verify commits -> load desired -> fetch + verify images -> observe -> plan
          -> start or continue rollouts -> report

Each step returns a value or raises a typed error; :meth:`Daemon.reconcile` records the
first failure as the pass's outcome, keeps the last good desired revision in force, and
always submits a status snapshot. Rollouts run as background tasks, one per policy, and
report every transition to the status branch as it happens. Only this module and
``cli.py`` know every stage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets as pysecrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from reconciler.clock import Clock, SystemClock
from reconciler.devices.client import VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.fleet import device_endpoint
from reconciler.devices.observe import observe
from reconciler.devices.transport import make_http_client
from reconciler.errors import (
    Action,
    ConfigError,
    ErrorSummary,
    GitfirmError,
    RolloutError,
    summarize,
)
from reconciler.images.ops import check_stored, fetch_images
from reconciler.images.sbom import SbomCache
from reconciler.images.serve import DistributionServer
from reconciler.images.store import ImageStore
from reconciler.images.tokens import TokenSigner
from reconciler.logs import JsonFormatter
from reconciler.model.facts import DeviceFacts
from reconciler.model.loader import load_repository
from reconciler.model.state import DesiredState
from reconciler.planning.plan import CHANGE_ACTIONS, Plan
from reconciler.planning.planner import plan as make_plan
from reconciler.planning.progress import Phase
from reconciler.report.gitstore import GitIdentity
from reconciler.report.metrics import Metrics
from reconciler.report.snapshot import StatusSnapshot
from reconciler.report.writer import StatusWriter, WriterSettings
from reconciler.rollout.backup import BackupKey, BackupStore
from reconciler.rollout.engine import RolloutEngine, RolloutResult
from reconciler.rollout.journal import Journal
from reconciler.rollout.marks import HighWaterMarks
from reconciler.rollout.model import RolloutSettings, Transition
from reconciler.rollout.progress import rollout_progress
from reconciler.secrets import SecretPolicy
from reconciler.source.git import Mirror
from reconciler.source.poller import Poller, PollSettings
from reconciler.source.verify import Verifier
from reconciler.source.watch import wake_on_changes
from reconciler.source.webhooks import FORGES, WebhookSecrets, webhook_routes
from reconciler.statusbook import StatusBook
from reconciler.surfaces import HttpServers, OperatorAccess, Surfaces, build_surfaces

__all__ = ["Daemon", "DaemonSettings", "PassOutcome"]

log = logging.getLogger("gitfirm.daemon")


class DaemonSettings(BaseModel):
    """Everything ``gitfirm run`` is told. Each default is the one a small fleet wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="Config repository: a URL (ssh, https, file) or a path")
    branch: str = Field(default="main", description="The branch that holds desired state")
    status_branch: str = Field(
        default="status", description="Where observations and actions are committed"
    )
    state_dir: Path = Field(description="Mirror, journal, image store and backups")
    listen: str = Field(default="127.0.0.1:8080", description="host:port of the one HTTP port")
    public_url: str | None = Field(
        default=None,
        description="Base URL devices reach the image server at; defaults to http://<listen>",
    )
    poll_interval: float = Field(
        default=60.0, gt=0, description="Seconds between fetches; polling is the source of truth"
    )
    observe_interval: float = Field(
        default=300.0, gt=0, description="Seconds between observations of an idle fleet"
    )
    watch_local: bool = Field(
        default=True,
        description="When repo is a local path, watch it and fetch at once on a change "
        "(development); polling stays the source of truth",
    )
    status_coalesce: float = Field(
        default=10.0, ge=0, description="At most one status commit per this many seconds"
    )
    access_pin: str | None = Field(
        default=None, description="Fingerprint of the first trusted AccessPolicy"
    )
    webhook_secret_env: str = Field(
        default="GITFIRM_WEBHOOK_SECRET",
        description="Env var of the shared webhook secret (per forge: <VAR>_GITHUB etc.)",
    )
    backup_key_env: str = Field(
        default="GITFIRM_BACKUP_KEY", description="Env var of the config-backup AES key"
    )
    backup_keep: int = Field(default=30, ge=2, description="Config backups kept per device")
    image_url_ttl: float = Field(
        default=15 * 60.0,
        gt=0,
        description="Seconds a device's image URL stays valid at most; it is withdrawn "
        "sooner, when the device's stage step ends",
    )
    bot_name: str = "gitfirm"
    bot_email: str = "gitfirm@localhost"
    status_signing_key: Path | None = Field(
        default=None, description="SSH private key that signs status commits"
    )
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    secrets: SecretPolicy = Field(
        default_factory=SecretPolicy,
        description="Which env vars and files a Device's apiKey may name (never set in Git)",
    )
    operator_token_env: str = Field(
        default="GITFIRM_OPERATOR_TOKEN",
        description="Env var of the bearer token that / and /metrics require",
    )
    operator_listen: str | None = Field(
        default=None, description="host:port serving / and /metrics instead of the device port"
    )

    @property
    def base_url(self) -> str:
        """Where devices fetch images from."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")


@dataclass
class PassOutcome:
    """What one reconcile pass did; ``error`` is the first step that failed."""

    revision: str | None
    error: ErrorSummary | None = None


@dataclass
class _Rollout:
    revision: str
    stop: asyncio.Event
    task: asyncio.Task[RolloutResult]


@dataclass
class _State:
    desired: DesiredState | None = None
    verified: str | None = None
    facts: dict[str, DeviceFacts] = field(default_factory=dict)
    plan: Plan | None = None
    refused_images: dict[str, str] = field(default_factory=dict)
    last_error: ErrorSummary | None = None
    passed: str | None = None
    """The desired revision in force when the last pass ended (rollouts started by then)."""


class Daemon:
    """One gitfirm instance: the only writer of its status branch."""

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
        formatter: JsonFormatter | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.state = _State()
        self.metrics = Metrics()
        self._formatter = formatter
        self._http = http
        self._rollouts: dict[str, _Rollout] = {}
        self._ready = False
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.webhook_secrets = self._webhook_secrets()
        self._secrets: set[str] = set(self.webhook_secrets.values())
        self.secret_policy = self._secret_policy()
        self._operator_token = self.environ.get(settings.operator_token_env) or None
        self._remember(self._operator_token or "")
        self._key_refusals: dict[str, str] = {}
        self.mirror = Mirror(settings.repo, state_dir / "source", settings.branch)
        self.poller = Poller(
            self.mirror,
            self.clock,
            PollSettings(interval=settings.poll_interval),
            secrets=self.secrets,
        )
        local = Path(settings.repo)
        self._watch = local if settings.watch_local and local.is_dir() else None
        self.store = ImageStore(state_dir / "images", self.clock)
        self.distribution = DistributionServer(
            self.store, TokenSigner(self._token_key(), clock=self.clock), clock=self.clock
        )
        self.journal = Journal(state_dir / "journal.sqlite3")
        self.marks = HighWaterMarks(state_dir / "journal.sqlite3")
        self.sboms = SbomCache()
        self.backups = BackupStore(
            state_dir / "backups", self._backup_key(), keep=settings.backup_keep
        )
        self.book = StatusBook()
        self.writer = StatusWriter(
            WriterSettings(
                remote=self.mirror.url,
                workdir=state_dir / "status",
                branch=settings.status_branch,
                identity=GitIdentity(
                    settings.bot_name, settings.bot_email, settings.status_signing_key
                ),
                coalesce_seconds=settings.status_coalesce,
            ),
            clock=self.clock,
            secrets=self.secrets,
        )
        self._endpoints: dict[str, Endpoint] = {}
        self.listeners: list[Callable[[Transition], None]] = []
        """Called with every device transition (the demo's live view, tests, benches)."""
        self._images_checked: set[str] = set()
        self.engine = RolloutEngine(
            journal=self.journal,
            backups=self.backups,
            clients=self._client,
            image_url=self._image_url,
            clock=self.clock,
            settings=settings.rollout,
            events=self._on_transition,
            secrets=self.secrets,
            marks=self.marks,
        )

    # --- secrets ------------------------------------------------------------------------

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value this process holds, for the sanitizer."""
        return tuple(sorted(self._secrets))

    def _remember(self, *values: str) -> None:
        self._secrets.update(v for v in values if v)
        if self._formatter is not None:
            self._formatter.add_secrets(values)

    def _webhook_secrets(self) -> WebhookSecrets:
        env = self.settings.webhook_secret_env
        shared = self.environ.get(env)
        return WebhookSecrets(
            github=self.environ.get(f"{env}_GITHUB", shared),
            gitlab=self.environ.get(f"{env}_GITLAB", shared),
            gitea=self.environ.get(f"{env}_GITEA", shared),
        )

    def _secret_policy(self) -> SecretPolicy:
        # The daemon's own secrets are never a device's API key, whatever the allowlist says.
        s = self.settings
        hook = s.webhook_secret_env
        env = [hook, *(f"{hook}_{forge.upper()}" for forge in FORGES)]
        env += [s.backup_key_env, s.operator_token_env]
        paths = [s.state_dir, Path.home() / ".ssh", Path.home() / ".git-credentials"]
        paths += [s.status_signing_key] if s.status_signing_key else []
        return s.secrets.deny(env=env, paths=paths)

    def _secret_file(self, name: str, make: bytes) -> bytes:
        # Keys that only this instance needs live in its state dir, readable by it alone.
        path = self.settings.state_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(make)
        return path.read_bytes()

    def _token_key(self) -> bytes:
        return self._secret_file("token.key", pysecrets.token_bytes(32))

    def _backup_key(self) -> BackupKey:
        text = self.environ.get(self.settings.backup_key_env)
        if text:
            self._remember(text)
            return BackupKey.from_text(text)
        fresh = base64.b64encode(pysecrets.token_bytes(32))
        made = self._secret_file("backup.key", fresh).decode()
        log.warning(
            "no %s set: config backups use a key generated in the state dir",
            self.settings.backup_key_env,
            extra={"event": "backup-key-generated"},
        )
        return BackupKey.from_text(made.strip())

    # --- wiring for the rollout engine ---------------------------------------------------

    def _client(self, name: str) -> VyOSClient:
        assert self._http is not None
        return VyOSClient(self._endpoints[name], self._http, clock=self.clock)

    def _image_url(self, device: str, image: str) -> str:
        desired = self.state.desired
        if desired is None or image not in desired.images:
            raise GitfirmError(f"image {image!r} is not in desired state")
        checked = check_stored(desired, self.store, [image]).get(image)
        if isinstance(checked, GitfirmError):  # trust changed since the plan: no URL
            raise RolloutError(f"image refused: {summarize(checked, self.secrets).message}")
        sha = desired.images[image].spec.sha256
        ttl = timedelta(seconds=self.settings.image_url_ttl)
        return self.distribution.url_for(self.settings.base_url, device, sha, ttl)

    def _on_transition(self, event: Transition) -> None:
        if event.to_phase != Phase.STAGE:  # image URLs live only during the stage step
            self.distribution.revoke(event.device)
        self.book.transition(event)
        self.metrics.transition(event.policy, event.to_phase)
        log.info(
            "%s: %s -> %s",
            event.device,
            event.from_phase,
            event.to_phase,
            extra={
                "event": "transition",
                "device": event.device,
                "rollout": event.policy,
                "revision": event.revision,
                "phase": f"{event.from_phase}->{event.to_phase}",
            },
        )
        for listener in self.listeners:
            listener(event)
        self._submit()

    # --- one pass -------------------------------------------------------------------------

    async def reconcile(self, head: str | None = None) -> PassOutcome:
        """One pass over the steps; never raises for a refusal, a bad config or a device."""
        outcome = PassOutcome(revision=head)
        try:
            if head is not None and head != self.state.verified:
                await self._apply(head)
            if self.state.desired is not None:
                await self._observe()
                await self._roll(await self._plan())
            self.state.last_error = None
        except GitfirmError as exc:
            outcome.error = summarize(exc, self.secrets)
            self.state.last_error = outcome.error
            log.error(
                "pass failed: %s",
                outcome.error.message,
                extra={"event": "pass-failed", "reason": outcome.error.reason, "revision": head},
            )
        finally:
            self.state.passed = self.state.verified
            self.metrics.pass_done(outcome.error is None)
            self._submit()
        return outcome

    async def _apply(self, head: str) -> None:
        verifier = Verifier(self.mirror.repo, pinned=self.settings.access_pin)
        verdict = await asyncio.to_thread(verifier.verify, head, self.state.verified)
        if not verdict.ok:
            self.book.refusal(head, f"commit refused ({verdict.reason}): {verdict.message}")
            verdict.raise_if_refused()
        keep = [self.state.verified] if self.state.verified else []
        tree = await asyncio.to_thread(self.mirror.checkout, head, keep=keep)
        result = await asyncio.to_thread(load_repository, tree, revision=head)
        if result.state is None:
            first = result.errors[0] if result.errors else ConfigError("invalid desired state")
            self.book.refusal(head, f"invalid desired state: {len(result.errors)} error(s)")
            for err in result.errors:
                log.error(str(err), extra={"event": "invalid-config", "revision": head})
            raise first
        self.state.verified = head
        self.state.desired = result.state
        self.book.desired(head)
        self._endpoints = self._resolve_endpoints(result.state)
        self._images_checked.clear()
        self.state.refused_images = {}
        log.info("applied desired revision", extra={"event": "applied", "revision": head})

    def _resolve_endpoints(self, desired: DesiredState) -> dict[str, Endpoint]:
        out: dict[str, Endpoint] = {}
        self._key_refusals = {}
        for name, device in desired.devices.items():
            try:
                endpoint = device_endpoint(device, environ=self.environ, policy=self.secret_policy)
            except ConfigError as exc:
                self._key_refusals[name] = f"credentials: {exc}"
                log.error(str(exc), extra={"event": "credentials", "device": name})
                continue
            self._remember(endpoint.api_key)
            out[name] = endpoint
        return out

    async def _fetch_images(self, desired: DesiredState, plan: Plan) -> None:
        # Every image on a planned path is checked against the trust in force at every
        # plan (stored ones: signature again, no re-hash) and fetched at most once per
        # revision, before any device may see a URL for it.
        planned = sorted({h.image for d in plan.devices for h in d.path})
        results: dict[str, object] = dict(check_stored(desired, self.store, planned))
        wanted = sorted(set(planned) - set(results) - self._images_checked)
        if wanted:
            results.update(await fetch_images(desired, self.store, wanted, clock=self.clock))
        self._images_checked.update(wanted)
        refused = dict(self.state.refused_images)
        for name, result in results.items():
            refused.pop(name, None)
            if isinstance(result, GitfirmError):
                refused[name] = summarize(result, self.secrets).message
                log.error(
                    "image refused: %s",
                    refused[name],
                    extra={"event": "image-refused", "image": name, "reason": result.reason},
                )
        self.state.refused_images = refused
        self.book.refused_images(refused)

    async def _observe(self) -> None:
        assert self._http is not None
        endpoints = list(self._endpoints.values())
        facts = await observe(endpoints, self._http, clock=self.clock)
        desired = self.state.desired
        assert desired is not None
        for name in desired.devices:
            if name not in facts:
                facts[name] = DeviceFacts(
                    name=name,
                    reachable=False,
                    observed_at=self.clock.now(),
                    error=self._key_refusals.get(name, "API key could not be resolved"),
                )
        self.state.facts = facts
        self.book.observed(facts, desired)
        self.metrics.observed(facts)

    async def _plan(self) -> Plan:
        """Plan from the newest facts and journal; fetch and verify the images it needs."""
        desired = self.state.desired
        assert desired is not None
        progress = rollout_progress(self.journal, desired.rollout_policies)
        sboms = await self.sboms.refresh(desired)
        # Pure but CPU-bound on big fleets: keep the event loop (webhooks, probes) free.
        plan = await asyncio.to_thread(
            make_plan,
            desired,
            self.state.facts,
            progress,
            self.clock.now(),
            marks=self.marks.snapshot(),
            sboms=sboms,
        )
        self.state.plan = plan
        self.book.planned(plan, progress)
        await self._fetch_images(desired, plan)
        return plan

    async def _roll(self, plan: Plan) -> None:
        """Start a rollout task for each policy with work and none running at this revision."""
        desired = self.state.desired
        assert desired is not None
        for name, policy in sorted(desired.rollout_policies.items()):
            running = self._rollouts.get(name)
            if running is not None and not running.task.done():
                if running.revision == plan.revision:
                    continue
                running.stop.set()  # in-flight devices finish their step; the rest re-plan
                await running.task
            if not _has_work(plan, name):
                continue
            blocked = _refused_targets(plan, name, self.state.refused_images)
            if blocked:
                self.book.policy_blocked(name, f"image refused: {blocked}")
                continue
            stop = asyncio.Event()
            task = asyncio.create_task(self._run_rollout(policy.name, plan, stop))
            self._rollouts[name] = _Rollout(plan.revision, stop, task)

    async def _run_rollout(self, name: str, plan: Plan, stop: asyncio.Event) -> RolloutResult:
        desired = self.state.desired
        assert desired is not None
        policy = desired.rollout_policies[name]
        log.info("rollout started", extra={"event": "rollout-start", "rollout": name})
        result = await self.engine.run(policy, plan, stop=stop)
        self.book.rollout_result(result)
        # Status shows what the devices run now and where the rollout ended, not the state
        # before its last step. Observe and re-plan only: starting rollouts stays with the
        # passes, which may be waiting for this very task to stop.
        try:
            await self._observe()
            await self._plan()
        except GitfirmError as exc:
            summary = summarize(exc, self.secrets)
            log.warning(
                "refresh after the rollout failed: %s",
                summary.message,
                extra={"event": "refresh-failed", "rollout": name, "reason": summary.reason},
            )
        await self.writer.record_outcome(self.book.rollout_status(name))
        log.info(
            "rollout ended: %s",
            "halted" if result.halted else "complete" if result.complete else "stopped",
            extra={"event": "rollout-end", "rollout": name, "revision": plan.revision},
        )
        self._submit()
        return result

    def rollouts_running(self) -> list[str]:
        """Policies whose rollout task is still going (waiting for a window included)."""
        return sorted(n for n, r in self._rollouts.items() if not r.task.done())

    def _submit(self) -> None:
        snapshot: StatusSnapshot = self.book.snapshot(self.state.desired, self.secrets)
        self.writer.submit(snapshot)

    # --- HTTP surface -----------------------------------------------------------------------

    def app(self) -> Starlette:
        """The device port: health, readiness, webhooks, image distribution (and the operator
        endpoints unless they have their own listener)."""
        return self.surfaces().device

    def surfaces(self) -> Surfaces:
        """Device and operator apps (see :mod:`reconciler.surfaces`)."""

        async def healthz(_: Request) -> Response:
            return PlainTextResponse("ok\n")

        async def readyz(_: Request) -> Response:
            if self._ready and self.state.desired is not None:
                return PlainTextResponse("ready\n")
            return PlainTextResponse("not ready: no desired revision applied yet\n", 503)

        async def metrics(_: Request) -> Response:
            body, content_type = self.metrics.render(self.distribution.counters)
            return Response(body, media_type=content_type)

        async def dashboard(_: Request) -> Response:
            return JSONResponse(self.book.summary(self.state.desired, self.secrets))

        return build_surfaces(
            probes=[Route("/healthz", healthz), Route("/readyz", readyz)],
            operator=[Route("/metrics", metrics), Route("/", dashboard)],
            devices=[
                *webhook_routes(self.webhook_secrets, self.poller.wake, self.clock),
                Mount("/", app=self.distribution.app),
            ],
            access=OperatorAccess(
                self.settings.operator_token_env,
                token=self._operator_token,
                listen=self.settings.operator_listen,
            ),
        )

    # --- forever ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve and reconcile until ``stop`` is set (SIGTERM in ``gitfirm run``)."""
        stop = stop or asyncio.Event()
        server = HttpServers(self.surfaces(), self.settings.listen, self.settings.operator_listen)
        own_http = self._http is None
        if own_http:
            self._http = make_http_client()
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.writer.open()
            tasks = [
                asyncio.create_task(server.serve()),
                asyncio.create_task(self.writer.run()),
                asyncio.create_task(self._source_loop()),
                asyncio.create_task(self._observe_loop()),
            ]
            if self._watch is not None:
                tasks.append(asyncio.create_task(wake_on_changes(self._watch, self.poller.wake)))
            self._ready = True
            await stop.wait()
        finally:
            self._ready = False
            await self._shutdown(server, tasks, own_http)

    async def _source_loop(self) -> None:
        refused: tuple[str, str | None] | None = None
        async for revision in self.poller.revisions():
            if (revision.sha, self.state.verified) != refused:
                log.info("new revision", extra={"event": "revision", "revision": revision.sha})
                outcome = await self.reconcile(revision.sha)
                error = outcome.error
                if error is not None and error.action is Action.HALT:
                    # The same head over the same verified revision gets the same verdict.
                    refused = (revision.sha, self.state.verified)
            if self.state.verified != revision.sha:
                # Not applied: compare the next head with the revision in force, not with
                # this one, or a re-signed commit with the same tree would look unchanged.
                self.poller.last = self.state.verified

    async def _observe_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.observe_interval)
            if self.state.desired is not None:
                await self.reconcile(None)

    async def _shutdown(
        self, server: HttpServers, tasks: list[asyncio.Task[Any]], own_http: bool
    ) -> None:
        # SIGTERM: stop starting devices; in-flight ones park at their next step boundary,
        # and the journal lets the next process resume them.
        for rollout in self._rollouts.values():
            rollout.stop.set()
        pending = [r.task for r in self._rollouts.values() if not r.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=60)
        for rollout in self._rollouts.values():
            rollout.task.cancel()
        server.should_exit = True
        # tasks: the server, the status writer, then the loops that make new work.
        writer = tasks[1] if len(tasks) > 1 else None
        for task in tasks[2:]:
            task.cancel()
        # The last state goes to Git before the writer stops, even if a write was running.
        self._submit()
        with contextlib.suppress(GitfirmError):
            await self.writer.drain()
        if writer is not None:
            writer.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self.journal.close()
        self.marks.close()


def _has_work(plan: Plan, policy: str) -> bool:
    # Suspended, blocked and finished devices give the engine nothing to do.
    return any(d.policy == policy and d.action in CHANGE_ACTIONS for d in plan.devices)


def _refused_targets(plan: Plan, policy: str, refused: Mapping[str, str]) -> str:
    hops = {h.image for d in plan.devices if d.policy == policy for h in d.path}
    return ", ".join(f"{name} ({refused[name]})" for name in sorted(hops & set(refused)))
