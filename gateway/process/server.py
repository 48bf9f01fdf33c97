"""The gateway process: public listener, admin listener, and the active-snapshot swap.

Role in the pipeline: accepts connections, creates the per-request context (request id, client IP,
the runtime current at arrival), calls :func:`gateway.pipeline.handle.handle`, and runs completion hooks
(access log, metrics). The public listener is aiohttp's low-level server (no router: routing is ours).

Snapshot swaps (:meth:`Gateway.apply_document`): validate and compile off the hot path, then replace
``services.runtime`` in one assignment. A request keeps the runtime it started with (it holds the
reference in its context), so in-flight requests finish on their snapshot and new ones see the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.compiler import build_runtime
from gateway.compiler.compiler import index_of
from gateway.compiler.incremental import compile_change
from gateway.control.app import check_admin_exposure, create_admin_app
from gateway.control.port import VersionConflict
from gateway.core.errors import GatewayError, SnapshotError
from gateway.core.settings import Settings, latency_mode, split_listen
from gateway.lib.sites import ProtocolSite
from gateway.model.context import RequestContext, new_request_id
from gateway.model.runtime import Runtime
from gateway.model.services import Services
from gateway.observe import accesslog, kafka_log, metrics
from gateway.pipeline import handle as pipeline
from gateway.pipeline.spec import Chain
from gateway.pipeline.stages.client_ip import ProxyResolver
from gateway.process import retire
from gateway.process.h2 import AlpnDispatch, H2Server, PrefaceSniffer
from gateway.process.http1 import Http1Request, Http1Server
from gateway.process.https import start_https
from gateway.process.listener import BAD_VERSION_KEY, PublicServer
from gateway.snapshot.delta import ChangePlan, DocIndex, plan_change, remember
from gateway.snapshot.load import load_path

log = logging.getLogger("gateway")


__all__ = ["Gateway", "VersionConflict"]


class Gateway:
    """One gateway process: owns the services, the listeners and the active runtime."""

    def __init__(self, settings: Settings, chain: Chain | None = None) -> None:
        self.settings = settings
        self.chain = chain  # None: gateway.pipeline.chain.DEFAULT (tests and embedders may add stages)
        self.services = Services(settings)
        # per-process observers, in this order: the access log line, the metrics, the kafka_log records
        accesslog.setup(self.services)
        metrics.setup(self.services)
        kafka_log.setup(self.services)
        # the kafka_log hook runs only while the active snapshot binds a kafka_log plug-in (see _activate)
        self._log_hook = self.services.completion_hooks.pop()
        self._runners: list[web.BaseRunner] = []
        self._servers: list[asyncio.Server] = []  # public sockets opened outside an aiohttp runner
        self.http1: Http1Server | None = None  # the llhttp public listener, when selected
        self._client_ip = ProxyResolver(settings.trusted_networks())
        self._latency_mode = latency_mode(settings.latency_headers)
        self._max_body = settings.max_body_bytes  # per-request context values, read once
        self._body_timeout = settings.client_body_timeout_s
        self.public_port: int | None = None
        self.admin_port: int | None = None
        self.https_port: int | None = None
        self.admin_app: web.Application | None = None
        self.document: dict[str, Any] | None = None
        self.inflight = 0
        self.doc_index: DocIndex | None = None  # index of self.document that per-API changes are planned against
        self.last_change: ChangePlan | None = None  # the plan of the last incremental push (sent as a delta)
        # the change plan of each runtime built incrementally (push hooks send it as a delta)
        self.change_of: weakref.WeakKeyDictionary[Runtime, ChangePlan] = weakref.WeakKeyDictionary()
        self._retiring: set[asyncio.Task[None]] = set()  # replaced snapshots being freed a slice at a time
        self.h2server = H2Server(self.handle, settings)
        self._push_lock = asyncio.Lock()
        # async hooks run after a successful push: (doc, runtime) -> None (e.g. publish to Redis)
        self.push_hooks: list[Callable[[dict[str, Any], Runtime], Awaitable[None]]] = []
        metrics.register_gauge_source(self.services, "apig_inflight_requests", "Requests being handled right now",
                                      (), lambda: {(): self.inflight})
        # sync hooks run on every activation: (doc, runtime, source) with source "admin" (admin API), "file"
        # (--config), "cluster" (Redis), "relay" (another worker), "restore" (persisted state at start-up)
        self.activate_hooks: list[Callable[[dict[str, Any], Runtime, str], None]] = []

    # --- snapshot ------------------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime | None:
        return self.services.runtime

    def apply_document(self, doc: dict[str, Any], version: str | None = None, source: str = "admin") -> Runtime:
        """Validate, compile and swap in ``doc``; on any problem the current runtime keeps serving."""
        try:
            with retire.quiet_gc(freeze=True):
                runtime, ix = self._build_full(doc, version)
        except SnapshotError:
            self.services.reload_failures += 1
            raise
        self.doc_index, self.last_change = ix, None
        if ix is not None:
            remember(ix)
        self._activate(doc, runtime, source)
        retire.settle()
        return runtime

    async def push_document(self, doc: dict[str, Any], expected_version: str | None = None,
                            version: str | None = None, distribute: bool = True, source: str = "admin") -> Runtime:
        """Control-plane write: optimistic concurrency on the version, compile in a worker thread
        (the event loop keeps serving), swap, then run ``push_hooks`` (distribution to other nodes)."""
        async with self._push_lock:
            current = self.runtime
            if expected_version is not None and (current is None or current.version != expected_version):
                raise VersionConflict(current.version if current else None)
            old_doc = self.document
            try:
                runtime, ix, plan = await asyncio.to_thread(self._build, current, doc, version)
            except SnapshotError as exc:
                self.services.reload_failures += 1
                if source not in _SELF_LOGGING_SOURCES:
                    _log_rejected(source, exc)
                raise
            old_ix = self.doc_index
            self.doc_index, self.last_change = ix, plan
            if plan is not None:
                self.change_of[runtime] = plan
            if ix is not None:
                remember(ix)
            self._activate(doc, runtime, source)
            if plan is None:  # a whole new snapshot: keep the collector and the freeing of the old one quiet
                retire.settle()
                if current is not None:
                    retire.retire(current, old_doc, self._retiring, also=(_index_of(current), old_ix))
            del current, old_doc, old_ix
        if distribute:
            for hook in self.push_hooks:
                await hook(doc, runtime)
        return runtime

    def _build(self, current: Runtime | None, doc: dict[str, Any], version: str | None
               ) -> tuple[Runtime, DocIndex | None, ChangePlan | None]:
        """(runtime, index of ``doc``, the change plan or None) in a worker thread: the incremental path when
        it applies, else the whole document with the cyclic collector paused."""
        plan = self._plan(current, doc)
        if plan is not None and current is not None:
            try:
                runtime = compile_change(current, doc, plan, self.services, version, self.chain)
            except SnapshotError:
                pass  # the whole-document validation reports the problem with exact paths
            else:
                self.services.extras["incremental_compiles"] = self.services.extras.get("incremental_compiles", 0) + 1
                return runtime, plan.index, plan
        with retire.quiet_gc(freeze=True):
            runtime, ix = self._build_full(doc, version)
        return runtime, ix, None

    def _build_full(self, doc: dict[str, Any], version: str | None) -> tuple[Runtime, DocIndex | None]:
        """Whole-document compile, plus the index later changes are planned against."""
        runtime = build_runtime(doc, self.services, version, self.chain)
        return runtime, (DocIndex.build(doc) if self.settings.incremental_compile else None)

    def _plan(self, current: Runtime | None, doc: dict[str, Any]) -> ChangePlan | None:
        ix = self.doc_index
        if current is None or ix is None or ix.doc is not self.document or not self.settings.incremental_compile:
            return None
        return plan_change(ix, doc)

    def _activate(self, doc: dict[str, Any], runtime: Runtime, source: str = "admin") -> None:
        self.services.runtime = runtime  # the atomic swap
        self._bind_log_hook(runtime)
        self.document = doc
        self.services.reloads += 1
        for hook in self.services.swap_hooks:
            hook(runtime)
        for ahook in self.activate_hooks:
            ahook(doc, runtime, source)
        log.info("snapshot %s active: %s (compiled in %.1f ms)", runtime.version, runtime.counts,
                 runtime.compile_ms)

    def _bind_log_hook(self, runtime: Runtime) -> None:
        """The kafka_log completion hook is one of the completion hooks only while some endpoint of the active
        snapshot has a kafka_log plug-in: every other request makes no call for it."""
        hooks = self.services.completion_hooks
        hook = self._log_hook
        wanted = any(ep.log_plugin is not None for ep in runtime.endpoints.values())
        if wanted and hook not in hooks:
            hooks.append(hook)
        elif not wanted and hook in hooks:
            hooks.remove(hook)

    def load_config_path(self, path: str) -> Runtime:
        return self.apply_document(load_path(path), source="file")

    # --- request handling ----------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        runtime = self.services.runtime
        peer = request.remote or "0.0.0.0"
        resolver = self._client_ip  # trusted proxies (pipeline/stages/client_ip.py); none: the peer is the client
        h1 = type(request) is Http1Request  # this listener writes preset answers (model/answer.py)
        ctx = RequestContext(request, new_request_id(), runtime, peer, self._max_body,  # type: ignore[arg-type]
                             resolver(peer, request.headers) if resolver.trusted else peer, self._latency_mode,
                             self._body_timeout, h1)
        self.inflight += 1
        try:
            if runtime is None:
                return pipeline.render_error(ctx, GatewayError(
                    "DEFAULT_5XX", "APIG.0606", "Failed to load the API configurations.", status=503))
            if request.bad_version if h1 else BAD_VERSION_KEY in request:  # type: ignore[attr-defined]
                return pipeline.render_error(ctx, GatewayError(
                    "DEFAULT_5XX", "APIG.0201", "HTTP version not supported.", status=505))
            return await pipeline.handle(ctx)
        finally:
            self.inflight -= 1
            for hook in self.services.completion_hooks:
                try:
                    hook(ctx)
                except Exception:
                    log.exception("completion hook failed")

    # --- listeners -----------------------------------------------------------------------------
    def make_public_server(self) -> PublicServer:
        s = self.settings
        return PublicServer(
            self.handle,
            head_timeout_s=s.header_read_timeout_s,
            max_line_size=s.max_line_bytes,
            max_field_size=s.max_header_bytes,
            max_headers=s.max_headers,
            keepalive_timeout=s.keepalive_timeout_s,
            auto_decompress=False,
            access_log=None,
        )

    def make_admin_app(self, listen: str | None = None) -> web.Application:
        self.admin_app = create_admin_app(self, listen, extra=(self._mount_metrics,))
        self.admin_app.middlewares.append(_log_rejected_writes)  # innermost: sees the final error response
        return self.admin_app

    def _mount_metrics(self, app: web.Application) -> None:
        """``GET /metrics`` on the admin listener, when metrics are on."""
        if metrics.render(self.services) is None:
            return

        async def scrape(_: web.Request) -> web.Response:
            rendered = metrics.render(self.services)
            body, content_type = rendered if rendered is not None else (b"", "text/plain")
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/metrics", scrape)

    async def start(self, public: str | None = None, admin: str | None = None, reuse_port: bool = False,
                    sock: Any = None) -> None:
        s = self.settings
        admin_value = admin or s.admin_listen
        if admin_value:  # before any socket opens; on every start path (cli, --workers workers, embedders)
            check_admin_exposure(admin_value, s.admin_token)
        runner = web.ServerRunner(self.make_public_server(), shutdown_timeout=s.shutdown_timeout_s)
        await runner.setup()
        self._runners.append(runner)
        h1: Callable[[], asyncio.BaseProtocol]
        if s.public_listener == "aiohttp":
            assert runner.server is not None
            h1 = runner.server
        else:  # the llhttp listener (gateway.process.http1)
            self.http1 = Http1Server(self.handle, s)
            h1 = self.http1
        plain = h1 if not s.h2c else (lambda: PrefaceSniffer(h1, self.h2server))  # prior-knowledge h2c
        site: web.BaseSite
        if sock is not None:
            if s.public_listener == "aiohttp" and not s.h2c:
                site = web.SockSite(runner, sock)
                await site.start()
                self.public_port = _bound_port(site)
            else:
                server = await asyncio.get_running_loop().create_server(plain, sock=sock, backlog=s.backlog)
                self._servers.append(server)
                self.public_port = int(server.sockets[0].getsockname()[1])
        else:
            host, port = split_listen(public or s.listen)
            if plain is runner.server:
                site = web.TCPSite(runner, host, port, backlog=s.backlog, reuse_port=reuse_port or None)
            else:
                site = ProtocolSite(runner, plain, host, port, backlog=s.backlog, reuse_port=reuse_port or None)
            await site.start()
            self.public_port = _bound_port(site)
        if s.https_listen:  # HTTPS listener on the same runner; certificates per domain via SNI (docs/tls.md)
            factory: Callable[[], asyncio.BaseProtocol] | None = None
            if s.http2:
                factory = lambda: AlpnDispatch(h1, self.h2server)  # noqa: E731
            elif s.public_listener != "aiohttp":
                factory = h1
            self.https_port = await start_https(s, self.services, runner, reuse_port, factory)
        if admin_value:
            arunner = web.AppRunner(self.make_admin_app(admin_value), access_log=None)
            await arunner.setup()
            self._runners.append(arunner)
            ahost, aport = split_listen(admin_value)
            asite = web.TCPSite(arunner, ahost, aport, reuse_port=reuse_port or None)
            await asite.start()
            self.admin_port = _bound_port(asite)

    async def stop(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        if self.h2server.connections:  # GOAWAY; HTTP/2 streams in flight finish first
            await self.h2server.shutdown(self.settings.shutdown_timeout_s)
        for server in self._servers:
            server.close()
        if self.http1 is not None:  # stop accepting first (the runner's sites), then drain the connections
            for runner in self._runners:
                for site in list(runner.sites):
                    await site.stop()
            await self.http1.shutdown(self.settings.shutdown_timeout_s)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.services.close()

    async def drain(self, deadline_s: float) -> None:
        """Wait until no request is in flight, or the deadline passes."""
        end = time.monotonic() + deadline_s
        while self.inflight and time.monotonic() < end:
            await asyncio.sleep(0.05)


# sources whose caller logs a rejection itself (file reloads, cluster snapshots, start-up restore, the admin API)
_SELF_LOGGING_SOURCES = frozenset({"file", "cluster", "restore", "admin"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def _log_rejected_writes(request: web.Request, handler: Any) -> web.StreamResponse:
    """A rejected admin write (snapshot push, v2 change, import) is logged at WARNING: method, path, status,
    error code and the first problems; never the request body."""
    try:
        resp: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if request.method in _WRITES and 400 <= exc.status < 500 and exc.status not in (401, 403, 404):
            log.warning("admin %s %s rejected: %d %s", request.method, request.path, exc.status, exc.reason)
        raise
    if request.method in _WRITES and 400 <= resp.status < 500 and resp.status not in (401, 403, 404):
        body = getattr(resp, "body", None)
        detail = ""
        if isinstance(body, bytes):
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict):
                problems = doc.get("problems") or doc.get("errors") or []
                shown = "; ".join(str(p) for p in problems[:5]) if isinstance(problems, list) else ""
                detail = f"{doc.get('error_code', '')} {doc.get('error_msg', '')}".strip()
                if shown:
                    more = f" ... and {len(problems) - 5} more" if len(problems) > 5 else ""
                    detail += f" ({len(problems)} problem{'s' if len(problems) != 1 else ''}: {shown}{more})"
        log.warning("admin %s %s rejected: %d %s", request.method, request.path, resp.status, detail)
    return resp


def _log_rejected(source: str, exc: SnapshotError, shown: int = 5) -> None:
    """One WARNING for a rejected push or import: how many problems and the first few (never the body)."""
    problems = exc.problems
    more = f"; ... and {len(problems) - shown} more" if len(problems) > shown else ""
    log.warning("%s push rejected, the active snapshot keeps serving (%d problem%s): %s%s", source, len(problems),
                "" if len(problems) == 1 else "s", "; ".join(problems[:shown]), more)


def _index_of(runtime: Runtime) -> Any:
    """The validated index ``runtime`` was compiled from (None if unknown)."""
    try:
        return index_of(runtime)
    except KeyError:
        return None


def _bound_port(site: web.BaseSite) -> int | None:
    server = getattr(site, "_server", None)
    if server is None or not server.sockets:
        return None
    return int(server.sockets[0].getsockname()[1])
