"""Prometheus metrics: per-request counters and histograms, plus gauges read at scrape time.

Role in the pipeline: after the response (spec 02 §11.2 step 19). A completion hook records each finished
request; :func:`render` renders the registry (the process mounts it as ``GET /metrics`` on the admin
listener). Every :class:`Gateway` (its
:class:`Services`) owns its own ``CollectorRegistry``, so several gateways in one process never collide.

Per-request cost: one dict probe for the endpoint's pre-bound label children (created on first use per
(group, API, environment)), then plain-Python additions: the request counter and the three latency histograms
are accumulated in :class:`_Hist` / int fields of that binding (a ``bisect`` and two additions each, no locks:
each process serves from one event loop) and turned into Prometheus families when scraped
(:class:`_LatencyCollector`). prometheus-client's own ``Histogram.observe`` took a lock per sum and bucket and
cost several µs per request. Rarer events (retries, errors, aborts, gRPC codes) keep prometheus-client
counters. Labels are bounded:
group id, API id, API name and environment name from the compiled endpoint (never a raw path or header),
plus the status class; a request that matched no API is counted under ``api="-"`` (and ``group="-"`` /
``env="-"`` when those are unknown). Process metrics (CPU, memory, file descriptors, GC) come from
prometheus-client's standard collectors.

Everything that is state rather than an event (config version, reloads, in-flight requests, channel member
health, Redis fallbacks) is read from the long-lived services when scraped, so it costs nothing per request.
Feature modules publish their own gauges with :func:`register_gauge_source`; two ``services.extras``
conventions are read without registration (docs/operations.md "Metrics"):

* ``services.extras["throttle_fallbacks"]``: an int, a callable returning an int, or a dict
  ``reason -> int`` — how often shared (Redis) throttling fell back to local counters;
* channel member health: the VPC-channel ``HealthManager`` in ``services.extras["channels"]`` (its
  ``status()`` rows) when present; otherwise ``services.extras["channel_health"]``, a dict (or a callable
  returning one) ``(channel_id, member) -> bool | float``.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from gateway.core import grpc_status
from gateway.core.grpc_status import GRPC_STATUS_KEY
from gateway.model.services import Services

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

log = logging.getLogger("gateway.observe.metrics")
# no ``*_created`` series: they double the series count and Prometheus does not need them
disable_created_metrics()

EXTRAS_KEY = "metrics"
SOURCES_KEY = "metrics.sources"
LABELS = ("group", "api", "api_name", "env")
# seconds; covers a MOCK answer (sub-ms) up to the 60 s backend timeout cap
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_FIRST_BUCKET = LATENCY_BUCKETS[0]
_LE = tuple(floatToGoString(b) for b in LATENCY_BUCKETS)
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
REQUESTS_DOC = "Requests answered, by API, environment and status class"
DURATION_DOC = "Total time from arrival to the last byte handed to the client"
OVERHEAD_DOC = ("Time the gateway itself spent on a request: total minus the time spent waiting for the backend "
                "(response head and body)")
BACKEND_DOC = "Time from sending to the backend to its response head (last attempt)"


class _Hist:
    """One latency histogram series: per-bucket (non-cumulative) counts, the last one for +Inf, and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # first bucket whose bound >= the value
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for le, n in zip(_LE, self.counts, strict=False):
            running += n
            out.append((le, float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


@dataclass(frozen=True)
class GaugeSource:
    """A gauge family computed at scrape time: ``read()`` -> {label values tuple: value}."""

    name: str
    documentation: str
    labelnames: tuple[str, ...]
    read: Callable[[], Mapping[tuple[str, ...], float] | Iterable[tuple[tuple[str, ...], float]]]


def register_gauge_source(services: Services, name: str, documentation: str, labelnames: Iterable[str],
                          read: Callable[[], Any]) -> None:
    """Publish a gauge whose samples are read when ``/metrics`` is scraped.

    ``read()`` returns a mapping (or iterable of pairs) ``(label values...) -> number``. Example (channels)::

        register_gauge_source(services, "apig_channel_member_up", "1 when the member passes health checks",
                              ("channel", "member"), lambda: {(cid, addr): 1.0 if ok else 0.0 ...})

    Keep label values bounded (ids, ``host:port``), never request data. A failing ``read`` is logged and
    skipped; the scrape still succeeds. Registering the same name again replaces the earlier source.
    """
    sources: list[GaugeSource] = services.extras.setdefault(SOURCES_KEY, [])
    sources[:] = [s for s in sources if s.name != name]
    sources.append(GaugeSource(name, documentation, tuple(labelnames), read))


class _Bound:
    """The label children of one (group, api, env): bound once, reused by every request."""

    __slots__ = ("_m", "backend", "by_class", "errors", "labels", "overhead", "retries", "total")

    def __init__(self, m: GatewayMetrics, labels: tuple[str, str, str, str]) -> None:
        self._m = m
        self.labels = labels
        self.total = _Hist()
        self.overhead = _Hist()
        self.backend: _Hist | None = None  # made on the first backend answer: no empty series for MOCK APIs
        self.retries = m.retries.labels(*labels)
        self.by_class: dict[int, int] = {}  # status class (2 for 2xx ...) -> requests answered
        self.errors: dict[tuple[str, str], Any] = {}


class GatewayMetrics:
    """The metrics of one gateway process (one registry)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(_LatencyCollector(self))  # apig_requests and the three latency histograms
        self.retries = Counter("apig_backend_retries", "Backend attempts beyond the first (retry_count)",
                               LABELS, registry=r)
        self.errors = Counter("apig_errors", "Requests the gateway ended with an error response, by response type "
                              "(THROTTLED, ACCESS_DENIED, BACKEND_TIMEOUT ...) and error code",
                              (*LABELS, "type", "code"), registry=r)
        self.aborted = Counter("apig_backend_aborted", "Responses cut because the backend failed mid-body",
                               LABELS, registry=r)
        self.grpc_calls = Counter("apig_grpc_calls", "gRPC calls answered, by API, environment and gRPC status "
                                  "(OK, UNAVAILABLE ...)", (*LABELS, "code"), registry=r)
        r.register(_StateCollector(services))
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, open fds ...
        PlatformCollector(registry=r)  # python_info
        GCCollector(registry=r)  # python_gc_*
        self._bound: dict[tuple[str, str, str, str], _Bound] = {}
        # compiled endpoint -> its binding: one identity-hash probe per request (no label tuple built); emptied
        # on every snapshot swap, so replaced endpoints are not kept alive
        self._by_endpoint: dict[Any, _Bound] = {}
        services.swap_hooks.append(lambda _runtime: self._by_endpoint.clear())

    def _bind(self, key: tuple[str, str, str, str]) -> _Bound:
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _Bound(self, key)
        return bound

    def observe(self, ctx: RequestContext) -> None:
        """Completion hook: record one finished request."""
        ep = ctx.endpoint
        if ep is not None:
            bound = self._by_endpoint.get(ep)
            if bound is None:
                key = (ep.group_id, ep.api_id, ep.api_name, ep.env_name)
                bound = self._by_endpoint[ep] = self._bound.get(key) or self._bind(key)
            else:
                key = bound.labels
        else:
            group = ctx.group
            key = (group.id if group is not None else "-", "-", "-", ctx.env_name or "-")
            bound = self._bound.get(key) or self._bind(key)
        cls = ctx.status // 100
        by_class = bound.by_class
        by_class[cls] = by_class.get(cls, 0) + 1
        seconds = perf_counter() - ctx.started  # what ctx.elapsed_ms() / 1000 is, without the call
        backend_ms = ctx.backend_ms
        if backend_ms is None:  # no backend time (MOCK, errors): the overhead is the total, one bucket search
            i = 0 if seconds <= _FIRST_BUCKET else bisect_left(LATENCY_BUCKETS, seconds)  # usually the first
            h = bound.total
            h.counts[i] += 1
            h.total += seconds
            h = bound.overhead
            h.counts[i] += 1
            h.total += seconds
        else:  # the three histograms inline (a method call each showed in profiles)
            h = bound.total
            h.counts[0 if seconds <= _FIRST_BUCKET else bisect_left(LATENCY_BUCKETS, seconds)] += 1
            h.total += seconds
            bh = bound.backend
            if bh is None:
                bh = bound.backend = _Hist()
            b = backend_ms / 1000.0
            bh.counts[0 if b <= _FIRST_BUCKET else bisect_left(LATENCY_BUCKETS, b)] += 1
            bh.total += b
            o = seconds - b - ctx.backend_body_ms / 1000.0
            if o <= _FIRST_BUCKET:  # usually: the gateway's own share is well under 0.5 ms
                o = 0.0 if o < 0.0 else o
                i = 0
            else:
                i = bisect_left(LATENCY_BUCKETS, o)
            h = bound.overhead
            h.counts[i] += 1
            h.total += o
        if ctx.retries:
            bound.retries.inc(ctx.retries)
        err = ctx.error
        if err is not None:
            ekey = (err.error_type, err.code)
            echild = bound.errors.get(ekey)
            if echild is None:
                echild = bound.errors[ekey] = self.errors.labels(*key, *ekey)
            echild.inc()
        if ctx.extras:
            if ctx.extras.get("aborted"):
                self.aborted.labels(*key).inc()
            code = ctx.extras.get(GRPC_STATUS_KEY)
            if code is not None:
                self.grpc_calls.labels(*key, grpc_status.NAMES.get(code, str(code))).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LatencyCollector:
    """``apig_requests`` and the latency histograms, built at scrape time from the per-binding accumulators."""

    def __init__(self, m: GatewayMetrics) -> None:
        self.m = m

    def describe(self) -> list[Metric]:
        return []  # series appear as APIs are called: collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("apig_requests", REQUESTS_DOC, labels=(*LABELS, "status_class"))
        duration = HistogramMetricFamily("apig_request_duration_seconds", DURATION_DOC, labels=LABELS)
        overhead = HistogramMetricFamily("apig_gateway_overhead_seconds", OVERHEAD_DOC, labels=LABELS)
        backend = HistogramMetricFamily("apig_backend_duration_seconds", BACKEND_DOC, labels=LABELS)
        for key, bound in list(self.m._bound.items()):
            for cls, n in sorted(bound.by_class.items()):
                requests.add_metric((*key, _STATUS_CLASS.get(cls, "none")), float(n))
            duration.add_metric(key, bound.total.buckets(), bound.total.total)
            overhead.add_metric(key, bound.overhead.buckets(), bound.overhead.total)
            if bound.backend is not None:
                backend.add_metric(key, bound.backend.buckets(), bound.backend.total)
        yield from (requests, duration, overhead, backend)


class _StateCollector:
    """Gauges and counters that are read from the services when scraped."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def describe(self) -> list[Metric]:
        return []  # samples vary with the config: collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        s = self.services
        rt = s.runtime
        info = InfoMetricFamily("apig_config", "The active configuration snapshot", labels=("version",))
        if rt is not None:
            info.add_metric((rt.version,), {})
        yield info
        loaded = GaugeMetricFamily("apig_config_loaded", "1 when a configuration snapshot is active")
        loaded.add_metric((), 1.0 if rt is not None else 0.0)
        yield loaded
        if rt is not None:
            ts = GaugeMetricFamily("apig_config_activated_timestamp_seconds",
                                   "When the active snapshot was compiled (unix time)")
            ts.add_metric((), rt.compiled_at)
            yield ts
            cs = GaugeMetricFamily("apig_config_compile_seconds", "How long compiling the active snapshot took")
            cs.add_metric((), rt.compile_ms / 1000.0)
            yield cs
            objs = GaugeMetricFamily("apig_config_objects", "Objects in the active snapshot", labels=("kind",))
            for kind, n in sorted(rt.counts.items()):
                objs.add_metric((kind,), float(n))
            yield objs
        reloads = CounterMetricFamily("apig_config_reloads", "Snapshots activated (initial load included)")
        reloads.add_metric((), float(s.reloads))
        yield reloads
        failures = CounterMetricFamily("apig_config_reload_failures", "Snapshots rejected (the previous kept serving)")
        failures.add_metric((), float(s.reload_failures))
        yield failures
        yield from self._fallbacks()
        yield from self._channel_health()
        for source in list(s.extras.get(SOURCES_KEY) or ()):
            yield from _read_source(source)

    def _fallbacks(self) -> Iterator[Metric]:
        raw = self.services.extras.get("throttle_fallbacks")
        if raw is None:
            return
        try:
            value = raw() if callable(raw) else raw
            fam = CounterMetricFamily("apig_throttle_fallbacks", "Throttling decisions taken on local counters "
                                      "because the shared store (Redis) was unavailable", labels=("reason",))
            if isinstance(value, Mapping):
                for reason, n in sorted(value.items()):
                    fam.add_metric((str(reason),), float(n))
            else:
                fam.add_metric(("all",), float(value))
            yield fam
        except Exception:
            log.exception("metrics: reading throttle_fallbacks failed")

    def _channel_health(self) -> Iterator[Metric]:
        manager = self.services.extras.get("channels")
        if manager is not None and callable(getattr(manager, "status", None)):
            yield from self._channel_manager(manager)
            return
        raw = self.services.extras.get("channel_health")
        if raw is None:
            return
        try:
            value = raw() if callable(raw) else raw
            fam = GaugeMetricFamily("apig_channel_member_up", "1 when the channel member passes its health checks",
                                    labels=("channel", "member"))
            for (channel, member), up in sorted(value.items()):
                fam.add_metric((str(channel), str(member)), float(up))
            yield fam
        except Exception:
            log.exception("metrics: reading channel_health failed")

    def _channel_manager(self, manager: Any) -> Iterator[Metric]:
        """The VPC-channel health manager (gateway.backends.channels.health): one row per (channel, member)."""
        try:
            rows = manager.status()
            labels = ("channel", "member")
            up = GaugeMetricFamily("apig_channel_member_up", "1 when the channel member is selectable (healthy "
                                   "and not ejected)", labels=labels)
            active = GaugeMetricFamily("apig_channel_member_active_requests", "Requests in flight to the member",
                                       labels=labels)
            checks = CounterMetricFamily("apig_channel_member_checks", "Active health checks by result",
                                         labels=(*labels, "result"))
            ejections = CounterMetricFamily("apig_channel_member_ejections", "Times passive checks ejected the member",
                                            labels=labels)
            for row in rows:
                host = str(row.get("host", ""))
                member = f"[{host}]:{row.get('port')}" if ":" in host else f"{host}:{row.get('port')}"
                key = (str(row.get("channel_id", "")), member)
                up.add_metric(key, 1.0 if row.get("healthy") else 0.0)
                active.add_metric(key, float(row.get("active") or 0))
                checks.add_metric((*key, "ok"), float(row.get("checks_ok") or 0))
                checks.add_metric((*key, "failed"), float(row.get("checks_failed") or 0))
                ejections.add_metric(key, float(row.get("ejections") or 0))
        except Exception:
            log.exception("metrics: reading channel health failed")
            return
        yield from (up, active, checks, ejections)


def _read_source(source: GaugeSource) -> Iterator[Metric]:
    try:
        samples = source.read()
        pairs = samples.items() if isinstance(samples, Mapping) else samples
        fam = GaugeMetricFamily(source.name, source.documentation, labels=source.labelnames)
        for labels, value in pairs:
            fam.add_metric(tuple(str(x) for x in labels), float(value))
    except Exception:
        log.exception("metrics: gauge source %s failed", source.name)
        return
    yield fam


def metrics_of(services: Services) -> GatewayMetrics | None:
    m = services.extras.get(EXTRAS_KEY)
    return m if isinstance(m, GatewayMetrics) else None


def setup(services: Services) -> None:
    """Called by the process once per Services: the collector and its completion hook (``metrics`` on)."""
    if not services.settings.metrics:
        return
    m = GatewayMetrics(services)
    services.extras[EXTRAS_KEY] = m
    services.completion_hooks.append(m.observe)


def render(services: Services) -> tuple[bytes, str] | None:
    """The exposition text and its content type, or None when metrics are off (no route then)."""
    m = metrics_of(services)
    return None if m is None else (m.render(), CONTENT_TYPE_LATEST)

