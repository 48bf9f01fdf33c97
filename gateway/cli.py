"""Command line: ``gateway run | validate``.

Role: process entry point. ``run`` loads the config (file or directory), starts the public and admin
listeners under uvloop when available, reloads the config on SIGHUP (all-or-nothing), and shuts down
gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight requests up to the deadline, close pools).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from gateway.settings import load_settings
from gateway.snapshot.load import SnapshotError, load_path

log = logging.getLogger("gateway")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="snapshot file or directory (JSON/YAML)")
    p.add_argument("--listen", help="public listener HOST:PORT (default 0.0.0.0:8080)")
    p.add_argument("--admin-listen", help="admin listener HOST:PORT (default 127.0.0.1:9080)")
    p.add_argument("--admin-token", help="bearer token for the admin API")
    p.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--redis-url", help="Redis for shared throttling and config distribution")
    p.add_argument("--default-group", help="group (id or name) serving requests whose Host matches none")
    p.add_argument("--trusted-proxies", help="comma-separated CIDRs whose X-Forwarded-For is trusted")
    p.add_argument("--max-body-bytes", type=int, help="request body limit (default 12 MB)")
    p.add_argument("--no-access-log", action="store_true", help="turn the JSON access log off")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING ...")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "config": args.config,
        "listen": args.listen,
        "admin_listen": args.admin_listen,
        "admin_token": args.admin_token,
        "workers": args.workers,
        "redis_url": args.redis_url,
        "default_group": args.default_group,
        "max_body_bytes": args.max_body_bytes,
        "log_level": args.log_level,
    }
    if args.trusted_proxies:
        out["trusted_proxies"] = [c.strip() for c in args.trusted_proxies.split(",") if c.strip()]
    if args.no_access_log:
        out["access_log"] = False
    return out


async def serve(settings: Any) -> int:
    from gateway.admin import check_admin_exposure
    from gateway.server import Gateway

    check_admin_exposure(settings.admin_listen, settings.admin_token)
    gw = Gateway(settings)
    if settings.config:
        try:
            gw.load_config_path(settings.config)
        except SnapshotError as exc:
            for problem in exc.problems:
                print(f"config error: {problem}", file=sys.stderr)
            return 2
    await gw.start(reuse_port=settings.workers > 1)
    log.info("listening on %s (admin %s)", settings.listen, settings.admin_listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        if not settings.config:
            return
        try:
            gw.load_config_path(settings.config)
        except SnapshotError as exc:
            log.error("reload rejected, still serving the previous snapshot: %s", exc.problems)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await gw.stop()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(_overrides(args))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from gateway import features

    features.load_all()
    try:
        import uvloop

        return uvloop.run(serve(settings))
    except ImportError:  # pragma: no cover - uvloop missing on this platform
        return asyncio.run(serve(settings))


def cmd_validate(args: argparse.Namespace) -> int:
    from gateway import features
    from gateway.server import build_runtime
    from gateway.services import Services

    features.load_all()
    settings = load_settings({"default_group": args.default_group})
    try:
        runtime = build_runtime(load_path(args.path), Services(settings))
    except SnapshotError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"valid: {runtime.counts}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="API gateway data plane")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve published APIs")
    _add_run_args(run)
    run.set_defaults(func=cmd_run)
    val = sub.add_parser("validate", help="validate a snapshot file or directory")
    val.add_argument("path")
    val.add_argument("--default-group")
    val.set_defaults(func=cmd_validate)
    for extra in EXTRA_COMMANDS:
        extra(sub)
    return parser


# Feature modules add sub-commands (import/export ...): fn(subparsers) -> None
EXTRA_COMMANDS: list[Any] = []


def main(argv: list[str] | None = None) -> int:
    from gateway import features  # imported here: feature modules register sub-commands in EXTRA_COMMANDS

    features.load_all()
    args = build_parser().parse_args(argv)
    return int(args.func(args))
