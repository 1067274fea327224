"""The planner: ``plan(desired, facts, progress, now) -> Plan``, a pure function.

For every Device, in this order (the first rule that applies decides the action):

1. Selected by more than one RolloutPolicy: ``blocked`` ("selected by several policies"),
   and an error in ``Plan.errors``. No policy wins, so a merge cannot pick one silently.
2. No facts, or not reachable: ``unreachable`` (without any observation source every
   device is "not observed yet"), except a device in a disruptive phase (see 6): it is an
   ``upgrade`` at its journalled hop, for the engine to wait for or roll back.
3. Running version unknown or not a VyOS version: ``incompatible``.
4. No RolloutPolicy: ``none`` (or ``non-compliant``, rule 9). A device whose observed
   release flavor differs from its declared ``platform.flavor`` is ``incompatible``: its
   images were chosen for the declared flavor, and a flavor change hangs ``/image add``.
5. Target (see :mod:`reconciler.planning.targets`): missing or revoked is ``blocked``;
   no image for the platform, or no path (crossing a train needs an Image whose
   ``upgradeFrom`` names the device's train) is ``incompatible``. A target older than the
   running version is ``blocked`` unless ``strategy.allowDowngrade``; so is a target
   below the anti-rollback mark of its channel (:mod:`reconciler.planning.rollback`).
6. Already on target: ``none``, unless the engine is still in flight on it. The journal
   is the truth for a device in a disruptive phase (activate .. verify-rollback): its
   journalled hop is put back in front of the path, so the engine resumes it there (health
   gate included) whatever the device's current version says.
7. An upgrade is needed. Gates, in order: in flight (``upgrade``, the engine finishes);
   halted (``blocked``, until the ``retryToken`` changes); ``suspend`` (``suspended``);
   already attempted under this revision and retryToken (``blocked``); outside every
   allow window (``waiting-for-window``); otherwise ``upgrade``.
8. Compliance gate: an upgrade whose target violates a CompliancePolicy with
   ``enforcement: block`` selecting the device (or whose path steps through a forbidden
   or unapproved image) is ``blocked``, the reason naming the violations, and takes no
   wave; ``warn`` policies add a note. An upgrade in flight is finished.
9. Waves: devices with somewhere to go, or already touched by this revision's rollout,
   get a wave and an order (:mod:`reconciler.planning.waves`); after the canary, exposed
   devices go first in their wave.
10. Compliance: violations are listed on every device a CompliancePolicy selects. A
   device with nothing planned and violations is ``non-compliant``; a note says when an
   upgrade fixes them. A non-compliant or exposed device gets a recommendation
   (:mod:`reconciler.planning.recommend`).

No I/O and no clock: ``now`` is an argument. Texts from facts and progress (errors, halt
reasons) are expected sanitized by the stages that produced them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from reconciler.model.facts import DeviceFacts
from reconciler.model.features import api_features
from reconciler.model.kinds import Advisory as KindAdvisory
from reconciler.model.kinds import Device, Image, Platform, RolloutPolicy
from reconciler.model.state import DesiredState
from reconciler.model.versions import Version, VersionError
from reconciler.planning import compliance
from reconciler.planning.paths import find_path, usable_images, version_of
from reconciler.planning.plan import (
    Action,
    Advisory,
    Hop,
    Plan,
    PlannedDevice,
    PlannedPolicy,
    PlannedWave,
    Recommendation,
    WindowInfo,
)
from reconciler.planning.progress import DISRUPTIVE, DeviceProgress, Phase, RolloutProgress
from reconciler.planning.recommend import recommend
from reconciler.planning.rollback import Marks, rollback_reason
from reconciler.planning.targets import platform_text, resolve_target
from reconciler.planning.waves import Assignment, Candidate, assign_waves
from reconciler.planning.windows import WindowStatus, window_status

__all__ = ["plan"]

_SETTLED = frozenset({Phase.FAILED, Phase.DONE, Phase.SKIPPED})


@dataclass
class _Draft:
    """A device's plan while it is being worked out."""

    device: Device
    policy: RolloutPolicy | None = None
    current: Version | None = None
    target_version: str | None = None
    target_image: str | None = None
    path: tuple[Image, ...] = ()
    action: Action = Action.NONE
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    verdict: compliance.Verdict | None = None
    in_waves: bool = False
    conflict: bool = False
    recommendation: Recommendation | None = None


@dataclass(frozen=True)
class _Context:
    desired: DesiredState
    progress: RolloutProgress
    windows: Mapping[str, WindowStatus]
    images: tuple[Image, ...]
    marks: Marks
    exposure: compliance.Exposure
    # Routes depend only on policy, version and platform: computed once per plan.
    routes: dict[tuple[str, str, str, str], _Route] = field(default_factory=dict)
    # Recommendations depend on version, platform and the compliance policies selecting.
    advice: dict[tuple[str, ...], Recommendation | None] = field(default_factory=dict)
    verdicts: dict[tuple[str, ...], compliance.Verdict] = field(default_factory=dict)
    # One plan Advisory per advisory: devices share them by the thousand.
    shown: dict[str, Advisory] = field(default_factory=dict)


def _current_version(facts: DeviceFacts) -> Version | None:
    text = facts.version or facts.running_image
    if text is None:
        return None
    try:
        return version_of(text)
    except VersionError:
        return None


@dataclass(frozen=True)
class _Route:
    """Where a device on one version and platform goes under one policy."""

    target_version: str | None
    target_image: str | None = None
    path: tuple[Image, ...] = ()
    action: Action = Action.NONE
    reason: str | None = None
    note: str | None = None


def _route(policy: RolloutPolicy, current: Version, platform: Platform, ctx: _Context) -> _Route:
    """Steps 5-6: target and path; an empty path when nothing is to be done."""
    hops = usable_images(ctx.images, platform)
    choice = resolve_target(policy, ctx.images, hops, current, platform)
    if choice.image is None:
        kind = Action.BLOCKED if choice.kind == "blocked" else Action.INCOMPATIBLE
        return _Route(choice.version, action=kind, reason=choice.problem)
    target = choice.image
    wanted = version_of(target.spec.version)
    route = _Route(choice.version, target.name)
    if wanted.comparable(current) and wanted.key == current.key:
        return route
    if wanted.comparable(current) and wanted < current:
        if not policy.spec.strategy.allowDowngrade:
            why = f"downgrade from {current} to {wanted} needs strategy.allowDowngrade"
            return replace(route, action=Action.BLOCKED, reason=why)
        note = f"downgrade from {current} to {wanted} (allowDowngrade)"
        return replace(route, path=(target,), note=note)
    if not policy.spec.strategy.allowDowngrade:
        rollback = rollback_reason(target, ctx.marks)
        if rollback is not None:
            return replace(route, action=Action.BLOCKED, reason=rollback)
    path = find_path(current, target, hops)
    if path is None:
        why = f"no approved path from {current} to {wanted}"
        if not wanted.comparable(current):
            why += (
                f": crossing from train {current.train} to {wanted.train} needs an Image "
                f"whose upgradeFrom names {current.train} versions"
            )
        return replace(route, action=Action.INCOMPATIBLE, reason=why)
    return replace(route, path=path)


def _resolve(draft: _Draft, policy: RolloutPolicy, ctx: _Context) -> None:
    """Apply the (memoized) route of the draft's version and platform."""
    assert draft.current is not None
    platform = draft.device.spec.platform
    key = (policy.name, draft.current.text, platform.arch, platform.flavor)
    if key not in ctx.routes:
        ctx.routes[key] = _route(policy, draft.current, platform, ctx)
    route = ctx.routes[key]
    draft.target_version, draft.target_image = route.target_version, route.target_image
    draft.path, draft.action, draft.reason = route.path, route.action, route.reason
    if route.note:
        draft.notes.append(route.note)


def _gate(draft: _Draft, policy: RolloutPolicy, ctx: _Context) -> None:
    """Step 7: decide the action of a device that has somewhere to go."""
    revision, token = ctx.desired.revision, policy.spec.retryToken
    state = ctx.progress.policy(policy.name)
    mine = ctx.progress.device(policy.name, draft.device.name)
    window = ctx.windows[policy.name]
    if mine is not None and mine.in_flight:
        draft.action = Action.UPGRADE
        draft.notes.append(f"in flight: {mine.phase.value}, hop {mine.hop + 1}")
    elif state is not None and state.halt_in_force(token):
        draft.action = Action.BLOCKED
        draft.reason = f"rollout halted: {state.halt_reason or 'no reason recorded'}"
    elif policy.spec.suspend:
        draft.action = Action.SUSPENDED
    elif mine is not None and mine.phase in _SETTLED and mine.attempted(revision, token):
        draft.action = Action.BLOCKED
        error = f": {mine.last_error}" if mine.last_error else ""
        draft.reason = (
            f"already attempted at this revision (ended {mine.phase.value}{error}); "
            "change retryToken to try again"
        )
    elif not window.allowed:
        draft.action = Action.WAITING
        opens = window.next_open.isoformat() if window.next_open else "never"
        draft.notes.append(f"window opens {opens}")
        assert draft.current is not None
        if api_features(draft.current.text).set_default and policy.spec.strategy.stageEarly:
            draft.notes.append("staged early (1.5+)")
    else:
        draft.action = Action.UPGRADE


def _journalled_hop(draft: _Draft, mine: DeviceProgress | None, ctx: _Context) -> Image | None:
    """The Image of a disrupted device's journalled hop (None when not disrupted)."""
    if mine is None or mine.phase not in DISRUPTIVE or not mine.target_version:
        return None
    for image in usable_images(ctx.images, draft.device.spec.platform):
        if image.spec.version == mine.target_version:
            return image
    draft.notes.append(f"in flight on {mine.target_version}, which no Image names any more")
    return None


def _resume_unanswered(draft: _Draft, ctx: _Context) -> bool:
    """A disrupted device that does not answer (rebooting, or gone) is resumed at its
    journalled hop all the same: the engine waits for it, or rolls it back."""
    if draft.policy is None:
        return False
    mine = ctx.progress.device(draft.policy.name, draft.device.name)
    hop = _journalled_hop(draft, mine, ctx)
    if mine is None or hop is None:
        return False
    draft.current = version_of(hop.spec.version)
    draft.path, draft.action, draft.in_waves = (hop,), Action.UPGRADE, True
    draft.notes.append(f"in flight: {mine.phase.value}, not answering: {draft.reason}")
    draft.reason = None
    return True


def _resume_hop(draft: _Draft, mine: DeviceProgress | None, ctx: _Context) -> None:
    """Put a disrupted device's journalled hop back in front of its path (see step 6)."""
    hop = _journalled_hop(draft, mine, ctx)
    if mine is None or hop is None or any(i.spec.version == hop.spec.version for i in draft.path):
        return
    if draft.action is not Action.NONE:
        # The route refused a new upgrade; the journalled hop still has to finish.
        draft.notes.append(f"finishing the hop to {mine.target_version}: {draft.reason}")
        draft.path, draft.action, draft.reason = (), Action.NONE, None
    draft.path = (hop, *draft.path)


_GATED = frozenset({Action.UPGRADE, Action.WAITING, Action.SUSPENDED})


def _enforce(draft: _Draft, mine: DeviceProgress | None, ctx: _Context) -> None:
    """Step 8: a target violating a CompliancePolicy with ``enforcement: block`` that
    selects the device is never started, nor a path through a forbidden or unapproved
    step; ``warn`` policies only add a note. An upgrade in flight is finished."""
    if not draft.path or draft.action not in _GATED:
        return
    *steps, last = draft.path
    target = _verdict(draft.device, version_of(last.spec.version), ctx)
    problems = list(target.blocking)
    for step in steps:
        verdict = _verdict(draft.device, version_of(step.spec.version), ctx, hop=True)
        problems += [f"step {p}" for p in verdict.blocking]
    warned = [v for v in target.violations if v not in target.blocking]
    if warned:
        draft.notes.append(f"target is non-compliant (enforcement: warn): {'; '.join(warned)}")
    if not problems:
        return
    if mine is not None and mine.in_flight:
        draft.notes.append(
            f"target is non-compliant, finishing the upgrade in flight: {problems[0]}"
        )
        return
    draft.action = Action.BLOCKED
    draft.reason = f"non-compliant target {last.spec.version}: {'; '.join(problems)}"


def _judge(draft: _Draft, ctx: _Context) -> None:
    """Step 10: compliance of the running version, whether the target fixes it, and the
    recommended target of a non-compliant or exposed device."""
    if draft.current is None:
        return
    draft.verdict = _verdict(draft.device, draft.current, ctx)
    if draft.verdict.violations or draft.verdict.advisories:
        draft.recommendation = _advice(draft, draft.current, draft.verdict, ctx)
    if not draft.verdict.violations:
        return
    if draft.action is Action.NONE:
        draft.action = Action.NON_COMPLIANT
    elif draft.path and draft.action is not Action.BLOCKED:
        after = _verdict(draft.device, version_of(draft.path[-1].spec.version), ctx)
        if not after.violations:
            draft.notes.append("the upgrade fixes compliance")


def _judged_as(device: Device, version: Version, ctx: _Context) -> tuple[str, ...]:
    """What a verdict depends on: version, platform, the compliance policies selecting."""
    platform = device.spec.platform
    selecting = (
        p.name
        for _, p in sorted(ctx.desired.compliance_policies.items())
        if p.spec.selector.matches(device.selector_labels)
    )
    return (version.text, platform.arch, platform.flavor, *selecting)


def _verdict(
    device: Device, version: Version, ctx: _Context, *, hop: bool = False
) -> compliance.Verdict:
    key = (*_judged_as(device, version, ctx), "hop" if hop else "")
    if key not in ctx.verdicts:
        ctx.verdicts[key] = compliance.evaluate(
            device, version, ctx.desired, hop=hop, exposure=ctx.exposure
        )
    return ctx.verdicts[key]


def _advice(
    draft: _Draft, current: Version, verdict: compliance.Verdict, ctx: _Context
) -> Recommendation | None:
    platform = draft.device.spec.platform
    key = _judged_as(draft.device, current, ctx)
    if key not in ctx.advice:
        hops = usable_images(ctx.images, platform)
        ctx.advice[key] = recommend(draft.device, current, verdict, hops, ctx.desired, ctx.exposure)
    return ctx.advice[key]


def _flavor_mismatch(device: Device, facts: DeviceFacts) -> str | None:
    """Why the device's declared flavor, which chose its images, is not what it runs.

    An image of another flavor makes the real installer ask a yes/no question on the API's
    closed stdin: ``/image add`` then hangs until nginx answers 504 (VYOS-API.md)."""
    declared = device.spec.platform.flavor
    if facts.flavor is None or facts.flavor == declared:
        return None
    return (
        f"device reports release flavor {facts.flavor!r} but its Device declares "
        f"{declared!r}: an image of another flavor would hang /image add; "
        "fix spec.platform.flavor"
    )


def _draft(device: Device, facts: DeviceFacts | None, observed: bool, ctx: _Context) -> _Draft:
    draft = _Draft(device)
    selecting = [
        p
        for _, p in sorted(ctx.desired.rollout_policies.items())
        if p.spec.selector.matches(device.selector_labels)
    ]
    if len(selecting) > 1:
        draft.conflict = True
        draft.action = Action.BLOCKED
        draft.reason = f"selected by several policies: {', '.join(p.name for p in selecting)}"
        return draft
    draft.policy = selecting[0] if selecting else None
    if draft.policy is not None:
        # Known without facts; a channel's latest depends on the device's version.
        draft.target_version = draft.policy.spec.target.version
    if facts is None or not facts.reachable:
        draft.action = Action.UNREACHABLE
        draft.reason = (
            (facts.error or "did not answer")
            if facts is not None
            else ("not observed yet" if observed else "no observation given")
        )
        _resume_unanswered(draft, ctx)
        return draft
    draft.current = _current_version(facts)
    if draft.current is None:
        draft.action = Action.INCOMPATIBLE
        draft.reason = f"running version {facts.version or facts.running_image!r} is unknown"
        return draft
    if draft.policy is not None and (mismatch := _flavor_mismatch(device, facts)):
        draft.action, draft.reason = Action.INCOMPATIBLE, mismatch
    elif draft.policy is not None:
        _resolve(draft, draft.policy, ctx)
        mine = ctx.progress.device(draft.policy.name, device.name)
        _resume_hop(draft, mine, ctx)
        if draft.path:
            _gate(draft, draft.policy, ctx)
            _enforce(draft, mine, ctx)
        elif draft.action is Action.NONE and mine is not None and mine.in_flight:
            draft.action = Action.UPGRADE
            draft.notes.append(f"in flight: {mine.phase.value}")
        # A device this rollout touched keeps its wave, whatever revision touched it: an
        # unrelated commit must not hand its canary slot to another device.
        touched = (
            mine is not None
            and mine.phase is not Phase.PENDING
            and (
                mine.revision == ctx.desired.revision
                or (mine.target_version is not None and mine.target_version == draft.target_version)
            )
        )
        draft.in_waves = (bool(draft.path) and draft.action is not Action.BLOCKED) or touched
    else:
        draft.notes.append("no rollout policy selects it")
    _judge(draft, ctx)
    return draft


def _target_text(policy: RolloutPolicy) -> str:
    target = policy.spec.target
    return f"version {target.version}" if target.version else f"latest of {target.channel}"


def _candidate(draft: _Draft, facts: DeviceFacts | None) -> Candidate:
    return Candidate(
        draft.device.name,
        draft.device.spec.redundancyGroup,
        None if facts is None else facts.health.load1,
        None if facts is None else facts.rtt_ms,
        exposure=draft.verdict.risk[0] if draft.verdict else 0,
    )


def _planned_policy(
    policy: RolloutPolicy, members: list[_Draft], assigned: Mapping[str, Assignment], ctx: _Context
) -> PlannedPolicy:
    state = ctx.progress.policy(policy.name)
    halted = state is not None and state.halt_in_force(policy.spec.retryToken)
    window = ctx.windows[policy.name]
    by_wave: dict[int, list[tuple[int, str]]] = {}
    for name, a in assigned.items():
        by_wave.setdefault(a.wave, []).append((a.order, name))
    waves = tuple(
        PlannedWave(
            index=index,
            label="canary" if index == 0 else f"wave {index}",
            devices=tuple(name for _, name in sorted(by_wave[index])),
        )
        for index in sorted(by_wave)
    )
    return PlannedPolicy(
        name=policy.name,
        target=_target_text(policy),
        devices=len(members),
        suspended=policy.spec.suspend,
        halted=halted,
        halt_reason=state.halt_reason if halted and state is not None else None,
        window=WindowInfo(
            allowed=window.allowed,
            closes_at=window.closes_at,
            next_open=window.next_open,
            reason=window.reason,
        ),
        waves=waves,
    )


def _shown(advisory: KindAdvisory, ctx: _Context) -> Advisory:
    found = ctx.shown.get(advisory.name)
    if found is None:
        spec = advisory.spec
        found = Advisory(name=advisory.name, severity=spec.severity, aliases=tuple(spec.aliases))
        ctx.shown[advisory.name] = found
    return found


def _planned_device(draft: _Draft, assignment: Assignment | None, ctx: _Context) -> PlannedDevice:
    verdict = draft.verdict
    notes = list(draft.notes) + (list(assignment.notes) if assignment else [])
    return PlannedDevice(
        name=draft.device.name,
        site=draft.device.spec.site,
        policy=draft.policy.name if draft.policy else None,
        redundancy_group=draft.device.spec.redundancyGroup,
        platform=platform_text(draft.device.spec.platform),
        current_version=draft.current.text if draft.current else None,
        target_version=draft.target_version,
        target_image=draft.target_image,
        path=tuple(
            Hop(image=i.name, version=i.spec.version, channel=i.spec.channel) for i in draft.path
        ),
        action=draft.action,
        reason=draft.reason,
        wave=assignment.wave if assignment else None,
        order=assignment.order if assignment else None,
        notes=tuple(notes),
        compliance_evaluated=verdict is not None and verdict.applies,
        compliance=verdict.violations if verdict else (),
        advisories=tuple(_shown(a, ctx) for a in (verdict.advisories if verdict else ())),
        recommendation=draft.recommendation,
    )


def plan(
    desired: DesiredState,
    facts: Mapping[str, DeviceFacts],
    progress: RolloutProgress | None,
    now: datetime,
    *,
    observed: bool = True,
    marks: Marks | None = None,
    sboms: compliance.Packages | None = None,
) -> Plan:
    """Plan every device of ``desired`` (see the module docstring for the rules).

    ``facts`` are keyed by device name; ``observed`` False says no observation source was
    given at all (devices are then "unreachable: no observation given"). ``now`` must be
    timezone-aware. ``marks`` are the anti-rollback marks of completed upgrades
    (:mod:`reconciler.planning.rollback`); without them no path is judged a rollback.
    ``sboms`` (Image name -> packages) add package exposure to compliance."""
    progress = progress or RolloutProgress()
    policies = sorted(desired.rollout_policies.values(), key=lambda p: p.name)
    ctx = _Context(
        desired,
        progress,
        {p.name: window_status(p.spec.windows, now) for p in policies},
        tuple(sorted(desired.images.values(), key=lambda i: i.name)),
        marks or {},
        compliance.Exposure(desired, sboms),
    )
    drafts = [
        _draft(d, facts.get(name), observed, ctx) for name, d in sorted(desired.devices.items())
    ]
    errors = [f"device {d.device.name} is {d.reason}" for d in drafts if d.conflict]
    warnings: list[str] = []
    planned_policies: list[PlannedPolicy] = []
    assignments: dict[str, Assignment] = {}
    for policy in policies:
        members = [d for d in drafts if d.policy is policy]
        if not members:
            warnings.append(f"rollout policy {policy.name} selects no device")
        if not any(w.type == "allow" for w in policy.spec.windows):
            warnings.append(
                f"rollout policy {policy.name} has no allow window: nothing is ever activated"
            )
        assigned = assign_waves(
            policy.name,
            policy.spec.strategy,
            [_candidate(d, facts.get(d.device.name)) for d in members if d.in_waves],
        )
        assignments.update(assigned)
        planned_policies.append(_planned_policy(policy, members, assigned, ctx))
    devices = tuple(_planned_device(d, assignments.get(d.device.name), ctx) for d in drafts)
    return Plan(
        revision=desired.revision,
        now=now,
        observed=observed,
        devices=devices,
        policies=tuple(planned_policies),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
