"""The ``gitfirm`` command line. Each command is a ``_cmd_*`` function registered in
``_COMMANDS``; this module and ``daemon.py`` are the only ones that wire stages together."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from reconciler import __version__

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitfirm", description="GitOps reconciler for VyOS router firmware."
    )
    parser.add_argument("--version", action="version", version=f"gitfirm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


# Each entry adds one sub-command (or a group) to the parser and sets ``handler``.
_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


def _register_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate a config repository")
    p.add_argument("dir", nargs="?", default=".", help="config repository (default: .)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from reconciler.model.loader import load_repository

    result = load_repository(Path(args.dir))
    errors = list(result.errors)
    warnings = list(result.warnings)
    if args.strict:
        errors, warnings = errors + warnings, []
    counts = result.state.counts() if result.state else {}
    if args.format == "json":
        out = {
            "valid": not errors,
            "errors": [e.as_dict() for e in errors],
            "warnings": [w.as_dict() for w in warnings],
            "counts": counts,
            "files": result.files,
        }
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        if errors:
            print(
                f"invalid: {len(errors)} error(s), {len(warnings)} warning(s) "
                f"in {result.files} file(s)"
            )
        else:
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            print(f"valid: {summary or 'no documents'}; {len(warnings)} warning(s)")
    return 1 if errors else 0


_COMMANDS.append(_register_validate)


def _register_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="JSON Schemas of the document kinds")
    actions = p.add_subparsers(dest="schema_command", required=True)
    export = actions.add_parser("export", help="write one JSON Schema per kind, plus an index")
    export.add_argument(
        "dir", nargs="?", default="schema", help="output directory (default: schema)"
    )
    export.set_defaults(handler=_cmd_schema_export)


def _cmd_schema_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reconciler.model.schema import render_schemas

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    files = render_schemas()
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} schema files to {out}")
    return 0


_COMMANDS.append(_register_schema)


def _register_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="serve a fleet of simulated VyOS devices on loopback")
    p.add_argument("--devices", type=int, default=10, help="how many devices (default 10)")
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any free)")
    p.add_argument("--api-key", required=True, help="the API key every device accepts")
    p.add_argument("--per-device-ports", action="store_true", help="device i on PORT+i")
    p.add_argument("--write-fleet", help="write matching Device documents to this YAML file")
    p.add_argument("--key-env", default="GITFIRM_SIM_API_KEY", help="env var the documents name")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    p.add_argument("--latency", type=float, default=150.0, help="ms per API call (default 150)")
    p.add_argument("--bandwidth", type=float, default=12.5, help="image download MB/s (0: no cap)")
    p.add_argument("--boot-seconds", type=float, default=60.0, help="reboot duration")
    p.add_argument("--upstream-timeout", type=float, default=600.0, help="504 after this many s")
    p.add_argument(
        "--release", action="append", default=[], help="1.3, 1.4, rolling-old or rolling (mix)"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="DEVICE:FAULT[=VALUE]",
        help="inject a fault, e.g. r0003:unreachable or '*:slow_seconds=2' (repeatable)",
    )
    p.set_defaults(handler=_cmd_sim)


def _cmd_sim(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from reconciler.simulator.run import SimOptions, parse_fault, serve
    from reconciler.simulator.server import SimSettings

    host, _, port = args.listen.rpartition(":")
    faults: dict[str, dict[str, object]] = {}
    for text in args.fault:
        device, change = parse_fault(text)
        faults.setdefault(device, {}).update(change)
    settings = SimSettings(
        api_key=args.api_key,
        latency=args.latency / 1000,
        bandwidth=args.bandwidth * 1_000_000,
        boot_seconds=args.boot_seconds,
        upstream_timeout=args.upstream_timeout,
        seed=args.seed,
    )
    options = SimOptions(
        devices=args.devices,
        host=host or "127.0.0.1",
        port=int(port),
        settings=settings,
        per_device_ports=args.per_device_ports,
        write_fleet=Path(args.write_fleet) if args.write_fleet else None,
        key_env=args.key_env,
        releases=tuple(args.release),
        faults=faults,
    )
    asyncio.run(serve(options))
    return 0


_COMMANDS.append(_register_sim)


def _register_observe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("observe", help="observe every device of a config repository")
    p.add_argument("dir", help="config repository directory")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--concurrency", type=int, default=256, help="devices at once (default 256)")
    p.add_argument("--health", action="store_true", help="also read uptime, load and memory")
    p.set_defaults(handler=_cmd_observe)


def _cmd_observe(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import os
    from pathlib import Path

    from rich.console import Console

    from reconciler.clock import SystemClock
    from reconciler.devices.fleet import endpoints_for, facts_table
    from reconciler.devices.observe import ObserveSettings, observation_document, observe
    from reconciler.devices.transport import make_http_client
    from reconciler.model.loader import load_repository

    root = Path(args.dir)
    loaded = load_repository(root)
    if loaded.state is None:
        for error in loaded.errors:
            print(error, file=sys.stderr)
        return 2
    clock = SystemClock()
    started = clock.now()
    endpoints, facts = endpoints_for(
        loaded.state.devices.values(), environ=os.environ, base=root, now=started
    )
    settings = ObserveSettings(concurrency=args.concurrency, health=args.health)

    async def run() -> None:
        async with make_http_client(max_connections=args.concurrency) as http:
            facts.update(await observe(endpoints, http, settings=settings, clock=clock))

    asyncio.run(run())
    if args.format == "json":
        print(json.dumps(observation_document(facts, started), indent=2, sort_keys=True))
    else:
        Console().print(facts_table(facts))
    return 0


_COMMANDS.append(_register_observe)


if __name__ == "__main__":
    sys.exit(main())
