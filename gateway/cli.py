"""Command line: ``gateway run | validate``.

Role: process entry point. ``run`` loads the config (file or directory), starts the public and admin
listeners under uvloop when available, reloads the config on SIGHUP or on file change (``--watch``;
all-or-nothing), follows the cluster snapshot in Redis (``--redis-url`` / ``--redis-mode``,
:mod:`gateway.process.distribution`), runs N workers under a supervisor (``--workers``,
:mod:`gateway.process.supervisor`), and shuts down gracefully on SIGTERM/SIGINT (stop accepting, finish
in-flight requests up to the deadline, close pools). See docs/operations-cluster.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from gateway.core.errors import SnapshotError
from gateway.core.settings import load_settings, parse_assignment, parse_workers, split_listen
from gateway.lib.redis_conn import target_from_settings
from gateway.snapshot.load import load_path

log = logging.getLogger("gateway")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="snapshot file or directory (JSON/YAML)")
    p.add_argument("--listen", help="public listener HOST:PORT (default 0.0.0.0:8080)")
    p.add_argument("--admin-listen", help="admin listener HOST:PORT (default 127.0.0.1:9080)")
    p.add_argument("--admin-token", help="bearer token for the admin API")
    p.add_argument("--workers", type=parse_workers,
                   help="worker processes sharing the port (SO_REUSEPORT); auto = one per CPU")
    p.add_argument("--redis-url", help="Redis for shared throttling and config distribution")
    p.add_argument("--redis-mode", choices=("single", "cluster", "sentinel"),
                   help="single (--redis-url), cluster or sentinel (both use redis_nodes)")
    p.add_argument("--default-group", help="group (id or name) serving requests whose Host matches none")
    p.add_argument("--trusted-proxies", help="comma-separated CIDRs whose X-Forwarded-For is trusted")
    p.add_argument("--max-body-bytes", type=int, help="request body limit (default 12 MB)")
    p.add_argument("--no-access-log", action="store_true", help="turn the JSON access log off")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any setting, e.g. --set throttle_redis_deadline_ms=30 (repeatable; "
                        "the table in docs/operations.md); wins over GATEWAY_<NAME>")
    p.add_argument("--state-dir", help="persist every accepted snapshot here and restore it at start-up")
    p.add_argument("--watch", action="store_true", default=None,
                   help="reload --config when its files change (polled every second)")
    # internal: set by the --workers supervisor on the command lines of its workers
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "config": args.config,
        "listen": args.listen,
        "admin_listen": args.admin_listen,
        "admin_token": args.admin_token,
        "workers": args.workers,
        "redis_url": args.redis_url,
        "redis_mode": args.redis_mode,
        "default_group": args.default_group,
        "max_body_bytes": args.max_body_bytes,
        "log_level": args.log_level,
        "watch": args.watch,
        "state_dir": args.state_dir,
    }
    if args.trusted_proxies:
        out["trusted_proxies"] = [c.strip() for c in args.trusted_proxies.split(",") if c.strip()]
    if args.no_access_log:
        out["access_log"] = False
    for assignment in args.set:
        name, value = parse_assignment(assignment)
        out[name] = value
    return out


async def serve(settings: Any, worker_index: int | None = None, supervisor_fd: int | None = None) -> int:
    """One serving process (the only one, or worker ``worker_index`` of a ``--workers`` supervisor)."""
    from gateway.control.app import check_admin_exposure
    from gateway.process.reload import ClusterState, FileWatcher, load_file, reload_file
    from gateway.process.server import Gateway
    from gateway.process.state import ConfigOrigin

    check_admin_exposure(settings.admin_listen, settings.admin_token)
    target = target_from_settings(settings)  # validated by cmd_run

    gw = Gateway(settings)
    ClusterState.of(gw)
    ConfigOrigin.of(gw)  # tracks admin changes vs the file, and persists accepted snapshots (state_dir)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # signal handlers before any listener opens: a SIGTERM/SIGHUP that arrives as soon as the process looks
    # ready (admin port answering) must drain or reload, never kill the process
    tasks: set[asyncio.Task[Any]] = set()

    def reload() -> None:
        if settings.config:
            task = loop.create_task(reload_file(gw, settings.config))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    forced = False

    def on_stop() -> None:
        nonlocal forced
        if stop.is_set() and not forced:
            forced = True
            log.warning("second stop signal: exiting without waiting for in-flight requests")
            os._exit(1)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_stop)
    loop.add_signal_handler(signal.SIGINT, on_stop)
    loop.add_signal_handler(signal.SIGHUP, reload)
    if settings.config or settings.state_dir:
        try:
            load_file(gw, settings.config)
        except SnapshotError as exc:
            for problem in exc.problems:
                print(f"config error: {problem}", file=sys.stderr)
            return 2

    link = None
    admin_listen = settings.admin_listen
    if supervisor_fd is not None:
        from gateway.process.relay import WorkerLink
        from gateway.process.supervisor import worker_admin_listen

        admin_listen = worker_admin_listen(settings.admin_listen, worker_index or 0)
        link = WorkerLink(gw, supervisor_fd, relay_pushes=target is None)
        latest = await link.connect()
        if latest is not None and target is None:
            await link.apply(latest)  # a restarted worker serves what the others serve
        link.on_closed = stop.set  # the supervisor is gone: drain and exit
        link.start()
    dist = None
    if target is not None:
        from gateway.process.distribution import RedisDistributor

        dist = RedisDistributor(gw, target, settings.distribution_prefix)
        await dist.start()
    try:
        await gw.start(admin=admin_listen, reuse_port=settings.workers > 1 or supervisor_fd is not None)
    except OSError as exc:  # port taken, address not available, permission denied ...
        print(f"cannot listen ({settings.listen}, admin {admin_listen}): {exc.strerror or exc}", file=sys.stderr)
        await gw.stop()
        if dist is not None:
            await dist.close()
        return 2
    log.info("listening on %s (admin %s)%s", settings.listen, admin_listen,
             f" as worker {worker_index}" if worker_index is not None else "")
    if link is not None:
        await link.send({"type": "ready", "pid": os.getpid(), "admin_port": gw.admin_port})

    watcher = None
    if settings.watch and settings.config and supervisor_fd is None:
        watcher = FileWatcher(settings.config, lambda: reload_file(gw, settings.config), settings.watch_interval_s)
        watcher.start()
    await stop.wait()
    log.info("shutting down: stop accepting, draining %d in-flight request(s) (deadline %.0f s)", gw.inflight,
             settings.shutdown_timeout_s)
    if watcher is not None:
        await watcher.stop()
    if dist is not None:
        await dist.close()
    if link is not None:
        await link.close()
    store = ConfigOrigin.of(gw).store
    if store is not None:
        await store.flush()  # the last accepted snapshot is on disk before the process exits
    # Gateway.stop: each listener stops accepting, idle keep-alive connections close, in-flight requests get
    # up to shutdown_timeout_s, then the backend pools close.
    await gw.stop()
    log.info("stopped")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop's handler is installed: never die of a reload
    try:
        settings = load_settings(_overrides(args))
        target_from_settings(settings)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    level = log_level(settings.log_level)
    if level is None:
        print(f"invalid log level {settings.log_level!r}: use one of {', '.join(LOG_LEVELS)} (any case)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.config and not settings.state_dir and not settings.redis_url and not settings.redis_nodes:
        log.warning("no configuration: --config (or GATEWAY_CONFIG) is not set, so no API is served and every "
                    "request answers 503 until a snapshot is pushed to the admin API (docs/admin-api.md); "
                    "try `gateway run --config config/`")
    worker_index = args.worker_index
    if settings.workers > 1 and worker_index is None:
        if split_listen(settings.listen)[1] == 0:
            print("--workers needs a fixed --listen port (workers share it with SO_REUSEPORT)", file=sys.stderr)
            return 2
        from gateway.process.supervisor import Supervisor

        return _run_loop(Supervisor(settings, _RUN_ARGV).run())
    return _run_loop(serve(settings, worker_index, args.supervisor_fd))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str | None:
    """A level name in any case (``debug``, ``Warn``) -> the logging name; None when it is not one."""
    name = str(value).strip().upper()
    name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
    return name if name in LOG_LEVELS else None


def _run_loop(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop missing on this platform
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))


def cmd_validate(args: argparse.Namespace) -> int:
    from gateway.compiler import build_runtime, validate
    from gateway.model.services import Services
    from gateway.snapshot.warnings import snapshot_warnings

    settings = load_settings({"default_group": args.default_group})
    try:
        doc = load_path(args.path)
        runtime = build_runtime(doc, Services(settings))
    except SnapshotError as exc:
        print(f"{args.path}: invalid, {_plural(len(exc.problems), 'problem')} (nothing was loaded)")
        for problem in exc.problems:
            print(f"  error: {problem}")
        return 1
    c = runtime.counts
    print(f"{args.path}: valid")
    print(f"  {_plural(c.get('groups', 0), 'group')}, {_plural(c.get('environments', 0), 'environment')}, "
          f"{_plural(c.get('apis', 0), 'API')}, {_plural(c.get('publishes', 0), 'published API')} "
          "(API x environment)")
    for warning in snapshot_warnings(validate(doc), settings.default_group):
        print(f"  warning: {warning}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
    from gateway.control.openapi import commands as openapi_commands

    openapi_commands.add_commands(sub)  # gateway import / gateway export
    return parser


# the run arguments as given, so the supervisor can start its workers with the same command line
_RUN_ARGV: list[str] = []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        _RUN_ARGV[:] = argv[1:]
    args = build_parser().parse_args(argv)
    return int(args.func(args))
