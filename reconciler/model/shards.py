"""Shards: which instance owns which devices, and what may not cross a shard's edge.

A shard is a name plus a label selector written as text, as ``kubectl -l`` takes it::

    site in (fra, ams)      site=fra      site!=lab      tier      !canary
    site notin (lab), tier=edge           (a comma means "and")

The short keys ``site``, ``arch`` and ``name`` stand for the implicit device labels
``gitfirm.io/site``, ``gitfirm.io/arch`` and ``gitfirm.io/name``; any other key is a
device label. The text becomes the same :class:`~reconciler.model.fields.LabelSelector`
that policies use, so a shard selects devices exactly as a policy would.

Each instance observes, plans and rolls out only the devices its selector matches. What
needs one actor across devices must stay inside one shard, or two instances would each
think they own it: :func:`check_shards` refuses a redundancy group, or a RolloutPolicy
(waves, ``maxUnavailable``, ``failureThreshold`` count across its devices), whose devices
lie on both sides of a shard's edge, and a device two shards both claim. CompliancePolicies
judge each device alone, so they may span shards.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from pydantic import ValidationError

from reconciler.errors import ConfigError
from reconciler.model.fields import LabelSelector, SelectorRequirement
from reconciler.model.kinds import Device
from reconciler.model.references import select_devices
from reconciler.model.state import DesiredState

__all__ = [
    "Shard",
    "ShardError",
    "check_shards",
    "load_shards",
    "parse_selector",
    "parse_shard",
    "restrict",
]

_ALIASES = {"site": "gitfirm.io/site", "arch": "gitfirm.io/arch", "name": "gitfirm.io/name"}
# A label key (optionally prefixed, as in Kubernetes) and a label value.
_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<bang>!?)\s*(?P<key>{_KEY})\s*$")
_SHARD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ShardError(ConfigError):
    """A shard selector or shard list that cannot be used (exit 2: fix the invocation)."""


@dataclass(frozen=True, slots=True)
class Shard:
    """One instance's share of the fleet: ``name`` names its status folder."""

    name: str
    selector: LabelSelector
    text: str = ""
    """The selector as written, for messages."""

    def owns(self, device: Device) -> bool:
        """Whether this shard's instance owns ``device``."""
        return self.selector.matches(device.selector_labels)


def _split(text: str) -> list[str]:
    """Requirements separated by commas outside parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ShardError(f"selector {text!r}: unbalanced ')'")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ShardError(f"selector {text!r}: unbalanced '('")
    return [*parts, text[start:]]


def _key(key: str) -> str:
    return _ALIASES.get(key, key)


def _requirement(part: str, text: str) -> tuple[str, str] | SelectorRequirement:
    """One requirement: ``(key, value)`` for an equality, else a SelectorRequirement."""
    if m := _SET.match(part):
        values = [v.strip() for v in m["values"].split(",")]
        if not all(values) or not all(re.fullmatch(_VALUE, v) for v in values):
            raise ShardError(f"selector {text!r}: {part.strip()!r} needs values like (a, b)")
        operator = "In" if m["op"] == "in" else "NotIn"
        return SelectorRequirement(key=_key(m["key"]), operator=operator, values=sorted(values))
    if m := _EQ.match(part):
        if m["op"] == "!=":
            return SelectorRequirement(key=_key(m["key"]), operator="NotIn", values=[m["value"]])
        return (_key(m["key"]), m["value"])
    if m := _EXISTS.match(part):
        operator = "DoesNotExist" if m["bang"] else "Exists"
        return SelectorRequirement(key=_key(m["key"]), operator=operator)
    raise ShardError(
        f"selector {text!r}: cannot read {part.strip()!r}; write e.g. 'site in (fra, ams)', "
        "'site=fra', 'site!=lab', 'tier' or '!canary'"
    )


def parse_selector(text: str) -> LabelSelector:
    """The LabelSelector a ``kubectl -l`` style selector text means; :class:`ShardError`
    when it cannot be read. An empty text is refused: a shard owning every device is no
    shard (run without ``--shard`` instead)."""
    if not text.strip():
        raise ShardError("an empty shard selector would own every device; run without --shard")
    labels: dict[str, str] = {}
    expressions: list[SelectorRequirement] = []
    try:
        for part in _split(text):
            if not part.strip():
                raise ShardError(f"selector {text!r}: an empty requirement between commas")
            found = _requirement(part, text)
            if isinstance(found, SelectorRequirement):
                expressions.append(found)
            elif labels.get(found[0], found[1]) != found[1]:
                raise ShardError(f"selector {text!r}: {found[0]} cannot equal two values")
            else:
                labels[found[0]] = found[1]
    except ValidationError as e:
        raise ShardError(f"selector {text!r}: {e.errors()[0]['msg']}") from None
    return LabelSelector(matchLabels=labels, matchExpressions=expressions)


def parse_shard(name: str, text: str) -> Shard:
    """A shard from its name and selector text (``--shard-name``, ``--shard``)."""
    if not _SHARD_NAME.match(name):
        raise ShardError(
            f"shard name {name!r} must be lower-case letters, digits and '-' (at most 63), "
            "as it names the folder shards/<name>/ on the status branch"
        )
    return Shard(name, parse_selector(text), text.strip())


def load_shards(path: Path) -> list[Shard]:
    """Shards from a YAML file mapping each shard name to its selector text."""
    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ShardError(f"cannot read shards file {path}: {e}") from None
    if isinstance(loaded, dict) and set(loaded) == {"shards"}:
        loaded = loaded["shards"]
    if not isinstance(loaded, dict) or not loaded:
        raise ShardError(f"{path}: give a mapping of shard name to selector, e.g. 'fra: site=fra'")
    shards = []
    for name, text in loaded.items():
        if not isinstance(text, str):
            raise ShardError(f"{path}: shard {name!r}: the selector must be text like 'site=fra'")
        shards.append(parse_shard(str(name), text))
    return shards


def check_shards(state: DesiredState, shards: Iterable[Shard]) -> list[ConfigError]:
    """Why ``state`` cannot be split into ``shards``: a device claimed twice, a redundancy
    group or RolloutPolicy with devices on both sides of a shard's edge (outside every
    listed shard counts as one more side). Empty when the split is safe."""
    shards = list(shards)
    errors: list[ConfigError] = []
    owner: dict[str, str | None] = {}
    for name, device in sorted(state.devices.items()):
        claims = [s.name for s in shards if s.owns(device)]
        owner[name] = claims[0] if claims else None
        if len(claims) > 1:
            errors.append(
                ConfigError(
                    f"device {name!r} is selected by shards {', '.join(claims)}: give every "
                    "device exactly one shard, or two instances would upgrade it",
                    location=state.location("Device", name),
                    field="spec.site",
                )
            )

    def side(names: Iterable[str]) -> str:
        # Per side: how many devices, and the first one (a policy may select thousands).
        by_side: dict[str, list[str]] = defaultdict(list)
        for n in names:
            by_side[owner[n] or "no listed shard"].append(n)
        return ", ".join(
            f"{where} ({len(found)} device{'s' if len(found) > 1 else ''}: {found[0]}"
            f"{', ...' if len(found) > 1 else ''})"
            for where, found in sorted(by_side.items())
        )

    groups: dict[str, list[str]] = defaultdict(list)
    for name, device in sorted(state.devices.items()):
        if device.spec.redundancyGroup:
            groups[device.spec.redundancyGroup].append(name)
    for group, members in sorted(groups.items()):
        if len({owner[m] for m in members}) > 1:
            errors.append(
                ConfigError(
                    f"redundancy group {group!r} spans shards: {side(members)}; one shard "
                    "must own the whole group, or both members could reboot at once",
                    location=state.location("Device", members[0]),
                    field="spec.redundancyGroup",
                )
            )
    for name, policy in sorted(state.rollout_policies.items()):
        selected = [d.name for d in select_devices(policy, state.devices)]
        if len({owner[d] for d in selected}) > 1:
            errors.append(
                ConfigError(
                    f"RolloutPolicy {name!r} spans shards: {side(selected)}; narrow its "
                    "selector (e.g. by site) to one shard, or its waves and failure "
                    "threshold would be counted by several instances",
                    location=state.location("RolloutPolicy", name),
                    field="spec.selector",
                )
            )
    return errors


def restrict(state: DesiredState, shard: Shard) -> DesiredState:
    """The desired state one shard acts on: its devices, and the rollout policies that
    select any of them (after :func:`check_shards`, those select nothing else)."""
    devices = {n: d for n, d in state.devices.items() if shard.owns(d)}
    policies = {n: p for n, p in state.rollout_policies.items() if select_devices(p, devices)}
    return replace(state, devices=devices, rollout_policies=policies)
