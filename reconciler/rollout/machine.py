"""The device upgrade state machine of DESIGN.md, one device at a time.

Each phase is a small step that first *observes* the device and then acts only if the
observation says the action is still needed. Entering a phase is committed to the journal
before its action runs, and an action that cannot be repeated safely (``/image add``,
``reboot``) is announced by a marker in the journal first. A restart therefore re-runs the
phase it finds, and the observation decides what is left to do:

- target image already installed: no second add; an add that may still be running on the
  device (announced, not yet seen) is watched for ``stage_timeout`` before adding again;
- device already runs the target: activation is done, go on to verify;
- reboot announced, device still up on the old image with the target as default: the
  reboot never reached it, so reboot; device down or on a new image: wait for it.

Release families: the API of the *running* image decides. 1.5+ has ``set_default``, so a
device staged early is set back to its running image and rolls back by
``set_default <previous>`` + reboot. 1.3/1.4 have no ``set_default`` over the API: they are
staged only inside the window, and a device that booted the target and then failed its
health gate cannot be rolled back automatically; it ends ``failed`` with reason
``rollback-unsupported`` and the rollout halts for a human. 1.3 has no ``/reboot`` either:
such a device waits in ``activate`` (``reboot-unsupported``) until someone reboots it; the
next pass sees it on the target and carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.errors import (
    CommandError,
    DeviceError,
    DeviceServerError,
    RolloutError,
    Unreachable,
    Unsupported,
    UpstreamTimeout,
)
from reconciler.model.facts import InstalledImage
from reconciler.model.features import api_features
from reconciler.planning.progress import Phase
from reconciler.rollout.context import RunContext, Work
from reconciler.rollout.health import Verdict, evaluate
from reconciler.rollout.journal import DeviceRecord
from reconciler.rollout.model import (
    DISRUPTIVE,
    DeviceClient,
    DeviceOutcome,
    OutcomeStatus,
    Transition,
)

__all__ = ["DeviceRun", "supports_set_default"]

_ADD_ISSUED = "add-issued"
_REBOOT_ISSUED = "reboot-issued"
_STAGED = "staged"
_INCONCLUSIVE = "inconclusive"
# Phases from which a run starts over at precheck on the plan's current path.
_RESTART = frozenset({Phase.PENDING, Phase.SKIPPED, Phase.PRECHECK, Phase.BACKUP})
# No answer, or not yet: the device may be rebooting, or the work may go on there.
_TRANSIENT = (Unreachable, DeviceServerError, UpstreamTimeout)


def supports_set_default(running: str | None) -> bool:
    """Whether the API of a device running ``running`` offers ``/image set_default``."""
    return api_features(running).set_default


@dataclass(frozen=True, slots=True)
class _Seen:
    names: tuple[str, ...]
    running: str | None
    default: str | None


def _seen(images: Sequence[InstalledImage]) -> _Seen:
    running = next((i.name for i in images if i.running), None)
    default = next((i.name for i in images if i.default), None)
    return _Seen(tuple(i.name for i in images), running, default)


class _Failure(Exception):
    """The attempt failed; carry on with the rollback branch."""


class _Park(Exception):
    """Stop here for now without failing (staged early, paused, cannot reboot)."""

    def __init__(self, status: OutcomeStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class DeviceRun:
    """Drives one device through its path, hop by hop, and returns a :class:`DeviceOutcome`.

    ``early`` means the allow window is closed: only precheck, backup and stage run (on
    1.5+), and the device parks before ``activate``.
    """

    def __init__(
        self,
        ctx: RunContext,
        work: Work,
        client: DeviceClient,
        *,
        early: bool = False,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.ctx = ctx
        self.work = work
        self.client = client
        self.early = early
        self.stopping = stopping
        self._looked: _Seen | None = None
        self.rec = self._initial_record()

    # --- bookkeeping ------------------------------------------------------------------

    def _initial_record(self) -> DeviceRecord:
        """Where to resume. The plan's path starts at the device's current version, so a
        journalled hop is found again by its target, not by its index."""
        ctx, work = self.ctx, self.work
        old = ctx.journal.device(ctx.policy, work.device)
        fresh = DeviceRecord(
            ctx.policy, work.device, ctx.revision, ctx.retry_token, target=work.path[0]
        )
        if old is None:
            return fresh
        same = old.revision == ctx.revision and old.retry_token == ctx.retry_token
        if same and old.phase in (Phase.FAILED, Phase.DONE):
            return old  # this attempt key is used up (or finished)
        # A device between precheck and health finishes its step towards a target still
        # on its path; after a new revision or token only a disruptive step carries over.
        carry = old.phase in DISRUPTIVE or (same and old.phase not in _RESTART)
        if carry and old.target in work.path:
            marker = "" if old.marker == _INCONCLUSIVE and not same else old.marker
            return old.but(
                revision=ctx.revision,
                retry_token=ctx.retry_token,
                hop=work.path.index(old.target),
                attempts=max(1, old.attempts) if old.phase in DISRUPTIVE else old.attempts,
                marker=marker,
            )
        return fresh

    def _enter(self, phase: Phase, detail: str = "", **changes: object) -> None:
        """Commit the transition (and announce it) before the phase's action runs."""
        before = self.rec.phase
        now = self.ctx.clock.now()
        safe = self.ctx.redact(detail)
        self.rec = self.rec.but(phase=phase, updated=now.isoformat(), **changes)
        if safe and phase in (Phase.ROLLBACK, Phase.FAILED, Phase.SKIPPED):
            self.rec = self.rec.but(last_error=safe)
        event = Transition(
            self.work.device,
            str(before),
            str(phase),
            self.ctx.revision,
            self.ctx.policy,
            now,
            self.rec.hop,
            self.rec.target,
            safe,
        )
        self.ctx.journal.write_device(self.rec, event if before != phase else None)
        if before != phase:
            self.ctx.emit(event)

    def _mark(self, marker: str) -> None:
        self.rec = self.rec.but(marker=marker, updated=self.ctx.clock.now().isoformat())
        self.ctx.journal.write_device(self.rec)

    async def _observe(self) -> _Seen | None:
        """The device's images, or None when it does not answer."""
        try:
            return _seen(await self.client.images())
        except DeviceError as e:
            if isinstance(e, _TRANSIENT):
                return None
            raise

    async def _must_observe(self) -> _Seen:
        seen = await self._observe()
        if seen is None:
            raise _Failure("device stopped answering")
        return seen

    async def _set_default(self, name: str) -> None:
        try:
            await self.client.image_set_default(name)
        except CommandError as e:
            if "already configured as default" not in e.detail:
                raise

    # --- driving ----------------------------------------------------------------------

    async def drive(self) -> DeviceOutcome:
        """Run from wherever the journal and the device say this device stands."""
        rec = self.rec
        if rec.phase is Phase.FAILED:
            return self._outcome(OutcomeStatus.FAILED, rec.last_error or "attempt used")
        if rec.phase is Phase.DONE:
            return self._outcome(OutcomeStatus.DONE)
        if rec.phase is Phase.HEALTH and rec.marker == _INCONCLUSIVE:
            return self._outcome(OutcomeStatus.PAUSED, rec.last_error)
        if rec.phase in _RESTART:
            self.rec = rec.but(hop=0, target=self.work.path[0], marker="")
            self._enter(Phase.PRECHECK)
        try:
            return await self._loop()
        except _Park as park:
            return self._outcome(park.status, park.detail)

    async def _loop(self) -> DeviceOutcome:
        steps = {
            Phase.PRECHECK: self._precheck,
            Phase.BACKUP: self._backup,
            Phase.STAGE: self._stage,
            Phase.ACTIVATE: self._activate,
            Phase.AWAIT_BOOT: self._await_boot,
            Phase.VERIFY: self._verify,
            Phase.HEALTH: self._health,
            Phase.ROLLBACK: self._rollback,
            Phase.VERIFY_ROLLBACK: self._verify_rollback,
        }
        while self.rec.phase in steps:
            phase = self.rec.phase
            if self.stopping() and phase in (Phase.PRECHECK, Phase.BACKUP, Phase.STAGE):
                raise _Park(OutcomeStatus.WAITING, "stopped before disrupting the device")
            try:
                await steps[phase]()
            except (_Failure, DeviceError, RolloutError) as e:
                if phase in (Phase.ROLLBACK, Phase.VERIFY_ROLLBACK):
                    self._enter(Phase.FAILED, f"rollback failed: {_text(e)}")
                else:
                    self._enter(Phase.ROLLBACK, _text(e), marker="")
        if self.rec.phase is Phase.DONE:
            return self._outcome(OutcomeStatus.DONE)
        if self.rec.phase is Phase.SKIPPED:
            return self._outcome(OutcomeStatus.SKIPPED, self.rec.last_error)
        return self._outcome(OutcomeStatus.FAILED, self.rec.last_error)

    def _outcome(self, status: OutcomeStatus, error: str = "") -> DeviceOutcome:
        return DeviceOutcome(
            self.work.device,
            status,
            self.rec.phase,
            self.rec.hop,
            rolled_back=self.rec.marker == "rolled-back",
            error=error or None,
        )

    # --- the phases -------------------------------------------------------------------

    @property
    def _expected(self) -> str:
        hop = self.rec.hop
        return self.work.path[hop - 1] if hop else self.work.current

    async def _precheck(self) -> None:
        seen = await self._observe()
        if seen is None:
            self._enter(Phase.SKIPPED, "unreachable before its turn")
            return
        if seen.running == self.rec.target:
            self._enter(Phase.VERIFY, "already runs the target", previous=self._expected)
            return
        if seen.running != self._expected:
            self._enter(Phase.SKIPPED, f"runs {seen.running}, planned from {self._expected}")
            return
        if self.ctx.peer_busy(self.work):
            self._enter(Phase.SKIPPED, "a redundancy peer is in flight")
            return
        self._looked = seen
        # The attempt begins here, when the device is first changed; a skipped device
        # never began, so it keeps its chance under this revision and token.
        self._enter(Phase.BACKUP, previous=seen.running, attempts=max(1, self.rec.attempts))

    async def _backup(self) -> None:
        await self.client.config_file_save()
        config = str(await self.client.retrieve(config_format="raw"))
        self.ctx.backups.put(self.work.device, self.ctx.revision, config)
        self._enter(Phase.STAGE)

    async def _stage(self) -> None:
        target = self.rec.target
        # Precheck's look, moments ago in this run, is still good (backup adds no image).
        seen, self._looked = self._looked or await self._must_observe(), None
        if seen.running == target:
            self._enter(Phase.VERIFY, "already runs the target")
            return
        if target not in seen.names and self.rec.marker == _ADD_ISSUED:
            seen = await self._watch_add(target)
        added = target not in seen.names
        if added:
            self._mark(_ADD_ISSUED)
            await self._add(target)
        if self.early:
            if not supports_set_default(seen.running):
                raise RolloutError("staging early needs set_default (1.5+)")
            # The add made the target the default boot; point it back at once.
            if added or seen.default != self.rec.previous:
                await self._set_default(self.rec.previous)
            self._mark(_STAGED)
            raise _Park(OutcomeStatus.WAITING, "staged; waiting for the window")
        self._enter(Phase.ACTIVATE, marker="")

    async def _add(self, target: str) -> None:
        url = self.ctx.image_url(self.work.device, self.work.images[self.rec.hop])
        try:
            await self.client.image_add(url, expected_name=target, flavor=self.work.flavor)
        except CommandError as e:
            if "File exists" not in e.detail:
                raise
        except DeviceError as e:
            # A 504 or a dropped answer: the install may go on; watch for it.
            if not isinstance(e, _TRANSIENT):
                raise
            if target not in (await self._watch_add(target)).names:
                raise RolloutError(f"image {target} did not appear after /image add") from None

    async def _watch_add(self, target: str) -> _Seen:
        """Watch the image list for an add that may still run on the device."""
        clock, settings = self.ctx.clock, self.ctx.settings
        deadline = clock.monotonic() + settings.stage_timeout.total_seconds()
        while True:
            seen = await self._observe()
            if seen is not None and target in seen.names:
                return seen
            if clock.monotonic() >= deadline:
                return seen or await self._must_observe()
            await clock.sleep(settings.stage_poll.total_seconds())

    async def _activate(self) -> None:
        target, previous = self.rec.target, self.rec.previous
        seen = await self._observe()
        if seen is None:
            if self.rec.marker == _REBOOT_ISSUED:
                self._enter(Phase.AWAIT_BOOT)
                return
            raise _Failure("unreachable before reboot")
        if seen.running == target:
            self._enter(Phase.VERIFY)
            return
        if target not in seen.names:
            raise RolloutError(f"target image {target} is no longer installed")
        if self.rec.marker == _REBOOT_ISSUED and seen.default == previous:
            raise _Failure(f"{target} did not boot; the device reverted to {previous}")
        if seen.default != target:
            await self._set_default(target)
        self._mark(_REBOOT_ISSUED)
        try:
            await self.client.reboot()
        except Unsupported:
            self._mark("")
            raise _Park(OutcomeStatus.WAITING, "reboot-unsupported: reboot it by hand") from None
        except DeviceError as e:
            if not isinstance(e, _TRANSIENT):
                raise
        self._enter(Phase.AWAIT_BOOT)

    async def _wait_boot(self, want: str, revert: str | None) -> _Seen | None:
        clock, settings = self.ctx.clock, self.ctx.settings
        deadline = clock.monotonic() + settings.boot_timeout.total_seconds()
        while True:
            # Sleep first: a device that was just told to reboot is not back yet.
            await clock.sleep(settings.boot_poll.total_seconds())
            seen = await self._observe()
            if seen is not None and seen.running == want:
                return seen
            if seen is not None and revert and seen.running == revert == seen.default:
                return seen
            if clock.monotonic() >= deadline:
                return seen

    async def _await_boot(self) -> None:
        seen = await self._wait_boot(self.rec.target, self.rec.previous)
        if seen is None:
            raise _Failure(f"no answer within {self.ctx.settings.boot_timeout} of the reboot")
        if seen.running != self.rec.target:
            raise _Failure(f"{self.rec.target} did not boot; running {seen.running}")
        self._enter(Phase.VERIFY, marker="")

    async def _verify(self) -> None:
        seen = await self._must_observe()
        if seen.running != self.rec.target:
            raise _Failure(f"running {seen.running}, expected {self.rec.target}")
        self._enter(Phase.HEALTH, marker="")

    async def _health(self) -> None:
        result = await evaluate(self.ctx.spec.healthChecks, self.client.show, self.ctx.clock)
        if result.verdict is Verdict.INCONCLUSIVE:
            detail = self.ctx.redact(f"health inconclusive: {result.detail}")
            self.rec = self.rec.but(marker=_INCONCLUSIVE, last_error=detail)
            self.ctx.journal.write_device(self.rec)
            raise _Park(OutcomeStatus.PAUSED, detail)
        if result.verdict is Verdict.FAIL:
            raise _Failure(f"health check failed: {result.detail}")
        # The built-in gate (reachable, running the target) held at verify; after checks
        # that took time, look again.
        if self.ctx.spec.healthChecks:
            seen = await self._must_observe()
            if seen.running != self.rec.target:
                raise _Failure(f"running {seen.running} after health checks")
        if self.rec.hop + 1 < len(self.work.path):
            nxt = self.work.path[self.rec.hop + 1]
            self._enter(
                Phase.PRECHECK,
                f"hop {self.rec.hop} done",
                hop=self.rec.hop + 1,
                target=nxt,
                marker="",
            )
            return
        self._enter(Phase.DONE, marker="")

    async def _rollback(self) -> None:
        """Back to ``previous``: set it default (1.5+), reboot, and wait for the boot.

        The boot wait is part of this phase in the journal (planning's phases have one
        ``await-boot``); the ``reboot-issued`` marker tells a restart it was sent.
        """
        previous = self.rec.previous
        if not self.ctx.spec.rollback.automatic:
            self._enter(Phase.FAILED, f"{self.rec.last_error}; automatic rollback is off")
            return
        seen = await self._observe()
        if seen is None:  # rebooting, or the target never came up: give it the boot time
            seen = await self._wait_boot(previous, None)
        if seen is not None and seen.running != previous:
            if previous not in seen.names:
                raise RolloutError(f"previous image {previous} is gone")
            if not supports_set_default(seen.running):
                self._enter(
                    Phase.FAILED,
                    f"{self.rec.last_error}; rollback-unsupported: {seen.running} has no "
                    "set_default over the API, a human must roll it back",
                )
                return
            if seen.default != previous:
                await self._set_default(previous)
            self._mark(_REBOOT_ISSUED)
            try:
                await self.client.reboot()
            except DeviceError as e:
                if not isinstance(e, _TRANSIENT):
                    raise
            seen = await self._wait_boot(previous, None)
        if seen is not None and seen.running == previous and seen.default != previous:
            if supports_set_default(seen.running):
                await self._set_default(previous)
            else:
                # 1.3/1.4: the add made the target the default boot and the API cannot
                # undo it; say so, or the next reboot would silently upgrade the router.
                self.rec = self.rec.but(
                    last_error=f"{self.rec.last_error}; default boot is still "
                    f"{seen.default}: set it back to {previous} by hand"
                )
        self._enter(Phase.VERIFY_ROLLBACK, marker="")

    async def _verify_rollback(self) -> None:
        seen = await self._observe()
        error = self.rec.last_error
        if seen is not None and seen.running == self.rec.previous:
            self._enter(Phase.FAILED, error, marker="rolled-back")
            return
        running = seen.running if seen else "no answer"
        self._enter(Phase.FAILED, f"{error}; rollback did not take ({running})")


def _text(error: BaseException) -> str:
    if isinstance(error, DeviceError):
        return f"{error.reason}: {error.detail}"
    return str(error)
