"""The VyOS HTTP API of one virtual device: request decoding, envelopes and every endpoint.

Follows VYOS-API.md: POST only except ``GET /info`` (1.5+); form ``data`` + ``key`` or a
JSON body with ``key`` at the top level; the ``{success, data, error}`` envelope served as
text/html; 401 ``Valid API key is required``; 422 for a form without ``data``; 400 with the
script's text for failures and for ``'x' is not a valid operation``; error text
HTML-escaped on 1.5/rolling; endpoints that a release lacks answer FastAPI's 404. What a
release offers follows its branch and build date (``VirtualDevice.features``), as on real
builds: ``set_default``/``show`` from 2024-05-27, ``/info`` from March 2025.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.simulator import outputs
from reconciler.simulator.device import VirtualDevice
from reconciler.simulator.install import ImageFailure, install_image

if TYPE_CHECKING:
    from reconciler.simulator.server import Simulator

__all__ = ["ENDPOINTS", "dispatch", "envelope", "not_found"]

# What decides whether a release offers an op: every release, its branch being current
# (1.5), or a feature that came with a build date (reconciler.model.features).
_Offer = Callable[[VirtualDevice], bool]


def _always(dev: VirtualDevice) -> bool:
    return True


def _current(dev: VirtualDevice) -> bool:
    return dev.family == "1.5"


def _reboots(dev: VirtualDevice) -> bool:
    return dev.features.reboot


def _image_ops(dev: VirtualDevice) -> bool:
    return dev.features.set_default


@dataclass(frozen=True)
class _Endpoint:
    offered: _Offer
    ops: dict[str, _Offer]


def _ops(common: set[str], **later: _Offer) -> dict[str, _Offer]:
    return {**dict.fromkeys(common, _always), **later}


ENDPOINTS: dict[str, _Endpoint] = {
    "/retrieve": _Endpoint(_always, _ops({"showConfig", "returnValue", "returnValues", "exists"})),
    "/configure": _Endpoint(_always, _ops({"set", "delete", "comment"}, confirm=_current)),
    "/config-file": _Endpoint(_always, _ops({"save", "load"}, merge=_current)),
    "/image": _Endpoint(_always, _ops({"add", "delete"}, show=_image_ops, set_default=_image_ops)),
    "/show": _Endpoint(_always, _ops({"show"})),
    "/generate": _Endpoint(_always, _ops({"generate"})),
    "/reset": _Endpoint(_always, _ops({"reset"})),
    "/reboot": _Endpoint(_reboots, _ops({"reboot"})),
    "/poweroff": _Endpoint(_reboots, _ops({"poweroff"})),
}

_KEY_REQUIRED = "Valid API key is required"


class _Fail(Exception):
    """A failed command: 400 with the script's text."""


def envelope(status: int, data: Any = None, error: str | None = None) -> web.Response:
    """The VyOS answer: ``{success, data, error}`` as text/html."""
    body = json.dumps({"success": error is None, "data": data, "error": error})
    return web.Response(status=status, text=body, content_type="text/html")


def not_found() -> web.Response:
    """FastAPI's answer for a path that does not exist."""
    return web.json_response({"detail": "Not Found"}, status=404)


def _fail(dev: VirtualDevice, text: str) -> web.Response:
    # Rolling releases HTML-escape error text.
    return envelope(400, None, html.escape(text) if dev.family == "1.5" else text)


async def _decode(request: web.Request) -> tuple[str | None, Any] | web.Response:
    """Return (key, payload) from a form or JSON body, or the error answer."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        if "data" not in form:
            detail = [{"type": "missing", "loc": ["body", "data"], "msg": "Field required"}]
            return web.json_response({"detail": detail}, status=422)
        key = form.get("key")
        try:
            payload = json.loads(str(form["data"]))
        except ValueError:
            return envelope(400, None, "Failed to parse JSON")
        return (str(key) if key is not None else None), payload
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        return envelope(400, None, "Failed to parse JSON")
    if not isinstance(body, dict):
        return envelope(400, None, "Request body must be a JSON object")
    key = body.pop("key", None)
    return (str(key) if key is not None else None), body


def _info(sim: Simulator, dev: VirtualDevice) -> web.Response:
    data = {"version": dev.release, "hostname": dev.hostname, "banner": "Welcome to VyOS"}
    return envelope(200, data)


async def dispatch(
    sim: Simulator, dev: VirtualDevice, request: web.Request, path: str
) -> web.Response:
    """Answer one API call for ``dev``; ``path`` is the endpoint (``/show``, ``/info`` ...)."""
    if path == "/info" and dev.features.info:
        if request.method != "GET":
            return web.json_response({"detail": "Method Not Allowed"}, status=405)
        return _info(sim, dev)
    spec = ENDPOINTS.get(path)
    if spec is None or not spec.offered(dev):
        return not_found()
    if request.method != "POST":
        return web.json_response({"detail": "Method Not Allowed"}, status=405)
    decoded = await _decode(request)
    if isinstance(decoded, web.Response):
        return decoded
    key, payload = decoded
    if key != sim.settings.api_key:
        return envelope(401, None, _KEY_REQUIRED)
    if isinstance(payload, list):
        if path != "/configure":
            return _fail(dev, "Malformed command")
        commands = payload
    else:
        if not isinstance(payload, dict):
            return _fail(dev, "Malformed command")
        commands = [payload]
    for command in commands:
        op = command.get("op") if isinstance(command, dict) else None
        if op is None:
            return _fail(dev, 'Missing required field "op"')
        offered = spec.ops.get(str(op))
        if offered is None or not offered(dev):
            # 1.3's API server quotes the op name with double quotes.
            quote = '"' if dev.family == "1.3" else "'"
            return _fail(dev, f"{quote}{op}{quote} is not a valid operation")
    try:
        data = await _HANDLERS[path](sim, dev, commands)
    except _Fail as e:
        return _fail(dev, str(e))
    except ImageFailure as e:
        return _fail(dev, str(e))
    except _Gateway:
        return sim.gateway_timeout_page()
    except _Dropped:
        return sim.drop(request)
    return envelope(200, data)


def _path(command: dict[str, Any]) -> list[str]:
    path = command.get("path", [])
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise _Fail("Malformed command: path must be a list of strings")
    return path


def _node(tree: dict[str, Any], path: list[str]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


async def _show(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    path = _path(commands[0])
    now = sim.now()
    known: dict[tuple[str, ...], Callable[[], str]] = {
        ("version",): lambda: outputs.show_version(dev),
        ("system", "image"): lambda: outputs.image_list(dev),
        ("system", "uptime"): lambda: outputs.uptime(dev, dev.uptime(now)),
        ("system", "memory"): lambda: outputs.memory(dev),
        ("ip", "bgp", "summary"): lambda: outputs.bgp_summary(dev),
        ("bgp", "summary"): lambda: outputs.bgp_summary(dev),
        ("configuration",): lambda: outputs.config_raw(dev.config),
        ("host", "name"): lambda: dev.hostname + "\n",
    }
    produce = known.get(tuple(path))
    if produce is None:
        first = path[0] if path else ""
        raise _Fail(f"\n\n  Invalid command: show [{first}]\n\n")
    return produce()


async def _generate(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    path = _path(commands[0])
    raise _Fail(f"\n\n  Invalid command: generate [{path[0] if path else ''}]\n\n")


async def _reset(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    path = _path(commands[0])
    if path[:2] == ["ip", "bgp"]:
        return ""
    raise _Fail(f"\n\n  Invalid command: reset [{path[0] if path else ''}]\n\n")


async def _retrieve(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    command = commands[0]
    op, path = command["op"], _path(command)
    node = _node(dev.config, path)
    if op == "exists":
        return node is not None
    if op == "showConfig":
        if node is None and path:
            raise _Fail("Configuration under specified path is empty")
        tree = node if node is not None else {}
        return outputs.config_raw(tree) if command.get("configFormat") == "raw" else tree
    if node is None or isinstance(node, dict):
        raise _Fail("Path doesn't exist" if node is None else "Path is not a leaf node")
    values = node if isinstance(node, list) else [node]
    return values if op == "returnValues" else values[0]


async def _configure(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    tree = copy.deepcopy(dev.config)
    for command in commands:
        op, path = command["op"], _path(command)
        if op in ("comment", "confirm"):
            continue
        if not path:
            raise _Fail("Configuration path is empty")
        if op == "delete" and _node(tree, path) is None:
            raise _Fail(f"Nothing to delete (the specified node does not exist): {' '.join(path)}")
        # `set a b c` stores leaf b = "c"; a one-word path creates an empty node.
        parent = tree
        for part in path[:-2] if op == "set" else path[:-1]:
            child = parent.setdefault(part, {})
            if not isinstance(child, dict):
                raise _Fail(f"Invalid path: {' '.join(path)}")
            parent = child
        if op == "set":
            if len(path) == 1:
                parent.setdefault(path[0], {})
            else:
                parent[path[-2]] = path[-1]
        else:
            del parent[path[-1]]
    dev.config = tree
    return None


async def _config_file(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    command = commands[0]
    op, name = command["op"], command.get("file")
    if op == "save":
        target = str(name or "/config/config.boot")
        dev.record(sim.now(), "config-save", file=target)
        if target == "/config/config.boot":
            dev.saved_config = copy.deepcopy(dev.config)
        else:
            sim.files[(dev.name, target)] = copy.deepcopy(dev.config)
        return f"Saving configuration to '{target}'...\nDone\n"
    if op == "load" and "string" in command and dev.family == "1.5":
        dev.config = outputs.parse_raw(str(command["string"]))
        return None
    if not name:
        raise _Fail('Missing required field "file"')
    stored = dev.saved_config if name == "/config/config.boot" else sim.files.get((dev.name, name))
    if stored is None:
        raise _Fail(f"Failed to load configuration: file {name} does not exist")
    dev.config = copy.deepcopy(stored) if op == "load" else {**dev.config, **stored}
    dev.record(sim.now(), f"config-{op}", file=name)
    return None


class _Gateway(Exception):
    """nginx gave up waiting; the install carries on."""


async def _image(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    command = commands[0]
    op = command["op"]
    if op == "show":
        return [
            {"name": n, "default": n == dev.default, "running": n == dev.running}
            for n in reversed(dev.images)
        ]
    if op == "add":
        url = command.get("url")
        if not url:
            raise _Fail('Missing required field "url"')
        task = asyncio.create_task(install_image(sim, dev, str(url)))
        sim.background.add(task)
        task.add_done_callback(sim.background.discard)
        limit = 0.0 if dev.faults.gateway_timeout else sim.settings.upstream_timeout
        done, _ = await asyncio.wait({task}, timeout=limit)
        if not done:
            raise _Gateway
        return task.result()
    name = str(command.get("name", ""))
    dev.begin_image_op()
    try:
        dev.record(sim.now(), f"image-{op}", name=name)
        if name not in dev.images:
            raise _Fail(f'The image "{name}" cannot be found')
        if op == "set_default":
            if name == dev.default:
                raise _Fail(f'The image "{name}" already configured as default')
            dev.default = name
            return f'The image "{name}" is now default boot image'
        if name == dev.running:
            raise _Fail(
                "Currently running image cannot be deleted; reboot into another image first"
            )
        if name == dev.default and dev.family != "1.3":
            raise _Fail("Default image cannot be deleted; set another image as default first")
        dev.images.remove(name)
        return f'The image "{name}" was successfully deleted'
    finally:
        dev.end_image_op()


async def _reboot(sim: Simulator, dev: VirtualDevice, commands: list[Any]) -> Any:
    if _path(commands[0]) != ["now"]:
        raise _Fail("Invalid command: reboot [" + " ".join(_path(commands[0])) + "]")
    if commands[0]["op"] == "poweroff":
        dev.dead = True
        dev.record(sim.now(), "poweroff")
        return None
    dev.start_reboot(sim.now(), sim.settings.boot_seconds)
    if sim.reboot_drops(dev):
        raise _Dropped
    return None


class _Dropped(Exception):
    """The connection drops before the answer, as a rebooting router's may."""


_Handler = Callable[["Simulator", VirtualDevice, list[Any]], Awaitable[Any]]
_HANDLERS: dict[str, _Handler] = {
    "/retrieve": _retrieve,
    "/configure": _configure,
    "/config-file": _config_file,
    "/image": _image,
    "/show": _show,
    "/generate": _generate,
    "/reset": _reset,
    "/reboot": _reboot,
    "/poweroff": _reboot,
}
