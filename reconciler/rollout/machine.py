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

Safety around the reboot (the journal's ``attempt`` record keeps what it needs, so a
restart resumes with it):

- precheck probes the policy's health checks once: a device already unhealthy is skipped,
  and the measures of a healthy one are its baseline for the health gate;
- a disruptive step (the add on 1.3/1.4, which makes the target the default boot, and
  every reboot but a rollback's) starts only if the allow window stays open, with no deny
  window, for ``maxStepDuration`` (or the longest step measured so far) per step; until
  then the device waits, and parks when the run is told to stop;
- the add copies the saved config into the new image: a digest of the config is taken
  right before and right after the add, so the copy can be recognised after the boot;
- right before the reboot the config is saved again, backed up, and copied to a file on the
  device (again if a last look finds it changed meanwhile); after the boot the running
  config is compared with that backup. If it is the add's copy and the backup holds a later
  change, the backup's copy is loaded and saved (after a last look for a change made on the
  new image meanwhile); any other difference (a change made on the new image) is kept. The
  transition says which;
- the built-in gate (always): the device answers, runs the target, and its uptime reset;
- a device that does not answer after its reboot follows ``rollback.onUnreachable``;
- after the health gate passes, old images beyond ``keepImages`` are deleted (never the
  running, default-boot or rollback image).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from reconciler.devices.parse import parse_uptime
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
from reconciler.rollout.health import Verdict, evaluate, measure, probe_problem
from reconciler.rollout.journal import DeviceRecord
from reconciler.rollout.model import (
    ADD_ISSUED,
    DISRUPTIVE,
    DeviceClient,
    DeviceOutcome,
    OutcomeStatus,
    Transition,
)

__all__ = ["PRE_ACTIVATION_FILE", "DeviceRun", "supports_set_default"]

# Where the config saved right before a reboot is copied on the device: the persistence
# root is shared by every installed image, unlike /config, which the add copies per image.
PRE_ACTIVATION_FILE = "/lib/live/mount/persistence/gitfirm-pre-activation.boot"
# Slack on "uptime has reset": rounding of the device's uptime and our own polling.
_UPTIME_SLACK = timedelta(minutes=1)
# How often the config is saved again when an operator keeps changing it while it is
# backed up right before the reboot, or while the backup is about to be restored.
_CONFIG_LOOKS = 3

_REBOOT_ISSUED = "reboot-issued"
_STAGED = "staged"
_INCONCLUSIVE = "inconclusive"
# Phases from which a run starts over at precheck on the plan's current path.
_RESTART = frozenset({Phase.PENDING, Phase.SKIPPED, Phase.PRECHECK, Phase.BACKUP})
# No answer, or not yet: the device may be rebooting, or the work may go on there.
_TRANSIENT = (Unreachable, DeviceServerError, UpstreamTimeout)


def _digest(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()


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
        self._step_started: float | None = None
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

    def _attempt(self) -> dict[str, Any]:
        return self.ctx.journal.attempt(self.ctx.policy, self.work.device)

    def _note(self, **data: Any) -> None:
        """Add to the hop's attempt record, which a restart reads back."""
        merged = {**self._attempt(), **data}
        self.ctx.journal.write_attempt(self.ctx.policy, self.work.device, merged)

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
            self._completed()
            return self._outcome(OutcomeStatus.DONE)
        if rec.phase in DISRUPTIVE and rec.marker == _INCONCLUSIVE:
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
            self.ctx.journal.write_attempt(self.ctx.policy, self.work.device, {})
            self._enter(Phase.VERIFY, "already runs the target", previous=self._expected)
            return
        if seen.running != self._expected:
            self._enter(Phase.SKIPPED, f"runs {seen.running}, planned from {self._expected}")
            return
        if self.ctx.peer_busy(self.work):
            self._enter(Phase.SKIPPED, "a redundancy peer is in flight")
            return
        problem, baseline = await self._baseline()
        if problem:
            self._enter(Phase.SKIPPED, f"unhealthy before the upgrade: {problem}")
            return
        # The digests of configs copied by earlier adds outlive the attempt: an image staged
        # early may be activated under a later revision, after a fresh precheck.
        staged = self._attempt().get("staged_configs") or {}
        self.ctx.journal.write_attempt(
            self.ctx.policy,
            self.work.device,
            {"baseline": baseline, **({"staged_configs": staged} if staged else {})},
        )
        self._looked = seen
        # The attempt begins here, when the device is first changed; a skipped device
        # never began, so it keeps its chance under this revision and token.
        self._enter(Phase.BACKUP, previous=seen.running, attempts=max(1, self.rec.attempts))

    async def _baseline(self) -> tuple[str, dict[str, float]]:
        """One probe of each health check: the first problem, or the measures."""
        found: dict[str, float] = {}
        for check in self.ctx.spec.healthChecks:
            try:
                output = await self.client.show(check.show)
            except DeviceError as e:
                return f"{check.name}: probe error ({e.reason})", found
            problem = probe_problem(check, output)
            if problem:
                return f"{check.name}: {problem}", found
            found[check.name] = measure(check, output)
        return "", found

    async def _backup(self) -> None:
        await self.client.config_file_save()
        config = str(await self.client.retrieve(config_format="raw"))
        # File I/O in a worker thread: on a busy disk one write held the whole loop for seconds.
        backups, device, revision = self.ctx.backups, self.work.device, self.ctx.revision
        await asyncio.to_thread(backups.put, device, revision, config, self.ctx.clock.now())
        self._enter(Phase.STAGE)

    async def _stage(self) -> None:
        target = self.rec.target
        # Precheck's look, moments ago in this run, is still good (backup adds no image).
        seen, self._looked = self._looked or await self._must_observe(), None
        if seen.running == target:
            self._enter(Phase.VERIFY, "already runs the target")
            return
        if target not in seen.names and self.rec.marker == ADD_ISSUED:
            seen = await self._watch_add(target)
        added = target not in seen.names
        no_set_default = not supports_set_default(seen.running)
        # A reverted boot leaves the target installed but not default, and 1.3/1.4 cannot
        # point the default boot at it over the API: delete it and add it again instead.
        readd = not added and not self.early and no_set_default and seen.default != target
        if (added or readd) and not self.early and no_set_default:
            # On 1.3/1.4 the add makes the target the default boot for good: it is as
            # disruptive as the reboot that follows it.
            await self._await_window("stopped before disrupting the device")
        if readd:
            await self.client.image_delete(target)
            added = True
        if added:
            await self._digest_staged(target, before=True)
            self._mark(ADD_ISSUED)
            await self._add(target)
            await self._digest_staged(target, before=False)
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

    async def _digest_staged(self, target: str, *, before: bool) -> None:
        """Note the digest of the config that the add of ``target`` copies into the image.

        Taken right before the add (after a save, so the running config is the saved one
        the add copies) and right after it: a change made meanwhile may or may not be in
        the copy. A new add replaces what an earlier add of ``target`` noted."""
        try:
            if before:
                await self.client.config_file_save()
            digest = _digest(str(await self.client.retrieve(config_format="raw")))
        except DeviceError as e:
            if before or not isinstance(e, _TRANSIENT):
                raise
            return  # the add is done; the digest taken before it stands
        staged = dict(self._attempt().get("staged_configs") or {})
        known = [] if before else list(staged.get(target, []))
        staged[target] = known if digest in known else [*known, digest]
        self._note(staged_configs=staged)

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
        if self.stopping() and self.rec.marker != _REBOOT_ISSUED:
            # Superseded or shutting down: the reboot is not sent yet, so nothing is lost
            # by parking here (a new target must not be preceded by the old one's reboot).
            raise _Park(OutcomeStatus.WAITING, "stopped before the reboot")
        if await self._await_window("waiting for the window to fit the reboot"):
            return  # time passed: look at the device again
        await self._save_before_reboot()
        if seen.default != target:
            await self._set_default(target)
        self._mark(_REBOOT_ISSUED)
        self._step_started = self.ctx.clock.monotonic()
        self._note(rebooted_at=self.ctx.clock.now().isoformat())
        try:
            await self.client.reboot()
        except Unsupported:
            self._mark("")
            raise _Park(OutcomeStatus.WAITING, "reboot-unsupported: reboot it by hand") from None
        except DeviceError as e:
            if not isinstance(e, _TRANSIENT):
                raise
        self._enter(Phase.AWAIT_BOOT)

    def _window_fits(self) -> bool:
        """Whether a disruptive step can start now and end before the allow window closes
        or a deny window opens."""
        step = max(self.ctx.spec.strategy.maxStepDuration, self.ctx.longest_step)
        return self.ctx.window_fits(self.ctx.clock.now(), step)

    async def _await_window(self, parked: str) -> bool:
        """Wait until the window fits a step (True if it had to wait); park with ``parked``
        when the run is told to stop meanwhile."""
        waited = False
        while not self._window_fits():
            if self.stopping():
                raise _Park(OutcomeStatus.WAITING, parked)
            waited = True
            await self.ctx.clock.sleep(self.ctx.settings.window_poll.total_seconds())
        return waited

    async def _save_before_reboot(self) -> None:
        """Save the config again (changes since the add would be lost), back it up, and
        copy it to a file on the device that the new image can load.

        A last look right after catches an operator's change saved meanwhile (it would be
        in neither the backup nor the copy) and does it all again, so only a change in
        the moment between that look and the reboot can miss the new image."""
        for _ in range(_CONFIG_LOOKS):
            await self.client.config_file_save()
            config = str(await self.client.retrieve(config_format="raw"))
            taken = self.ctx.clock.now()
            put = self.ctx.backups.put
            device, revision = self.work.device, self.ctx.revision
            path = await asyncio.to_thread(put, device, revision, config, taken)
            try:
                await self.client.config_file_save(PRE_ACTIVATION_FILE)
                copied = True
            except CommandError:
                copied = False  # the comparison after the boot still tells
            self._note(pre_activation=str(path), pre_activation_revision=revision, copied=copied)
            if str(await self.client.retrieve(config_format="raw")) == config:
                return

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
            self._unreachable(f"no answer within {self.ctx.settings.boot_timeout} of the reboot")
        if seen.running != self.rec.target:
            raise _Failure(f"{self.rec.target} did not boot; running {seen.running}")
        self._enter(Phase.VERIFY, marker="")

    def _unreachable(self, why: str) -> NoReturn:
        """No answer after the reboot: roll back, or pause (``onUnreachable``)."""
        if self.ctx.spec.rollback.onUnreachable != "pause":
            raise _Failure(why)
        detail = self.ctx.redact(f"paused: {why}")
        self.rec = self.rec.but(marker=_INCONCLUSIVE, last_error=detail)
        self.ctx.journal.write_device(self.rec)
        raise _Park(OutcomeStatus.PAUSED, detail)

    async def _verify(self) -> None:
        """The built-in gate: the device answers, runs the target, and rebooted; then
        the config it booted with is checked against the pre-activation backup."""
        seen = await self._observe() or self._unreachable("no answer after the boot")
        if seen.running != self.rec.target:
            raise _Failure(f"running {seen.running}, expected {self.rec.target}")
        attempt = self._attempt()
        await self._check_uptime(attempt)
        self._enter(Phase.HEALTH, await self._check_config(attempt), marker="")

    async def _check_uptime(self, attempt: dict[str, Any]) -> None:
        if not attempt.get("rebooted_at"):
            return  # not rebooted by us (a human did, or it already ran the target)
        seconds, _ = parse_uptime(await self.client.show(["system", "uptime"]))
        if seconds is None:
            return
        elapsed = self.ctx.clock.now() - datetime.fromisoformat(attempt["rebooted_at"])
        if timedelta(seconds=seconds) > elapsed + _UPTIME_SLACK:
            raise _Failure(f"uptime {seconds:.0f}s: the device did not reboot")

    async def _check_config(self, attempt: dict[str, Any]) -> str:
        """Compare the running config with the pre-activation backup; restore it if they
        differ. Returns what to report (empty: nothing to say)."""
        saved = attempt.get("pre_activation")
        if not saved:
            return ""
        try:
            before = await asyncio.to_thread(
                self.ctx.backups.read,
                Path(saved),
                self.work.device,
                attempt["pre_activation_revision"],
            )
        except (OSError, RolloutError):
            return "config not compared: the pre-activation backup is gone"
        staged = (attempt.get("staged_configs") or {}).get(self.rec.target, [])
        running = str(await self.client.retrieve(config_format="raw"))
        for _ in range(_CONFIG_LOOKS):
            if running == before or _digest(running) not in staged:
                break
            # A last look before loading the backup over the add's copy: a change saved on
            # the new image since the first look would be thrown away by the load.
            again = str(await self.client.retrieve(config_format="raw"))
            if again == running:
                break
            running = again
        if running == before:
            return ""
        if _digest(running) not in staged:
            # Not the copy the add took: changed on the new image (or migrated by it, or
            # an add we did not see). Loading the backup would throw that change away.
            later = (
                ""
                if _digest(before) in staged
                else "; the backup holds a change made after the image add"
            )
            return (
                "config differs from the pre-activation backup and is not the copy the "
                f"image add took: kept it{later}; compare with gitfirm backup show"
            )
        if not attempt.get("copied"):
            return (
                "config differs from the pre-activation backup and no copy is on the "
                "device: restore it with gitfirm backup restore"
            )
        await self.client.config_file_load(PRE_ACTIVATION_FILE)
        await self.client.config_file_save()
        return "config restored: the booted config differed from the pre-activation backup"

    async def _health(self) -> None:
        result = await evaluate(
            self.ctx.spec.healthChecks,
            self.client.show,
            self.ctx.clock,
            self._attempt().get("baseline"),
            pause_unreachable=self.ctx.spec.rollback.onUnreachable == "pause",
        )
        if result.verdict is Verdict.INCONCLUSIVE:
            detail = self.ctx.redact(f"health inconclusive: {result.detail}")
            self.rec = self.rec.but(marker=_INCONCLUSIVE, last_error=detail)
            self.ctx.journal.write_device(self.rec)
            raise _Park(OutcomeStatus.PAUSED, detail)
        if result.verdict is Verdict.FAIL:
            raise _Failure(f"health check failed: {result.detail}")
        # The built-in gate held at verify; after checks that took time, look again.
        seen = await self._must_observe()
        if seen.running != self.rec.target:
            raise _Failure(f"running {seen.running} after health checks")
        if self._step_started is not None:
            took = timedelta(seconds=self.ctx.clock.monotonic() - self._step_started)
            self.ctx.longest_step = max(self.ctx.longest_step, took)
        cleaned = await self._housekeep(seen)
        if self.rec.hop + 1 < len(self.work.path):
            nxt = self.work.path[self.rec.hop + 1]
            self._enter(
                Phase.PRECHECK,
                "; ".join(filter(None, [f"hop {self.rec.hop} done", cleaned])),
                hop=self.rec.hop + 1,
                target=nxt,
                marker="",
            )
            return
        self._enter(Phase.DONE, cleaned, marker="")
        self._completed()

    def _completed(self) -> None:
        """Only a completed upgrade moves the anti-rollback mark (idempotent, so a run
        that finds ``done`` after a crash raises it too)."""
        if self.ctx.marks is not None and self.work.channel:
            self.ctx.marks.completed(
                self.work.channel, self.rec.target, self.work.device, self.ctx.clock.now()
            )

    async def _housekeep(self, seen: _Seen) -> str:
        """Delete old images beyond ``keepImages`` (newest kept, as the device lists them);
        never the running, default-boot or rollback image. Says what it did."""
        protected = {seen.running, seen.default, self.rec.previous} - {None}
        room = max(0, self.ctx.spec.keepImages - len(protected & set(seen.names)))
        doomed = [n for n in seen.names if n not in protected][room:]
        deleted: list[str] = []
        for name in doomed:
            try:
                await self.client.image_delete(name)
            except DeviceError as e:
                # Housekeeping never fails a healthy upgrade; the next one tries again.
                done = f"deleted {', '.join(deleted)}; " if deleted else ""
                return f"images: {done}could not delete {name} ({e.reason})"
            deleted.append(name)
        return f"deleted old images: {', '.join(deleted)}" if deleted else ""

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
