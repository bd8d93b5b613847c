"""The `instancer` command: serve, manage challenges and instances, migrate, check the config,
and keep the host firewall that isolates instances.

Commands other than `serve` act on the database and engine directly, so they work
whether or not a server is running. `new-flag-key` and `firewall` need no settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from . import bootstrap
from .domain.errors import InstancerError, ValidationFailed
from .domain.model import State
from .domain.ports import InstanceFilter
from .settings import Settings
from .vault.aesgcm import new_key_spec


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.run is None:  # needs no settings: new-flag-key makes the first one; firewall is host setup
        try:
            return int(args.bare(args))
        except InstancerError as exc:
            print(f"error {exc.code}: {exc.message}", file=sys.stderr)
            return 1
    try:
        settings = Settings()  # read from the environment
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            key = "INSTANCER_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "settings"
            print(f"configuration error: {key}: {err['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.run(settings, args)
        return result
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
    new_key.set_defaults(run=None, bare=_new_flag_key)

    firewall = sub.add_parser(
        "firewall", help="the host firewall rules that isolate instances (root)"
    ).add_subparsers(required=True)
    for name, run, text in (
        ("apply", _firewall_apply, "put the rules in force (idempotent)"),
        ("check", _firewall_check, "say whether the rules are in force; exit 1 if not"),
        ("remove", _firewall_remove, "remove the rules (instances are no longer isolated)"),
    ):
        firewall.add_parser(name, help=text).set_defaults(run=None, bare=run)

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

    sub.add_parser("check-config", help="validate settings and reach the database and engine").set_defaults(
        run=_check_config
    )
    return p


def _new_flag_key(args: argparse.Namespace) -> int:
    print(new_key_spec(args.key_id))
    return 0


def _firewall_apply(_: argparse.Namespace) -> int:
    changes = bootstrap.host_firewall().apply()
    print("\n".join(changes) if changes else "the isolation rules were already in force")
    return 0


def _firewall_check(_: argparse.Namespace) -> int:
    firewall = bootstrap.host_firewall()
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


def _firewall_remove(_: argparse.Namespace) -> int:
    changes = bootstrap.host_firewall().remove()
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
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )
    return 0


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
    live = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
    flt = InstanceFilter(challenge_id=args.challenge, owner=args.owner, states=None if args.all else live)
    page = _ready(settings).instances.find(flt, per_page=10_000)
    for i in page.items:
        ports = ",".join(str(a.host_port) for a in i.allocations)
        print(f"{i.id}\t{i.challenge_id}\t{i.owner}\t{i.state.value}\t{i.expires_at.isoformat()}\t{ports}")
    print(f"{page.total} instance(s)", file=sys.stderr)
    return 0


def _instance_stop(settings: Settings, args: argparse.Namespace) -> int:
    instance = _ready(settings).instances.stop(args.instance_id, reason="stopped from the command line")
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
