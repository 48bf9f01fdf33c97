"""The ``kafka_log`` plug-in: ship an access record of each call to Kafka, after the response.

Role in the pipeline: a completion hook (runs after the response was sent, never delays or fails it); the
plug-in's load-time validation and plan are :mod:`gateway.pipeline.stages.kafka_log`. For a publication with a
bound ``kafka_log`` plug-in, the hook builds one JSON record of the fields the plug-in selects and puts it on
a bounded in-memory queue; one task per plug-in drains the queue into an aiokafka producer. A full queue drops
the record (counted); a failed send is retried ``max_retry_count`` times, ``retry_backoff`` seconds apart,
then dropped (counted). Counters are published on ``/metrics`` as ``apig_kafka_log_records{plugin, outcome}``
and ``apig_kafka_log_queue``.

Content (the vendor's ``KafkaLogContent``; docs/plugins.md): ``broker_list`` (``host:port``), ``topic``,
``key``, ``max_retry_count`` (0-5, default 0), ``retry_backoff`` (1-10 s, default 1), ``sasl_config``
(``security_protocol`` PLAINTEXT | SASL_PLAINTEXT | SASL_SSL, ``sasl_mechanisms`` PLAIN | SCRAM-SHA-256 |
SCRAM-SHA-512, ``sasl_username``, ``sasl_password``, ``ssl_ca_content``; the seed's ``sas_*`` spellings
accepted) and ``meta_config`` (``system`` field switches and ``call_data``; also accepted nested in
``sasl_config`` as in the vendor's printed examples).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.model.services import Services
from gateway.observe import jsonsafe
from gateway.observe.accesslog import SECRET_PARAM_RX
from gateway.observe.metrics import register_gauge_source
from gateway.pipeline.stages.kafka_log import KafkaLogPlan

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

log = logging.getLogger("gateway.observe.kafka_log")

EXTRAS_KEY = "kafka_log"
MAX_RECORD = 4096  # bytes of one record (the vendor's limit); larger ones lose their bulky parts first
MAX_VALUE = 1024  # characters of one header / query / body value
BATCH = 200
# request headers never shipped in clear, whatever the filter says
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-auth-token", "x-apig-appcode",
                            "x-hw-appkey", "apikey"})


# --- the record ------------------------------------------------------------------------------------

def _pick(items: Any, patterns: tuple[str, ...], secret: frozenset[str] = frozenset()) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in items:
        low = name.lower()
        if not any(p == "*" or p == low or fnmatch.fnmatchcase(low, p) for p in patterns):
            continue
        masked = low in secret or SECRET_PARAM_RX.search(low) is not None
        out[str(name)] = "***" if masked else str(value)[:MAX_VALUE]
    return out


def _system(ctx: RequestContext, name: str) -> Any:
    ep = ctx.endpoint
    if name == "start_time":
        return int((time.time() - ctx.elapsed_ms() / 1000.0) * 1000)
    if name == "request_id":
        return ctx.request_id
    if name == "client_ip":
        return ctx.client_ip
    if name == "request_time":
        return round(ctx.elapsed_ms() / 1000.0, 3)
    if name == "http_status":
        return ctx.status
    if name == "scheme":
        return ctx.request.scheme
    if name == "request_method":
        return ctx.method
    if name == "host":
        return ctx.host or None
    if name == "uri":
        return ctx.path
    if name == "upstream_addr":
        return ctx.extras.get("upstream_addr")
    if name == "upstream_status":
        return ctx.extras.get("upstream_status")
    if name in ("upstream_response_time", "all_upstream_response_time"):
        return round(ctx.backend_ms / 1000.0, 3) if ctx.backend_ms is not None else None
    if name == "http_x_forwarded_for":
        return ctx.headers.get("X-Forwarded-For")
    if name == "http_user_agent":
        ua = ctx.headers.get("User-Agent")
        return ua[:512] if ua else None
    if name == "error_type":
        return ctx.error.error_type if ctx.error is not None else None
    if name == "api_id":
        return ep.api_id if ep is not None else None
    if name == "api_name":
        return ep.api_name if ep is not None else None
    if name == "api_uri_mode":
        return ("SWA" if ep.prefix else "NORMAL") if ep is not None else None
    if name == "auth_type":
        return ep.auth_type if ep is not None else None
    if name == "app_id":
        return ctx.app_id
    if name == "app_name":
        return ctx.app_name
    if name == "user_name":
        return ctx.user_name
    if name == "server_protocol":
        v = ctx.request.version
        return f"HTTP/{v.major}.{v.minor}"
    if name == "request_size":
        return ctx.request.content_length or (len(ctx.body) if ctx.body is not None else 0)
    if name in ("response_size", "body_bytes_sent"):
        return ctx.bytes_sent
    if name.startswith("custom_data_log"):
        for f in ctx.runtime.log_fields:
            if f.field == name:
                got = f.get(ctx)
                return None if got is None else "***" if SECRET_PARAM_RX.search(f.name) else got[:MAX_VALUE]
        return None
    if name == "response_source":
        return "gateway" if ctx.error is not None or ctx.backend_ms is None else "backend"
    return None  # fields of the vendor's infrastructure (region, VPC endpoint, proxy protocol ...): not known here


def build_record(ctx: RequestContext, plan: KafkaLogPlan) -> bytes:
    rec: dict[str, Any] = {name: _system(ctx, name) for name in plan.system}
    bulky: list[str] = []
    if plan.req_headers is not None:
        rec["request_header"] = _pick(ctx.headers.items(), plan.req_headers, SECRET_HEADERS)
        bulky.append("request_header")
    if plan.req_query is not None:
        rec["request_query_string"] = _pick(ctx.query.items(), plan.req_query)
        bulky.append("request_query_string")
    if plan.req_body:
        rec["request_body"] = ctx.body[:MAX_VALUE].decode("utf-8", "replace") if ctx.body is not None else None
        bulky.append("request_body")
    if plan.resp_headers is not None:
        rec["response_header"] = _pick(ctx.response_headers.items(), plan.resp_headers)
        bulky.append("response_header")
    if plan.frontend_keys or plan.backend_keys:
        rec["custom_authorizer"] = {
            "frontend": {k: ctx.authorizer_frontend.get(k) for k in plan.frontend_keys},
            "backend": {k: ctx.authorizer_backend.get(k) for k in plan.backend_keys},
        }
    data = jsonsafe.dumps(rec, default=str)
    while len(data) > MAX_RECORD and bulky:  # the vendor's 4 KB limit: drop the bulkiest parts first
        rec.pop(bulky.pop())
        rec["truncated"] = True
        data = jsonsafe.dumps(rec, default=str)
    return data


# --- shipping --------------------------------------------------------------------------------------

class KafkaSink:
    """One producer and its bounded queue; :meth:`offer` never blocks, never raises."""

    def __init__(self, plugin_id: str, plan: KafkaLogPlan, queue_size: int) -> None:
        self.plugin_id = plugin_id
        self.plan = plan
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max(1, queue_size))
        self.stats = {"queued": 0, "sent": 0, "dropped": 0, "failed": 0, "retried": 0}
        self._task: asyncio.Task[None] | None = None
        self._producer: Any = None

    def offer(self, record: bytes) -> None:
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            return
        self.stats["queued"] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def _new_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer
        from aiokafka.helpers import create_ssl_context

        p = self.plan
        kw: dict[str, Any] = {"bootstrap_servers": list(p.brokers), "security_protocol": p.protocol,
                              "request_timeout_ms": 5000, "linger_ms": 5, "acks": 1, "enable_idempotence": False,
                              "client_id": "apig-gateway-kafka-log"}
        if p.protocol != "PLAINTEXT":
            kw.update(sasl_mechanism=p.mechanism, sasl_plain_username=p.username, sasl_plain_password=p.password)
        if p.protocol == "SASL_SSL":
            kw["ssl_context"] = create_ssl_context(cadata=p.ca) if p.ca else create_ssl_context()
        return AIOKafkaProducer(**kw)

    async def _send(self, batch: list[bytes]) -> list[bytes]:
        """Send a batch; returns the records that failed."""
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except Exception as exc:
                log.warning("kafka_log %s: cannot reach %s (%s)", self.plugin_id, ",".join(self.plan.brokers),
                            type(exc).__name__)
                await self._stop(producer)
                return batch
            self._producer = producer
        futures = []
        for record in batch:
            try:
                futures.append(await self._producer.send(self.plan.topic, record, key=self.plan.key))
            except Exception:
                futures.append(None)
        failed: list[bytes] = []
        results = await asyncio.gather(*(f for f in futures if f is not None), return_exceptions=True)
        it = iter(results)
        for record, fut in zip(batch, futures, strict=True):
            if fut is None or isinstance(next(it), BaseException):
                failed.append(record)
        if failed:  # start again with a fresh producer next time (the broker may have moved or restarted)
            await self._stop(self._producer)
            self._producer = None
        return failed

    @staticmethod
    async def _stop(producer: Any) -> None:
        try:
            await asyncio.wait_for(producer.stop(), 5)
        except Exception:
            pass

    async def _drain(self) -> None:
        q = self.queue
        while not q.empty():
            batch = [q.get_nowait() for _ in range(min(BATCH, q.qsize()))]
            attempt = 0
            while batch:
                failed = await self._send(batch)
                self.stats["sent"] += len(batch) - len(failed)
                if not failed:
                    break
                if attempt >= self.plan.retries:
                    self.stats["failed"] += len(failed)
                    break
                attempt += 1
                self.stats["retried"] += len(failed)
                await asyncio.sleep(self.plan.backoff_s)
                batch = failed

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 2)
            except Exception:
                self._task.cancel()
        if self._producer is not None:
            await self._stop(self._producer)
            self._producer = None


class KafkaLogHook:
    """The completion hook of one gateway process: routes each finished call to its plug-in's sink."""

    def __init__(self, services: Services) -> None:
        self.queue_size = int(getattr(services.settings, "kafka_log_queue_size", 10000))
        self.sinks: dict[tuple[str, tuple[Any, ...]], KafkaSink] = {}
        self.build_errors = 0

    def __call__(self, ctx: RequestContext) -> None:
        ep = ctx.endpoint
        if ep is None or ctx.runtime is None:
            return
        found: tuple[str, KafkaLogPlan] | None = ep.log_plugin
        if found is None:
            return
        plugin_id, plan = found
        key = (plugin_id, (*plan.connection(), plan.topic, plan.key, plan.retries, plan.backoff_s))
        sink = self.sinks.get(key)
        if sink is None:
            sink = self.sinks[key] = KafkaSink(plugin_id, plan, self.queue_size)
        try:
            record = build_record(ctx, plan)
        except Exception:
            self.build_errors += 1
            log.exception("kafka_log: record of request %s could not be built", ctx.request_id)
            return
        sink.offer(record)

    def samples(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for sink in self.sinks.values():
            for outcome, n in sink.stats.items():
                k = (sink.plugin_id, outcome)
                out[k] = out.get(k, 0.0) + n
        return out

    def depth(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for sink in self.sinks.values():
            out[(sink.plugin_id,)] = out.get((sink.plugin_id,), 0.0) + sink.queue.qsize()
        return out

    async def close(self) -> None:
        for sink in list(self.sinks.values()):
            await sink.close()


def setup(services: Services) -> None:
    """Called by the process once per Services: the completion hook and its gauges."""
    hook = KafkaLogHook(services)
    services.extras[EXTRAS_KEY] = hook
    services.completion_hooks.append(hook)
    services.close_hooks.append(hook.close)
    register_gauge_source(services, "apig_kafka_log_records", "kafka_log records by outcome since start "
                          "(queued, sent, dropped: queue full, failed: retries exhausted, retried)",
                          ("plugin", "outcome"), hook.samples)
    register_gauge_source(services, "apig_kafka_log_queue", "kafka_log records waiting to be sent", ("plugin",),
                          hook.depth)

