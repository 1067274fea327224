"""The ``gitfirm`` command line. Each command is a ``_cmd_*`` function registered in
``_COMMANDS``; this module and ``daemon.py`` are the only ones that wire stages together."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__

if TYPE_CHECKING:
    from pydantic import ValidationError
    from rich.progress import TaskID

    from reconciler.daemon import DaemonSettings
    from reconciler.forge import ForgeConfig
    from reconciler.history.stats import ExposurePoint, StoreForecast
    from reconciler.images.store import ImageStore
    from reconciler.model.facts import DeviceFacts
    from reconciler.model.loader import LoadResult
    from reconciler.model.state import DesiredState
    from reconciler.planning.plan import Plan
    from reconciler.secrets import SecretPolicy

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitfirm", description="GitOps reconciler for VyOS router firmware."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--debug", action="store_true", help="print a traceback for an unexpected failure"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


# Each entry adds one sub-command (or a group) to the parser and sets ``handler``.
_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _version() -> str:
    from reconciler.rollout.formats import JOURNAL_FORMAT, STATE_FORMAT

    return f"gitfirm {__version__} (state format {STATE_FORMAT}, journal format {JOURNAL_FORMAT})"


class _Fail(Exception):
    """An expected failure: one ``error:`` line (with the next step) and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    An expected failure is one ``error:`` line on stderr that names the next step: exit 2
    when the invocation or the configuration must change, 1 when something outside failed
    (a remote, a device). A traceback is printed only with ``--debug``.
    """
    from reconciler.errors import GitfirmError, summarize
    from reconciler.runtime import tune_gc

    parser = _build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # a real `gitfirm` process, not a test calling main([...])
        tune_gc()
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except _Fail as e:
        _error(str(e))
        return 1 if args.command == "plan" else e.code  # plan's 2 means "changes"
    except (GitfirmError, OSError) as e:
        if args.debug:
            raise
        _error(summarize(e).message)
        return 1
    except Exception as e:
        if args.debug:
            raise
        _error(f"unexpected {summarize(e).message}; run again with --debug and report it")
        return 1


def _error(message: str) -> None:
    """Print ``message`` as one ``error:`` line (git and others answer on several)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


def _register_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate a config repository")
    p.add_argument("dir", nargs="?", default=".", help="config repository (default: .)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument(
        "--format",
        choices=["text", "json", "github", "sarif"],
        default="text",
        help="github: ::error annotations for Actions; sarif: a SARIF 2.1.0 log",
    )
    p.add_argument(
        "--shard",
        action="append",
        default=[],
        metavar="NAME=SELECTOR",
        help="check the repository can be split into this shard (repeatable), e.g. "
        "'fra=site in (fra)': refuses redundancy groups and rollout policies across shards",
    )
    p.add_argument(
        "--shards", type=Path, metavar="FILE", help="YAML mapping of shard name to selector"
    )
    p.set_defaults(handler=_cmd_validate)


def _shards(args: argparse.Namespace) -> list[Any]:
    """The shards ``validate`` checks against (--shards FILE, then each --shard)."""
    from reconciler.model.shards import ShardError, load_shards, parse_shard

    try:
        shards = load_shards(args.shards) if args.shards is not None else []
        for given in args.shard:
            name, sep, text = given.partition("=")
            if not sep:
                raise _Fail(f"--shard {given!r}: write NAME=SELECTOR, e.g. 'fra=site=fra'")
            shards.append(parse_shard(name.strip(), text))
    except ShardError as e:
        raise _Fail(e.message) from None
    names = [s.name for s in shards]
    if len(set(names)) != len(names):
        raise _Fail(f"shard names must differ: {', '.join(sorted(names))}")
    return shards


def _cmd_validate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from reconciler.model.loader import load_repository
    from reconciler.model.shards import check_shards

    shards = _shards(args)
    result = load_repository(Path(args.dir))
    errors = list(result.errors)
    warnings = list(result.warnings)
    shard_errors = check_shards(result.state, shards) if shards and result.state else []
    errors += shard_errors
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
    elif args.format == "github":
        from reconciler.model.annotations import github_annotations

        for line in github_annotations(errors, warnings, _shown_root(args.dir)):
            print(line)
        counts_line = f"{len(errors)} error(s), {len(warnings)} warning(s)"
        print(f"{'invalid' if errors else 'valid'}: {counts_line}", file=sys.stderr)
    elif args.format == "sarif":
        from reconciler.model.annotations import sarif_log

        log = sarif_log(errors, warnings, _shown_root(args.dir), version=__version__)
        print(json.dumps(log, indent=2))
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
    # A split that would give a group or policy two owners is an invocation to change: 2.
    return 2 if shard_errors else 1 if errors else 0


def _shown_root(directory: str) -> Path:
    """The config directory as CI shows files: relative to the working directory."""
    import os

    relative = os.path.relpath(Path(directory).resolve(), Path.cwd())
    return Path(relative) if not relative.startswith("..") else Path(directory)


_COMMANDS.append(_register_validate)


def _register_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="JSON Schemas of the document kinds")
    actions = p.add_subparsers(dest="schema_command", required=True)
    export = actions.add_parser("export", help="write one JSON Schema per kind, plus an index")
    export.add_argument(
        "dir", nargs="?", default="schema", help="output directory (default: schema)"
    )
    export.set_defaults(handler=_cmd_schema_export)
    reference = actions.add_parser(
        "reference", help="write the Markdown reference of every kind and run setting"
    )
    reference.add_argument(
        "--out", type=Path, default=Path("docs/reference.md"), help="(default: docs/reference.md)"
    )
    reference.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when --out is stale"
    )
    reference.set_defaults(handler=_cmd_schema_reference)


def _cmd_schema_reference(args: argparse.Namespace) -> int:
    import json

    from reconciler.daemon import DaemonSettings
    from reconciler.model.reference import render_reference
    from reconciler.model.schema import render_schemas

    kinds = {
        kind: json.loads(render_schemas()[file])
        for kind, file in json.loads(render_schemas()["index.json"])["kinds"].items()
    }
    text = render_reference(kinds, DaemonSettings.model_json_schema(mode="validation"))
    if args.check:
        current = args.out.read_text("utf-8") if args.out.exists() else ""
        if current != text:
            raise _Fail(f"{args.out} is stale: run gitfirm schema reference", code=1)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


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


def _register_advisories(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("advisories", help="import OSV advisories into the config repository")
    actions = p.add_subparsers(dest="advisories_command", required=True)
    imp = actions.add_parser(
        "import",
        help="copy the OSV records of an export (directory or osv.dev zip) that touch VyOS "
        "or a package of a declared image's SBOM into advisories/osv/",
    )
    imp.add_argument("source", type=Path, help="OSV export: a directory or a zip file")
    imp.add_argument("--repo", default=".", help="config repository (default: .)")
    imp.set_defaults(handler=_cmd_advisories_import)


def _cmd_advisories_import(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError
    from reconciler.model.loader import load_repository
    from reconciler.model.osv_import import read_export, select_records

    repo = Path(args.repo)
    loaded = load_repository(repo)
    if loaded.state is None:
        print(f"error: {repo} is not a valid config repository; run gitfirm validate {repo}")
        return 1
    state = loaded.state
    sboms = _sbom_packages(state)
    wanted: dict[str, set[str]] = {}
    for name, packages in sboms.items():
        sbom = state.images[name].spec.sbom
        assert sbom is not None
        wanted.setdefault(sbom.ecosystem, set()).update(packages)
    try:
        selection = select_records(read_export(args.source), wanted)
    except ConfigError as e:
        print(f"error: {e}")
        return 1
    out = repo / "advisories" / "osv"
    out.mkdir(parents=True, exist_ok=True)
    for file_name, raw in sorted(selection.kept.items()):
        (out / file_name).write_bytes(raw)
    print(
        f"imported {len(selection.kept)} record(s) into {out} (SBOMs of {len(sboms)} image(s)); "
        f"skipped {selection.unrelated} unrelated, {selection.withdrawn} withdrawn, "
        f"{selection.no_severity} on VyOS without severity, {selection.unreadable} unreadable. "
        "Review and commit them through a pull request."
    )
    return 0


_COMMANDS.append(_register_advisories)


def _register_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="serve a fleet of simulated VyOS devices on loopback")
    p.add_argument("--devices", type=int, default=10, help="how many devices (default 10)")
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any free)")
    p.add_argument("--api-key", required=True, help="the API key every device accepts")
    p.add_argument("--per-device-ports", action="store_true", help="device i on PORT+i")
    p.add_argument("--write-fleet", help="write matching Device documents to this YAML file")
    p.add_argument("--key-env", default="VYOS_API_KEY_SIM", help="env var the documents name")
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
    p = sub.add_parser(
        "observe", parents=[_secret_flags()], help="observe every device of a config repository"
    )
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

    loaded = _load_config_dir(Path(args.dir))
    assert loaded.state is not None
    clock = SystemClock()
    started = clock.now()
    endpoints, facts = endpoints_for(
        loaded.state.devices.values(),
        environ=os.environ,
        policy=_secret_policy(args),
        now=started,
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
    _check_keys(facts)
    return 0


def _load_config_dir(root: Path) -> LoadResult:
    """Load a config repository directory for ``plan`` or ``observe``, or fail with one line."""
    from reconciler.model.loader import load_repository

    if not root.is_dir():
        raise _Fail(f"no config repository at {root}: give the path of a clone of it")
    loaded = load_repository(root, revision=_checkout_revision(root))
    if loaded.state is None or loaded.errors:
        first = loaded.errors[0] if loaded.errors else "cannot load"
        more = f" (and {len(loaded.errors) - 1} more)" if len(loaded.errors) > 1 else ""
        raise _Fail(f"{first}{more}; see them all with: gitfirm validate {root}")
    if not loaded.files:
        raise _Fail(f"{root} holds no gitfirm documents: give the config repository's directory")
    return loaded


def _check_keys(facts: Mapping[str, DeviceFacts]) -> None:
    """Fail when some devices could not be asked because their API key is not usable."""
    keyless = {n: f.error for n, f in sorted(facts.items()) if (f.error or "").startswith(_KEY)}
    if keyless:
        name, why = next(iter(keyless.items()))
        more = f" and {len(keyless) - 1} more" if len(keyless) > 1 else ""
        raise _Fail(
            f"{len(keyless)} of {len(facts)} devices have no usable API key ({name}: "
            f"{(why or '').removeprefix(_KEY)}{more}); set the variables named by their "
            "credentials.apiKey (see gitfirm run --help) and run again",
            code=1,
        )


_KEY = "credentials: "


_COMMANDS.append(_register_observe)


def _secret_flags(*, defaults: bool = True) -> argparse.ArgumentParser:
    """``--secret-env-prefix`` and ``--secrets-dir``: the operator's allowlist of the secrets
    a Device may name (set here, never in Git)."""
    from reconciler.secrets import DEFAULT_ENV_PREFIX

    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--secret-env-prefix",
        default=DEFAULT_ENV_PREFIX if defaults else None,
        metavar="PREFIX",
        help=f"an apiKey {{env: NAME}} must start with this (default {DEFAULT_ENV_PREFIX})",
    )
    flags.add_argument(
        "--secrets-dir",
        type=Path,
        metavar="DIR",
        help="an apiKey {file: PATH} must resolve inside this directory (default: none allowed)",
    )
    return flags


def _secret_policy(args: argparse.Namespace) -> SecretPolicy:
    from reconciler.errors import ConfigError
    from reconciler.secrets import SecretPolicy

    try:
        return SecretPolicy(env_prefix=args.secret_env_prefix, secrets_dir=args.secrets_dir)
    except ConfigError as e:
        raise _Fail(str(e)) from None


def _register_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan", parents=[_secret_flags()], help="show what desired state would do to every device"
    )
    p.add_argument("dir", help="config repository directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--observed", metavar="FILE", help="output of `observe --format json`")
    source.add_argument("--status-dir", metavar="DIR", help="checkout of the status branch")
    source.add_argument("--live", action="store_true", help="observe the devices now")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 without changes, 2 with changes, 1 on error",
    )
    p.add_argument("--now", metavar="ISO", help="plan as of this time (default: now, UTC)")
    p.add_argument(
        "--comment-pr",
        type=int,
        metavar="N",
        help="post the plan (markdown) on pull request N, updating gitfirm's earlier comment "
        "(needs --forge, --forge-repo and a token; docs/forges.md)",
    )
    _forge_flags(p, statuses=False)
    p.set_defaults(handler=_cmd_plan)


def _plan_facts(args: argparse.Namespace, state: DesiredState) -> dict[str, DeviceFacts] | None:
    """Facts for ``plan`` from the chosen source; None when no source was given."""
    import json

    import yaml

    from reconciler.planning.inputs import facts_from_observation, facts_from_status

    if args.observed:
        return facts_from_observation(json.loads(Path(args.observed).read_text("utf-8")))
    if args.status_dir:
        devices = Path(args.status_dir) / "devices"
        if devices.is_symlink():
            raise ValueError(f"{devices} is a symlink; the status branch is not trusted")
        # Only regular files: anyone who can push to the status branch can plant a link.
        docs = {
            f.stem: yaml.safe_load(f.read_text("utf-8"))
            for f in sorted(devices.glob("*.yaml"))
            if f.is_file() and not f.is_symlink()
        }
        return facts_from_status(docs)
    if args.live:
        return _live_facts(state, _secret_policy(args))
    return None


def _live_facts(state: DesiredState, policy: SecretPolicy) -> dict[str, DeviceFacts]:
    import asyncio
    import os

    from reconciler.clock import SystemClock
    from reconciler.devices.fleet import endpoints_for
    from reconciler.devices.observe import ObserveSettings, observe
    from reconciler.devices.transport import make_http_client

    clock = SystemClock()
    endpoints, facts = endpoints_for(
        state.devices.values(), environ=os.environ, policy=policy, now=clock.now()
    )
    settings = ObserveSettings(health=True)

    async def run() -> None:
        async with make_http_client(max_connections=settings.concurrency) as http:
            facts.update(await observe(endpoints, http, settings=settings, clock=clock))

    asyncio.run(run())
    return dict(facts)


def _checkout_revision(root: Path) -> str:
    """The commit SHA when ``root`` is the top of a Git checkout, else ""."""
    import git

    try:
        return str(git.Repo(root).head.commit.hexsha)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return ""


def _cmd_plan(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from reconciler.planning.planner import plan
    from reconciler.planning.render import render

    loaded = _load_config_dir(Path(args.dir))
    assert loaded.state is not None
    try:
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        facts = _plan_facts(args, loaded.state)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sboms = _sbom_packages(loaded.state)
    result = plan(loaded.state, facts or {}, None, now, observed=facts is not None, sboms=sboms)
    sys.stdout.write(render(result, args.format))
    if args.comment_pr is not None:
        _comment_plan(args, result)
    for problem in result.errors:
        print(f"error: {problem}", file=sys.stderr)
    if result.errors:
        return 1
    return 2 if args.detailed_exitcode and result.has_changes else 0


def _comment_plan(args: argparse.Namespace, result: Plan) -> None:
    """Upsert the plan comment on pull request ``--comment-pr``; one error line on failure."""
    import asyncio

    import httpx

    from reconciler.clock import SystemClock
    from reconciler.errors import GitfirmError
    from reconciler.forge import make_forge
    from reconciler.forge.comment import MAX_PARTS, upsert_comment
    from reconciler.planning.render import render_markdown
    from reconciler.sanitize import redact

    if args.forge is None:
        raise _Fail("--comment-pr needs --forge github|gitlab|gitea and --forge-repo")
    config, token = _forge_from_args(args)

    async def post() -> str:
        async with httpx.AsyncClient() as http:
            forge = make_forge(
                config, token, http=http, clock=SystemClock(), user_agent=f"gitfirm/{__version__}"
            )
            # The comment may be split, so it may hold more than one comment's worth.
            body = render_markdown(
                result, limit=min(MAX_PARTS * (forge.max_comment - 400), 500_000)
            )
            done = await upsert_comment(forge, args.comment_pr, body)
        changes = [f"{n} {what}" for n, what in ((done.created, "created"),
                   (done.updated, "updated"), (done.deleted, "deleted")) if n]  # fmt: skip
        return (
            f"plan comment on {args.forge} pull request {args.comment_pr}: {done.parts} part(s), "
            + (", ".join(changes) or "unchanged")
        )

    try:
        print(asyncio.run(post()), file=sys.stderr)
    except (GitfirmError, ValueError) as e:
        raise _Fail(redact(str(e), (token,)), code=1) from None


def _sbom_packages(state: DesiredState) -> dict[str, dict[str, str]]:
    """The packages of the declared SBOMs (fetched and checked), for package exposure."""
    import asyncio

    from reconciler.images.sbom import SbomCache

    if not any(i.spec.sbom for i in state.images.values()):
        return {}
    return asyncio.run(SbomCache().refresh(state))


_COMMANDS.append(_register_plan)


def _register_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="print the fleet state from the status branch")
    p.add_argument("--repo", required=True, help="config repository URL or path")
    p.add_argument("--branch", default="status", help="status branch (default: status)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(handler=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from reconciler.errors import ReportError
    from reconciler.report.view import fetch_view, print_view, view_document

    _probe(
        args.repo,
        args.branch,
        next_step="gitfirm run creates it on its first pass; or name another with --branch",
    )
    try:
        view = fetch_view(args.repo, args.branch)
    except ReportError as exc:
        _error(str(exc))
        return 1
    if args.format == "json":
        print(json.dumps(view_document(view), indent=2, sort_keys=True))
    else:
        print_view(view, Console())
    return 0


_COMMANDS.append(_register_status)


def _register_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="success rates, time per phase and rollbacks from the journal and status branch",
    )
    p.add_argument("--state-dir", required=True, type=Path, help="the daemon's state dir")
    p.add_argument("--repo", help="config repository URL or path: platforms and halts from "
                   "its status branch")  # fmt: skip
    p.add_argument("--branch", default="status", help="status branch (default: status)")
    p.add_argument("--since", help="only transitions at or after this ISO 8601 time")
    p.add_argument("--format", choices=["text", "markdown", "html", "json", "csv"], default="text")
    p.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from reconciler.history.journal import read_steps
    from reconciler.history.render import render
    from reconciler.history.stats import build_report

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise _Fail(
                f"--since {args.since!r} is not an ISO 8601 time (2026-12-01T00:00Z)"
            ) from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    steps = read_steps(args.state_dir / "journal.sqlite3", since)
    platforms: dict[str, str] = {}
    halted: dict[str, str] = {}
    if args.repo:
        from reconciler.report.view import fetch_view

        _probe(args.repo, args.branch, next_step="gitfirm run creates it on its first pass")
        view = fetch_view(args.repo, args.branch)
        for name, doc in view.devices.items():
            observed = (doc or {}).get("observed") or {}
            if observed.get("architecture") and observed.get("flavor"):
                platforms[name] = f"{observed['architecture']}/{observed['flavor']}"
        for policy, doc in view.rollouts.items():
            if (doc or {}).get("halted"):
                halted[policy] = str(doc.get("haltReason") or "halted")
    exposure: list[ExposurePoint] = []
    if args.repo:
        from reconciler.history.stats import exposure_over_time
        from reconciler.report.view import compliance_history

        exposure = exposure_over_time(compliance_history(args.repo, args.branch))
    report = build_report(
        steps,
        platforms=platforms,
        halted=halted,
        since=since,
        store=_store_forecast(args),
        exposure=exposure,
    )
    sys.stdout.write(render(report, args.format))
    return 0


def _store_forecast(args: argparse.Namespace) -> StoreForecast | None:
    """The state dir's image store growth, or None when it has no store."""
    from datetime import datetime

    from reconciler.clock import SystemClock
    from reconciler.history.stats import store_forecast
    from reconciler.images.store import ImageStore

    root = args.state_dir / "images"
    if not root.is_dir():
        return None
    store = ImageStore(root, SystemClock())
    stored = [(datetime.fromisoformat(i.stored_at), i.verified.size) for i in store.list()]
    capacity = store.capacity()
    return store_forecast(stored, capacity.used, capacity.free, SystemClock().now())


_COMMANDS.append(_register_report)


def _probe(repo: str, branch: str, next_step: str = "") -> None:
    """Check ``repo`` has ``branch``; a failure is one line (exit 1 when unreachable)."""
    from reconciler.errors import SourceError
    from reconciler.source.remote import MISSING_BRANCH, probe_branch

    try:
        probe_branch(repo, branch, next_step=next_step or MISSING_BRANCH)
    except SourceError as e:
        raise _Fail(e.message, code=1 if e.reason == "unreachable" else 2) from None


def _register_image(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import os

    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument(
        "--cache-dir",
        default=os.environ.get("GITFIRM_CACHE") or str(Path.home() / ".cache" / "gitfirm"),
        help="image store (default: $GITFIRM_CACHE or ~/.cache/gitfirm)",
    )
    p = sub.add_parser("image", help="fetch, verify, list, collect and bundle images")
    actions = p.add_subparsers(dest="image_command", required=True)
    fetch = actions.add_parser("fetch", parents=[cache], help="fetch and verify images")
    fetch.add_argument("dir", help="config repository")
    fetch.add_argument("names", nargs="*", help="Image names (default: all)")
    fetch.add_argument("--bandwidth", type=int, default=None, help="bytes per second")
    fetch.set_defaults(handler=_cmd_image_fetch)
    verify = actions.add_parser("verify", help="verify a file; exit 0 verified, 1 refused")
    verify.add_argument("file", type=Path)
    verify.add_argument("--minisig", type=Path)
    verify.add_argument("--public-key", type=Path, help="a minisign .pub file")
    verify.add_argument("--bundle", type=Path, help="a sigstore bundle")
    verify.add_argument("--identity")
    verify.add_argument("--issuer")
    verify.add_argument("--trusted-root", type=Path)
    verify.set_defaults(handler=_cmd_image_verify)
    ls = actions.add_parser("ls", parents=[cache], help="list stored images and capacity")
    ls.set_defaults(handler=_cmd_image_ls)
    gc = actions.add_parser("gc", parents=[cache], help="remove images no Image references")
    gc.add_argument("--repo", default=".", help="config repository (default: .)")
    gc.add_argument("--retention-days", type=float, default=7.0)
    gc.set_defaults(handler=_cmd_image_gc)
    export = actions.add_parser("export", parents=[cache], help="write an offline bundle")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--repo", default=".", help="config repository (default: .)")
    export.add_argument("names", nargs="+")
    export.set_defaults(handler=_cmd_image_export)
    imp = actions.add_parser("import", parents=[cache], help="verify and store a bundle")
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--repo", help="config repository whose TrustPolicies to verify with (required)"
    )
    imp.set_defaults(handler=_cmd_image_import)
    discover = actions.add_parser(
        "discover",
        parents=[cache],
        help="look at ImageSource feeds; verify the newest new build, print or propose its Image",
    )
    discover.add_argument("--repo", type=Path, default=Path("."), help="config checkout (.)")
    discover.add_argument("--source", help="only this ImageSource (default: all)")
    _proposal_flags(discover)
    discover.set_defaults(handler=_cmd_image_discover)


def _image_state(repo: str) -> DesiredState | None:
    from reconciler.model.loader import load_repository

    loaded = load_repository(Path(repo))
    for error in loaded.errors:
        print(f"error: {error}", file=sys.stderr)
    return None if loaded.errors else loaded.state


def _image_store(args: argparse.Namespace) -> ImageStore:
    from reconciler.clock import SystemClock
    from reconciler.images.store import ImageStore

    return ImageStore(Path(args.cache_dir).expanduser(), SystemClock())


def _cmd_image_fetch(args: argparse.Namespace) -> int:
    import asyncio

    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from reconciler.clock import SystemClock
    from reconciler.errors import ImageRefused
    from reconciler.images.fetch import FetchProgress, FetchSettings
    from reconciler.images.ops import fetch_images
    from reconciler.images.verify import Verified

    state = _image_state(args.dir)
    if state is None:
        return 1
    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()) as bar:
        tasks: dict[str, TaskID] = {}

        def show(event: FetchProgress) -> None:
            task = tasks.get(event.name)
            if task is None:
                task = tasks[event.name] = bar.add_task(event.name, total=event.total)
            bar.update(task, completed=event.received)

        results = asyncio.run(
            fetch_images(
                state,
                _image_store(args),
                args.names,
                clock=SystemClock(),
                settings=FetchSettings(bandwidth=args.bandwidth),
                progress=show,
            )
        )
    failed = 0
    for name, outcome in results.items():
        if isinstance(outcome, Verified):
            print(f"{name}: verified sha256={outcome.sha256}")
        else:
            failed += 1
            kind = "refused" if isinstance(outcome, ImageRefused) else "error"
            print(f"{name}: {kind}: {outcome}")
    return 1 if failed else 0


def _cmd_image_verify(args: argparse.Namespace) -> int:
    from reconciler.errors import ImageRefused
    from reconciler.images.ops import verify_file_minisign, verify_file_sigstore

    try:
        if args.minisig and args.public_key:
            verdict = verify_file_minisign(args.file, args.minisig, args.public_key)
        elif args.bundle and args.identity and args.issuer and args.trusted_root:
            verdict = verify_file_sigstore(
                args.file, args.bundle, args.trusted_root, args.identity, args.issuer
            )
        else:
            print(
                "error: give --minisig and --public-key, or --bundle, --identity, --issuer "
                "and --trusted-root",
                file=sys.stderr,
            )
            return 2
    except ImageRefused as e:
        print(f"refused: {e.reason}: {e.detail}")
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stamp = f" timestamp={verdict.signed_timestamp}" if verdict.signed_timestamp else ""
    print(f"verified sha256={verdict.sha256} size={verdict.size} signer={verdict.signer}{stamp}")
    return 0


def _cmd_image_ls(args: argparse.Namespace) -> int:
    store = _image_store(args)
    for item in store.list():
        v = item.verified
        print(f"{v.channel:<12} {v.version:<28} {v.size:>12} {v.sha256[:16]} {v.file_name}")
    cap = store.capacity()
    channels = " ".join(f"{k}={n}" for k, n in cap.per_channel.items())
    print(f"used={cap.used} free={cap.free} {channels}".rstrip())
    return 0


def _cmd_image_gc(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from reconciler.images.ops import referenced_digests

    state = _image_state(args.repo)
    if state is None:
        return 1
    report = _image_store(args).gc(referenced_digests(state), timedelta(days=args.retention_days))
    print(f"removed={len(report.removed)} marked={len(report.marked)} freed={report.freed}")
    return 0


def _cmd_image_export(args: argparse.Namespace) -> int:
    from reconciler.errors import ImageError
    from reconciler.images.bundle import export_bundle

    state = _image_state(args.repo)
    if state is None:
        return 1
    missing = [n for n in args.names if n not in state.images]
    if missing:
        print(f"error: no Image named {', '.join(missing)}", file=sys.stderr)
        return 1
    images = [state.images[n] for n in args.names]
    try:
        names = export_bundle(
            args.out,
            images,
            list(state.trust_policies.values()),
            _image_store(args),
            root_dir=Path(state.root or args.repo),
        )
    except (ImageError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(names)} members)")
    return 0


def _cmd_image_import(args: argparse.Namespace) -> int:
    from reconciler.errors import ImageError, ImageRefused
    from reconciler.images.bundle import import_bundle

    if not args.repo:
        # A bundle's own TrustPolicies were written by whoever made the bundle.
        print(
            "error: a bundle's own TrustPolicies are never trusted; pass --repo <config "
            "repository> whose TrustPolicies pin the keys to verify the images with",
            file=sys.stderr,
        )
        return 2
    state = _image_state(args.repo)
    if state is None:
        return 1
    store = _image_store(args)
    try:
        verified = import_bundle(
            args.file,
            store,
            trust=list(state.trust_policies.values()),
            root_dir=Path(state.root or args.repo),
        )
    except ImageRefused as e:
        print(f"refused: {e.reason}: {e.detail}")
        return 1
    except (ImageError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for v in verified:
        print(f"{v.name}: verified sha256={v.sha256}")
    return 0


_COMMANDS.append(_register_image)


_RUN_ENV = """environment (values are secrets; each name can be changed where shown):
  VYOS_API_KEY_<NAME>           a device's API key, named by its credentials.apiKey
                                {env: ...}; the prefix is --secret-env-prefix
  GITFIRM_WEBHOOK_SECRET        shared secret of the /webhooks/<forge> webhooks
  GITFIRM_WEBHOOK_SECRET_GITHUB, _GITLAB, _GITEA
                                a forge's own secret, preferred to the shared one
                                (the prefix is the webhook_secret_env setting)
  GITFIRM_BACKUP_KEY            base64 AES key of the config backups (backup_key_env);
                                unset: a key is generated in the state dir
  GITFIRM_OPERATOR_TOKEN        bearer token of / and /metrics (--operator-token-env)
  GITFIRM_API_KEY               gitfirm backup restore: the device's key (--api-key-env)
  GITFIRM_CACHE                 gitfirm image ...: the image store (--cache-dir)
  GITFIRM_IMAGE_TOKEN_KEY       image-token key shared with peer sites (--image-peer;
                                image_token_key_env); unset: one made in the state dir
  GITFIRM_SHARD, GITFIRM_SHARD_NAME
                                --shard and --shard-name, when the flags are not given
  GIT_SSH_COMMAND, HOME         git's own: the SSH command and ~/.ssh, ~/.git-credentials

--config FILE holds the same settings as YAML, by name (repo, state_dir, listen, ...,
secrets: {env_prefix, secrets_dir}); a flag given too wins. docs/reference.md lists
every setting (gitfirm schema reference writes it).
"""

# Flags of `gitfirm run` that are settings of the same name (the rest are mapped below).
_RUN_FLAGS = (
    "repo", "branch", "status_branch", "listen", "public_url", "state_dir", "poll_interval",
    "observe_interval", "status_coalesce", "access_pin", "status_signing_key", "backup_keep",
    "operator_token_env", "operator_listen", "shard", "shard_name", "forge", "forge_url",
    "forge_repo", "forge_token_env", "forge_token_file", "shutdown_grace",
)  # fmt: skip

# Settings that an environment variable gives when neither the flag nor --config does.
_RUN_ENV_SETTINGS = {"shard": "GITFIRM_SHARD", "shard_name": "GITFIRM_SHARD_NAME"}


def _register_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Defaults live in DaemonSettings: a flag left out (None) does not override --config.
    p = sub.add_parser(
        "run",
        parents=[_secret_flags(defaults=False)],
        help="run the reconciler daemon",
        epilog=_RUN_ENV,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file of settings")
    p.add_argument("--repo", help="config repository URL or path (required)")
    p.add_argument("--branch", help="branch of desired state (default main)")
    p.add_argument("--status-branch", help="branch status is written to (default status)")
    p.add_argument("--listen", help="host:port of the HTTP port (default 127.0.0.1:8080)")
    p.add_argument("--public-url", help="base URL devices fetch images from")
    p.add_argument("--state-dir", type=Path, help="mirror, journal, images (required)")
    p.add_argument("--poll-interval", type=float, help="seconds (default 60)")
    p.add_argument("--observe-interval", type=float, help="seconds (default 300)")
    p.add_argument("--status-coalesce", type=float, help="seconds (default 10)")
    p.add_argument(
        "--access-pin", help="fingerprint of the first trusted AccessPolicy (gitfirm access pin)"
    )
    p.add_argument("--status-signing-key", type=Path, help="SSH key that signs status commits")
    p.add_argument("--backup-keep", type=int, help="config backups kept per device (default 30)")
    p.add_argument(
        "--operator-token-env",
        metavar="VAR",
        help="env var holding the bearer token / and /metrics require "
        "(default GITFIRM_OPERATOR_TOKEN)",
    )
    p.add_argument(
        "--operator-listen", metavar="HOST:PORT", help="serve / and /metrics only on this address"
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight devices get to park before the daemon exits "
        "(default 25; below the orchestrator's kill timeout)",
    )
    p.add_argument(
        "--rollout-timings",
        metavar="JSON",
        help='engine timings in seconds, e.g. {"boot_poll": 0.2} (defaults fit real routers)',
    )
    p.add_argument(
        "--shard",
        metavar="SELECTOR",
        help="own only the devices this label selector matches, e.g. 'site in (fra, ams)' "
        "(docs/scaling.md)",
    )
    p.add_argument(
        "--shard-name", metavar="NAME", help="this shard's name: status goes to shards/NAME/"
    )
    _forge_flags(p, statuses=True)
    p.add_argument(
        "--image-peer",
        action="append",
        metavar="URL",
        help="another site's gitfirm image server to fetch images from before upstream "
        "(repeatable; caps: images: in --config)",
    )
    p.add_argument(
        "--no-watch",
        action="store_const",
        const=True,
        help="do not watch a local repository path for changes (polling only)",
    )
    p.set_defaults(handler=_cmd_run)


def _forge_flags(p: argparse.ArgumentParser, *, statuses: bool, what: str | None = None) -> None:
    """The forge flags ``run`` (commit statuses), ``plan --comment-pr`` and ``--propose``
    (pull requests) share."""
    what = what or (
        "post a commit status per rollout to" if statuses else "post the plan comment on"
    )
    p.add_argument("--forge", choices=["github", "gitlab", "gitea"], help=f"{what} this forge")
    p.add_argument(
        "--forge-url",
        metavar="URL",
        help="API root: https://api.github.com (default), https://HOST/api/v4 (GitLab, "
        "default gitlab.com), https://HOST/api/v1 (Gitea/Forgejo)",
    )
    p.add_argument("--forge-repo", metavar="OWNER/NAME", help="the repository on the forge")
    p.add_argument("--forge-token-env", metavar="VAR", help="env var holding the forge token")
    p.add_argument(
        "--forge-token-file", type=Path, metavar="FILE", help="file holding the forge token"
    )


def _forge_from_args(args: argparse.Namespace) -> tuple[ForgeConfig, str]:
    """The forge named by the ``--forge*`` flags, and its token (one ``error:`` line when
    the token cannot be read)."""
    from reconciler.forge import ForgeConfig

    config = ForgeConfig(
        kind=args.forge,
        repo=args.forge_repo or "",
        url=args.forge_url or "",
        token_env=args.forge_token_env or "",
        token_file=args.forge_token_file,
    )
    return config, _forge_token(config)


def _forge_token(config: ForgeConfig) -> str:
    """The forge token, or one ``error:`` line naming the variable or file to set."""
    import os

    from reconciler.errors import ConfigError
    from reconciler.forge import read_token

    try:
        config.check()
        return read_token(config, os.environ)
    except ConfigError as e:
        raise _Fail(e.message) from None


def _run_settings(args: argparse.Namespace) -> DaemonSettings:
    """DaemonSettings from ``--config`` and the flags given (a flag wins); one line if invalid."""
    import os

    import yaml
    from pydantic import ValidationError

    from reconciler.daemon import DaemonSettings

    values: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise _Fail(f"cannot read --config {args.config}: {e}") from None
        if not isinstance(loaded, dict):
            raise _Fail(f"--config {args.config} must be a mapping of settings")
        values = dict(loaded)
    for key, var in _RUN_ENV_SETTINGS.items():
        if values.get(key) is None and os.environ.get(var):
            values[key] = os.environ[var]
    values.update({k: getattr(args, k) for k in _RUN_FLAGS if getattr(args, k) is not None})
    if args.no_watch:
        values["watch_local"] = False
    if args.image_peer:
        values["images"] = {**dict(values.get("images") or {}), "peers": args.image_peer}
    secrets = dict(values.get("secrets") or {})
    if args.secret_env_prefix is not None:
        secrets["env_prefix"] = args.secret_env_prefix
    if args.secrets_dir is not None:
        secrets["secrets_dir"] = args.secrets_dir
    if secrets:
        values["secrets"] = secrets
    if args.rollout_timings is not None:
        try:
            timings = json.loads(args.rollout_timings)
        except ValueError as e:
            raise _Fail(f"--rollout-timings is not JSON ({e}); give an object in seconds") from None
        if not isinstance(timings, dict):
            raise _Fail("--rollout-timings must be a JSON object of RolloutSettings fields")
        values["rollout"] = {**dict(values.get("rollout") or {}), **timings}
    try:
        return DaemonSettings.model_validate(values)
    except ValidationError as e:
        raise _Fail(_settings_problem(e, args.config)) from None


def _settings_problem(error: ValidationError, config: Path | None) -> str:
    """The first problem of a settings validation, by setting name, with the next step."""
    problems = error.errors(include_url=False, include_input=False)
    # An unknown key first: it is often a misspelt required one.
    first = min(problems, key=lambda p: p["type"] != "extra_forbidden")
    key = ".".join(str(part) for part in first["loc"])
    where = f" in {config}" if config else ""
    if first["type"] == "extra_forbidden":
        return f"unknown setting {key!r}{where}; the settings are listed by: gitfirm run --help"
    if first["type"] == "missing":
        flag = "--" + key.replace("_", "-")
        return f"{key} is not set: give {flag}, or {key}: in --config"
    if not key:  # a rule across settings (shard with shard_name)
        return f"settings{where}: {first['msg'].removeprefix('Value error, ')}"
    return f"setting {key}{where}: {first['msg']}"


def _preflight(settings: DaemonSettings) -> None:
    """Refuse, in one line, to start a daemon that could never reconcile anything."""
    import os

    from reconciler.daemon import shared_token_key
    from reconciler.errors import ConfigError, SourceError
    from reconciler.rollout.formats import check_state_dir
    from reconciler.source.git import Mirror
    from reconciler.source.remote import unpinned_policy

    check_state_dir(settings.state_dir)
    try:
        shared_token_key(os.environ, settings.image_token_key_env)
    except ConfigError as e:
        raise _Fail(e.message) from None
    _probe(settings.repo, settings.branch)
    if settings.forge is not None:
        _forge_token(settings.forge_config())
    if settings.access_pin is not None:
        return
    mirror = Mirror(settings.repo, settings.state_dir / "source", settings.branch)
    try:
        policy = unpinned_policy(mirror)
    except SourceError as e:
        raise _Fail(e.message, code=1) from None
    if policy is not None:
        raise _Fail(
            f"{settings.branch} declares an AccessPolicy ({policy}) but no --access-pin is "
            "given, so every revision would be refused: print the pin with "
            "`gitfirm access pin <clone>` and pass it as --access-pin"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from reconciler.daemon import Daemon
    from reconciler.logs import configure_json_logging

    settings = _run_settings(args)
    _preflight(settings)
    # `gitfirm health` (the container's HEALTHCHECK) probes the port this run listens on.
    (settings.state_dir / _LISTEN_FILE).write_text(settings.listen + "\n", encoding="utf-8")
    formatter = configure_json_logging(background=True)

    async def serve() -> None:
        daemon = Daemon(settings, formatter=formatter)
        formatter.add_secrets(daemon.secrets)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await daemon.run(stop)

    asyncio.run(serve())
    return 0


_COMMANDS.append(_register_run)


def _register_access(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("access", help="the AccessPolicy of a config repository")
    actions = p.add_subparsers(dest="access_command", required=True)
    pin = actions.add_parser("pin", help="print the fingerprint gitfirm run --access-pin takes")
    pin.add_argument("dir", nargs="?", default=".", help="config repository (default: .)")
    pin.set_defaults(handler=_cmd_access_pin)


def _cmd_access_pin(args: argparse.Namespace) -> int:
    from reconciler.source.policy import policy_fingerprint

    loaded = _load_config_dir(Path(args.dir))
    assert loaded.state is not None
    policies = list(loaded.state.access_policies.values())
    if not policies:
        raise _Fail(f"{args.dir} has no AccessPolicy: gitfirm run needs no --access-pin")
    print(policy_fingerprint(policies[0]))
    return 0


_COMMANDS.append(_register_access)

_LISTEN_FILE = "listen"
"""In the state dir: the ``host:port`` the last ``gitfirm run`` on it listens on."""


def _register_health(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health", help="exit 0 when the daemon using a state dir answers /healthz (HEALTHCHECK)"
    )
    p.add_argument("--state-dir", type=Path, required=True, help="the daemon's state dir")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    p.set_defaults(handler=_cmd_health)


def _cmd_health(args: argparse.Namespace) -> int:
    import httpx

    try:
        listen = (args.state_dir / _LISTEN_FILE).read_text("utf-8").strip()
    except OSError:
        raise _Fail(f"no gitfirm run has used {args.state_dir}: start one with it") from None
    host, _, port = listen.rpartition(":")
    # A wildcard address is reached on loopback; an IPv6 literal keeps its brackets.
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    url = f"http://{host}:{port}/healthz"
    try:
        answer = httpx.get(url, timeout=args.timeout)
    except httpx.HTTPError as e:
        raise _Fail(f"{url} did not answer ({type(e).__name__}): is gitfirm run up?", 1) from None
    if answer.status_code != 200:
        raise _Fail(f"{url} answered {answer.status_code}: {answer.text.strip()}", 1)
    return 0


_COMMANDS.append(_register_health)


def _register_backup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="list, show or restore a device's config backups")
    p.add_argument("action", choices=["list", "show", "restore"])
    p.add_argument("device")
    p.add_argument("--state-dir", required=True, type=Path, help="the daemon's state dir")
    p.add_argument(
        "--at", help="ISO time (UTC without an offset): the newest backup taken at or before it"
    )
    p.add_argument("--print", dest="reveal", action="store_true", help="show: print it")
    p.add_argument("--url", help="restore: the device's API base URL")
    p.add_argument("--api-key-env", default="GITFIRM_API_KEY", help="restore: its key's var")
    p.add_argument("--backup-key-env", default="GITFIRM_BACKUP_KEY")
    p.set_defaults(handler=_cmd_backup)


def _cmd_backup(args: argparse.Namespace) -> int:
    import asyncio
    import os
    from datetime import UTC, datetime

    from reconciler.devices.client import VyOSClient
    from reconciler.devices.endpoint import Endpoint
    from reconciler.devices.transport import make_http_client
    from reconciler.errors import GitfirmError
    from reconciler.rollout.backup import BackupKey, BackupStore, restore_backup

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 1

    key_file = args.state_dir / "backup.key"
    text = os.environ.get(args.backup_key_env) or (key_file.exists() and key_file.read_text())
    if not text:
        return fail(f"no backup key: set {args.backup_key_env} or give the daemon's --state-dir")
    try:
        store = BackupStore(args.state_dir / "backups", BackupKey.from_text(text))
        if args.action == "list":
            for e in store.entries(args.device):
                print(f"{e.taken.isoformat()}  {e.revision}  {e.path.name}")
            return 0
        at = datetime.fromisoformat(args.at) if args.at else None
        entry = store.at(args.device, at.replace(tzinfo=at.tzinfo or UTC) if at else None)
        if entry is None:
            return fail(f"no backup of {args.device}{f' at {args.at}' if at else ''}")
        if args.action == "show":
            if not args.reveal:
                return fail("show prints the decrypted config: add --print to confirm")
            print(store.read(entry.path, entry.device, entry.revision), end="")
            return 0
        if not args.url or not os.environ.get(args.api_key_env):
            return fail(f"restore needs --url and the device's API key in {args.api_key_env}")

        async def push() -> None:
            async with make_http_client() as http:
                endpoint = Endpoint(args.device, args.url, os.environ[args.api_key_env])
                await restore_backup(store, entry, VyOSClient(endpoint, http))

        asyncio.run(push())
    except (GitfirmError, ValueError) as e:
        return fail(f"{e}; list the backups with: gitfirm backup list {args.device}")
    print(f"restored {entry.path.name} (taken {entry.taken.isoformat()}) to {args.device}")
    return 0


_COMMANDS.append(_register_backup)


def _register_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole loop on a simulated fleet")
    p.add_argument(
        "--example",
        type=Path,
        default=_example_repo(),
        help="config repository to start from (default: example-repo/)",
    )
    p.add_argument("--workdir", type=Path, help="where to keep the demo (default: a temp dir)")
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="after the rollout, keep the simulator and daemon up and print the dashboard's "
        "address, until Ctrl-C",
    )
    p.set_defaults(handler=_cmd_demo)


def _example_repo() -> Path:
    """example-repo/ of a source checkout, else the copy an install put in <prefix>/share."""
    checkout = Path(__file__).resolve().parents[1] / "example-repo"
    installed = Path(sys.prefix) / "share" / "gitfirm" / "example-repo"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from reconciler.demo import run_demo

    if not (args.example / "fleet").is_dir():
        print(f"error: {args.example} is not a config repository", file=sys.stderr)
        return 1
    root = args.workdir or Path(tempfile.mkdtemp(prefix="gitfirm-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    return run_demo(args.example, root, keep_running=args.keep_running)


_COMMANDS.append(_register_demo)


def _register_discover(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "discover",
        help="find VyOS routers on networks; print Device documents, or propose them",
        description="Probe every address of the CIDRs on the ports for the VyOS HTTP API "
        "(HTTPS; an unauthenticated probe first, then /info, or show version with the key), "
        "concurrently at a bounded rate. Prints one Device per router found, with its TLS "
        "pin; routers a Device of --repo already declares (by address or pin) are annotated "
        "gitfirm.io/declared-as. Discovery only reads.",
    )
    p.add_argument(
        "cidrs",
        nargs="+",
        metavar="CIDR",
        help="e.g. 10.0.0.0/24 (at most 262,144 address and port pairs in all)",
    )
    p.add_argument("--ports", default="443", help="443,8443 or 8440-8450 (default 443)")
    p.add_argument("--api-key-env", metavar="VAR", help="env var of the API key (show version)")
    p.add_argument("--site", default="discovered", help="site of the printed Devices")
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")
    p.add_argument("--repo", type=Path, help="a checkout of the config repository")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per probe step")
    p.add_argument("--concurrency", type=int, default=64, help="probes in flight at once")
    p.add_argument("--rate", type=float, default=100.0, help="probes started per second")
    _proposal_flags(p)
    p.set_defaults(handler=_cmd_discover)


def _proposal_flags(p: argparse.ArgumentParser) -> None:
    """``--propose`` and where proposals go: the origin of ``--repo``, a pull request on a
    forge when one is named."""
    p.add_argument(
        "--propose",
        action="store_true",
        help="push a proposal branch (gitfirm/proposals/...) to the origin of --repo, and "
        "open a pull request with --forge",
    )
    p.add_argument("--branch", default="main", help="the desired branch proposals target")
    p.add_argument("--signing-key", type=Path, help="SSH private key that signs proposals")
    _forge_flags(p, statuses=False, what="open the proposal's pull request on")


def _cmd_discover(args: argparse.Namespace) -> int:
    import asyncio
    import os

    import yaml

    from reconciler.discovery import (
        DEFAULT_KEY_ENV,
        ProbeSettings,
        device_documents,
        expand_targets,
        mark_declared,
        parse_ports,
    )

    try:
        targets = expand_targets(args.cidrs, parse_ports(args.ports))
        settings = ProbeSettings(timeout=args.timeout, concurrency=args.concurrency, rate=args.rate)
    except ValueError as e:
        raise _Fail(str(e)) from None
    if args.concurrency < 1 or args.rate <= 0 or args.timeout <= 0:
        raise _Fail("--concurrency, --rate and --timeout must be positive")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env) or None
        if key is None:
            raise _Fail(f"{args.api_key_env} is not set: export the API key in it, or drop "
                        "--api-key-env to read only what /info says")  # fmt: skip
    if args.propose and args.repo is None:
        raise _Fail("--propose needs --repo, a checkout of the config repository")
    declared = _load_config_dir(args.repo).state.devices if args.repo else {}  # type: ignore[union-attr]
    found = mark_declared(asyncio.run(_discover(targets, key, settings)), declared)
    key_env = args.api_key_env or DEFAULT_KEY_ENV
    docs = device_documents(found, site=args.site, key_env=key_env, declared=declared)
    if args.format == "json":
        print(json.dumps(docs, indent=2))
    elif docs:
        print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    new = sum(1 for f in found if f.declared_as is None)
    print(f"found {len(found)} router(s), {new} not declared", file=sys.stderr)
    if args.propose:
        _propose_discovered(args, found, key_env, declared)
    return 0


async def _discover(targets: list[tuple[str, int]], key: str | None, settings: Any) -> list[Any]:
    from reconciler.clock import SystemClock
    from reconciler.devices.transport import make_http_client
    from reconciler.discovery import scan

    http = make_http_client()
    try:
        return await scan(targets, http=http, clock=SystemClock(), api_key=key, settings=settings)
    finally:
        await http.aclose()


def _propose_discovered(
    args: argparse.Namespace, found: list[Any], key_env: str, declared: Mapping[str, Any]
) -> None:
    from reconciler.discovery import discovery_proposals

    proposals = discovery_proposals(found, site=args.site, key_env=key_env, declared=declared)
    _publish(args, proposals)


def _publish(args: argparse.Namespace, proposals: Sequence[Any]) -> None:
    """Publish ``proposals`` to the origin of ``args.repo`` (and a pull request on the forge
    the flags name); one line per proposal on stderr."""
    import asyncio
    import subprocess

    import httpx

    from reconciler.clock import SystemClock
    from reconciler.errors import GitfirmError
    from reconciler.forge import make_forge
    from reconciler.gitbot import GitIdentity
    from reconciler.proposals import Proposer, ProposerSettings
    from reconciler.sanitize import redact

    origin = subprocess.run(
        ["git", "-C", str(args.repo), "remote", "get-url", "origin"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    if origin.returncode != 0:
        raise _Fail(f"{args.repo} has no origin remote to push proposals to")
    config = token = None
    if args.forge is not None:
        config, token = _forge_from_args(args)
    settings = ProposerSettings(
        remote=origin.stdout.strip(),
        base=args.branch,
        workdir=args.repo / ".git" / "gitfirm-proposals",
        identity=GitIdentity(signing_key=args.signing_key),
    )

    async def publish() -> None:
        async with httpx.AsyncClient() as http:
            forge = None
            if config is not None and token is not None:
                agent = f"gitfirm/{__version__}"
                forge = make_forge(config, token, http=http, clock=SystemClock(), user_agent=agent)
            proposer = Proposer(settings, forge=forge, secrets=(token,) if token else ())
            for proposal in proposals:
                result = await proposer.propose(proposal)
                pr = f" ({result.pull_request})" if result.pull_request else ""
                print(f"{result.outcome.value}: {result.branch}{pr}", file=sys.stderr)

    try:
        asyncio.run(publish())
    except GitfirmError as e:
        raise _Fail(redact(e.message, (token,) if token else ()), code=1) from None


_COMMANDS.append(_register_discover)


def _cmd_image_discover(args: argparse.Namespace) -> int:
    import asyncio

    import yaml

    loaded = _load_config_dir(args.repo)
    assert loaded.state is not None
    state = loaded.state
    sources = {n: s for n, s in state.image_sources.items() if args.source in (None, n)}
    if not sources:
        raise _Fail(
            f"no ImageSource{f' named {args.source}' if args.source else ''} in {args.repo}"
        )
    store = _image_store(args)
    results = asyncio.run(_image_intake(state, sources, store))
    proposals = []
    refused = 0
    for name, outcome in results.items():
        if isinstance(outcome, str):
            refused += outcome.startswith("refused")
            print(f"{name}: {outcome}", file=sys.stderr)
            continue
        image, proposal = outcome
        print(
            yaml.safe_dump(image.model_dump(mode="json", exclude_defaults=True), sort_keys=False),
            end="---\n",
        )
        print(f"{name}: verified {image.spec.source.file_name}", file=sys.stderr)
        proposals.append(proposal)
    if args.propose and proposals:
        _publish(args, proposals)
    return 1 if refused else 0


async def _image_intake(
    state: DesiredState, sources: Mapping[str, Any], store: Any
) -> dict[str, Any]:
    """Per source: (Image, Proposal) for the newest undeclared build that verified, or a
    line saying why there is none (``refused: ...`` when it failed verification)."""
    import httpx

    from reconciler.clock import SystemClock
    from reconciler.errors import GitfirmError, ImageRefused, summarize
    from reconciler.images.feeds import read_feed
    from reconciler.images.intake import take_build
    from reconciler.proposals import image_proposal

    declared = {(i.spec.version, i.spec.channel) for i in state.images.values()}
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60.0) as http:
        for name, source in sorted(sources.items()):
            fresh = []
            try:
                builds = await read_feed(source.spec, http)
                fresh = [b for b in builds if (b.version, source.spec.channel) not in declared]
                if not fresh:
                    out[name] = "no new build"
                    continue
                image = await take_build(
                    fresh[0], source, list(state.trust_policies.values()),
                    store=store, http=http, clock=SystemClock(), staging=store.tmp / "intake",
                )  # fmt: skip
                out[name] = (image, image_proposal(image, name, fresh[0].url))
            except ImageRefused as e:
                out[name] = f"refused {fresh[0].file_name if fresh else ''}: {summarize(e).message}"
            except GitfirmError as e:
                out[name] = f"feed failed: {summarize(e).message}"
    return out


if __name__ == "__main__":
    sys.exit(main())
