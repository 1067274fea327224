"""Which roles a change to one document needs, by its kind and channel (see AccessPolicy).

:func:`requirements` lists, for one version of a document, every rule that governs it as
(rule, roles) pairs; a signer needs one role of *each*. The rules, in order:

- an ``AccessPolicy`` always needs the policy's ``adminRole``;
- the policy's ``kinds`` rules matching the document's kind and, for ``Image`` and
  ``TrustPolicy``, one of its channels;
- for each channel no ``kinds`` rule covers, the defaults: every ``TrustPolicy`` and every
  ``production`` ``Image`` need ``adminRole``;
- a ``Device`` with ``insecurePlaintext: true`` or ``tls.insecureSkipVerify: true`` also
  needs ``adminRole`` (its API key is open to anyone on the path);
- so does a ``RolloutPolicy`` with ``strategy.allowDowngrade: true`` (anti-rollback off);
- a ``DiscoveryPolicy`` (it aims the daemon's probes, and a device key, at networks) and an
  ``ImageSource`` (it feeds builds into proposals) always need ``adminRole``; so does a
  ``NotificationPolicy`` (it sends fleet news, and secrets from the daemon's environment, to
  URLs it names).

A channel the document does not spell as a known channel counts as every channel, so an
invalid document never needs less authority than a valid one.
"""

from __future__ import annotations

from typing import Any, get_args

from reconciler.model.kinds import AccessPolicySpec, Channel

__all__ = ["Requirement", "requirements"]

Requirement = tuple[str, tuple[str, ...]]
"""(the rule that applies, in words; the roles of which the signer needs one)."""

_CHANNELS: tuple[str, ...] = get_args(Channel)
_ADMIN_ALWAYS = ("DiscoveryPolicy", "ImageSource", "NotificationPolicy")
_ADMIN_BY_DEFAULT = {"TrustPolicy": _CHANNELS, "Image": ("production",)}


def _spec(data: dict[str, Any]) -> dict[str, Any]:
    spec = data.get("spec")
    return spec if isinstance(spec, dict) else {}


def _channels(kind: str, data: dict[str, Any]) -> tuple[str, ...]:
    spec = _spec(data)
    raw: Any = spec.get("channel") if kind == "Image" else spec.get("channels")
    named = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if not named or any(c not in _CHANNELS for c in named):
        return _CHANNELS
    return tuple(dict.fromkeys(named))


def requirements(policy: AccessPolicySpec, kind: str, data: dict[str, Any]) -> list[Requirement]:
    """The rules governing this version of a ``kind`` document (see the module docstring)."""
    admin = (policy.adminRole,)
    if kind == "AccessPolicy":
        return [("the AccessPolicy is changed only by its adminRole", admin)]
    if kind in _ADMIN_ALWAYS:
        return [(f"a {kind} is changed only by the adminRole", admin)]
    out: list[Requirement] = []
    channels = _channels(kind, data) if kind in _ADMIN_BY_DEFAULT else ()
    covered: set[str] = set()
    for index, rule in enumerate(policy.kinds):
        if rule.kind != kind:
            continue
        if rule.channels:
            hit = [c for c in channels if c in rule.channels]
            if not hit:
                continue
            covered.update(hit)
            label = f"kinds[{index}] ({kind} on {', '.join(hit)})"
        else:
            covered.update(channels)
            label = f"kinds[{index}] ({kind})"
        out.append((label, tuple(rule.roles)))
    for channel in _ADMIN_BY_DEFAULT.get(kind, ()):
        if channel in channels and channel not in covered:
            out.append((f"default: {kind} on {channel} needs adminRole", admin))
    if kind == "Device" and _spec(data).get("insecurePlaintext") not in (None, False):
        out.append(("default: a Device with insecurePlaintext: true needs adminRole", admin))
    if kind == "Device" and _tls(data).get("insecureSkipVerify") not in (None, False):
        # Any man in the middle gets the API key, as over plain http.
        out.append(("default: a Device with tls.insecureSkipVerify: true needs adminRole", admin))
    if kind == "RolloutPolicy" and _strategy(data).get("allowDowngrade") not in (None, False):
        # It turns anti-rollback off: back to an older, signed but vulnerable image.
        out.append(("default: a RolloutPolicy with allowDowngrade: true needs adminRole", admin))
    return out


def _strategy(data: dict[str, Any]) -> dict[str, Any]:
    strategy = _spec(data).get("strategy")
    return strategy if isinstance(strategy, dict) else {}


def _tls(data: dict[str, Any]) -> dict[str, Any]:
    tls = _spec(data).get("tls")
    return tls if isinstance(tls, dict) else {}
