"""The `instancer` command: serve, manage challenges and instances, migrate, check the config,
and keep the host firewall that isolates instances.

Commands other than `serve` act on the database and engine directly, so they work
whether or not a server is running. `new-flag-key` and `firewall` need no settings.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import uvicorn
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from . import bootstrap, compose
from .domain.errors import InstancerError, ValidationFailed
from .domain.model import State
from .domain.ports import InstanceFilter
from .domain.spec import parse_spec
from .exposure.traefik_files import TraefikLayout, self_signed_wildcard, write_config
from .settings import Settings, parse_cidrs
from .vault.aesgcm import new_key_spec

_MAX_COMPOSE_BYTES = 1 << 20  # a compose file is small; this bounds what safe_load is given


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.run is None:  # needs no settings (new-flag-key makes the first key)
        return _reporting(lambda: args.standalone(args))
    try:
        settings = Settings()  # read from the environment
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            key = "INSTANCER_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "settings"
            print(f"configuration error: {key}: {err['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _reporting(lambda: args.run(settings, args))


def _reporting(command: Callable[[], int]) -> int:
    """Run a command; our own errors print their code, message and problems, and exit 1."""
    try:
        return command()
    except InstancerError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        for problem in exc.details.get("errors", []):
            print(f"  {problem['loc']}: {problem['message']}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="instancer", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    new_key = sub.add_parser("new-flag-key", help="print a fresh INSTANCER_FLAG_KEYS entry (id:base64key)")
    new_key.add_argument("key_id")
    new_key.set_defaults(run=None, standalone=_new_flag_key)

    firewall = sub.add_parser(
        "firewall", help="the host firewall rules that isolate instances (root)"
    ).add_subparsers(required=True)
    for name, run, text in (
        ("apply", _firewall_apply, "put the rules in force (idempotent)"),
        ("check", _firewall_check, "say whether the rules are in force; exit 1 if not"),
        ("remove", _firewall_remove, "remove the rules (instances are no longer isolated)"),
    ):
        command = firewall.add_parser(name, help=text)
        command.set_defaults(run=None, standalone=run)
        command.add_argument(
            "--swarm-node",
            action="store_true",
            help="this host is a Swarm node running instances: also the rules for its docker_gwbridge",
        )
        command.add_argument(
            "--egress",
            action="store_true",
            help="with --swarm-node: instances on this node may reach the internet (default: they may not)",
        )
        command.add_argument(
            "--deny",
            type=_cidrs,
            default=(),
            metavar="CIDR,...",
            help="with --swarm-node: more addresses instances never reach (the nodes' public ones)",
        )
        command.add_argument(
            "--ports",
            type=_port_range,
            default=(30000, 60000),
            metavar="LOW-HIGH",
            help="with --swarm-node: the instances' host ports (INSTANCER_PORT_RANGE_*; 30000-60000)",
        )

    serve = sub.add_parser("serve", help="run the HTTP API and the reaper")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    challenge = sub.add_parser("challenge", help="register, list and delete challenges").add_subparsers(
        required=True
    )
    apply = challenge.add_parser("apply", help="create or replace challenges from YAML/JSON spec files")
    apply.add_argument("files", nargs="+", type=Path)
    apply.set_defaults(run=_challenge_apply)
    challenge.add_parser("list", help="list challenges").set_defaults(run=_challenge_list)
    delete = challenge.add_parser("delete", help="stop a challenge's instances and delete it")
    delete.add_argument("challenge_id")
    delete.set_defaults(run=_challenge_delete)
    compose = challenge.add_parser(
        "import-compose", help="convert a docker-compose file into a challenge spec (YAML)"
    )
    compose.add_argument("compose_file", type=Path)
    compose.add_argument("--id", help="the challenge id (default: the compose name, else the directory's)")
    compose.add_argument("--out", type=Path, help="write the spec here instead of to stdout")
    compose.set_defaults(run=None, standalone=_challenge_import_compose)

    instance = sub.add_parser("instance", help="list and stop instances").add_subparsers(required=True)
    ls = instance.add_parser("list", help="list instances (live ones unless --all)")
    ls.add_argument("--challenge")
    ls.add_argument("--owner")
    ls.add_argument("--all", action="store_true", help="include ended instances")
    ls.set_defaults(run=_instance_list)
    stop = instance.add_parser("stop", help="stop an instance")
    stop.add_argument("instance_id")
    stop.set_defaults(run=_instance_stop)

    db = sub.add_parser("db", help="database schema").add_subparsers(required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=_db_upgrade)

    flags = sub.add_parser("flags", help="flag encryption keys").add_subparsers(required=True)
    flags.add_parser(
        "rotate-key", help="re-encrypt every stored flag under the first key of INSTANCER_FLAG_KEYS"
    ).set_defaults(run=_flags_rotate)

    _add_proxy(sub)
    _add_images(sub)

    sub.add_parser("check-config", help="validate settings and reach the database and engine").set_defaults(
        run=_check_config
    )
    return p


def _add_proxy(sub: Any) -> None:
    proxy = sub.add_parser("proxy", help="the Traefik in front of instances").add_subparsers(required=True)
    init = proxy.add_parser(
        "init",
        help="write a Traefik configuration that polls this service for routes (and a test certificate)",
    )
    init.add_argument("--dir", type=Path, required=True, help="where to write traefik.yml and tls.yml")
    init.add_argument(
        "--routes-url", required=True, help="this service's /api/v1/routes/traefik, as Traefik sees it"
    )
    init.add_argument("--https-address", default=":8443", help="listen address of the HTTPS entry point")
    init.add_argument("--tcp-address", default=":1337", help="listen address of the tcp-tls entry point")
    init.add_argument(
        "--api-address", default="127.0.0.1:8081", help="Traefik's API and /ping (keep on loopback)"
    )
    init.add_argument(
        "--cert", type=Path, help="wildcard certificate (PEM); default: a self-signed one in --dir"
    )
    init.add_argument("--key", type=Path, help="its private key (PEM)")
    init.set_defaults(run=_proxy_init)


def _add_images(sub: Any) -> None:
    images = sub.add_parser("images", help="challenge images on a swarm's nodes").add_subparsers(
        required=True
    )
    sync = images.add_parser(
        "sync",
        help="copy images to every swarm node that lacks them (save | load through each node's engine)",
    )
    sync.add_argument("images", nargs="+", metavar="IMAGE")
    sync.add_argument("--nodes", default="", help="only these nodes (host names, comma-separated)")
    sync.add_argument(
        "--source", help="the engine that holds the images (default: INSTANCER_DOCKER_HOST, the manager)"
    )
    sync.set_defaults(run=_images_sync)


def _new_flag_key(args: argparse.Namespace) -> int:
    print(new_key_spec(args.key_id))
    return 0


def _challenge_import_compose(args: argparse.Namespace) -> int:
    """Convert, validate with the spec's own rules, then write; what was left out goes to stderr."""
    path: Path = args.compose_file
    try:
        if path.stat().st_size > _MAX_COMPOSE_BYTES:
            raise ValidationFailed(f"{path} is larger than {_MAX_COMPOSE_BYTES} bytes")
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"cannot read {path}: {exc}") from exc
    result = compose.convert(document, challenge_id=args.id, fallback_id=path.resolve().parent.name)
    parse_spec(result.spec)  # refuses, with every problem and where it is, what the service would
    for where, why in result.ignored:
        print(f"ignored: {where}: {why}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    text = f"# Converted from {path.name} by `instancer challenge import-compose`.\n" + yaml.safe_dump(
        result.spec, sort_keys=False, allow_unicode=True
    )
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote challenge {result.spec['id']} to {args.out}", file=sys.stderr)
    return 0


class _ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading plain scalars as Compose (YAML 1.2) does: `22:22` is text,
    not the base-60 number 1342, and `yes`/`no`/`on`/`off` are text, not booleans."""


_YAML = "tag:yaml.org,2002:"
_ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_YAML + "int", _YAML + "float", _YAML + "bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ComposeLoader.add_implicit_resolver(
    _YAML + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ComposeLoader.add_implicit_resolver(
    _YAML + "int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$"), list("-+0123456789")
)
_ComposeLoader.add_implicit_resolver(
    _YAML + "float",
    re.compile(
        r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def _port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        ports = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW-HIGH, e.g. 30000-60000") from None
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range within 1-65535")
    return ports


def _cidrs(text: str) -> tuple[str, ...]:
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _firewall_of(args: argparse.Namespace) -> bootstrap.Firewall:
    if not args.swarm_node:
        if args.egress or args.deny:
            raise SystemExit(
                "instancer firewall: --egress and --deny are a Swarm node's: give --swarm-node too"
            )
        return bootstrap.host_firewall()
    return bootstrap.node_firewall(egress=args.egress, ports=args.ports, deny=args.deny)


def _firewall_apply(args: argparse.Namespace) -> int:
    changes = _firewall_of(args).apply()
    print("\n".join(changes) if changes else "the isolation rules were already in force")
    return 0


def _firewall_check(args: argparse.Namespace) -> int:
    firewall = _firewall_of(args)
    problems = firewall.problems()
    for problem in problems:
        print(f"not in force: {problem}")
    if problems:
        print("run `instancer firewall apply` (as root) to fix", file=sys.stderr)
        return 1
    for rule, packets in firewall.dropped().items():
        print(f"{packets:>10} packets dropped by {rule}")
    print("the isolation rules are in force")
    return 0


def _firewall_remove(args: argparse.Namespace) -> int:
    changes = _firewall_of(args).remove()
    print("\n".join(changes) if changes else "no isolation rules were in force")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    service = bootstrap.build(settings)
    bootstrap.upgrade_database(service)
    try:
        service.backend.ping()
    except InstancerError:
        print(_no_engine(settings), file=sys.stderr)
        return 1
    service.isolation.at_start()  # raises in enforce mode when it cannot: refuse to serve
    app = bootstrap.app_of(service)
    logging.getLogger("uvicorn.access").addFilter(_QuietRoutePolls())
    # Everything built so far (modules, the app, the engine's pools) lives as long as the
    # process: take it out of the collector's sight, so that a full collection, which the
    # garbage of ordinary requests triggers now and then, scans only what came after instead
    # of pausing every request for the whole heap (~100 ms, seen in benchmarks/lookups.py).
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )
    return 0


class _QuietRoutePolls(logging.Filter):
    """Traefik asks for the routes every second: log those requests only when they fail."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        # uvicorn's access record: (client, method, path, http version, status)
        return not (len(args) == 5 and args[2] == "/api/v1/routes/traefik" and args[4] == 200)


def _no_engine(settings: Settings) -> str:
    return (
        f"No Docker engine is reachable at {settings.docker_host}: install and start one "
        "(`sudo scripts/docker-up`, or `apt-get install docker.io && dockerd &`) or point DOCKER_HOST at one."
    )


def _challenge_apply(settings: Settings, args: argparse.Namespace) -> int:
    service = _ready(settings)
    for path in args.files:
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationFailed(f"cannot read {path}: {exc}") from exc
        spec, created = service.challenges.put(document)
        print(f"{'created' if created else 'updated'} challenge {spec.id}")
    return 0


def _challenge_list(settings: Settings, _: argparse.Namespace) -> int:
    for spec in _ready(settings).challenges.list():
        images = ", ".join(c.image for c in spec.containers)
        print(f"{spec.id}\t{images}\t{spec.name}")
    return 0


def _challenge_delete(settings: Settings, args: argparse.Namespace) -> int:
    stopped = _ready(settings).challenges.delete(args.challenge_id)
    print(f"deleted challenge {args.challenge_id}; stopped {stopped} instance(s)")
    return 0


def _instance_list(settings: Settings, args: argparse.Namespace) -> int:
    live = frozenset({State.STARTING, State.POOLED, State.RUNNING, State.STOPPING})
    flt = InstanceFilter(challenge_id=args.challenge, owner=args.owner, states=None if args.all else live)
    page = _ready(settings).instances.find(flt, per_page=10_000)
    for i in page.items:
        ports = ",".join([str(a.host_port) for a in i.allocations] + [r.slug for r in i.routes])
        print(f"{i.id}\t{i.challenge_id}\t{i.owner}\t{i.state.value}\t{i.expires_at.isoformat()}\t{ports}")
    print(f"{page.total} instance(s)", file=sys.stderr)
    return 0


def _instance_stop(settings: Settings, args: argparse.Namespace) -> int:
    instance = _ready(settings).instances.stop(
        args.instance_id, reason="stopped from the command line", admin=True
    )
    print(f"instance {instance.id}: {instance.state.value}")
    return 0


def _flags_rotate(settings: Settings, _: argparse.Namespace) -> int:
    service = _ready(settings)
    done = service.flags.rotate()
    in_use = ", ".join(f"{k}: {n}" for k, n in sorted(service.flags.keys_in_use().items())) or "none"
    print(
        f"re-encrypted {done} flag(s) under key {service.settings.flag_key_primary}; flags per key: {in_use}"
    )
    return 0


def _proxy_init(settings: Settings, args: argparse.Namespace) -> int:
    if settings.routes_token is None:
        raise ValidationFailed("set INSTANCER_ROUTES_TOKEN: Traefik sends it to read the routes")
    if (args.cert is None) != (args.key is None):
        raise ValidationFailed("give both --cert and --key, or neither (a self-signed pair is made)")
    cert, key = (args.cert, args.key) if args.cert else self_signed_wildcard(settings.domain, args.dir)
    layout = TraefikLayout(
        routes_url=args.routes_url,
        routes_token=settings.routes_token.get_secret_value(),
        https_address=args.https_address,
        tcp_address=args.tcp_address,
        api_address=args.api_address,
        http_entrypoint=settings.traefik_http_entrypoint,
        tcp_entrypoint=settings.traefik_tcp_entrypoint,
    )
    print(write_config(args.dir, layout, cert, key))
    return 0


def _images_sync(settings: Settings, args: argparse.Namespace) -> int:
    if settings.backend != "swarm":
        raise ValidationFailed("`images sync` copies images to a swarm's nodes: set INSTANCER_BACKEND=swarm")
    sync = bootstrap.image_sync_of(settings)
    source = args.source or settings.docker_host
    plan = sync.plan(args.images, source, [n.strip() for n in args.nodes.split(",") if n.strip()])
    if plan.registry:
        print(f"images come from the registry {plan.registry}: push them there; nothing copied")
        return 0
    if plan.nothing_to_do:
        print(f"nothing to do: every node already holds {', '.join(args.images)}")
        return 0
    for copy in plan.copies:
        bar = ProgressBar(f"{copy.image} -> {copy.node}", copy.size, sys.stderr)
        sync.copy(copy, source, bar.update)
        bar.finish()
    images, nodes = len({c.image for c in plan.copies}), len({c.node for c in plan.copies})
    print(f"copied {images} image(s) to {nodes} node(s); {len(plan.present)} already in place")
    return 0


class ProgressBar:
    """A plain-text progress bar: redrawn in place on a terminal, one line per quarter otherwise
    (logs). `total` is a size estimate (the image's size): the bar stops at 99 % until done."""

    WIDTH = 30

    def __init__(self, label: str, total: int, out: TextIO) -> None:
        self._label, self._total, self._out = label, max(total, 1), out
        self._tty = out.isatty()
        self._shown = -1
        self._drawn_at = 0.0
        self._started = time.monotonic()
        self._done = 0
        self._draw(0)

    def update(self, done: int) -> None:
        self._done = done
        percent = min(99, done * 100 // self._total)
        due = (
            time.monotonic() - self._drawn_at >= 0.1  # a terminal: ten redraws a second at most
            if self._tty
            else percent // 25 > self._shown // 25  # a log: one line per quarter
        )
        if due:
            self._draw(percent)

    def finish(self) -> None:
        self._draw(100, end="\n")

    def _draw(self, percent: int, end: str = "") -> None:
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        size = f"{self._done / 1e6:.1f}/{self._total / 1e6:.1f} MB"
        if percent == 100:
            size = f"{self._done / 1e6:.1f} MB in {time.monotonic() - self._started:.1f} s"
        line = f"{self._label}  [{bar}] {percent:3d}%  {size}"
        self._out.write(("\r" + line + end) if self._tty else line + "\n")
        self._out.flush()
        self._shown, self._drawn_at = percent, time.monotonic()


def _db_upgrade(settings: Settings, _: argparse.Namespace) -> int:
    bootstrap.upgrade_database(bootstrap.build(settings))
    print("database is up to date")
    return 0


def _check_config(settings: Settings, _: argparse.Namespace) -> int:
    shown: dict[str, Any] = json.loads(settings.model_dump_json())
    shown["database_url"] = make_url(settings.database_url).render_as_string(hide_password=True)
    for key, value in sorted(shown.items()):
        print(f"INSTANCER_{key.upper()}={value}")
    service = bootstrap.build(settings)
    ok = True
    for name, check in (("database", service.store.ping), ("engine", service.backend.ping)):
        try:
            check()
            print(f"{name}: ok")
        except InstancerError as exc:
            ok = False
            print(f"{name}: {exc.code}: {exc.message}")
    return 0 if _check_isolation(service) and ok else 1


def _check_isolation(service: bootstrap.Service) -> bool:
    """Rules not yet in force are fine in enforce mode (serve applies them); unreadable ones are not."""
    mode = service.isolation.mode
    try:
        problems = service.isolation.problems()
    except InstancerError as exc:
        print(f"isolation: {exc.code}: {exc.message}")
        return mode != "enforce"
    if mode == "off" or not problems:
        print(f"isolation: {'off' if mode == 'off' else 'ok'}")
        return True
    then = "`serve` applies them at start" if mode == "enforce" else "run `instancer firewall apply` as root"
    print(f"isolation: not in force ({'; '.join(problems)}); {then}")
    return True


def _ready(settings: Settings) -> bootstrap.Service:
    service = bootstrap.build(settings)
    bootstrap.upgrade_database(service)
    return service


if __name__ == "__main__":
    sys.exit(main())
