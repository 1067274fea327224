"""The daemon: wires one reconcile pass together and runs it forever.

One pass is an ordered list of small steps (Flux's reconciler shape)::

    fetch -> verify commits -> load desired -> control -> observe -> plan
          -> fetch + verify images -> offer rollouts -> report

Each step returns a value or raises; :meth:`Daemon.reconcile` records the first failure
as the pass's outcome (any exception while applying a revision refuses that revision),
keeps the last good desired revision in force, and always submits a status snapshot.

The daemon wires and supervises; it owns no rollout. Control comes first: a verified
revision's suspends reach the :class:`~reconciler.rollout.scheduler.Scheduler` before
anything is observed or downloaded for it. The scheduler owns every rollout task (single
flight per policy, device locks). Every background loop runs under a
:class:`~reconciler.supervise.Supervisor` that restarts it with backoff, and ``/healthz``
says which is down. Only this module and ``cli.py`` know every stage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import secrets as pysecrets
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from reconciler import __version__
from reconciler.alerts.center import AlertCenter
from reconciler.alerts.feed import AlertFeed, FeedSettings
from reconciler.alerts.model import Alert
from reconciler.alerts.notify import Notifier, build_routes, secret_values
from reconciler.clock import Clock, SystemClock
from reconciler.dashboard.board import Backup, Board, ImageRow, SourceState, StoreCapacity
from reconciler.dashboard.live import Changes
from reconciler.dashboard.routes import LOGIN, Dashboard
from reconciler.devices.client import VyOSClient
from reconciler.devices.endpoint import Endpoint
from reconciler.devices.fleet import device_endpoint
from reconciler.devices.observe import observe
from reconciler.devices.transport import make_http_client
from reconciler.discovery import (
    DEFAULT_KEY_ENV,
    discovery_proposals,
    expand_targets,
    mark_declared,
    scan,
)
from reconciler.errors import (
    Action,
    CommitRefused,
    ConfigError,
    ErrorSummary,
    GitfirmError,
    ImageRefused,
    RolloutError,
    summarize,
)
from reconciler.forge import Forge, ForgeConfig, make_forge, read_token
from reconciler.forge.protocol import PullRequests
from reconciler.forge.statuses import StatusPoster, StatusUpdate, rollout_statuses
from reconciler.gitbot import GitIdentity
from reconciler.images.feeds import read_feed
from reconciler.images.fetch import FetchSettings
from reconciler.images.intake import take_build
from reconciler.images.ops import check_stored
from reconciler.images.sbom import SbomCache
from reconciler.images.serve import DistributionServer
from reconciler.images.site import SiteImages, SiteImageSettings
from reconciler.images.store import ImageStore
from reconciler.images.tokens import TokenSigner
from reconciler.images.verify import Verified
from reconciler.logs import JsonFormatter
from reconciler.looplag import LoopLag
from reconciler.model.facts import DeviceFacts
from reconciler.model.kinds import DiscoveryPolicy, ImageSource
from reconciler.model.loader import load_repository
from reconciler.model.shards import Shard, ShardError, check_shards, parse_shard, restrict
from reconciler.model.state import DesiredState
from reconciler.planning.plan import Plan
from reconciler.planning.planner import plan as make_plan
from reconciler.planning.progress import Phase
from reconciler.proposals import (
    Proposal,
    ProposalResult,
    Proposer,
    ProposerSettings,
    image_proposal,
)
from reconciler.report.metrics import Metrics
from reconciler.report.snapshot import StatusSnapshot
from reconciler.report.writer import StatusWriter, WriterSettings
from reconciler.rollout.backup import BackupKey, BackupStore
from reconciler.rollout.engine import RolloutEngine, RolloutResult
from reconciler.rollout.journal import Journal
from reconciler.rollout.locks import DeviceLocks
from reconciler.rollout.marks import HighWaterMarks
from reconciler.rollout.model import RolloutSettings, Transition
from reconciler.rollout.progress import rollout_progress
from reconciler.rollout.scheduler import Scheduler
from reconciler.sanitize import redact
from reconciler.secrets import SecretPolicy, resolve_secret
from reconciler.session import SessionSigner
from reconciler.source.git import Mirror
from reconciler.source.poller import Poller, PollSettings
from reconciler.source.verified import VerifiedRevision
from reconciler.source.verify import Verifier
from reconciler.source.watch import wake_on_changes
from reconciler.source.webhooks import FORGES, WebhookSecrets, webhook_routes
from reconciler.statusbook import StatusBook
from reconciler.supervise import Loop, RetrySchedule, Supervisor, first_of
from reconciler.surfaces import HttpServers, OperatorAccess, Surfaces, build_surfaces

__all__ = ["Daemon", "DaemonSettings", "PassOutcome", "shared_token_key"]

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
    restart_backoff: float = Field(
        default=1.0, gt=0, description="First delay before a dead loop is restarted (doubles)"
    )
    image_retry: float = Field(
        default=5.0,
        gt=0,
        description="First delay before a transient image fetch failure is retried (doubles "
        "up to observe_interval)",
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
    shutdown_grace: float = Field(
        default=25.0,
        gt=0,
        description="Seconds SIGTERM gives in-flight devices to reach a step boundary "
        "before their tasks are cancelled (the journal resumes them at the next start); "
        "keep it below the supervisor's kill timeout (Kubernetes "
        "terminationGracePeriodSeconds)",
    )
    journal_retention_days: float = Field(
        default=90.0, gt=0, description="Journal events older than this many days are pruned"
    )
    unreachable_alert_after: float = Field(
        default=600.0, ge=0, description="Seconds a device stays unreachable before an alert"
    )
    store_alert_percent: float = Field(
        default=85.0,
        ge=0,
        le=100,
        description="Alert when the image store's file system is fuller than this percentage",
    )
    images: SiteImageSettings = Field(
        default_factory=SiteImageSettings,
        description="This site's image caps (serve and fetch bytes/s, downloads at once) and "
        "peer sites' image servers (docs/scaling.md)",
    )
    image_token_key_env: str = Field(
        default="GITFIRM_IMAGE_TOKEN_KEY",
        description="Env var of the image-token key that peer sites share (at least 16 "
        "characters); unset: a key generated in the state dir, for this instance only",
    )
    shard: str | None = Field(
        default=None,
        description="Label selector of the devices this instance owns, e.g. "
        "'site in (fra, ams)' (docs/scaling.md); unset: every device",
    )
    shard_name: str | None = Field(
        default=None,
        description="Name of this shard: its status goes to shards/<name>/ on the status "
        "branch (required with shard)",
    )
    forge: Literal["github", "gitlab", "gitea"] | None = Field(
        default=None,
        description="Post a commit status per rollout (gitfirm/<policy>) to this forge "
        "(docs/forges.md); unset: no statuses",
    )
    forge_url: str | None = Field(
        default=None,
        description="The forge's API root (https://api.github.com, https://HOST/api/v4, "
        "https://HOST/api/v1); GitHub and GitLab default to their public ones",
    )
    forge_repo: str | None = Field(
        default=None, description="The config repository on the forge: owner/name"
    )
    forge_token_env: str | None = Field(
        default=None, description="Env var holding the forge token (never the token itself)"
    )
    forge_token_file: Path | None = Field(
        default=None, description="File holding the forge token, read instead of an env var"
    )
    forge_status_interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between retries of commit statuses the forge did not take",
    )

    @model_validator(mode="after")
    def _shard_named(self) -> DaemonSettings:
        if (self.shard is None) != (self.shard_name is None):
            raise ValueError("shard and shard_name go together: give both or neither")
        if self.shard is not None and self.shard_name is not None:
            try:  # refused at start, not at the first pass
                parse_shard(self.shard_name, self.shard)
            except ShardError as e:
                raise ValueError(e.message) from None
        return self

    @model_validator(mode="after")
    def _forge_complete(self) -> DaemonSettings:
        if self.forge is not None:
            try:  # refused at start, with the flag to give
                self.forge_config().check()
            except ConfigError as e:
                raise ValueError(e.message) from None
        return self

    def forge_config(self) -> ForgeConfig:
        """The forge settings as the forge package takes them (``forge`` must be set)."""
        assert self.forge is not None
        return ForgeConfig(
            kind=self.forge,
            repo=self.forge_repo or "",
            url=self.forge_url or "",
            token_env=self.forge_token_env or "",
            token_file=self.forge_token_file,
        )

    @property
    def base_url(self) -> str:
        """Where devices fetch images from."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")


def shared_token_key(environ: Mapping[str, str], name: str) -> bytes | None:
    """The image-token key peer sites share (env ``name``), or None when unset; a short
    one is a :class:`ConfigError` (checked before start by ``gitfirm run``)."""
    shared = environ.get(name)
    if not shared:
        return None
    if len(shared.encode()) < 16:
        raise ConfigError(
            f"{name} is shorter than 16 characters: give every site the same long random "
            "key, e.g. head -c32 /dev/urandom | base64"
        )
    return shared.encode()


@dataclass
class PassOutcome:
    """What one reconcile pass did; ``error`` is the first step that failed."""

    revision: str | None
    error: ErrorSummary | None = None


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


def _endpoints(
    desired: DesiredState, environ: Mapping[str, str], policy: SecretPolicy
) -> tuple[dict[str, Endpoint], dict[str, str]]:
    """Each device's endpoint with its API key, or why its credentials were refused.

    Plain data in and out, for a worker thread: at 10,000 devices this held the event loop
    for a second on every applied revision.
    """
    out: dict[str, Endpoint] = {}
    refused: dict[str, str] = {}
    for name, device in desired.devices.items():
        try:
            out[name] = device_endpoint(device, environ=environ, policy=policy)
        except Exception as exc:  # a bad secret skips one device only, never the pass
            refused[name] = str(exc) if isinstance(exc, ConfigError) else type(exc).__name__
    return out, refused


def _alert_inputs(
    plan: Plan,
) -> tuple[dict[str, int], dict[str, list[tuple[str, str]]]]:
    """Each device's wave, and the advisories of each device that has any (the others add
    nothing to the alerts): per device of the plan, so built in a worker thread (at 10,000
    devices these held the event loop for up to 170 ms under load)."""
    waves = {d.name: d.wave for d in plan.devices if d.wave is not None}
    exposed = {
        d.name: [(a.name, a.severity) for a in d.advisories] for d in plan.devices if d.advisories
    }
    return waves, exposed


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
        pull_requests: PullRequests | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.state = _State()
        self.metrics = Metrics(__version__)
        self._formatter = formatter
        self._http = http
        self._ready = False
        self.shard: Shard | None = None
        """The devices this instance owns (None: every device); see docs/scaling.md."""
        if settings.shard is not None and settings.shard_name is not None:
            self.shard = parse_shard(settings.shard_name, settings.shard)
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self._verified = VerifiedRevision(state_dir / "verified-revision")
        self.state.verified = self._verified.read()
        self.webhook_secrets = self._webhook_secrets()
        self._secrets: set[str] = set(self.webhook_secrets.values())
        self._sorted_secrets: tuple[str, ...] | None = None
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
        tokens = TokenSigner(self._token_key(), clock=self.clock)
        self.site_images = SiteImages(
            self.store,
            site=settings.shard_name or "gitfirm",
            tokens=tokens,
            clock=self.clock,
            settings=settings.images,
        )
        self.distribution = DistributionServer(
            self.store, tokens, clock=self.clock, limits=self.site_images.serve_limits()
        )
        self.journal = Journal(state_dir / "journal.sqlite3")
        self.marks = HighWaterMarks(state_dir / "journal.sqlite3")
        self.sboms = SbomCache()
        self.backups = BackupStore(
            state_dir / "backups", self._backup_key(), keep=settings.backup_keep
        )
        self.book = StatusBook()
        self.alert_center = AlertCenter(state_dir / "alerts.json", self.clock)
        """Active and resolved alerts (the dashboard and ``alerts.yaml`` read them)."""
        self.alert_feed = AlertFeed(
            self.alert_center,
            FeedSettings(
                unreachable_after=timedelta(seconds=settings.unreachable_alert_after),
                store_percent=settings.store_alert_percent,
            ),
        )
        self.writer = StatusWriter(
            WriterSettings(
                remote=self.mirror.url,
                workdir=state_dir / "status",
                branch=settings.status_branch,
                identity=GitIdentity(
                    settings.bot_name, settings.bot_email, settings.status_signing_key
                ),
                coalesce_seconds=settings.status_coalesce,
                shard=settings.shard_name,
            ),
            clock=self.clock,
            secrets=self.secrets,
            on_result=self.metrics.status_written,
        )
        self.notifier = Notifier(
            self.clock, secrets=lambda: self.secrets, on_result=self.metrics.notification
        )
        self.alert_center.listeners.append(self.notifier.alert_changed)
        self._endpoints: dict[str, Endpoint] = {}
        self.listeners: list[Callable[[Transition], None]] = []
        """Called with every device transition (the demo's live view, tests, benches)."""
        self._images_checked: set[str] = set()
        self._stored: dict[str, str] = {}
        """Image name -> sha256 of every image verified and stored since start: a device
        in flight keeps its URL whatever the newer revisions say."""
        self._image_retries = RetrySchedule(
            self.clock, settings.image_retry, settings.observe_interval
        )
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
            locks=DeviceLocks(),
        )
        self.scheduler = Scheduler(self.engine, on_result=self._rollout_ended)
        self.supervisor = Supervisor(
            self.clock, backoff=settings.restart_backoff, secrets=lambda: self.secrets
        )
        self._pass_lock = asyncio.Lock()
        self._refresh = asyncio.Event()
        self._rescheduled = asyncio.Event()
        self._submit_due = False
        self.changes = Changes()
        """The dashboard's state version: bumped with every status submission."""
        self._source = SourceState(branch=settings.branch)
        self._signers: dict[str, tuple[str, str]] = {}
        self._session = SessionSigner(self._operator_token) if self._operator_token else None
        self.dashboard = Dashboard(
            _Feed(self.changes, self.alert_center.alerts, self._board, self.backups),
            self.changes,
            self._session,
            clock=self.clock,
        )
        self._forge_http: httpx.AsyncClient | None = None
        forge = self._forge() if settings.forge is not None else None
        self.proposer = Proposer(
            ProposerSettings(
                remote=self.mirror.url,
                base=settings.branch,
                workdir=state_dir / "proposals",
                identity=GitIdentity(
                    settings.bot_name, settings.bot_email, settings.status_signing_key
                ),
            ),
            forge=pull_requests or forge,
            clock=self.clock,
            secrets=self.secrets,
        )
        self.proposals: list[ProposalResult] = []
        """What each proposal attempt since start did (discovery, image sources)."""
        self._proposal_due: dict[str, float] = {}
        self.loops: dict[str, Loop] = {
            "source": self._source_loop,
            "observe": self._observe_loop,
            "status-writer": self.writer.run,
            "loop-lag": LoopLag(self.metrics.loop_blocked).run,
            "notify": self.notifier.run,
            "proposals": self._proposals_loop,
        }
        """The supervised background loops, by name (``/healthz`` names the ones down)."""
        self.statuses: StatusPoster | None = None
        """Posts each rollout's commit status when a forge is configured."""
        if forge is not None:
            self.statuses = self._status_poster(forge)
            self.loops["forge-status"] = self.statuses.run

    # --- secrets ------------------------------------------------------------------------

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value this process holds, for the sanitizer (the same tuple until
        one is added: with a key per device, sorting 10,000 of them on every transition
        cost milliseconds each)."""
        if self._sorted_secrets is None:
            self._sorted_secrets = tuple(sorted(self._secrets))
        return self._sorted_secrets

    def _remember(self, *values: str) -> None:
        new = {v for v in values if v} - self._secrets
        if new:
            self._secrets |= new
            self._sorted_secrets = None
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
        env += [s.backup_key_env, s.operator_token_env, s.image_token_key_env]
        env += [s.forge_token_env or ""]
        paths = [s.state_dir, Path.home() / ".ssh", Path.home() / ".git-credentials"]
        paths += [s.status_signing_key] if s.status_signing_key else []
        paths += [s.forge_token_file] if s.forge_token_file else []
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
        # Peer sites that share this key mint tokens for one another (site mirrors).
        shared = shared_token_key(self.environ, self.settings.image_token_key_env)
        if shared is not None:
            self._remember(shared.decode())
            return shared
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

    def _forge(self) -> Forge:
        """The forge client (commit statuses, proposals' pull requests)."""
        config = self.settings.forge_config()
        token = read_token(config, self.environ)
        self._remember(token)
        # Its own client: the forge is checked against the system CAs, never a device's TLS.
        self._forge_http = httpx.AsyncClient(timeout=30.0)
        return make_forge(
            config,
            token,
            http=self._forge_http,
            clock=self.clock,
            user_agent=f"gitfirm/{__version__}",
            on_result=self.metrics.forge_request,
        )

    def _status_poster(self, forge: Forge) -> StatusPoster:
        def updates() -> list[StatusUpdate]:
            snapshot = self.book.snapshot(self.state.desired, self.secrets)
            plan = self.state.plan
            planned = plan.revision if plan is not None else None
            return rollout_statuses(snapshot, self.settings.base_url, planned)

        return StatusPoster(
            forge,
            updates,
            clock=self.clock,
            interval=self.settings.forge_status_interval,
            secrets=lambda: self.secrets,
        )

    # --- wiring for the rollout engine ---------------------------------------------------

    def _client(self, name: str) -> VyOSClient:
        assert self._http is not None
        return VyOSClient(self._endpoints[name], self._http, clock=self.clock)

    def _image_url(self, device: str, image: str) -> str:
        # From what is verified and stored, not from the newest revision: its image may not
        # be yet. Trust is checked again at use: a key removed since the plan gets no URL.
        refusal = self.state.refused_images.get(image)
        if refusal is not None:
            raise RolloutError(f"image refused: {refusal}")
        sha = self._stored.get(image)
        if sha is None:
            raise GitfirmError(f"image {image!r} is not verified and stored")
        desired = self.state.desired
        if desired is not None and image in desired.images:
            checked = check_stored(desired, self.store, [image]).get(image)
            if isinstance(checked, GitfirmError):
                raise RolloutError(f"image refused: {summarize(checked, self.secrets).message}")
        ttl = timedelta(seconds=self.settings.image_url_ttl)
        return self.distribution.url_for(self.settings.base_url, device, sha, ttl)

    def _on_transition(self, event: Transition) -> None:
        if event.to_phase != Phase.STAGE:  # image URLs live only during the stage step
            self.distribution.revoke(event.device)
        self.book.transition(event)
        self.alert_feed.transition(
            event.device, event.policy, event.to_phase, event.detail, event.target
        )
        self.metrics.transition(
            event.policy, event.device, event.from_phase, event.to_phase, event.time
        )
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
        self._submit_soon()

    # --- one pass -------------------------------------------------------------------------

    async def reconcile(self, head: str | None = None) -> PassOutcome:
        """One pass over the steps; never raises (a refusal, a bad config, a device, a bug
        in a step: each becomes the pass's outcome)."""
        outcome = PassOutcome(revision=head)
        started = self.clock.monotonic()
        try:
            if self.state.desired is None and self.state.verified is not None:
                await self._restore(self.state.verified)
            if head is not None and head != self.state.verified:
                await self._apply(head)
            await self._pass(start=True)
            self.state.last_error = None
        except Exception as exc:
            outcome.error = summarize(exc, self.secrets)
            self.state.last_error = outcome.error
            log.error(
                "pass failed: %s",
                outcome.error.message,
                extra={"event": "pass-failed", "reason": outcome.error.reason, "revision": head},
            )
        finally:
            self.state.passed = self.state.verified
            self.journal.prune(
                self.clock.now() - timedelta(days=self.settings.journal_retention_days)
            )
            seconds = self.clock.monotonic() - started
            self.metrics.pass_done(outcome.error is None, seconds, self.clock.now())
            self._submit()
        return outcome

    async def _apply(self, head: str) -> None:
        """Verify and load ``head``; any failure refuses it and keeps the last good one."""
        try:
            desired = await self._verify_and_load(head)
        except GitfirmError:
            raise  # refused with its reason already, or the source is retried
        except Exception as exc:  # RecursionError, UnicodeDecodeError: the content is bad
            reason = redact(f"revision unreadable ({type(exc).__name__}: {exc})", self.secrets)
            self._refuse(head, reason)
            raise CommitRefused(reason, commit=head, reason="unreadable") from None
        resolved = await asyncio.to_thread(_endpoints, desired, self.environ, self.secret_policy)
        shown = await self._commit_line(head)
        self._verified.write(head)
        self._adopt(head, desired, resolved, shown)
        self.alert_feed.revision_applied()
        log.info("applied desired revision", extra={"event": "applied", "revision": head})

    def _refuse(self, head: str, reason: str) -> None:
        self.book.refusal(head, reason)
        self.metrics.revision_refused()
        self.alert_feed.revision_refused(head, redact(reason, self.secrets))

    async def _restore(self, verified: str) -> None:
        """After a restart: the revision verified before is in force again (it is the base
        every new head is verified against, as in the process that verified it)."""
        try:
            desired = await self._load(verified)
        except Exception as exc:
            log.error(
                "the verified revision in the state dir cannot be loaded (%s); remove %s to "
                "verify from scratch",
                summarize(exc, self.secrets).message,
                self._verified.path,
                extra={"event": "restore-failed", "revision": verified},
            )
            raise
        resolved = await asyncio.to_thread(_endpoints, desired, self.environ, self.secret_policy)
        self._adopt(verified, desired, resolved, await self._commit_line(verified))
        log.info("restored desired revision", extra={"event": "restored", "revision": verified})

    async def _commit_line(self, revision: str) -> str:
        """``<commit time>\n<subject>`` of ``revision``: git in a worker thread, never on
        the event loop."""
        return await asyncio.to_thread(
            self.mirror.repo.text, "show", "-s", "--format=%ct%n%s", revision
        )

    def _adopt(
        self,
        revision: str,
        desired: DesiredState,
        resolved: tuple[dict[str, Endpoint], dict[str, str]],
        shown: str,
    ) -> None:
        self.state.verified = revision
        self.state.desired = desired
        # Control first: suspends take effect before this revision is observed or fetched.
        self.scheduler.control(revision, desired.rollout_policies, desired.devices.keys())
        self.book.desired(revision)
        self.alert_feed.sites = {name: d.spec.site for name, d in desired.devices.items()}
        self._configure_notifications(desired)
        committed, _, subject = shown.strip().partition("\n")
        at = datetime.fromtimestamp(int(committed), UTC)
        self.metrics.revision_applied(at)
        signer, verdict = self._signers.pop(revision, ("", "verified before this process started"))
        self._source = SourceState(
            applied=revision,
            signer=signer or None,
            verdict=verdict,
            committed_at=at,
            subject=redact(subject, self.secrets),
            branch=self.settings.branch,
        )
        self._endpoints, refused = resolved
        self._remember(*(e.api_key for e in self._endpoints.values()))  # one call, not n
        self._key_refusals = {name: f"credentials: {text}" for name, text in refused.items()}
        for name, text in refused.items():
            log.error(text, extra={"event": "credentials", "device": name})
        self._images_checked.clear()
        self._image_retries.clear()
        self.state.refused_images = {}

    def _configure_notifications(self, desired: DesiredState) -> None:
        # The daemon's own secrets are never a notification secret, whatever the prefix.
        denied = self._secret_policy().denied_env
        routes, skipped = build_routes(desired.notification_policies, self.environ, denied)
        self._remember(*secret_values(routes, self.environ))
        for target, reason in skipped.items():
            log.error(
                "notification target %s skipped: %s",
                target,
                reason,
                extra={"event": "notify-credentials", "target": target},
            )
        self.notifier.configure(routes)

    async def _verify_and_load(self, head: str) -> DesiredState:
        verifier = Verifier(self.mirror.repo, pinned=self.settings.access_pin)
        verdict = await asyncio.to_thread(verifier.verify, head, self.state.verified)
        if not verdict.ok:
            self._refuse(head, f"commit refused ({verdict.reason}): {verdict.message}")
            verdict.raise_if_refused()
        self._signers = {head: (verdict.signer, verdict.reason)}
        return await self._load(head)

    async def _load(self, head: str) -> DesiredState:
        keep = [self.state.verified] if self.state.verified else []
        tree = await asyncio.to_thread(self.mirror.checkout, head, keep=keep)
        result = await asyncio.to_thread(load_repository, tree, revision=head)
        if result.state is None:
            first = result.errors[0] if result.errors else ConfigError("invalid desired state")
            self._refuse(head, f"invalid desired state: {len(result.errors)} error(s)")
            for err in result.errors:
                log.error(str(err), extra={"event": "invalid-config", "revision": head})
            raise first
        if self.shard is None:
            return result.state
        # A group or policy across this shard's edge would have two actors: refused like
        # any invalid revision (at start, for the restored one, too).
        errors = check_shards(result.state, [self.shard])
        if errors:
            self._refuse(head, f"not shardable as {self.shard.name}: {errors[0]}")
            for err in errors:
                log.error(str(err), extra={"event": "invalid-config", "revision": head})
            raise errors[0]
        return restrict(result.state, self.shard)

    async def _fetch_images(self, desired: DesiredState, plan: Plan) -> None:
        # Every image on a planned path is checked against the trust in force at every
        # plan (stored ones: signature again, no re-hash); the others are fetched and
        # verified once per revision, before any device may see a URL for it. A transient
        # failure is fetched again later, with backoff; a refusal stands until the next
        # revision.
        planned = sorted({h.image for d in plan.devices for h in d.path})
        results: dict[str, object] = dict(check_stored(desired, self.store, planned))
        needed = set(planned) - set(results) - self._images_checked
        wanted = sorted(n for n in needed if self._image_retries.due(n))
        if wanted:
            # No file: source may read the daemon's own secrets, nor the devices' keys.
            fetch = FetchSettings(denied_paths=self._secret_policy().file_denials())
            # Under the site's caps, from a peer site's mirror first when one is set.
            results.update(await self.site_images.fetch(desired, wanted, settings=fetch))
        if desired is not self.state.desired:
            return  # a newer revision was applied meanwhile: its own pass checks its images
        refused = dict(self.state.refused_images)
        for name, result in results.items():
            refused.pop(name, None)
            if not isinstance(result, GitfirmError):
                self._images_checked.add(name)
                self._image_retries.succeeded(name)
                self._stored[name] = desired.images[name].spec.sha256
                continue
            refused[name] = summarize(result, self.secrets).message
            self._stored.pop(name, None)
            if result.action is Action.HALT:
                self._images_checked.add(name)
            else:
                self._image_retries.failed(name)
                self._rescheduled.set()  # the observe loop wakes up for the retry
            log.error(
                "image refused: %s",
                refused[name],
                extra={"event": "image-refused", "image": name, "reason": result.reason},
            )
        self.state.refused_images = refused
        self.book.refused_images(refused)
        self.alert_feed.images_refused(refused)

    async def _observe(self, desired: DesiredState) -> None:
        assert self._http is not None
        endpoints = list(self._endpoints.values())
        facts = await observe(endpoints, self._http, clock=self.clock)
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
        self.alert_feed.observed({n: f.reachable for n, f in facts.items()}, self.clock.now())
        disk = shutil.disk_usage(self.store.root)
        self.alert_feed.store_usage(100.0 * (disk.total - disk.free) / max(1, disk.total))
        await self.book.reindex(desired)

    async def _plan(self, desired: DesiredState) -> Plan:
        """Plan from the newest facts and journal; fetch and verify the images it needs."""
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
        waves, exposed = await asyncio.to_thread(_alert_inputs, plan)
        self.state.plan = plan
        self.book.planned(plan, progress)
        self.alert_feed.waves = waves
        self.alert_feed.wave_labels = {
            p.name: {w.index: w.label for w in p.waves} for p in plan.policies
        }
        self.alert_feed.exposures(exposed)
        await self.book.reindex(desired)
        await self._fetch_images(desired, plan)
        return plan

    async def _pass(self, *, start: bool) -> None:
        """Observe, plan and (with ``start``) offer the plan to the scheduler. One pass at
        a time; a plan made while a newer revision was applied is ignored by the scheduler."""
        async with self._pass_lock:
            desired = self.state.desired
            if desired is None:
                return
            await self._observe(desired)
            plan = await self._plan(desired)
            if start:
                self._roll(plan)

    def _roll(self, plan: Plan) -> None:
        """Hand the plan to the scheduler; a policy whose images are not all usable waits."""
        blocked: dict[str, str] = {}
        unusable = set(self.state.refused_images) | self._image_retries.waiting()
        for planned in plan.policies:
            images = {h.image for d in plan.devices if d.policy == planned.name for h in d.path}
            if images & unusable:
                reasons = self.state.refused_images
                named = [f"{n} ({reasons[n]})" if n in reasons else n for n in images & unusable]
                blocked[planned.name] = f"image refused: {', '.join(sorted(named))}"
                self.book.policy_blocked(planned.name, blocked[planned.name])
        self.scheduler.offer(plan, blocked)

    async def _rollout_ended(self, result: RolloutResult) -> None:
        self.book.rollout_result(result)
        status = self.book.rollout_status(result.policy)
        self.alert_feed.rollout_ended(
            result.policy,
            halted=result.halted,
            reason=status.halt_reason or result.reason,
            complete=result.complete,
            waves_passed=result.waves_passed,
        )
        self.metrics.rollout_ended(
            result.policy,
            halted=result.halted,
            suspended=result.suspended,
            complete=result.complete,
            now=self.clock.now(),
        )
        await self.writer.record_outcome(status)
        # Status shows what the devices run now: the observe loop refreshes (without
        # starting rollouts, or a halted one would spin).
        self._refresh.set()
        self._submit()

    def rollouts_running(self) -> list[str]:
        """Policies whose rollout task is still going (waiting for a window included)."""
        return self.scheduler.running()

    def _submit_soon(self) -> None:
        """:meth:`_submit` once in the next turn of the event loop, however many devices
        move in this one: 100 devices starting together built 200 snapshots of the whole
        fleet in one turn."""
        if not self._submit_due:
            self._submit_due = True
            asyncio.get_running_loop().call_soon(self._submit)

    def _submit(self) -> None:
        self._submit_due = False
        snapshot: StatusSnapshot = self.book.snapshot(self.state.desired, self.secrets)
        self.writer.submit(replace(snapshot, alerts=self.alert_center.alerts()))
        if self.statuses is not None:
            self.statuses.wake()
        self.changes.bump()

    # --- dashboard ----------------------------------------------------------------------

    def _board(self, alerts: tuple[Alert, ...]) -> Board:
        """Everything the dashboard shows now (built once per state version)."""
        desired = self.state.desired
        capacity = self.store.capacity()
        error = self.state.last_error
        return Board(
            version=self.changes.version,
            now=self.clock.now(),
            snapshot=self.book.snapshot(desired, self.secrets),
            desired=desired,
            plan=self.state.plan,
            images=self._image_rows(desired),
            capacity=StoreCapacity(capacity.used, capacity.free, capacity.per_channel),
            history=tuple(self.journal.history()),
            source=dataclasses.replace(
                self._source, last_error=error.message if error is not None else None
            ),
            alerts=alerts,
        )

    def _image_rows(self, desired: DesiredState | None) -> tuple[ImageRow, ...]:
        stored = {i.verified.sha256: i for i in self.store.list()}
        rows = []
        for name, image in sorted((desired.images if desired else {}).items()):
            spec = image.spec
            refused = self.state.refused_images.get(name)
            row = ImageRow(name, spec.version, str(spec.channel), spec.sha256, spec.size, True)
            rows.append(dataclasses.replace(row, revoked=spec.revoked, refused=refused))
        out = []
        for row in rows:
            kept = stored.pop(row.sha256, None)
            out.append(row if kept is None else _stored_row(row, kept.verified, kept.stored_at))
        for kept in stored.values():  # still in the store, no longer declared
            v = kept.verified
            row = ImageRow(v.name, v.version, v.channel, v.sha256, v.size, declared=False)
            out.append(_stored_row(row, v, kept.stored_at))
        return tuple(out)

    # --- HTTP surface -----------------------------------------------------------------------

    def app(self) -> Starlette:
        """The device port: health, readiness, webhooks, image distribution (and the operator
        endpoints unless they have their own listener)."""
        return self.surfaces().device

    def surfaces(self) -> Surfaces:
        """Device and operator apps (see :mod:`reconciler.surfaces`)."""

        async def healthz(_: Request) -> Response:
            down = sorted(self.supervisor.down)
            if down:
                return PlainTextResponse(f"down: {', '.join(down)}\n", 503)
            return PlainTextResponse("ok\n")

        async def readyz(_: Request) -> Response:
            if self._ready and self.state.desired is not None:
                return PlainTextResponse("ready\n")
            return PlainTextResponse("not ready: no desired revision applied yet\n", 503)

        async def metrics(_: Request) -> Response:
            snapshot = self.book.snapshot(self.state.desired, self.secrets)
            failures = self.poller.fetch_failures
            body, content_type = self.metrics.render(self.distribution.counters, snapshot, failures)
            return Response(body, media_type=content_type)

        async def dashboard(request: Request) -> Response:
            if "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/ui/", status_code=303)  # a browser: the pages
            body = self.book.summary_json(self.state.desired, self.secrets)
            return Response(body, media_type="application/json")

        return build_surfaces(
            probes=[Route("/healthz", healthz), Route("/readyz", readyz)],
            operator=[Route("/metrics", metrics), Route("/", dashboard), *self.dashboard.pages()],
            public=self.dashboard.public(),
            devices=[
                *webhook_routes(
                    self.webhook_secrets,
                    self.poller.wake,
                    self.clock,
                    on_result=self.metrics.webhook,
                ),
                Mount("/", app=self.distribution.app),
            ],
            access=OperatorAccess(
                self.settings.operator_token_env,
                token=self._operator_token,
                listen=self.settings.operator_listen,
                session=self._session,
                login=LOGIN,
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
        loops: list[asyncio.Task[None]] = []
        serving: asyncio.Task[Any] | None = None
        try:
            await self.writer.open()
            serving = asyncio.create_task(server.serve())
            loops = [self.supervisor.task(name, loop) for name, loop in self.loops.items()]
            if self._watch is not None:
                watch = self._watch
                loops.append(
                    self.supervisor.task("watch", lambda: wake_on_changes(watch, self.poller.wake))
                )
            self._ready = True
            await stop.wait()
        finally:
            self._ready = False
            await self._shutdown(server, serving, loops, own_http)

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
            refresh = await self._wait_for_observe()
            if refresh:
                # After a rollout ended: status catches up; rollouts start on full passes.
                try:
                    await self._pass(start=False)
                except Exception as exc:
                    log.warning(
                        "refresh after a rollout failed: %s",
                        summarize(exc, self.secrets).message,
                        extra={"event": "refresh-failed"},
                    )
                self._submit()
            elif self.state.desired is not None:
                await self.reconcile(None)

    async def _wait_for_observe(self) -> bool:
        """Sleep until the next observation, or until an image retry is due; True when woken
        early because a rollout ended."""
        while True:
            delay = self.settings.observe_interval
            retry = self._image_retries.next_in()
            delay = delay if retry is None else min(delay, retry)
            self._rescheduled.clear()
            await first_of(self.clock.sleep(delay), self._refresh.wait(), self._rescheduled.wait())
            if self._refresh.is_set():
                self._refresh.clear()
                return True
            if not self._rescheduled.is_set():
                return False

    # --- proposals (discovery) ---------------------------------------------------------------

    async def _proposals_loop(self) -> None:
        """Run each DiscoveryPolicy and look at each ImageSource when due; what they find
        becomes proposals."""
        while True:
            desired = self.state.desired
            if desired is not None:
                for name, policy in sorted(desired.discovery_policies.items()):
                    if self._due(f"discovery/{name}", policy.spec, policy.spec.interval):
                        await self._propose_all(f"discovery {name}", self._discover(policy))
                for name, source in sorted(desired.image_sources.items()):
                    if self._due(f"images/{name}", source.spec, source.spec.interval):
                        await self._propose_all(f"image source {name}", self._new_image(source))
            await self.clock.sleep(self._next_proposal_check())

    def _due(self, what: str, spec: BaseModel, every: timedelta) -> bool:
        # A changed spec is a new schedule, due at once.
        key = f"{what}/{spec.model_dump_json()}"
        now = self.clock.monotonic()
        if now < self._proposal_due.get(key, 0.0):
            return False
        self._proposal_due[key] = now + every.total_seconds()
        return True

    def _next_proposal_check(self) -> float:
        now = self.clock.monotonic()
        waits = [due - now for due in self._proposal_due.values() if due > now]
        return max(1.0, min([self.settings.poll_interval, *waits]))

    async def _propose_all(self, what: str, making: Awaitable[list[Proposal]]) -> None:
        """Publish the proposals ``making`` returns; a failure is logged, retried when due."""
        try:
            for proposal in await making:
                result = await self.proposer.propose(proposal)
                self.proposals.append(result)
                log.info(
                    "proposal %s: %s",
                    result.outcome.value,
                    result.branch,
                    extra={"event": "proposal", "proposal": result.branch},
                )
        except Exception as exc:  # one source's failure never stops the loop
            log.error(
                "%s: %s",
                what,
                summarize(exc, self.secrets).message,
                extra={"event": "proposal-failed", "source": what},
            )

    async def _discover(self, policy: DiscoveryPolicy) -> list[Proposal]:
        spec = policy.spec
        ref = spec.credentials.apiKey if spec.credentials else None
        key = None
        if ref is not None:
            key = resolve_secret(ref, environ=self.environ, policy=self.secret_policy)
            self._remember(key)
        http = make_http_client()
        try:
            found = await scan(
                expand_targets(spec.cidrs, spec.ports), http=http, clock=self.clock, api_key=key
            )
        finally:
            await http.aclose()
        desired = self.state.desired
        found = mark_declared(found, desired.devices if desired else {})
        log.info(
            "discovery %s: %d router(s), %d not declared",
            policy.name,
            len(found),
            sum(1 for f in found if f.declared_as is None),
            extra={"event": "discovery", "source": policy.name},
        )
        key_env = ref.env if ref is not None and ref.env else DEFAULT_KEY_ENV
        key_file = ref.file if ref is not None else None
        declared = desired.devices if desired else {}
        return discovery_proposals(
            found, site=spec.site, key_env=key_env, key_file=key_file, declared=declared
        )

    async def _new_image(self, source: ImageSource) -> list[Proposal]:
        """The newest build the feed offers that no Image declares yet, verified against the
        channel's TrustPolicy and proposed; a refused build is reported, never proposed."""
        desired = self.state.desired
        if desired is None:
            return []
        declared = {(i.spec.version, i.spec.channel) for i in desired.images.values()}
        async with httpx.AsyncClient(timeout=60.0) as http:
            builds = await read_feed(source.spec, http)
            fresh = [b for b in builds if (b.version, source.spec.channel) not in declared]
            if not fresh or self.proposer.was_proposed("image", fresh[0].url):
                return []
            build = fresh[0]
            try:
                image = await take_build(
                    build,
                    source,
                    list(desired.trust_policies.values()),
                    store=self.store,
                    http=http,
                    clock=self.clock,
                    staging=self.settings.state_dir / "intake",
                )
            except ImageRefused as exc:
                reason = summarize(exc, self.secrets).message
                self.book.refused_build(f"{source.name}/{build.file_name}", reason)
                self._submit()
                log.error(
                    "build refused: %s: %s",
                    build.file_name,
                    reason,
                    extra={"event": "build-refused", "source": source.name, "reason": exc.reason},
                )
                return []
        return [image_proposal(image, source.name, build.url)]

    async def _shutdown(
        self,
        server: HttpServers,
        serving: asyncio.Task[Any] | None,
        loops: list[asyncio.Task[None]],
        own_http: bool,
    ) -> None:
        # SIGTERM: the loops that make new work stop first; then rollouts stop starting
        # devices, in-flight ones park at their next step boundary (within shutdown_grace,
        # then cancelled), and the journal lets the next process resume them at their
        # phase, health gate included. No task outlives this.
        self.changes.close()  # live dashboard streams end, or the server would wait for them
        writer = next((t for t in loops if t.get_name() == "loop:status-writer"), None)
        others = [t for t in loops if t is not writer]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self.scheduler.close(grace=self.settings.shutdown_grace)
        server.should_exit = True
        # The last state goes to Git before the writer stops, even if a write was running.
        self._submit()
        with contextlib.suppress(GitfirmError):
            await self.writer.drain()
        if writer is not None:
            writer.cancel()
        await asyncio.gather(
            *[t for t in (writer, serving) if t is not None], return_exceptions=True
        )
        if own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self.notifier.close()
        if self._forge_http is not None:
            await self._forge_http.aclose()
        self.journal.close()
        self.marks.close()


def _stored_row(row: ImageRow, verified: Verified, stored_at: str) -> ImageRow:
    signed = verified.signed_timestamp
    return dataclasses.replace(
        row,
        stored_at=stored_at,
        signer=verified.signer,
        signed_at=datetime.fromtimestamp(signed, UTC) if signed else None,
    )


@dataclass
class _Feed:
    """The dashboard's view of the daemon (:class:`reconciler.dashboard.routes.Feed`)."""

    changes: Changes
    alerts: Callable[[], tuple[Alert, ...]]
    build: Callable[[tuple[Alert, ...]], Board]
    store: BackupStore
    seen: tuple[Alert, ...] = ()

    def version(self) -> int:
        """The state version; a change in the alert centre moves it too."""
        alerts = self.alerts()
        if alerts != self.seen:
            self.seen = alerts
            self.changes.bump()
        return self.changes.version

    def board(self) -> Board:
        """Everything the pages show now."""
        return self.build(self.seen)

    def backups(self, device: str) -> tuple[Backup, ...]:
        """The device's configuration backups, newest first."""
        return tuple(Backup(e.revision, e.taken) for e in reversed(self.store.entries(device)))
